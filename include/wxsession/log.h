// Logger: one line per request and per notable event, for the operator.
//
// Lines are JSON objects by default ({"time":..., "level":..., "event":...,
// fields...}) or "key=value" text. Callers pass only values that are safe to
// log: never an app secret, a session id, a session_key or an admin token.
//
// Thread-safety: Log may be called from any thread; each line is written
// whole, with one write(2) and no lock.
#ifndef WXSESSION_LOG_H_
#define WXSESSION_LOG_H_

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace wxsession {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kJson, kText };

// One field: a key and a value. Numbers are passed as text with
// `numeric` set, so JSON output keeps them unquoted.
struct LogField {
  LogField(std::string k, std::string v)
      : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(v) {}
  LogField(std::string k, long long v)
      : key(std::move(k)), value(std::to_string(v)), numeric(true) {}
  LogField(std::string k, int v) : LogField(std::move(k), (long long)v) {}
  LogField(std::string k, long v) : LogField(std::move(k), (long long)v) {}
  LogField(std::string k, double v)
      : key(std::move(k)), value(std::to_string(v)), numeric(true) {}
  std::string key;
  std::string value;
  bool numeric = false;
};

class Logger {
 public:
  explicit Logger(FILE* out = stderr, LogFormat format = LogFormat::kJson,
                  LogLevel min_level = LogLevel::kInfo)
      : out_(out), format_(format), min_level_(min_level) {}

  void Log(LogLevel level, const std::string& event,
           const std::vector<LogField>& fields = {});
  void Info(const std::string& event, const std::vector<LogField>& f = {}) {
    Log(LogLevel::kInfo, event, f);
  }
  void Warn(const std::string& event, const std::vector<LogField>& f = {}) {
    Log(LogLevel::kWarn, event, f);
  }
  void Error(const std::string& event, const std::vector<LogField>& f = {}) {
    Log(LogLevel::kError, event, f);
  }
  bool Enabled(LogLevel level) const { return level >= min_level_; }

  // Renders one line without the trailing newline (exposed for tests).
  std::string Format(LogLevel level, const std::string& event,
                     const std::vector<LogField>& fields) const;

 private:
  FILE* const out_;             // constant after construction
  const LogFormat format_;      // constant after construction
  const LogLevel min_level_;    // constant after construction
};

}  // namespace wxsession

#endif  // WXSESSION_LOG_H_
