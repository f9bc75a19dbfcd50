// The error table: see http_errors.h.
#include "http/errors.h"

namespace wxsession {
namespace {

constexpr const char* kSessionChallenge =
    "Bearer realm=\"wxsessiond\", error=\"invalid_token\"";
constexpr const char* kAdminChallenge = "Bearer realm=\"wxsessiond-admin\"";

// Indexed by ErrorCode; the static_assert below keeps it in step with the
// enum. Retry-After defaults: outages of the store and WeChat are expected
// to be short, so a client retries after a second.
constexpr HttpError kTable[] = {
    // kOk
    {200, "ok", false, 0, nullptr, LogLevel::kDebug},
    // kInvalidRequest
    {400, "the request is malformed", false, 0, nullptr, LogLevel::kDebug},
    // kPayloadTooLarge
    {413, "the body is larger than 64 KiB", false, 0, nullptr,
     LogLevel::kDebug},
    // kUnknownApp
    {400, "unknown appid", false, 0, nullptr, LogLevel::kWarn},
    // kInvalidSession
    {401, "no valid session; log in again", false, 0, kSessionChallenge,
     LogLevel::kDebug},
    // kUnauthorized
    {401, "admin routes want Authorization: Bearer <admin token>", false, 0,
     kAdminChallenge, LogLevel::kWarn},
    // kInvalidCode
    {400, "the code is invalid or already used", false, 0, nullptr,
     LogLevel::kWarn},
    // kLoginBlocked
    {403, "WeChat blocked this login", false, 0, nullptr, LogLevel::kWarn},
    // kRateLimited
    {429, "too many requests; retry later", true, 0, nullptr, LogLevel::kWarn},
    // kUpstreamUnavailable
    {503, "the login platform is unavailable; retry shortly", true, 1, nullptr,
     LogLevel::kWarn},
    // kUpstreamError
    {502,
     "the login platform refused the server's request; the operator "
     "can see why in the server's log",
     false, 0, nullptr, LogLevel::kWarn},
    // kStoreUnavailable
    {503, "the session store is unavailable; retry shortly", true, 1, nullptr,
     LogLevel::kWarn},
    // kDecryptFailed
    {422, "the data could not be decrypted", false, 0, nullptr,
     LogLevel::kDebug},
    // kWatermarkMismatch
    {422, "the data belongs to another app", false, 0, nullptr,
     LogLevel::kDebug},
    // kWatermarkExpired
    {422, "the data is too old", false, 0, nullptr, LogLevel::kDebug},
    // kNotFound
    {404, "not found", false, 0, nullptr, LogLevel::kDebug},
    // kInternal
    {500, "internal error", false, 0, nullptr, LogLevel::kError},
    // kUserBanned (the ban's reason is for operators only)
    {403, "this account is suspended", false, 0, nullptr, LogLevel::kInfo},
    // kLoginDenied
    {403, "this login was refused", false, 0, nullptr, LogLevel::kInfo},
    // kHookUnavailable
    {503, "the login cannot be checked right now; retry shortly", true, 1,
     nullptr, LogLevel::kWarn},
    // kUnsupportedForPlatform
    {400, "this route is not available on the app's platform", false, 0,
     nullptr, LogLevel::kDebug},
};

static_assert(sizeof(kTable) / sizeof(kTable[0]) == kErrorCodeCount,
              "one row per ErrorCode, in enum order");

}  // namespace

const HttpError& HttpErrorFor(ErrorCode code) {
  const auto index = static_cast<size_t>(code);
  if (index >= sizeof(kTable) / sizeof(kTable[0])) {
    return kTable[static_cast<size_t>(ErrorCode::kInternal)];
  }
  return kTable[index];
}

}  // namespace wxsession
