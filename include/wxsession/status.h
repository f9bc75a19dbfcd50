// Status and Result<T>: how every module reports an outcome.
//
// Errors cross module boundaries as a small value, never as an exception. The
// set of error codes is closed: each code names a situation a client or an
// operator can act on, and exactly one table (in the HTTP layer, see
// http_api.h) maps a code onto an HTTP status.
//
// Thread-safety: Status and Result are plain values; copies may be used from
// any thread.
#ifndef WXSESSION_STATUS_H_
#define WXSESSION_STATUS_H_

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace wxsession {

enum class ErrorCode {
  kOk = 0,
  kInvalidRequest,       // malformed or incomplete input from the client
  kPayloadTooLarge,      // request body over the limit
  kUnknownApp,           // appid not configured (or missing among several)
  kInvalidSession,       // missing, unknown, expired or revoked session
  kUnauthorized,         // admin route without the right admin token
  kInvalidCode,          // WeChat: invalid or already used login code
  kLoginBlocked,         // WeChat: high-risk user blocked
  kRateLimited,          // WeChat quota or our own rate limit
  kUpstreamUnavailable,  // WeChat busy, unreachable or timed out
  kUpstreamError,        // WeChat answered something we cannot use
  kStoreUnavailable,     // the session store cannot serve right now
  kDecryptFailed,        // open data could not be decrypted / parsed
  kWatermarkMismatch,    // decrypted data belongs to another appid
  kWatermarkExpired,     // decrypted data older than open_data.max_age
  kNotFound,             // no such route or object
  kInternal,             // a bug or an unexpected condition
  kUnsupportedForPlatform,  // the route does not exist on the app's platform
};

// Returns the stable wire name of `code`, e.g. "invalid_session".
const char* ErrorCodeName(ErrorCode code);

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  // A message that is safe to show to a client: it never holds a secret.
  const std::string& message() const { return message_; }

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
