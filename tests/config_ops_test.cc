// Config keys for running in production: log, rate_limit, trusted_proxies,
// tls, wechat.max_concurrent, $CREDENTIALS_DIRECTORY and admin loads
// without secrets. (The core keys are in config_test.cc.)
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "test_support.h"
#include "wxsession/config.h"

namespace wxsession {
namespace {

using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kSecret[] = "OpsSecretValue-77aa";

GetEnv FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class ConfigOpsTest : public ::testing::Test {
 protected:
  // A config with one inline-secret app plus `extra` top-level members.
  std::string WriteWithApp(const std::string& extra) {
    std::string text =
        std::string(R"({"apps": [{"appid": "wx1", "secret": ")") + kSecret +
        "\"}]";
    if (!extra.empty()) text += ", " + extra;
    text += "}";
    std::string path = dir_.File("config.json");
    WriteFile(path, text);
    return path;
  }

  Result<Config> Load(const std::string& extra, const GetEnv& env = FakeEnv({}),
                      const ConfigOverrides& overrides = {}) {
    return LoadConfig(WriteWithApp(extra), env, overrides);
  }

  TempDir dir_;
};

void ExpectError(const Result<Config>& result, const std::string& key_path) {
  ASSERT_FALSE(result.ok()) << "expected an error naming " << key_path;
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(result.status().message().rfind("config: " + key_path + ": ", 0),
            0u)
      << result.status().message();
  EXPECT_EQ(result.status().message().find(kSecret), std::string::npos);
}

TEST_F(ConfigOpsTest, Defaults) {
  auto result = Load("");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const Config& c = result.value();
  EXPECT_EQ(c.log_format, LogFormat::kJson);
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.login_rate_per_minute, 600);
  EXPECT_EQ(c.login_rate_burst, 100);  // ten seconds' worth
  EXPECT_EQ(c.trusted_proxies,
            (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  const int threads = EffectiveHttpThreads(c);
  EXPECT_GE(threads, 64);
  EXPECT_EQ(c.wechat_max_concurrent, threads / 4);
  // Running plus waiting calls leave the reserved threads alone.
  EXPECT_EQ(c.wechat_max_concurrent + c.wechat_max_waiting,
            threads - UpstreamReservedThreads(threads));
  EXPECT_TRUE(c.tls_cert.empty());
  EXPECT_TRUE(c.tls_key.empty());
}

TEST_F(ConfigOpsTest, EveryKeyIsRead) {
  WriteFile(dir_.File("cert.pem"), "cert");
  WriteFile(dir_.File("key.pem"), "key");
  auto result = Load(R"("log": {"format": "text", "level": "warn"},
      "rate_limit": {"login_per_minute": 60, "login_burst": 5},
      "trusted_proxies": ["10.0.0.0/8", "fd00::/8", "192.0.2.1"],
      "http": {"threads": 32},
      "wechat": {"max_concurrent": 7},
      "tls": {"cert": ")" +
                     dir_.File("cert.pem") + R"(", "key": ")" +
                     dir_.File("key.pem") + "\"}");
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const Config& c = result.value();
  EXPECT_EQ(c.log_format, LogFormat::kText);
  EXPECT_EQ(c.log_level, LogLevel::kWarn);
  EXPECT_EQ(c.login_rate_per_minute, 60);
  EXPECT_EQ(c.login_rate_burst, 5);
  EXPECT_EQ(c.trusted_proxies.size(), 3u);
  EXPECT_EQ(c.wechat_max_concurrent, 7);
  EXPECT_EQ(c.wechat_max_waiting, 32 - 4 - 7);  // 4 threads reserved
  EXPECT_EQ(c.tls_cert, dir_.File("cert.pem"));
  EXPECT_EQ(c.tls_key, dir_.File("key.pem"));
}

// `dev` builds its Config in code and calls ResolveDefaults itself: it must
// get what LoadConfig gives, and a second call must change nothing.
TEST_F(ConfigOpsTest, ResolveDefaultsGivesABuiltConfigWhatLoadConfigGives) {
  auto loaded = Load("");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Config built;
  ASSERT_TRUE(ResolveDefaults(&built).ok());
  EXPECT_EQ(built.login_rate_burst, loaded->login_rate_burst);
  EXPECT_EQ(built.wechat_max_concurrent, loaded->wechat_max_concurrent);
  EXPECT_EQ(built.wechat_max_waiting, loaded->wechat_max_waiting);
  EXPECT_EQ(built.login_rate_burst, 100);     // a sixth of 600 a minute
  EXPECT_GT(built.wechat_max_concurrent, 0);  // the bug dev once had
  Config again = built;
  ASSERT_TRUE(ResolveDefaults(&again).ok());
  EXPECT_EQ(again.login_rate_burst, built.login_rate_burst);
  EXPECT_EQ(again.wechat_max_concurrent, built.wechat_max_concurrent);
  EXPECT_EQ(again.wechat_max_waiting, built.wechat_max_waiting);

  Config small;
  small.http_threads = 16;
  small.wechat_max_concurrent = 15;
  Status too_many = ResolveDefaults(&small);
  EXPECT_EQ(too_many.message().rfind("config: wechat.max_concurrent: ", 0), 0u)
      << too_many.message();

  Config overridden;
  ConfigOverrides overrides;
  overrides.listen = "[::1]:9000";
  overrides.database = "/tmp/dev.db";
  ASSERT_TRUE(ApplyOverrides(overrides, &overridden).ok());
  EXPECT_EQ(overridden.listen_host, "::1");
  EXPECT_EQ(overridden.listen_port, 9000);
  EXPECT_EQ(overridden.database, "/tmp/dev.db");
  overrides.listen = "nonsense";
  EXPECT_EQ(ApplyOverrides(overrides, &overridden)
                .message()
                .rfind("config: --listen: ", 0),
            0u);
}

TEST_F(ConfigOpsTest, BurstDefaultsToTenSecondsOfTheRate) {
  auto result = Load(R"("rate_limit": {"login_per_minute": 60})");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->login_rate_burst, 10);
  result = Load(R"("rate_limit": {"login_per_minute": 0})");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->login_rate_per_minute, 0);  // no limit
  EXPECT_EQ(result->login_rate_burst, 1);
  result = Load(R"("trusted_proxies": [])");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->trusted_proxies.empty());
}

TEST_F(ConfigOpsTest, WeChatCallsPerSessionDefaultToTenAMinute) {
  auto result = Load("");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->wechat_per_session_per_minute, 10);
  result = Load(R"("rate_limit": {"wechat_per_session_per_minute": 0})");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->wechat_per_session_per_minute, 0);  // no limit
  result = Load(R"("rate_limit": {"wechat_per_session_per_minute": 3})");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->wechat_per_session_per_minute, 3);
}

TEST_F(ConfigOpsTest, BadValuesNameTheirKey) {
  ExpectError(Load(R"("log": {"format": "xml"})"), "log.format");
  ExpectError(Load(R"("log": {"level": "verbose"})"), "log.level");
  ExpectError(Load(R"("log": {"colour": true})"), "log.colour");
  ExpectError(Load(R"("log": "json")"), "log");
  ExpectError(Load(R"("rate_limit": {"login_per_minute": -1})"),
              "rate_limit.login_per_minute");
  ExpectError(Load(R"("rate_limit": {"login_per_minute": "600"})"),
              "rate_limit.login_per_minute");
  ExpectError(Load(R"("rate_limit": {"login_burst": 0})"),
              "rate_limit.login_burst");
  ExpectError(Load(R"("rate_limit": {"logins": 5})"), "rate_limit.logins");
  ExpectError(Load(R"("rate_limit": {"wechat_per_session_per_minute": -1})"),
              "rate_limit.wechat_per_session_per_minute");
  ExpectError(Load(R"("rate_limit": {"wechat_per_session_per_minute": 1.5})"),
              "rate_limit.wechat_per_session_per_minute");
  ExpectError(Load(R"("trusted_proxies": "10.0.0.0/8")"), "trusted_proxies");
  ExpectError(Load(R"("trusted_proxies": ["10.0.0.0/8", "10.0.0.0/99"])"),
              "trusted_proxies[1]");
  ExpectError(Load(R"("trusted_proxies": [7])"), "trusted_proxies[0]");
  ExpectError(Load(R"("wechat": {"max_concurrent": 0})"),
              "wechat.max_concurrent");
  // Calls to WeChat must leave threads for lookups (2 of 8 here).
  ExpectError(
      Load(R"("http": {"threads": 8}, "wechat": {"max_concurrent": 7})"),
      "wechat.max_concurrent");
  auto six = Load(R"("http": {"threads": 8}, "wechat": {"max_concurrent": 6})");
  ASSERT_TRUE(six.ok());
  EXPECT_EQ(six->wechat_max_waiting, 0);
  auto tiny = Load(R"("http": {"threads": 2})");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->wechat_max_concurrent, 1);
  EXPECT_EQ(tiny->wechat_max_waiting, 0);
  ExpectError(Load(R"("tls": {"cert": "/x.pem"})"), "tls");
  ExpectError(Load(R"("tls": {"cert": "", "key": "/k"})"), "tls.cert");
  ExpectError(Load(R"("tls": {"cert": ")" + dir_.File("missing.pem") +
                   R"(", "key": ")" + dir_.File("missing.key") + "\"}"),
              "tls.cert");
}

TEST_F(ConfigOpsTest, CredentialsDirectoryIsExpandedInSecretFilesAndTls) {
  TempDir credentials;
  WriteFile(credentials.File("appsecret"), std::string(kSecret) + "\n");
  WriteFile(credentials.File("tls.key"), "key");
  std::string path = dir_.File("config.json");
  WriteFile(path, std::string(R"({"apps": [{"appid": "wx1", "secret_file": )") +
                      R"("$CREDENTIALS_DIRECTORY/appsecret"},)" +
                      R"({"appid": "wx2", "secret_file": )" +
                      R"("${CREDENTIALS_DIRECTORY}/appsecret"}],)" +
                      R"("tls": {"cert": "$CREDENTIALS_DIRECTORY/tls.key",)" +
                      R"("key": "$CREDENTIALS_DIRECTORY/tls.key"}})");
  auto result = LoadConfig(
      path, FakeEnv({{"CREDENTIALS_DIRECTORY", credentials.path()}}), {});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->apps[0].secret, kSecret);
  EXPECT_EQ(result->apps[1].secret, kSecret);
  EXPECT_EQ(result->tls_key, credentials.File("tls.key"));

  // Outside systemd the variable is missing: a clear error, not a read of
  // a file literally named "$CREDENTIALS_DIRECTORY/appsecret".
  auto missing = LoadConfig(path, FakeEnv({}), {});
  ExpectError(missing, "apps[0].secret_file");
  EXPECT_NE(missing.status().message().find("CREDENTIALS_DIRECTORY"),
            std::string::npos);
}

TEST_F(ConfigOpsTest, AdminLoadsLeaveSecretFilesUnread) {
  std::string path = dir_.File("config.json");
  WriteFile(
      path,
      R"({"apps": [{"appid": "wx1", "secret_file": "/nonexistent/secret"}],
                "tls": {"cert": "$CREDENTIALS_DIRECTORY/c", "key": "/nope"},
                "database": "/var/lib/x.db"})");
  ExpectError(LoadConfig(path, FakeEnv({}), {}), "apps[0].secret_file");
  ConfigOverrides admin;
  admin.without_secrets = true;
  auto result = LoadConfig(path, FakeEnv({}), admin);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->database, "/var/lib/x.db");
  EXPECT_TRUE(result->apps[0].secret.empty());
  // Environment secret files too.
  auto from_env =
      LoadConfig("",
                 FakeEnv({{"WXSESSIOND_APPID", "wx9"},
                          {"WXSESSIOND_SECRET_FILE", "/nonexistent/secret"}}),
                 admin);
  ASSERT_TRUE(from_env.ok()) << from_env.status().ToString();
  EXPECT_EQ(from_env->apps[0].appid, "wx9");
}

}  // namespace
}  // namespace wxsession
