#include "wxsession/status.h"

namespace wxsession {

const char* ErrorCodeName(ErrorCode code) {
  // These names are part of the wire format (the "error" field of every error
  // body): clients branch on them, so never rename one.
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidRequest:
      return "invalid_request";
    case ErrorCode::kPayloadTooLarge:
      return "payload_too_large";
    case ErrorCode::kUnknownApp:
      return "unknown_app";
    case ErrorCode::kInvalidSession:
      return "invalid_session";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kInvalidCode:
      return "invalid_code";
    case ErrorCode::kLoginBlocked:
      return "login_blocked";
    case ErrorCode::kRateLimited:
      return "rate_limited";
    case ErrorCode::kUpstreamUnavailable:
      return "upstream_unavailable";
    case ErrorCode::kUpstreamError:
      return "upstream_error";
    case ErrorCode::kStoreUnavailable:
      return "store_unavailable";
    case ErrorCode::kDecryptFailed:
      return "decrypt_failed";
    case ErrorCode::kWatermarkMismatch:
      return "watermark_mismatch";
    case ErrorCode::kWatermarkExpired:
      return "watermark_expired";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kUserBanned:
      return "user_banned";
    case ErrorCode::kLoginDenied:
      return "login_denied";
    case ErrorCode::kHookUnavailable:
      return "hook_unavailable";
    case ErrorCode::kUnsupportedForPlatform:
      return "unsupported_for_platform";
  }
  // Only reachable with a value cast from an out-of-range integer.
  return "internal";
}

Status InvalidSessionStatus() {
  return Status(ErrorCode::kInvalidSession,
                "the session is unknown, expired or revoked; log in again");
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string text = ErrorCodeName(code_);
  if (!operator_text().empty()) {
    text += ": ";
    text += operator_text();
  }
  if (retry_after_) {
    text += " (retry after " + std::to_string(*retry_after_) + "s)";
  }
  return text;
}

}  // namespace wxsession
