#include "wxsession/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace wxsession {
namespace {

// Every config in this file carries these secrets, so every error case can
// check that no message leaks them.
constexpr char kSecret[] = "TopSecretValue-9f8e7d";
constexpr char kEnvSecret[] = "EnvSecretValue-1a2b3c";

using EnvMap = std::map<std::string, std::string>;

GetEnv FakeEnv(EnvMap vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

GetEnv NoEnv() { return FakeEnv({}); }

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "config_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    for (const std::string& file : files_) unlink(file.c_str());
    rmdir(dir_.c_str());
  }

  // Writes `content` to a new file in the temp dir; returns its path.
  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    files_.push_back(path);
    return path;
  }

  // A config file with one app (kSecret) plus `extra` top-level members,
  // e.g. R"("session": {"ttl": 5})".
  std::string WriteWithApp(const std::string& extra) {
    std::string text =
        std::string(R"({"apps": [{"appid": "wx1", "secret": ")") + kSecret +
        "\"}]";
    if (!extra.empty()) text += ", " + extra;
    text += "}";
    return Write("config.json", text);
  }

  Result<Config> Load(const std::string& path, const GetEnv& env = NoEnv(),
                      const ConfigOverrides& overrides = {}) {
    return LoadConfig(path, env, overrides);
  }

  std::string dir_;
  std::vector<std::string> files_;
};

// Checks the error contract: kInvalidRequest, one line starting with
// "config: <key_path>: ", and no secret in it.
void ExpectConfigError(const Result<Config>& result,
                       const std::string& key_path,
                       const std::string& also_contains = "") {
  ASSERT_FALSE(result.ok()) << "expected an error naming " << key_path;
  const Status& status = result.status();
  EXPECT_EQ(status.code(), ErrorCode::kInvalidRequest);
  const std::string& message = status.message();
  EXPECT_EQ(message.rfind("config: " + key_path + ": ", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_EQ(message.find(kSecret), std::string::npos) << message;
  EXPECT_EQ(message.find(kEnvSecret), std::string::npos) << message;
  if (!also_contains.empty()) {
    EXPECT_NE(message.find(also_contains), std::string::npos) << message;
  }
}

// --- Defaults and sources
// -----------------------------------------------------

TEST_F(ConfigTest, DefaultsWithEnvironmentOnly) {
  auto result = Load("", FakeEnv({{"WXSESSIOND_APPID", "wxenv"},
                                  {"WXSESSIOND_SECRET", kEnvSecret}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const Config& c = result.value();
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.database, "./wxsessiond.db");
  ASSERT_EQ(c.apps.size(), 1u);
  EXPECT_EQ(c.apps[0].appid, "wxenv");
  EXPECT_EQ(c.apps[0].secret, kEnvSecret);
  EXPECT_EQ(c.session_ttl, 30 * 86400);
  EXPECT_EQ(c.session_idle_ttl, 7 * 86400);
  EXPECT_EQ(c.sweep_interval, 60);
  EXPECT_EQ(c.wechat_api_base, "https://api.weixin.qq.com");
  EXPECT_EQ(c.wechat_timeout_ms, 5000);
  EXPECT_FALSE(c.expose_openid);
  EXPECT_EQ(c.durability, Durability::kNormal);
  EXPECT_EQ(c.http_threads, 0);
}

TEST_F(ConfigTest, NoAppAnywhereIsAnError) {
  auto result = Load("");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(result.status().message(),
            "config: apps: no app configured (set apps in the config file, or "
            "WXSESSIOND_APPID and WXSESSIOND_SECRET)");
  ExpectConfigError(Load(Write("c.json", "{}")), "apps", "no app configured");
  ExpectConfigError(Load(Write("c.json", R"({"apps": []})")), "apps",
                    "no app configured");
}

TEST_F(ConfigTest, EveryKeyFromFile) {
  std::string path = Write("full.json", std::string(R"({
    "listen": "0.0.0.0:9090",
    "database": "/var/lib/wxsessiond/sessions.db",
    "apps": [
      {"appid": "wx1", "secret": ")") + kSecret +
                                            R"("},
      {"appid": "wx2", "secret": "second"}
    ],
    "session": {"ttl": "12h", "idle_ttl": 900},
    "sweep_interval": "5m",
    "wechat": {"api_base": "http://127.0.0.1:9999", "timeout": 2},
    "expose_openid": true,
    "durability": "full",
    "http": {"threads": 8}
  })");
  auto result = Load(path);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const Config& c = result.value();
  EXPECT_EQ(c.listen_host, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 9090);
  EXPECT_EQ(c.database, "/var/lib/wxsessiond/sessions.db");
  ASSERT_EQ(c.apps.size(), 2u);
  EXPECT_EQ(c.apps[0].appid, "wx1");
  EXPECT_EQ(c.apps[0].secret, kSecret);
  EXPECT_EQ(c.apps[1].appid, "wx2");
  EXPECT_EQ(c.apps[1].secret, "second");
  EXPECT_EQ(c.session_ttl, 12 * 3600);
  EXPECT_EQ(c.session_idle_ttl, 900);
  EXPECT_EQ(c.sweep_interval, 300);
  EXPECT_EQ(c.wechat_api_base, "http://127.0.0.1:9999");
  EXPECT_EQ(c.wechat_timeout_ms, 2000);
  EXPECT_TRUE(c.expose_openid);
  EXPECT_EQ(c.durability, Durability::kFull);
  EXPECT_EQ(c.http_threads, 8);
}

TEST_F(ConfigTest, CommentsAreAllowed) {
  std::string path = Write("c.json", std::string(R"(
    // Production settings.
    {
      /* one app for now */
      "apps": [{"appid": "wx1", "secret": ")") +
                                         kSecret + R"("}],
      "durability": "full"  // fsync on every commit
    })");
  auto result = Load(path);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->durability, Durability::kFull);
}

TEST_F(ConfigTest, DurabilityNormalAndExposeOpenidFalse) {
  auto result = Load(WriteWithApp(R"("durability": "normal",
                                     "expose_openid": false)"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->durability, Durability::kNormal);
  EXPECT_FALSE(result->expose_openid);
}

TEST_F(ConfigTest, FindApp) {
  auto result = Load(Write("c.json", R"({"apps": [
      {"appid": "wx1", "secret": "s1"}, {"appid": "wx2", "secret": "s2"}]})"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_NE(result->FindApp("wx2"), nullptr);
  EXPECT_EQ(result->FindApp("wx2")->secret, "s2");
  EXPECT_EQ(result->FindApp("wx1")->secret, "s1");
  EXPECT_EQ(result->FindApp("wx3"), nullptr);
  EXPECT_EQ(result->FindApp(""), nullptr);
}

// What login and the token centre resolve a request's appid with.
TEST_F(ConfigTest, AppForTakesTheOnlyAppWhenNoneIsNamed) {
  auto two = Load(Write("c.json", R"({"apps": [
      {"appid": "wx1", "secret": "s1"}, {"appid": "wx2", "secret": "s2"}]})"));
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  ASSERT_TRUE(two->AppFor("wx2").ok());
  EXPECT_EQ(two->AppFor("wx2").value()->secret, "s2");
  EXPECT_EQ(two->AppFor("").status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(two->AppFor("wx3").status().code(), ErrorCode::kUnknownApp);
  EXPECT_NE(two->AppFor("wx3").status().message().find("wx3"),
            std::string::npos);
  // `wxsessiond dev` serves an app per platform and names a default.
  Config with_default = two.value();
  with_default.default_appid = "wx2";
  ASSERT_TRUE(with_default.AppFor("").ok());
  EXPECT_EQ(with_default.AppFor("").value()->appid, "wx2");
  EXPECT_EQ(with_default.AppFor("wx1").value()->appid, "wx1");

  auto one = Load(Write("d.json", R"({"apps": [
      {"appid": "wx1", "secret": "s1"}]})"));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_TRUE(one->AppFor("").ok());
  EXPECT_EQ(one->AppFor("").value()->appid, "wx1");
}

// --- File-level failures
// --------------------------------------------------------

TEST_F(ConfigTest, MissingFile) {
  std::string path = dir_ + "/does-not-exist.json";
  auto result = Load(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "config: " + path + ": cannot read: No such file or directory");
}

TEST_F(ConfigTest, DirectoryInsteadOfFile) {
  ExpectConfigError(Load(dir_), dir_, "cannot read");
}

TEST_F(ConfigTest, JsonSyntaxErrorGivesPosition) {
  std::string path = Write("bad.json", "{\n  \"listen\": \"127.0.0.1:80\",\n}");
  auto result = Load(path);
  ExpectConfigError(result, path, "invalid JSON at byte");
  EXPECT_NE(result.status().message().find("line 3"), std::string::npos)
      << result.status().message();
}

TEST_F(ConfigTest, JsonSyntaxErrorDoesNotQuoteTheSecret) {
  // An unterminated string: the parser's "last read" token is the secret.
  std::string path =
      Write("bad.json",
            std::string(R"({"apps": [{"appid": "wx1", "secret": ")") + kSecret);
  ExpectConfigError(Load(path), path, "invalid JSON");
  // A control character inside the secret string.
  path = Write("bad2.json",
               std::string(R"({"apps": [{"appid": "wx1", "secret": ")") +
                   kSecret + "\x01\"}]}");
  ExpectConfigError(Load(path), path, "invalid JSON");
}

TEST_F(ConfigTest, TopLevelMustBeAnObject) {
  std::string path = Write("c.json", "[1, 2]");
  ExpectConfigError(Load(path), path, "object");
  path = Write("c2.json", "");
  ExpectConfigError(Load(path), path, "invalid JSON");
}

// --- Unknown keys
// -----------------------------------------------------------------

TEST_F(ConfigTest, UnknownKeysAreNamed) {
  ExpectConfigError(Load(WriteWithApp(R"("sesion": {"ttl": 5})")), "sesion",
                    "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("session": {"tll": 5})")),
                    "session.tll", "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("wechat": {"apibase": "http://x"})")),
                    "wechat.apibase", "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("http": {"thread": 4})")),
                    "http.thread", "unknown key");
  ExpectConfigError(
      Load(Write("c.json",
                 std::string(R"({"apps": [{"appid": "wx1", "secert": ")") +
                     kSecret + "\"}]}")),
      "apps[0].secert", "unknown key");
}

// --- Invalid values: each names its key and never leaks the secret
// ---------------

struct InvalidCase {
  const char* extra;     // top-level members added next to a valid app
  const char* key_path;  // expected at the start of the message
};

TEST_F(ConfigTest, InvalidValuesNameTheirKey) {
  const InvalidCase cases[] = {
      {R"("listen": "127.0.0.1")", "listen"},
      {R"("listen": "127.0.0.1:65536")", "listen"},
      {R"("listen": "127.0.0.1:-1")", "listen"},
      {R"("listen": 8080)", "listen"},
      {R"("database": "")", "database"},
      {R"("database": 1)", "database"},
      {R"("session": 5)", "session"},
      {R"("session": {"ttl": 0})", "session.ttl"},
      {R"("session": {"ttl": "0s"})", "session.ttl"},
      {R"("session": {"ttl": -5})", "session.ttl"},
      {R"("session": {"ttl": "5 days"})", "session.ttl"},
      {R"("session": {"ttl": "1.5h"})", "session.ttl"},
      {R"("session": {"ttl": 1.5})", "session.ttl"},
      {R"("session": {"ttl": true})", "session.ttl"},
      {R"("session": {"ttl": "99999999999999999999d"})", "session.ttl"},
      {R"("session": {"ttl": "3651d"})", "session.ttl"},
      {R"("session": {"idle_ttl": -1})", "session.idle_ttl"},
      {R"("session": {"idle_ttl": "x"})", "session.idle_ttl"},
      {R"("sweep_interval": 0)", "sweep_interval"},
      {R"("sweep_interval": "")", "sweep_interval"},
      {R"("sweep_interval": null)", "sweep_interval"},
      {R"("wechat": [])", "wechat"},
      {R"("wechat": {"api_base": "ftp://api.weixin.qq.com"})",
       "wechat.api_base"},
      {R"("wechat": {"api_base": "api.weixin.qq.com"})", "wechat.api_base"},
      {R"("wechat": {"api_base": "https://"})", "wechat.api_base"},
      {R"("wechat": {"api_base": 1})", "wechat.api_base"},
      {R"("wechat": {"timeout": 0})", "wechat.timeout"},
      {R"("wechat": {"timeout": "0ms"})", "wechat.timeout"},
      {R"("wechat": {"timeout": -1})", "wechat.timeout"},
      {R"("wechat": {"timeout": "fast"})", "wechat.timeout"},
      {R"("wechat": {"timeout": "2h"})", "wechat.timeout"},
      {R"("wechat": {"timeout": "5sms"})", "wechat.timeout"},
      {R"("expose_openid": "yes")", "expose_openid"},
      {R"("expose_openid": 1)", "expose_openid"},
      {R"("durability": "FULL")", "durability"},
      {R"("durability": "extra")", "durability"},
      {R"("durability": 2)", "durability"},
      {R"("http": 4)", "http"},
      {R"("http": {"threads": -1})", "http.threads"},
      {R"("http": {"threads": 1.5})", "http.threads"},
      {R"("http": {"threads": "4"})", "http.threads"},
      {R"("http": {"threads": 100000})", "http.threads"},
  };
  for (const InvalidCase& c : cases) {
    SCOPED_TRACE(c.extra);
    ExpectConfigError(Load(WriteWithApp(c.extra)), c.key_path);
  }
}

TEST_F(ConfigTest, InvalidAppsNameTheirKey) {
  const std::string s = kSecret;
  const std::pair<std::string, std::string> cases[] = {
      {R"({"apps": {"appid": "wx1", "secret": ")" + s + "\"}}", "apps"},
      {R"({"apps": ["wx1"]})", "apps[0]"},
      {R"({"apps": [{"secret": ")" + s + "\"}]}", "apps[0].appid"},
      {R"({"apps": [{"appid": "", "secret": ")" + s + "\"}]}", "apps[0].appid"},
      {R"({"apps": [{"appid": 7, "secret": ")" + s + "\"}]}", "apps[0].appid"},
      {R"({"apps": [{"appid": "wx1"}]})", "apps[0]"},
      {R"({"apps": [{"appid": "wx1", "secret": ""}]})", "apps[0].secret"},
      {R"({"apps": [{"appid": "wx1", "secret": ["a"]}]})", "apps[0].secret"},
      {R"({"apps": [{"appid": "wx1", "secret": ")" + s +
           R"(", "secret_file": "/x"}]})",
       "apps[0]"},
      {R"({"apps": [{"appid": "wx1", "secret_file": ""}]})",
       "apps[0].secret_file"},
      {R"({"apps": [{"appid": "wx1", "secret": ")" + s +
           R"("}, {"appid": "wx1", "secret": ")" + s + "\"}]}",
       "apps[1].appid"},
      {R"({"apps": [{"appid": "wx1", "secret": ")" + s +
           R"("}, {"appid": "wx2"}]})",
       "apps[1]"},
  };
  for (const auto& [text, key_path] : cases) {
    SCOPED_TRACE(text);
    ExpectConfigError(Load(Write("apps.json", text)), key_path);
  }
}

TEST_F(ConfigTest, SecretOfWrongTypeIsNotQuoted) {
  auto result = Load(
      Write("c.json", R"({"apps": [{"appid": "wx1", "secret": 987654321}]})"));
  ExpectConfigError(result, "apps[0].secret");
  EXPECT_EQ(result.status().message().find("987654321"), std::string::npos);
}

TEST_F(ConfigTest, DuplicateAppidIsNamed) {
  auto result = Load(Write("c.json", R"({"apps": [
      {"appid": "wxdup", "secret": "a"}, {"appid": "wxdup", "secret": "b"}]})"));
  ExpectConfigError(result, "apps[1].appid", "duplicate appid wxdup");
}

// --- Durations and timeouts
// -------------------------------------------------------

TEST(ParseDurationTest, UnitsAndPlainSeconds) {
  EXPECT_EQ(ParseDuration("30d"), 30 * 86400);
  EXPECT_EQ(ParseDuration("12h"), 12 * 3600);
  EXPECT_EQ(ParseDuration("15m"), 15 * 60);
  EXPECT_EQ(ParseDuration("90s"), 90);
  EXPECT_EQ(ParseDuration("90"), 90);
  EXPECT_EQ(ParseDuration("0"), 0);
  EXPECT_EQ(ParseDuration("0d"), 0);
  EXPECT_EQ(ParseDuration("007s"), 7);
  EXPECT_EQ(ParseDuration("9223372036854775807"), INT64_MAX);
}

TEST(ParseDurationTest, RejectsEverythingElse) {
  for (const char* bad :
       {"", "d", "s", "-1", "+1", "1.5h", "1h30m", "30D", "30 d", " 30d",
        "30d ", "1w", "1ms", "abc", "0x10", "9223372036854775808",
        "106751991167301d", "99999999999999999999"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << bad;
  }
}

TEST_F(ConfigTest, DurationForms) {
  auto result = Load(WriteWithApp(
      R"("session": {"ttl": "30d", "idle_ttl": "0"}, "sweep_interval": 60.0)"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->session_ttl, 30 * 86400);
  EXPECT_EQ(result->session_idle_ttl, 0);
  EXPECT_EQ(result->sweep_interval, 60);

  result = Load(WriteWithApp(R"("session": {"ttl": 1, "idle_ttl": 0})"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->session_ttl, 1);
  EXPECT_EQ(result->session_idle_ttl, 0);

  result = Load(WriteWithApp(R"("session": {"ttl": "3650d"})"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->session_ttl, 3650LL * 86400);
}

TEST_F(ConfigTest, TimeoutForms) {
  const std::pair<const char*, int64_t> cases[] = {
      {"5", 5000},    {"\"2s\"", 2000},  {"\"500ms\"", 500},
      {"0.25", 250},  {"\"1m\"", 60000}, {"\"30\"", 30000},
      {"\"1ms\"", 1}, {"3600", 3600000},
  };
  for (const auto& [value, ms] : cases) {
    SCOPED_TRACE(value);
    auto result = Load(
        WriteWithApp(std::string(R"("wechat": {"timeout": )") + value + "}"));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->wechat_timeout_ms, ms);
  }
}

TEST_F(ConfigTest, ApiBaseTrailingSlashIsDropped) {
  auto result = Load(
      WriteWithApp(R"("wechat": {"api_base": "https://example.com/wx/"})"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->wechat_api_base, "https://example.com/wx");
}

// --- Secret files
// -------------------------------------------------------------------

TEST_F(ConfigTest, SecretFileIsReadAndTrailingWhitespaceTrimmed) {
  std::string secret_path =
      Write("secret.txt", std::string("  ") + kSecret + " \t\r\n\n");
  auto result = Load(Write("c.json", R"({"apps": [{"appid": "wx1",
      "secret_file": ")" + secret_path + "\"}]}"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // Only trailing whitespace goes: leading characters are kept as written.
  EXPECT_EQ(result->apps[0].secret, std::string("  ") + kSecret);
}

TEST_F(ConfigTest, SecretFileMissingOrEmpty) {
  std::string missing = dir_ + "/nope.txt";
  ExpectConfigError(Load(Write("c.json", R"({"apps": [{"appid": "wx1",
      "secret_file": ")" + missing + "\"}]}")),
                    "apps[0].secret_file", "No such file or directory");
  std::string empty = Write("empty.txt", " \n\r\n");
  ExpectConfigError(Load(Write("c.json", R"({"apps": [{"appid": "wx1",
      "secret_file": ")" + empty + "\"}]}")),
                    "apps[0].secret_file", "empty");
}

// --- Environment
// ----------------------------------------------------------------------

TEST_F(ConfigTest, EnvironmentSecretFile) {
  std::string secret_path = Write("env-secret", std::string(kEnvSecret) + "\n");
  auto result = Load("", FakeEnv({{"WXSESSIOND_APPID", "wxenv"},
                                  {"WXSESSIOND_SECRET_FILE", secret_path}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->apps.size(), 1u);
  EXPECT_EQ(result->apps[0].secret, kEnvSecret);

  ExpectConfigError(
      Load("", FakeEnv({{"WXSESSIOND_APPID", "wxenv"},
                        {"WXSESSIOND_SECRET_FILE", dir_ + "/missing"}})),
      "WXSESSIOND_SECRET_FILE", "cannot read");
}

TEST_F(ConfigTest, EnvironmentReplacesSecretOfSameApp) {
  std::string path = Write("c.json", std::string(R"({"apps": [
      {"appid": "wx1", "secret": ")") + kSecret +
                                         R"("},
      {"appid": "wx2", "secret": "two"}]})");
  auto result = Load(path, FakeEnv({{"WXSESSIOND_APPID", "wx1"},
                                    {"WXSESSIOND_SECRET", kEnvSecret}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->apps.size(), 2u);
  EXPECT_EQ(result->FindApp("wx1")->secret, kEnvSecret);
  EXPECT_EQ(result->FindApp("wx2")->secret, "two");
}

TEST_F(ConfigTest, EnvironmentAppendsNewApp) {
  auto result =
      Load(WriteWithApp(""), FakeEnv({{"WXSESSIOND_APPID", "wxnew"},
                                      {"WXSESSIOND_SECRET", kEnvSecret}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->apps.size(), 2u);
  EXPECT_EQ(result->apps[0].appid, "wx1");
  EXPECT_EQ(result->apps[0].secret, kSecret);
  EXPECT_EQ(result->apps[1].appid, "wxnew");
  EXPECT_EQ(result->apps[1].secret, kEnvSecret);
}

TEST_F(ConfigTest, IncompleteEnvironmentIsAnError) {
  ExpectConfigError(Load("", FakeEnv({{"WXSESSIOND_APPID", "wxenv"}})),
                    "WXSESSIOND_APPID", "WXSESSIOND_SECRET");
  ExpectConfigError(Load("", FakeEnv({{"WXSESSIOND_SECRET", kEnvSecret}})),
                    "WXSESSIOND_APPID");
  std::string secret_path = Write("s", kEnvSecret);
  ExpectConfigError(
      Load("", FakeEnv({{"WXSESSIOND_APPID", "wxenv"},
                        {"WXSESSIOND_SECRET", kEnvSecret},
                        {"WXSESSIOND_SECRET_FILE", secret_path}})),
      "WXSESSIOND_SECRET", "not both");
}

TEST_F(ConfigTest, EmptyEnvironmentValuesCountAsUnset) {
  auto result = Load(WriteWithApp(""), FakeEnv({{"WXSESSIOND_APPID", ""},
                                                {"WXSESSIOND_SECRET", ""},
                                                {"WXSESSIOND_API_BASE", ""}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->apps.size(), 1u);
  EXPECT_EQ(result->wechat_api_base, "https://api.weixin.qq.com");
}

TEST_F(ConfigTest, EnvironmentApiBase) {
  auto result =
      Load(WriteWithApp(R"("wechat": {"api_base": "https://file.example"})"),
           FakeEnv({{"WXSESSIOND_API_BASE", "http://127.0.0.1:7777/"}}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->wechat_api_base, "http://127.0.0.1:7777");
  ExpectConfigError(Load(WriteWithApp(""),
                         FakeEnv({{"WXSESSIOND_API_BASE", "127.0.0.1:7777"}})),
                    "WXSESSIOND_API_BASE");
}

TEST_F(ConfigTest, ProcessEnvironmentReadsRealVariables) {
  const char* name = "WXSESSIOND_CONFIG_TEST_VARIABLE";
  GetEnv env = ProcessEnvironment();
  unsetenv(name);
  EXPECT_EQ(env(name), std::nullopt);
  setenv(name, "value 1", 1);
  EXPECT_EQ(env(name), std::optional<std::string>("value 1"));
  setenv(name, "", 1);
  EXPECT_EQ(env(name), std::optional<std::string>(""));
  unsetenv(name);
}

// --- Command-line overrides
// ---------------------------------------------------------

TEST_F(ConfigTest, OverridesWinOverFile) {
  ConfigOverrides overrides;
  overrides.listen = "[::1]:0";
  overrides.database = "/tmp/other.db";
  auto result =
      Load(WriteWithApp(R"("listen": "0.0.0.0:80", "database": "/file.db")"),
           NoEnv(), overrides);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->listen_host, "::1");
  EXPECT_EQ(result->listen_port, 0);
  EXPECT_EQ(result->database, "/tmp/other.db");
}

TEST_F(ConfigTest, BadOverridesAreNamed) {
  ConfigOverrides overrides;
  overrides.listen = "nonsense";
  ExpectConfigError(Load(WriteWithApp(""), NoEnv(), overrides), "--listen");
  overrides = {};
  overrides.database = "";
  ExpectConfigError(Load(WriteWithApp(""), NoEnv(), overrides), "--database");
}

// --- ParseHostPort
// ------------------------------------------------------------------

TEST(ParseHostPortTest, Accepts) {
  using HostPort = std::pair<std::string, int>;
  EXPECT_EQ(ParseHostPort("127.0.0.1:8080"), HostPort("127.0.0.1", 8080));
  EXPECT_EQ(ParseHostPort("localhost:0"), HostPort("localhost", 0));
  EXPECT_EQ(ParseHostPort("0.0.0.0:65535"), HostPort("0.0.0.0", 65535));
  EXPECT_EQ(ParseHostPort("[::1]:80"), HostPort("::1", 80));
  EXPECT_EQ(ParseHostPort("[::]:8080"), HostPort("::", 8080));
  EXPECT_EQ(ParseHostPort("[fe80::1%eth0]:80"), HostPort("fe80::1%eth0", 80));
  EXPECT_EQ(ParseHostPort("example.com:00080"), HostPort("example.com", 80));
}

// --- storage (issue 7)
// --------------------------------------------------------

TEST_F(ConfigTest, StorageKeysAreReadAndDefaultToOff) {
  Result<Config> plain = Load(WriteWithApp(""));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(plain->master_key_file.empty());
  EXPECT_TRUE(plain->previous_master_key_files.empty());
  EXPECT_EQ(plain->storage_max_pages, 0);

  Result<Config> config = Load(WriteWithApp(
      R"("storage": {"master_key_file": "/k/new", )"
      R"("previous_master_key_files": ["/k/old"], "max_pages": 100})"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->master_key_file, "/k/new");
  EXPECT_EQ(config->previous_master_key_files,
            std::vector<std::string>{"/k/old"});
  EXPECT_EQ(config->storage_max_pages, 100);
}

TEST_F(ConfigTest, StorageErrorsNameTheKey) {
  ExpectConfigError(Load(WriteWithApp(R"("storage": 1)")), "storage");
  ExpectConfigError(Load(WriteWithApp(R"("storage": {"master_key": "x"})")),
                    "storage.master_key");
  ExpectConfigError(Load(WriteWithApp(R"("storage": {"master_key_file": ""})")),
                    "storage.master_key_file");
  ExpectConfigError(
      Load(WriteWithApp(R"("storage": {"previous_master_key_files": "x"})")),
      "storage.previous_master_key_files");
  ExpectConfigError(
      Load(WriteWithApp(
          R"("storage": {"master_key_file": "/k", "previous_master_key_files": [1]})")),
      "storage.previous_master_key_files[0]");
  ExpectConfigError(
      Load(WriteWithApp(R"("storage": {"previous_master_key_files": ["/k"]})")),
      "storage.previous_master_key_files");
  ExpectConfigError(Load(WriteWithApp(R"("storage": {"max_pages": -1})")),
                    "storage.max_pages");
  ExpectConfigError(Load(WriteWithApp(R"("storage": {"max_pages": "10"})")),
                    "storage.max_pages");
}

TEST_F(ConfigTest, SecretFilePathsAreRememberedForThePermissionCheck) {
  std::string secret = Write("secret", std::string(kSecret) + "\n");
  Result<Config> config = Load(Write(
      "c.json", R"({"apps": [{"appid": "wx1", "secret_file": ")" + secret +
                    R"("}, {"appid": "wx2", "secret": "inline"}]})"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->apps[0].secret_file, secret);
  EXPECT_EQ(config->apps[1].secret_file, "");
  Result<Config> from_env =
      Load("", FakeEnv({{"WXSESSIOND_APPID", "wx9"},
                        {"WXSESSIOND_SECRET_FILE", secret}}));
  ASSERT_TRUE(from_env.ok()) << from_env.status().ToString();
  EXPECT_EQ(from_env->apps[0].secret_file, secret);
}

TEST(ParseHostPortTest, Rejects) {
  for (const char* bad : {"",
                          ":",
                          ":80",
                          "host",
                          "host:",
                          "host:65536",
                          "host:-1",
                          "host:+1",
                          "host:8o",
                          "host:123456",
                          "host: 80",
                          "host :80",
                          "::1:80",
                          "::1",
                          "[::1]",
                          "[::1]80",
                          "[]:80",
                          "[::1]:",
                          "[::1:80",
                          "[a b]:80",
                          "[127.0.0.1]:80",
                          "http://host:80",
                          "host:99999999999999999999"}) {
    EXPECT_EQ(ParseHostPort(bad), std::nullopt) << bad;
  }
}

// --- open_data and admin (issue 3)
// ------------------------------------------------------------

TEST_F(ConfigTest, OpenDataMaxAgeIsOffByDefaultAndTakesADuration) {
  auto defaults = Load(WriteWithApp(""));
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->open_data_max_age, 0);
  EXPECT_TRUE(defaults->admin_token.empty());
  EXPECT_TRUE(defaults->admin_token_file.empty());

  auto five_minutes = Load(WriteWithApp(R"("open_data": {"max_age": "5m"})"));
  ASSERT_TRUE(five_minutes.ok()) << five_minutes.status().ToString();
  EXPECT_EQ(five_minutes->open_data_max_age, 300);
  auto seconds = Load(WriteWithApp(R"("open_data": {"max_age": 90})"));
  ASSERT_TRUE(seconds.ok());
  EXPECT_EQ(seconds->open_data_max_age, 90);

  ExpectConfigError(Load(WriteWithApp(R"("open_data": {"max_age": "soon"})")),
                    "open_data.max_age");
  ExpectConfigError(Load(WriteWithApp(R"("open_data": {"max_age": -1})")),
                    "open_data.max_age");
  ExpectConfigError(Load(WriteWithApp(R"("open_data": {"maxage": 1})")),
                    "open_data.maxage", "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("open_data": 5)")), "open_data");
}

TEST_F(ConfigTest, AdminTokenIsReadFromItsFileAndTrimmed) {
  const std::string token = "0123456789abcdef0123456789abcdef";
  const std::string file = Write("admin_token", "\n  " + token + " \r\n");
  auto result =
      Load(WriteWithApp(R"("admin": {"token_file": ")" + file + R"("})"));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->admin_token, token);
  EXPECT_EQ(result->admin_token_file, file);
}

TEST_F(ConfigTest, BadAdminTokensNameTheKeyWithoutQuotingTheToken) {
  const auto load_token = [this](const std::string& content) {
    const std::string file = Write("admin_token", content);
    return Load(WriteWithApp(R"("admin": {"token_file": ")" + file + R"("})"));
  };
  const std::string short_token = "Short-9z";
  auto too_short = load_token(short_token + "\n");
  ExpectConfigError(too_short, "admin.token_file", "shorter than 16");
  EXPECT_EQ(too_short.status().message().find(short_token), std::string::npos);

  const std::string spaced = "two words-0123456789abcdef";
  auto with_space = load_token(spaced);
  ExpectConfigError(with_space, "admin.token_file", "visible ASCII");
  EXPECT_EQ(with_space.status().message().find("words"), std::string::npos);

  ExpectConfigError(load_token("first-line-0123456789\nsecond-line-0123456789"),
                    "admin.token_file", "one line");
  ExpectConfigError(load_token("caf\xc3\xa9-0123456789abcdef"),
                    "admin.token_file");
  ExpectConfigError(load_token(" \n"), "admin.token_file", "empty");
  ExpectConfigError(Load(WriteWithApp(R"("admin": {"token_file": ")" + dir_ +
                                      R"(/absent"})")),
                    "admin.token_file", "cannot read");
  ExpectConfigError(Load(WriteWithApp(R"("admin": {"token_file": ""})")),
                    "admin.token_file");
  ExpectConfigError(Load(WriteWithApp(R"("admin": {"token": "x"})")),
                    "admin.token", "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("admin": [])")), "admin");
}

// --- store and redis (issue 6)
// ------------------------------------------------------

TEST_F(ConfigTest, StoreDefaultsToSqliteAndAcceptsRedisUrls) {
  Result<Config> plain = Load(WriteWithApp(""));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->store, "sqlite");
  EXPECT_EQ(plain->redis.prefix, "wxs:");
  EXPECT_EQ(plain->redis.timeout_ms, 1000);
  EXPECT_EQ(plain->redis.min_replicas_ack, 0);

  Result<Config> redis = Load(WriteWithApp(
      R"("store": "redis-sentinel://s1:26379,s2:26379/mymaster",)"
      R"( "redis": {"prefix": "shop:", "timeout": "250ms", "pool_size": 4,)"
      R"( "min_replicas_ack": 1})"));
  ASSERT_TRUE(redis.ok()) << redis.status().ToString();
  EXPECT_EQ(redis->store, "redis-sentinel://s1:26379,s2:26379/mymaster");
  EXPECT_EQ(redis->redis.prefix, "shop:");
  EXPECT_EQ(redis->redis.timeout_ms, 250);
  EXPECT_EQ(redis->redis.pool_size, 4);
  EXPECT_EQ(redis->redis.min_replicas_ack, 1);
}

TEST_F(ConfigTest, InvalidStoreAndRedisKeysNameTheirKey) {
  // The URL's password must not appear in the message.
  ExpectConfigError(Load(WriteWithApp(std::string(R"("store": "redis://:)") +
                                      kSecret + R"(@host:notaport")")),
                    "store");
  ExpectConfigError(Load(WriteWithApp(std::string(R"("store": "mysql://:)") +
                                      kSecret + "@h\"")),
                    "store");
  ExpectConfigError(Load(WriteWithApp(R"("store": 6379)")), "store");
  ExpectConfigError(Load(WriteWithApp(R"("redis": {"prefix": ""})")),
                    "redis.prefix");
  ExpectConfigError(Load(WriteWithApp(R"("redis": {"timeout": "soon"})")),
                    "redis.timeout");
  ExpectConfigError(Load(WriteWithApp(R"("redis": {"pool_size": 0})")),
                    "redis.pool_size");
  ExpectConfigError(Load(WriteWithApp(R"("redis": {"min_replicas_ack": -1})")),
                    "redis.min_replicas_ack");
  ExpectConfigError(Load(WriteWithApp(R"("redis": {"pasword_file": "x"})")),
                    "redis.pasword_file", "unknown key");
  ExpectConfigError(Load(WriteWithApp(R"("redis": 1)")), "redis");
}

TEST_F(ConfigTest, RedisPasswordFromFileOrEnvironment) {
  std::string file = Write("redis-password", std::string(kSecret) + "\n");
  Result<Config> from_file =
      Load(WriteWithApp(R"("redis": {"password_file": ")" + file + "\"}"));
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(from_file->redis.password, kSecret);
  Result<Config> from_env = Load(
      WriteWithApp(""), FakeEnv({{"WXSESSIOND_REDIS_PASSWORD", kEnvSecret}}));
  ASSERT_TRUE(from_env.ok()) << from_env.status().ToString();
  EXPECT_EQ(from_env->redis.password, kEnvSecret);
  ExpectConfigError(
      Load(WriteWithApp(R"("redis": {"password_file": "/nonexistent/pw"})")),
      "redis.password_file");
}

TEST_F(ConfigTest, EveryFileKeyExpandsTheCredentialsDirectory) {
  // Before the section helper only apps[].secret_file, the Alipay key files,
  // hooks.secret_file and tls.* expanded $CREDENTIALS_DIRECTORY; these were
  // taken literally.
  const std::string token = "0123456789abcdef0123456789abcdef";
  Write("admin_token", token + "\n");
  Write("redis_password", std::string(kSecret) + "\n");
  Write("introspection", token + "\n");
  const GetEnv env = FakeEnv({{"CREDENTIALS_DIRECTORY", dir_}});
  auto result =
      Load(WriteWithApp(
               R"("admin": {"token_file": "$CREDENTIALS_DIRECTORY/admin_token"},
             "redis": {"password_file": "${CREDENTIALS_DIRECTORY}/redis_password"},
             "storage": {"master_key_file": "$CREDENTIALS_DIRECTORY/master",
                         "previous_master_key_files":
                             ["$CREDENTIALS_DIRECTORY/old"]},
             "tokens": {"issuer": "https://auth.example.com",
                        "signing_key_file": "$CREDENTIALS_DIRECTORY/jwt.pem",
                        "introspection_tokens_file":
                            "$CREDENTIALS_DIRECTORY/introspection"})"),
           env);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->admin_token, token);
  EXPECT_EQ(result->admin_token_file, dir_ + "/admin_token");
  EXPECT_EQ(result->redis.password, kSecret);
  EXPECT_EQ(result->master_key_file, dir_ + "/master");
  EXPECT_EQ(result->previous_master_key_files,
            std::vector<std::string>{dir_ + "/old"});
  EXPECT_EQ(result->tokens.signing_key_file, dir_ + "/jwt.pem");
  EXPECT_EQ(result->tokens.introspection_tokens,
            std::vector<std::string>{token});

  // Unset, each names its own key.
  ExpectConfigError(
      Load(WriteWithApp(
          R"("storage": {"master_key_file": "$CREDENTIALS_DIRECTORY/m"})")),
      "storage.master_key_file", "CREDENTIALS_DIRECTORY is not set");
  ExpectConfigError(
      Load(WriteWithApp(
          R"("admin": {"token_file": "$CREDENTIALS_DIRECTORY/admin_token"})")),
      "admin.token_file", "CREDENTIALS_DIRECTORY is not set");
}

// --- tokens (signed JWTs for backends)

TEST_F(ConfigTest, TokensAreOffByDefaultAndDefaultToTenMinutesOfES256) {
  auto off = Load(WriteWithApp(""));
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_FALSE(off->tokens.enabled());
  auto on =
      Load(WriteWithApp(R"("tokens": {"issuer": "https://a.example.com"})"));
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_TRUE(on->tokens.enabled());
  EXPECT_EQ(on->tokens.ttl, 600);
  EXPECT_EQ(on->tokens.algorithm, "ES256");
  EXPECT_TRUE(on->tokens.audience.empty());
}

TEST_F(ConfigTest, TokensKeysAreReadAndChecked) {
  std::string file = Write(
      "introspect",
      "# callers\n\n  token-of-billing-api-01  \r\nsecond-token-0123456789\n");
  auto config = Load(WriteWithApp(
      R"("tokens": {"issuer": "https://a.example.com", "audience": "api",
          "ttl": "1h", "algorithm": "EdDSA", "signing_key_file": "/k.pem",
          "introspection_tokens_file": ")" +
      file + R"("})"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->tokens.ttl, 3600);
  EXPECT_EQ(config->tokens.audience, "api");
  EXPECT_EQ(config->tokens.algorithm, "EdDSA");
  EXPECT_EQ(config->tokens.signing_key_file, "/k.pem");
  EXPECT_EQ(config->tokens.introspection_tokens,
            std::vector<std::string>(
                {"token-of-billing-api-01", "second-token-0123456789"}));

  const std::string issuer = R"("issuer": "https://a.example.com")";
  ExpectConfigError(
      Load(WriteWithApp(R"("tokens": {)" + issuer + R"(, "ttl": "61m"})")),
      "tokens.ttl", "at most 1h");
  ExpectConfigError(Load(WriteWithApp(R"("tokens": {)" + issuer +
                                      R"(, "algorithm": "HS256"})")),
                    "tokens.algorithm");
  ExpectConfigError(Load(WriteWithApp(R"("tokens": {"ttl": "5m"})")),
                    "tokens.issuer", "required");
  ExpectConfigError(
      Load(WriteWithApp(R"("tokens": {"issuer": "auth.example.com"})")),
      "tokens.issuer");
  ExpectConfigError(
      Load(WriteWithApp(R"("tokens": {"issuer": "https://a.example.com/"})")),
      "tokens.issuer");
  ExpectConfigError(
      Load(WriteWithApp(R"("tokens": {)" + issuer + R"(, "isuser": 1})")),
      "tokens.isuser", "unknown key");
  std::string short_token = Write("short", "abc\n");
  ExpectConfigError(Load(WriteWithApp(R"("tokens": {)" + issuer +
                                      R"(, "introspection_tokens_file": ")" +
                                      short_token + R"("})")),
                    "tokens.introspection_tokens_file", "line 1");
}

}  // namespace
}  // namespace wxsession
