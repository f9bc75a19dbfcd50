#include "ops/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace wxsession {
namespace {

using nlohmann::json;

const std::regex kTimeRegex(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");

// Parses a JSON log line, failing the test if it is not one JSON object.
json ParseLine(const std::string& line) {
  json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(parsed.is_discarded()) << line;
  EXPECT_TRUE(parsed.is_object()) << line;
  return parsed;
}

// Seconds between an RFC 3339 UTC timestamp and now.
double SecondsFromNow(const std::string& rfc3339) {
  struct tm utc = {};
  EXPECT_NE(strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &utc), nullptr);
  return std::fabs(static_cast<double>(timegm(&utc) - time(nullptr)));
}

// Everything written to a FILE*, read back.
std::string ReadAll(FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string content;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
  }
  return content;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// --- JSON format
// ------------------------------------------------------------------

TEST(LogJsonTest, FixedKeysFirstThenFields) {
  Logger logger(nullptr, LogFormat::kJson);
  std::string line = logger.Format(LogLevel::kInfo, "login",
                                   {{"appid", "wx1"}, {"status", 200}});
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  size_t level = line.find("\"level\":\"info\"");
  size_t event = line.find("\"event\":\"login\"");
  size_t appid = line.find("\"appid\":\"wx1\"");
  size_t status = line.find("\"status\":200");
  ASSERT_NE(level, std::string::npos) << line;
  ASSERT_NE(event, std::string::npos) << line;
  ASSERT_NE(appid, std::string::npos) << line;
  ASSERT_NE(status, std::string::npos) << line;
  EXPECT_LT(level, event);
  EXPECT_LT(event, appid);
  EXPECT_LT(appid, status);
  EXPECT_EQ(line.back(), '}');
  EXPECT_EQ(line.find('\n'), std::string::npos);

  json parsed = ParseLine(line);
  EXPECT_EQ(parsed.size(), 5u);
  EXPECT_EQ(parsed["level"], "info");
  EXPECT_EQ(parsed["event"], "login");
  EXPECT_EQ(parsed["appid"], "wx1");
  EXPECT_EQ(parsed["status"], 200);
}

TEST(LogJsonTest, TimeIsRfc3339UtcWithMillisecondsAndCurrent) {
  Logger logger(nullptr, LogFormat::kJson);
  json parsed = ParseLine(logger.Format(LogLevel::kInfo, "e", {}));
  ASSERT_TRUE(parsed["time"].is_string());
  std::string time_text = parsed["time"];
  EXPECT_TRUE(std::regex_match(time_text, kTimeRegex)) << time_text;
  // Generous bound: only a wrong time zone or epoch would be hours off.
  EXPECT_LT(SecondsFromNow(time_text), 60.0) << time_text;
}

TEST(LogJsonTest, LevelNames) {
  Logger logger(nullptr, LogFormat::kJson);
  const std::pair<LogLevel, const char*> levels[] = {
      {LogLevel::kDebug, "debug"},
      {LogLevel::kInfo, "info"},
      {LogLevel::kWarn, "warn"},
      {LogLevel::kError, "error"},
  };
  for (const auto& [level, name] : levels) {
    EXPECT_EQ(ParseLine(logger.Format(level, "e", {}))["level"], name);
  }
}

TEST(LogJsonTest, NumericFieldKinds) {
  Logger logger(nullptr, LogFormat::kJson);
  std::string line = logger.Format(
      LogLevel::kInfo, "e",
      {{"i", 7}, {"l", 8L}, {"ll", -9LL}, {"d", 1.5}, {"s", "10"}});
  EXPECT_NE(line.find("\"i\":7"), std::string::npos) << line;
  EXPECT_NE(line.find("\"ll\":-9"), std::string::npos) << line;
  EXPECT_NE(line.find("\"s\":\"10\""), std::string::npos) << line;
  json parsed = ParseLine(line);
  EXPECT_EQ(parsed["i"], 7);
  EXPECT_EQ(parsed["l"], 8);
  EXPECT_EQ(parsed["ll"], -9);
  EXPECT_DOUBLE_EQ(parsed["d"].get<double>(), 1.5);
  EXPECT_TRUE(parsed["s"].is_string());
}

TEST(LogJsonTest, NonFiniteNumbersStayValidJson) {
  Logger logger(nullptr, LogFormat::kJson);
  std::string line =
      logger.Format(LogLevel::kInfo, "e",
                    {{"nan", std::numeric_limits<double>::quiet_NaN()},
                     {"inf", std::numeric_limits<double>::infinity()}});
  json parsed = ParseLine(line);
  EXPECT_TRUE(parsed["nan"].is_string()) << line;
  EXPECT_TRUE(parsed["inf"].is_string()) << line;
}

TEST(LogJsonTest, EscapesEverythingThatNeedsIt) {
  Logger logger(nullptr, LogFormat::kJson);
  const std::string tricky[] = {
      "quote \" here",
      "back\\slash",
      "new\nline",
      "carriage\rreturn",
      "tab\there",
      std::string("nul\0byte", 8),
      "bell\x07 esc\x1b unit\x1f del\x7f",
      "</script>",
      "\xe4\xbd\xa0\xe5\xa5\xbd",  // "ni hao" in UTF-8 stays as is
  };
  for (const std::string& value : tricky) {
    std::string line =
        logger.Format(LogLevel::kWarn, value, {{value, value}, {"v", value}});
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
    for (char c : line) {
      EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << line;
    }
    json parsed = ParseLine(line);
    EXPECT_EQ(parsed["event"], value);
    EXPECT_EQ(parsed["v"], value);
    EXPECT_EQ(parsed[value], value);
  }
}

TEST(LogJsonTest, InvalidUtf8IsReplacedNotFatal) {
  Logger logger(nullptr, LogFormat::kJson);
  std::string line =
      logger.Format(LogLevel::kInfo, "e", {{"v", "bad \xff\xfe utf8"}});
  json parsed = ParseLine(line);
  ASSERT_TRUE(parsed["v"].is_string());
  std::string value = parsed["v"];
  EXPECT_EQ(value.rfind("bad ", 0), 0u);
  EXPECT_NE(value.find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD
}

TEST(LogJsonTest, FieldsCannotShadowFixedKeys) {
  Logger logger(nullptr, LogFormat::kJson);
  std::string line = logger.Format(
      LogLevel::kError, "real",
      {{"time", "fake"}, {"level", "debug"}, {"event", "forged"}});
  json parsed = ParseLine(line);
  EXPECT_EQ(parsed["event"], "real");
  EXPECT_EQ(parsed["level"], "error");
  EXPECT_NE(parsed["time"], "fake");
  EXPECT_EQ(parsed["field_time"], "fake");
  EXPECT_EQ(parsed["field_level"], "debug");
  EXPECT_EQ(parsed["field_event"], "forged");
  // Each key exactly once in the raw text.
  EXPECT_EQ(line.find("\"event\":"), line.rfind("\"event\":"));
}

// --- Text format
// ------------------------------------------------------------------

TEST(LogTextTest, Layout) {
  Logger logger(nullptr, LogFormat::kText);
  std::string line = logger.Format(
      LogLevel::kWarn, "upstream_error",
      {{"appid", "wx1"}, {"errcode", 40029}, {"msg", "invalid code"}});
  size_t first_space = line.find(' ');
  ASSERT_NE(first_space, std::string::npos);
  std::string time_text = line.substr(0, first_space);
  EXPECT_TRUE(std::regex_match(time_text, kTimeRegex)) << line;
  EXPECT_LT(SecondsFromNow(time_text), 60.0) << line;
  EXPECT_EQ(line.substr(first_space),
            " warn upstream_error appid=wx1 errcode=40029 "
            "msg=\"invalid code\"");
}

TEST(LogTextTest, QuotesAndEscapesWhenNeeded) {
  Logger logger(nullptr, LogFormat::kText);
  std::string line = logger.Format(LogLevel::kInfo, "e",
                                   {{"empty", ""},
                                    {"eq", "a=b"},
                                    {"quote", "say \"hi\""},
                                    {"nl", "one\ntwo"},
                                    {"ctl", "x\x01y"},
                                    {"slash", "a\\b c"},
                                    {"path", "/v1/login"}});
  std::string rest = line.substr(line.find(' '));
  EXPECT_EQ(rest,
            " info e empty=\"\" eq=\"a=b\" quote=\"say \\\"hi\\\"\" "
            "nl=\"one\\ntwo\" ctl=\"x\\x01y\" slash=\"a\\\\b c\" "
            "path=/v1/login");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogTextTest, EventWithSpacesIsQuotedAndKeysAreSanitised) {
  Logger logger(nullptr, LogFormat::kText);
  std::string line =
      logger.Format(LogLevel::kError, "two words", {{"bad key=", "v"}});
  std::string rest = line.substr(line.find(' '));
  EXPECT_EQ(rest, " error \"two words\" bad_key_=v");
}

// --- Writing
// ------------------------------------------------------------------------

TEST(LoggerTest, WritesOneLinePerCallAndFiltersByLevel) {
  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  {
    Logger logger(out, LogFormat::kJson, LogLevel::kInfo);
    EXPECT_FALSE(logger.Enabled(LogLevel::kDebug));
    EXPECT_TRUE(logger.Enabled(LogLevel::kInfo));
    EXPECT_TRUE(logger.Enabled(LogLevel::kError));
    logger.Log(LogLevel::kDebug, "hidden");
    logger.Info("started", {{"port", 8080}});
    logger.Warn("slow");
    logger.Error("failed", {{"why", "disk\nfull"}});
  }
  std::string content = ReadAll(out);
  std::fclose(out);
  ASSERT_FALSE(content.empty());
  EXPECT_EQ(content.back(), '\n');
  std::vector<std::string> lines = SplitLines(content);
  ASSERT_EQ(lines.size(), 3u) << content;
  EXPECT_EQ(ParseLine(lines[0])["event"], "started");
  EXPECT_EQ(ParseLine(lines[0])["port"], 8080);
  EXPECT_EQ(ParseLine(lines[1])["level"], "warn");
  EXPECT_EQ(ParseLine(lines[2])["why"], "disk\nfull");
  EXPECT_EQ(content.find("hidden"), std::string::npos);
}

TEST(LoggerTest, ErrorOnlyLogger) {
  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  {
    Logger logger(out, LogFormat::kText, LogLevel::kError);
    logger.Info("no");
    logger.Warn("no");
    logger.Error("yes");
  }
  std::vector<std::string> lines = SplitLines(ReadAll(out));
  std::fclose(out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" error yes"), std::string::npos) << lines[0];
}

TEST(LoggerTest, ConcurrentLinesNeverInterleave) {
  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  constexpr int kThreads = 8;
  constexpr int kLinesPerThread = 200;
  // Long values make a torn write likely if lines were not written whole.
  const std::string payload(2000, 'p');
  {
    Logger logger(out, LogFormat::kJson);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&logger, &payload, t] {
        for (int i = 0; i < kLinesPerThread; ++i) {
          logger.Info("tick", {{"thread", t}, {"i", i}, {"payload", payload}});
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  std::vector<std::string> lines = SplitLines(ReadAll(out));
  std::fclose(out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLinesPerThread));
  std::vector<int> per_thread(kThreads, 0);
  for (const std::string& line : lines) {
    json parsed = json::parse(line, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << line.substr(0, 200);
    ASSERT_EQ(parsed["payload"], payload);
    ++per_thread[parsed["thread"].get<int>()];
  }
  for (int count : per_thread) EXPECT_EQ(count, kLinesPerThread);
}

// --- systemd's journal --------------------------------------------------

TEST(LogJournalTest, EachLineStartsWithItsSyslogPriority) {
  Logger journal(nullptr, LogFormat::kJson, LogLevel::kDebug,
                 LogSink::kJournal);
  const std::pair<LogLevel, const char*> expected[] = {
      {LogLevel::kDebug, "<7>{"},
      {LogLevel::kInfo, "<6>{"},
      {LogLevel::kWarn, "<4>{"},
      {LogLevel::kError, "<3>{"}};
  for (const auto& [level, prefix] : expected) {
    std::string line = journal.Format(level, "login_failed", {{"status", 400}});
    EXPECT_EQ(line.rfind(prefix, 0), 0u) << line;
    // After the prefix, the same JSON object as anywhere else.
    ParseLine(line.substr(3));
  }
  Logger text(nullptr, LogFormat::kText, LogLevel::kDebug, LogSink::kJournal);
  EXPECT_EQ(text.Format(LogLevel::kWarn, "login_failed", {}).rfind("<4>2", 0),
            0u);
  // Elsewhere the lines stay as they were.
  Logger plain(nullptr, LogFormat::kJson, LogLevel::kDebug);
  EXPECT_EQ(plain.Format(LogLevel::kWarn, "login_failed", {}).rfind("{", 0),
            0u);
}

TEST(LogJournalTest, JournalStreamMustNameTheDeviceAndInodeOfTheStream) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  const int fd = ::fileno(file);
  struct stat info;
  ASSERT_EQ(::fstat(fd, &info), 0);
  const std::string device = std::to_string(info.st_dev);
  const std::string inode = std::to_string(info.st_ino);
  EXPECT_TRUE(IsJournalStream(fd, (device + ":" + inode).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, nullptr));
  EXPECT_FALSE(IsJournalStream(fd, ""));
  EXPECT_FALSE(IsJournalStream(fd, (device + ":" + inode + "0").c_str()));
  EXPECT_FALSE(IsJournalStream(fd, (device + "1:" + inode).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, (device + inode).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, (device + ":" + inode + "x").c_str()));
  EXPECT_FALSE(IsJournalStream(fd, (":" + inode).c_str()));
  EXPECT_FALSE(IsJournalStream(fd, "99999999999999999999999:1"));
  std::fclose(file);
}

}  // namespace
}  // namespace wxsession
