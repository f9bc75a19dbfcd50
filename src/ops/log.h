// Logger: one line per request and per notable event, for the operator.
//
// Lines are JSON objects by default ({"time":..., "level":..., "event":...,
// fields...}) or "key=value" text. When the output is systemd's journal
// (LogSink::kJournal), each line starts with its syslog priority, "<3>"
// error, "<4>" warn, "<6>" info, "<7>" debug, which journald strips and
// stores as the entry's priority, so `journalctl -p warning` finds them.
// Callers pass only values that are safe to log: never an app secret, a session
// id, a session_key or an admin token.
//
// Thread-safety: Log may be called from any thread; each line is written
// whole, with one write(2) and no lock.
#ifndef WXSESSION_LOG_H_
#define WXSESSION_LOG_H_

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "wxsession/config.h"

namespace wxsession {

// Where lines go: anywhere (kPlain), or systemd's journal (kJournal: each
// line gets a "<N>" priority prefix).
enum class LogSink { kPlain, kJournal };

// Whether `fd` is the journal's stream: `journal_stream` (the value of
// JOURNAL_STREAM, which systemd sets to "DEVICE:INODE" of the stream it
// connects stdout/stderr to) names the device and inode `fd` has. False when
// it is unset, malformed, or names another file (e.g. stderr redirected to
// a file by a child process of the service).
bool IsJournalStream(int fd, const char* journal_stream);

// LogSink::kJournal when stderr is the journal's stream (JOURNAL_STREAM).
LogSink StderrSink();

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
                  LogLevel min_level = LogLevel::kInfo,
                  LogSink sink = LogSink::kPlain)
      : out_(out), format_(format), min_level_(min_level), sink_(sink) {}

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

  // Renders one line, with its priority prefix for the journal, without the
  // trailing newline (exposed for tests).
  std::string Format(LogLevel level, const std::string& event,
                     const std::vector<LogField>& fields) const;

 private:
  FILE* const out_;           // constant after construction
  const LogFormat format_;    // constant after construction
  const LogLevel min_level_;  // constant after construction
  const LogSink sink_;        // constant after construction
};

}  // namespace wxsession

#endif  // WXSESSION_LOG_H_
