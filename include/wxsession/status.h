// Status and Result<T>: how every module reports an outcome.
//
// Errors cross module boundaries as a small value, never as an exception. The
// set of error codes is closed: each code names a situation a client or an
// operator can act on, and exactly one table (in the HTTP layer,
// http_errors.h) maps a code onto its HTTP status, default client message,
// Retry-After, challenge header and log level.
//
// A Status carries two texts. message() is for the client: it never holds a
// secret, a host, a file path or a library's message. detail() is for the
// operator: it goes to the log and the command line, never into a response.
// A fault (the store or WeChat unreachable, a bug) is made with Fault(): its
// whole account is detail, and the client sees the table's message.
//
// Thread-safety: Status and Result are plain values; copies may be used from
// any thread.
#ifndef WXSESSION_STATUS_H_
#define WXSESSION_STATUS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace wxsession {

enum class ErrorCode {
  kOk = 0,
  kInvalidRequest,          // malformed or incomplete input from the client
  kPayloadTooLarge,         // request body over the limit
  kUnknownApp,              // appid not configured (or missing among several)
  kInvalidSession,          // missing, unknown, expired or revoked session
  kUnauthorized,            // admin route without the right admin token
  kInvalidCode,             // WeChat: invalid or already used login code
  kLoginBlocked,            // WeChat: high-risk user blocked
  kRateLimited,             // WeChat quota or our own rate limit
  kUpstreamUnavailable,     // WeChat busy, unreachable or timed out
  kUpstreamError,           // WeChat answered something we cannot use
  kStoreUnavailable,        // the session store cannot serve right now
  kDecryptFailed,           // open data could not be decrypted / parsed
  kWatermarkMismatch,       // decrypted data belongs to another appid
  kWatermarkExpired,        // decrypted data older than open_data.max_age
  kNotFound,                // no such route or object
  kInternal,                // a bug or an unexpected condition
  kUserBanned,              // the user is suspended by an operator (a ban)
  kLoginDenied,             // the login hook refused this login
  kHookUnavailable,         // the login hook failed and hooks.on_failure=deny
  kUnsupportedForPlatform,  // the route does not exist on the app's platform
};
// How many codes there are: the last one's value plus one. Tables indexed
// by code (http_errors.cc) check their size against it; keep it in step
// when a code is added.
constexpr size_t kErrorCodeCount =
    static_cast<size_t>(ErrorCode::kUnsupportedForPlatform) + 1;

// Returns the stable wire name of `code`, e.g. "invalid_session".
const char* ErrorCodeName(ErrorCode code);

class Status;
// The one kInvalidSession answer for a session that is unknown, expired or
// revoked (every store and the service give the same sentence).
Status InvalidSessionStatus();

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  // A fault whose account is for the operator only (it may name a host, a
  // file or a library's message): message() is empty, and the HTTP layer
  // answers the code's default client message.
  static Status Fault(ErrorCode code, std::string detail) {
    Status status(code, std::string());
    status.detail_ = std::move(detail);
    return status;
  }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  // A message that is safe to show to a client: it never holds a secret or
  // internal detail. Empty for a Fault.
  const std::string& message() const { return message_; }
  // What the operator needs to know beyond message(); empty when the message
  // says it all. Never sent to a client.
  const std::string& detail() const { return detail_; }
  Status& set_detail(std::string detail) {
    detail_ = std::move(detail);
    return *this;
  }
  // The text for a log line or a command-line error: the detail when there
  // is one, else the message.
  const std::string& operator_text() const {
    return detail_.empty() ? message_ : detail_;
  }

  // Seconds a client should wait before retrying; set for rate limits and
  // upstream outages.
  std::optional<int> retry_after() const { return retry_after_; }
  Status& set_retry_after(int seconds) {
    retry_after_ = seconds;
    return *this;
  }

  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  std::string detail_;
  std::optional<int> retry_after_;
};

// Either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(value_); }
  // Requires !ok().
  const Status& status() const { return std::get<Status>(value_); }
  // Requires ok().
  const T& value() const& { return std::get<T>(value_); }
  T& value() & { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  const T* operator->() const { return &std::get<T>(value_); }
  T* operator->() { return &std::get<T>(value_); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace wxsession

#endif  // WXSESSION_STATUS_H_
