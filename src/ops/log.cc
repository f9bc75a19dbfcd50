#include "ops/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

namespace wxsession {
namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// RFC 3339 in UTC with milliseconds, e.g. "2024-05-01T12:34:56.789Z": sorts
// as text and is what log shippers parse without configuration.
std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(
                    now.time_since_epoch())
                    .count();
  time_t seconds = static_cast<time_t>(millis / 1000);
  int fraction = static_cast<int>(millis % 1000);
  if (fraction < 0) {  // before 1970: keep the fraction positive
    fraction += 1000;
    seconds -= 1;
  }
  // Every request logs a line: format the seconds once per second per
  // thread, and only the milliseconds each time.
  thread_local time_t cached_seconds = -1;
  thread_local char cached_prefix[24];  // "YYYY-MM-DDTHH:MM:SS" is 19 chars
  if (seconds != cached_seconds) {
    struct tm utc;
    gmtime_r(&seconds, &utc);
    strftime(cached_prefix, sizeof(cached_prefix), "%Y-%m-%dT%H:%M:%S", &utc);
    cached_seconds = seconds;
  }
  char buffer[32];  // "YYYY-MM-DDTHH:MM:SS.mmmZ" is 24 chars
  std::memcpy(buffer, cached_prefix, 19);
  buffer[19] = '.';
  buffer[20] = static_cast<char>('0' + fraction / 100);
  buffer[21] = static_cast<char>('0' + fraction / 10 % 10);
  buffer[22] = static_cast<char>('0' + fraction % 10);
  buffer[23] = 'Z';
  return std::string(buffer, 24);
}

// A JSON string literal for `text`. Invalid UTF-8 becomes U+FFFD rather than
// an exception or an unparsable line.
std::string JsonString(const std::string& text) {
  // Most values (routes, ids, codes) are printable ASCII needing no escape:
  // quote them directly and skip building a JSON value.
  bool plain = std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (plain) return '"' + text + '"';
  return nlohmann::json(text).dump(-1, ' ', /*ensure_ascii=*/false,
                                   nlohmann::json::error_handler_t::replace);
}

// True when `text` is a number by JSON's grammar. std::to_string(double) can
// give "nan" or "inf", which must be quoted to keep the line valid JSON.
bool IsJsonNumber(const std::string& text) {
  size_t i = 0;
  auto digit = [&](size_t at) {
    return at < text.size() && text[at] >= '0' && text[at] <= '9';
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (!digit(i)) return false;
  if (text[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == text.size();
}

// Fields may not take the names of the fixed keys, or a line would hold a
// key twice and most readers would keep the field, losing the real one.
std::string FieldKey(const std::string& key) {
  if (key == "time" || key == "level" || key == "event") return "field_" + key;
  return key;
}

// Text format: a value is written bare when that is unambiguous, else quoted
// with backslash escapes. Control characters are always escaped so that one
// entry is always one line (a value cannot forge a second entry).
bool NeedsQuotes(const std::string& value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == 0x7f || c == '"' || c == '=' || c == '\\') {
      return true;
    }
  }
  return false;
}

std::string TextValue(const std::string& value) {
  if (!NeedsQuotes(value)) return value;
  std::string out = "\"";
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < ' ' || c == 0x7f) {
          char escaped[5];  // "\xNN" and the terminator
          snprintf(escaped, sizeof(escaped), "\\x%02x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

// Keys come from code, but a stray space or '=' would still break parsing.
std::string TextKey(const std::string& key) {
  std::string out = key.empty() ? "_" : key;
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || c == '"' || c == '=' || c == '\\') c = '_';
  }
  return out;
}

// syslog(3) priorities, the numbers journald reads from a "<N>" prefix.
const char* JournalPrefix(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "<7>";  // LOG_DEBUG
    case LogLevel::kInfo:
      return "<6>";  // LOG_INFO
    case LogLevel::kWarn:
      return "<4>";  // LOG_WARNING
    case LogLevel::kError:
      return "<3>";  // LOG_ERR
  }
  return "<6>";
}

// A decimal unsigned number that is all of `text`, or false.
bool ParseDecimal(const std::string& text, unsigned long long* out) {
  if (text.empty() || text.size() > 20) return false;  // 2^64 has 20 digits
  unsigned long long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    unsigned long long next = value * 10 + static_cast<unsigned>(c - '0');
    if (next / 10 != value) return false;  // overflow
    value = next;
  }
  *out = value;
  return true;
}

}  // namespace

bool IsJournalStream(int fd, const char* journal_stream) {
  if (journal_stream == nullptr) return false;
  const std::string text(journal_stream);
  const size_t colon = text.find(':');
  if (colon == std::string::npos) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (!ParseDecimal(text.substr(0, colon), &device) ||
      !ParseDecimal(text.substr(colon + 1), &inode)) {
    return false;
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) return false;
  return static_cast<unsigned long long>(info.st_dev) == device &&
         static_cast<unsigned long long>(info.st_ino) == inode;
}

LogSink StderrSink() {
  return IsJournalStream(STDERR_FILENO, std::getenv("JOURNAL_STREAM"))
             ? LogSink::kJournal
             : LogSink::kPlain;
}

std::string Logger::Format(LogLevel level, const std::string& event,
                           const std::vector<LogField>& fields) const {
  std::string line;
  if (sink_ == LogSink::kJournal) line = JournalPrefix(level);
  if (format_ == LogFormat::kJson) {
    line += "{\"time\":\"" + NowRfc3339() + "\",\"level\":\"" +
            LevelName(level) + "\",\"event\":" + JsonString(event);
    for (const LogField& field : fields) {
      line += ',';
      line += JsonString(FieldKey(field.key));
      line += ':';
      if (field.numeric && IsJsonNumber(field.value)) {
        line += field.value;
      } else {
        line += JsonString(field.value);
      }
    }
    line += '}';
  } else {
    line += NowRfc3339() + ' ' + LevelName(level) + ' ' + TextValue(event);
    for (const LogField& field : fields) {
      line += ' ';
      line += TextKey(field.key);
      line += '=';
      line += TextValue(field.value);
    }
  }
  return line;
}

void Logger::Log(LogLevel level, const std::string& event,
                 const std::vector<LogField>& fields) {
  if (!Enabled(level) || out_ == nullptr) return;
  // Logging must never take the server down: drop the line on bad_alloc.
  try {
    std::string line = Format(level, event, fields);
    line += '\n';
    // One write(2) per line and no lock: the kernel keeps a single write
    // whole on pipes (up to PIPE_BUF) and regular files, and a process-wide
    // mutex around a syscall made every request thread queue behind it
    // (futex waits dominated a lookup profile).
    const int fd = ::fileno(out_);
    const char* data = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t written = ::write(fd, data, left);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) break;  // a full disk or closed pipe: drop the line
      data += written;
      left -= static_cast<size_t>(written);
    }
  } catch (...) {
  }
}

}  // namespace wxsession
