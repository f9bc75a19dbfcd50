// Logger: one line per request and per notable event, for the operator.
//
// Lines are JSON objects by default ({"time":..., "level":..., "event":...,
// fields...}) or "key=value" text. Callers pass only values that are safe to
// log: never an app secret, a session id, a session_key or an admin token.
//
// Writing: by default each line is written whole with one write(2) by the
// calling thread. After StartBackgroundWriter() (the server does this) lines
// are queued in memory and a writer thread writes whatever has queued with
// one write(2): a request thread then spends no system call on its log line,
// and under load one write carries many lines. Lines keep their order; a
// stop (StopBackgroundWriter, the destructor, Flush) writes out every line
// queued. Should the output stall (a full pipe), at most kMaxQueuedBytes
// wait and further lines are dropped rather than blocking requests.
//
// Thread-safety: Log and Flush may be called from any thread; Start/Stop
// from the owning thread.
#ifndef WXSESSION_LOG_H_
#define WXSESSION_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
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
  // Bytes of lines the background writer may hold (about 5,000 lines).
  static constexpr size_t kMaxQueuedBytes = 1 << 20;

  explicit Logger(FILE* out = stderr, LogFormat format = LogFormat::kJson,
                  LogLevel min_level = LogLevel::kInfo)
      : out_(out), format_(format), min_level_(min_level) {}
  ~Logger() { StopBackgroundWriter(); }
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void StartBackgroundWriter();
  // Writes out every queued line, then writes synchronously again.
  void StopBackgroundWriter();
  // Returns once every line logged before the call has been written.
  void Flush();
  // Lines dropped because the output stalled (background writer only).
  uint64_t dropped() const;

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
  void WriteOut(const std::string& bytes) const;
  void WriterLoop();

  FILE* const out_;             // constant after construction
  const LogFormat format_;      // constant after construction
  const LogLevel min_level_;    // constant after construction

  mutable std::mutex queue_mutex_;
  std::condition_variable queue_changed_;  // with queue_mutex_
  std::string queued_;                     // queue_mutex_: lines to write
  bool background_ = false;                // queue_mutex_: writer running
  bool stopping_ = false;                  // queue_mutex_
  bool writing_ = false;                   // queue_mutex_: a write is running
  uint64_t dropped_ = 0;                   // queue_mutex_
  std::thread writer_;                     // owned by Start/Stop's caller
};

}  // namespace wxsession

#endif  // WXSESSION_LOG_H_
