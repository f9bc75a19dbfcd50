// The configuration's section helper (src/core/json_section.h) and the
// secret files it reads (src/core/secret_file.h).
#include "core/json_section.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/secret_file.h"
#include "test_support.h"

namespace wxsession {
namespace {

using nlohmann::json;
using testing_support::TempDir;
using testing_support::WriteFile;

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(JsonSection, NamesKeysByPathAndRefusesUnknownOnes) {
  const json value = json::parse(R"({"ttl": 5, "tll": 6})");
  const Section session(value, "session");
  EXPECT_EQ(session.PathOf("ttl"), "session.ttl");
  EXPECT_EQ(Section(value, "").PathOf("ttl"), "ttl");
  EXPECT_EQ(session.CheckKnownKeys({"ttl", "idle_ttl"}).message(),
            "config: session.tll: unknown key (expected one of ttl, "
            "idle_ttl)");
  EXPECT_TRUE(session.CheckKnownKeys({"ttl", "tll"}).ok());
}

TEST(JsonSection, ObjectChecksTypeAndKeysAndSaysWhenAbsent) {
  const json root = json::parse(R"({"http": {"threads": 4}, "log": 3,
                                    "tls": {"cert": "a", "crt": "b"}})");
  const Section top(root, "");
  std::optional<Section> http;
  ASSERT_TRUE(top.Object("http", {"threads"}, &http).ok());
  ASSERT_TRUE(http);
  EXPECT_EQ(http->path(), "http");
  std::optional<Section> absent;
  EXPECT_TRUE(top.Object("redis", {"prefix"}, &absent).ok());
  EXPECT_FALSE(absent);
  std::optional<Section> log;
  EXPECT_EQ(top.Object("log", {"level"}, &log).message(),
            "config: log: expected an object");
  std::optional<Section> tls;
  EXPECT_EQ(top.Object("tls", {"cert", "key"}, &tls).message(),
            "config: tls.crt: unknown key (expected one of cert, key)");
}

TEST(JsonSection, IntChecksTypeAndRangeAndLeavesDefaultWhenAbsent) {
  const json value =
      json::parse(R"({"ok": 7, "low": -1, "high": 11, "text": "7", "f": 1.5})");
  const Section limits(value, "rate_limit");
  int64_t out = 42;
  EXPECT_TRUE(limits.Int("absent", 0, 10, &out).ok());
  EXPECT_EQ(out, 42);
  EXPECT_TRUE(limits.Int("ok", 0, 10, &out).ok());
  EXPECT_EQ(out, 7);
  for (const char* bad : {"low", "high", "text", "f"}) {
    EXPECT_EQ(limits.Int(bad, 0, 10, &out, "no limit").message(),
              std::string("config: rate_limit.") + bad +
                  ": expected an integer from 0 (no limit) to 10")
        << bad;
  }
  int narrow = 3;
  EXPECT_EQ(limits.Int("high", 1, 10, &narrow).message(),
            "config: rate_limit.high: expected an integer from 1 to 10");
  EXPECT_TRUE(limits.Int("ok", 1, 10, &narrow).ok());
  EXPECT_EQ(narrow, 7);
  EXPECT_EQ(out, 7);  // failures leave the output alone
}

TEST(JsonSection, DurationAcceptsUnitsAndChecksBounds) {
  const json value = json::parse(
      R"({"d": "2d", "n": 90, "zero": 0, "neg": -5, "word": "soon",
          "huge": "3651d", "f": 2.0, "frac": 2.5})");
  const Section section(value, "session");
  int64_t seconds = 0;
  EXPECT_TRUE(section.Duration("d", 1, &seconds).ok());
  EXPECT_EQ(seconds, 2 * 86400);
  EXPECT_TRUE(section.Duration("n", 1, &seconds).ok());
  EXPECT_EQ(seconds, 90);
  EXPECT_TRUE(section.Duration("f", 1, &seconds).ok());
  EXPECT_EQ(seconds, 2);
  EXPECT_TRUE(section.Duration("zero", 0, &seconds).ok());
  EXPECT_EQ(section.Duration("zero", 1, &seconds).message(),
            "config: session.zero: must be at least 1s");
  EXPECT_EQ(section.Duration("huge", 1, &seconds).message(),
            "config: session.huge: must be at most 3650d");
  for (const char* bad : {"neg", "word", "frac"}) {
    EXPECT_EQ(section.Duration(bad, 0, &seconds).message(),
              std::string("config: session.") + bad +
                  ": expected a duration like 30d, 12h, 15m, 90s or a "
                  "number of seconds")
        << bad;
  }
}

TEST(JsonSection, TimeoutTakesSecondsFractionsAndMilliseconds) {
  const json value = json::parse(
      R"({"s": "5s", "half": 0.5, "ms": "250ms", "zero": "0ms",
          "long": "2h", "longms": "99999999ms", "word": "fast"})");
  const Section section(value, "wechat");
  int64_t ms = 0;
  EXPECT_TRUE(section.Timeout("s", &ms).ok());
  EXPECT_EQ(ms, 5000);
  EXPECT_TRUE(section.Timeout("half", &ms).ok());
  EXPECT_EQ(ms, 500);
  EXPECT_TRUE(section.Timeout("ms", &ms).ok());
  EXPECT_EQ(ms, 250);
  EXPECT_EQ(section.Timeout("zero", &ms).message(),
            "config: wechat.zero: must be greater than 0");
  EXPECT_EQ(section.Timeout("long", &ms).message(),
            "config: wechat.long: must be at most 1h");
  EXPECT_EQ(section.Timeout("longms", &ms).message(),
            "config: wechat.longms: must be at most 1h");
  EXPECT_EQ(section.Timeout("word", &ms).message(),
            "config: wechat.word: expected a timeout like 5s, 500ms or a "
            "number of seconds");
}

TEST(JsonSection, EnumListsTheChoicesInItsMessage) {
  enum class Level { kLow, kHigh };
  const json value = json::parse(R"({"a": "high", "b": "medium", "c": 1})");
  const Section section(value, "log");
  Level level = Level::kLow;
  EXPECT_TRUE(
      section.Enum("a", {{"low", Level::kLow}, {"high", Level::kHigh}}, &level)
          .ok());
  EXPECT_EQ(level, Level::kHigh);
  EXPECT_EQ(
      section.Enum("b", {{"low", Level::kLow}, {"high", Level::kHigh}}, &level)
          .message(),
      "config: log.b: expected \"low\" or \"high\"");
  std::string word;
  EXPECT_EQ(section
                .Enum("c",
                      {{"x", std::string("x")},
                       {"y", std::string("y")},
                       {"z", std::string("z")}},
                      &word)
                .message(),
            "config: log.c: expected \"x\", \"y\" or \"z\"");
  EXPECT_TRUE(section.Enum("absent", {{"x", std::string("x")}}, &word).ok());
  EXPECT_EQ(word, "");
}

TEST(JsonSection, BoolStringPathAndBaseUrl) {
  const json value = json::parse(
      R"({"yes": true, "no": "true", "name": "a", "empty": "",
          "url": "https://x.example/api//", "ftp": "ftp://x", "n": 3})");
  const Section section(value, "s");
  bool flag = false;
  EXPECT_TRUE(section.Bool("yes", &flag).ok());
  EXPECT_TRUE(flag);
  EXPECT_EQ(section.Bool("no", &flag).message(),
            "config: s.no: expected true or false");
  std::string text;
  EXPECT_TRUE(section.String("name", &text).ok());
  EXPECT_EQ(text, "a");
  EXPECT_EQ(section.String("empty", &text).message(),
            "config: s.empty: expected a non-empty string");
  EXPECT_EQ(section.Path("n", &text).message(),
            "config: s.n: expected a non-empty path");
  EXPECT_TRUE(section.BaseUrl("url", &text).ok());
  EXPECT_EQ(text, "https://x.example/api");
  for (const char* bad : {"ftp", "n"}) {
    EXPECT_EQ(section.BaseUrl(bad, &text).message(),
              std::string("config: s.") + bad +
                  ": expected a URL starting with http:// or https://");
  }
}

TEST(JsonSection, SecretPathExpandsTheCredentialsDirectory) {
  const json value = json::parse(
      R"({"a": "$CREDENTIALS_DIRECTORY/token", "b": "${CREDENTIALS_DIRECTORY}/t",
          "plain": "/etc/t", "list": ["$CREDENTIALS_DIRECTORY/old", ""],
          "notlist": "x"})");
  const Section section(value, "admin");
  const GetEnv env = Env({{"CREDENTIALS_DIRECTORY", "/run/creds"}});
  std::string path;
  EXPECT_TRUE(section.SecretPath("a", env, &path).ok());
  EXPECT_EQ(path, "/run/creds/token");
  EXPECT_TRUE(section.SecretPath("b", env, &path).ok());
  EXPECT_EQ(path, "/run/creds/t");
  EXPECT_TRUE(section.SecretPath("plain", Env({}), &path).ok());
  EXPECT_EQ(path, "/etc/t");
  EXPECT_EQ(section.SecretPath("a", Env({}), &path).message(),
            "config: admin.a: $CREDENTIALS_DIRECTORY is not set (it is set by "
            "systemd for a unit with LoadCredential=)");
  std::vector<std::string> paths;
  EXPECT_EQ(section.SecretPaths("list", env, &paths).message(),
            "config: admin.list[1]: expected a non-empty path");
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0], "/run/creds/old");
  EXPECT_EQ(section.SecretPaths("notlist", env, &paths).message(),
            "config: admin.notlist: expected an array of paths");
}

TEST(JsonSection, SecretFileReadsTrimmedContentNeverQuotingIt) {
  TempDir dir;
  WriteFile(dir.File("secret"), "s3cr3t-value\n");
  WriteFile(dir.File("blank"), " \n");
  const json value = json::parse(R"({"good": "$CREDENTIALS_DIRECTORY/secret",
                                     "blank": "$CREDENTIALS_DIRECTORY/blank",
                                     "missing": "$CREDENTIALS_DIRECTORY/no"})");
  const Section section(value, "redis");
  const GetEnv env = Env({{"CREDENTIALS_DIRECTORY", dir.path()}});
  std::string path;
  std::string content;
  ASSERT_TRUE(section.SecretFile("good", env, &path, &content).ok());
  EXPECT_EQ(path, dir.File("secret"));
  EXPECT_EQ(content, "s3cr3t-value");
  EXPECT_EQ(section.SecretFile("blank", env, &path, &content).message(),
            "config: redis.blank: " + dir.File("blank") + ": file is empty");
  EXPECT_EQ(section.SecretFile("missing", env, &path, &content).message(),
            "config: redis.missing: " + dir.File("no") +
                ": cannot read: No such file or directory");
}

TEST(SecretFile, TokensMustBeLongVisibleAscii) {
  TempDir dir;
  WriteFile(dir.File("good"), "  0123456789abcdef0123\n");
  WriteFile(dir.File("short"), "short-token\n");
  WriteFile(dir.File("space"), "0123456789 abcdef0123\n");
  WriteFile(dir.File("list"),
            "# comment\n\n  0123456789abcdef\nbad token here!!\n");
  Result<std::string> good =
      ReadTokenFile(dir.File("good"), "admin.token_file");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), "0123456789abcdef0123");
  Result<std::string> short_token =
      ReadTokenFile(dir.File("short"), "admin.token_file");
  EXPECT_EQ(short_token.status().message(),
            "config: admin.token_file: " + dir.File("short") +
                ": the token is shorter than 16 characters (make one with: "
                "openssl rand -hex 32)");
  EXPECT_EQ(short_token.status().message().find("short-token"),
            std::string::npos);
  EXPECT_EQ(ReadTokenFile(dir.File("space"), "k").status().message(),
            "config: k: " + dir.File("space") +
                ": the token must be one line of visible ASCII characters");
  Result<std::vector<std::string>> list =
      ReadTokenListFile(dir.File("list"), "k");
  EXPECT_EQ(list.status().message(),
            "config: k: " + dir.File("list") +
                ": line 4: a token must be visible ASCII characters");
  WriteFile(dir.File("list"), "# comment\n\n  0123456789abcdef\n");
  list = ReadTokenListFile(dir.File("list"), "k");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list.value(), std::vector<std::string>{"0123456789abcdef"});
}

TEST(JsonSection, ParseConfigTextPointsAtTheErrorWithoutQuotingIt) {
  json out;
  EXPECT_TRUE(ParseConfigText("c.json", "// note\n{\"a\": 1}", &out).ok());
  EXPECT_EQ(out["a"], 1);
  Status bad = ParseConfigText("c.json", "{\"a\":\n  s3cr3t}", &out);
  EXPECT_EQ(bad.message().rfind("config: c.json: invalid JSON at byte ", 0), 0u)
      << bad.message();
  EXPECT_NE(bad.message().find("(line 2, column 3)"), std::string::npos)
      << bad.message();
  EXPECT_EQ(bad.message().find("s3cr3t"), std::string::npos);
  EXPECT_EQ(ParseConfigText("c.json", "[1]", &out).message(),
            "config: c.json: expected a JSON object at the top level");
}

}  // namespace
}  // namespace wxsession
