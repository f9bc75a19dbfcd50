// OpenDataService: what a mini-program backend does with a logged-in
// user's session_key, free of any HTTP type.
//
//   Decrypt          encryptedData + iv from wx.getUserProfile, the legacy
//                    getPhoneNumber button, wx.getShareInfo, wx.getWeRunData
//                    (AES-128-CBC, PKCS#7, key = the user's newest
//                    session_key), with the watermark checked.
//   VerifySignature  signature == sha1(rawData + session_key), compared in
//                    constant time.
//   GetPhoneNumber   the current phone-number API (a button code, exchanged
//                    at WeChat with the app's access_token).
//   CheckSessionKey  asks WeChat whether the stored session_key still holds.
//
// Every use case starts from a session id and uses the newest session_key
// stored for the session's user (SessionService::LookupWithKey), so a second
// login of the same user on another device does not break the first one's
// open data. The key itself never leaves this module except to WeChat.
//
// Other platforms (docs/PLATFORMS.md): QQ, Douyin and Kuaishou decrypt and
// verify as WeChat (a watermark.appid is checked when present); Baidu
// decrypts with DecryptBaiduOpenData and has no Verify; Alipay has neither;
// GetPhoneNumber and CheckSessionKey are WeChat-only. The rest answer
// kUnsupportedForPlatform.
//
// Thread-safety: every method may be called concurrently.
#ifndef WXSESSION_OPEN_DATA_H_
#define WXSESSION_OPEN_DATA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/service.h"
#include "wxsession/status.h"
#include "wxsession/wechat.h"

namespace wxsession {

class RateLimiter;  // core/rate_limit.h

// Open data's three base64 inputs, decoded and checked: a key of
// `key_bytes` bytes, a 16-byte iv, and ciphertext that is a non-empty
// multiple of 16 bytes (AES blocks). Shared by every platform's decryption.
// Errors: kDecryptFailed naming which input is wrong (`key_error` for the
// key).
struct OpenDataInputs {
  std::string key;
  std::string iv;
  std::string ciphertext;
};
Result<OpenDataInputs> DecodeOpenDataInputs(std::string_view session_key,
                                            std::string_view encrypted_data,
                                            std::string_view iv,
                                            size_t key_bytes,
                                            const char* key_error);

// The decrypting half of Decrypt, for one key: base64-decodes the three
// inputs, decrypts, and checks that the plaintext is a JSON object whose
// watermark.appid is `appid` and, when max_age_seconds > 0, whose
// watermark.timestamp is at most that old at `now`. Returns the object as
// JSON text. Errors: kDecryptFailed (bad base64, a key or iv that is not 16
// bytes, a ciphertext that is empty or not whole blocks, bad padding, not a
// JSON object), kWatermarkMismatch, kWatermarkExpired.
// `watermark_required` false (QQ, Douyin, Kuaishou) accepts data without a
// watermark.appid; one that is present must still be `appid`.
Result<std::string> DecryptOpenData(std::string_view session_key,
                                    std::string_view encrypted_data,
                                    std::string_view iv,
                                    const std::string& appid, int64_t now,
                                    int64_t max_age_seconds,
                                    bool watermark_required = true);

// Baidu's open data: AES-192-CBC with key = base64-decoded session_key (24
// bytes) and the request's iv (16 bytes); the plaintext is 16 random bytes,
// a 4-byte big-endian length L, L bytes of JSON (an object), then the app
// key, which must be `app_key` (else kWatermarkMismatch). Padding is
// PKCS#7 over 32-byte blocks as Baidu's sample strips it (a pad byte of
// 1..32; 16-byte PKCS#7 is a special case). Returns the JSON text. Errors:
// kDecryptFailed, kWatermarkMismatch.
Result<std::string> DecryptBaiduOpenData(std::string_view session_key,
                                         std::string_view encrypted_data,
                                         std::string_view iv,
                                         const std::string& app_key);

// Whether `signature` is the lowercase hex SHA-1 of raw_data + session_key
// (the key's base64 text). Constant time in the signature's contents.
bool OpenDataSignatureMatches(std::string_view raw_data,
                              std::string_view signature,
                              std::string_view session_key);

class OpenDataService {
 public:
  // Everything passed in must outlive the service. Calls to WeChat made for
  // a session (GetPhoneNumber, CheckSessionKey) are limited per session to
  // config.wechat_per_session_per_minute, timed by `clock`.
  OpenDataService(const Config& config, SessionService& sessions,
                  WeChatClient& wechat, AccessTokenSource& tokens,
                  const Clock& clock);

  // The decrypted object as JSON text. Errors: those of
  // SessionService::LookupWithKey (kInvalidSession, kStoreUnavailable), and
  // those of DecryptOpenData with open_data.max_age.
  Result<std::string> Decrypt(const std::string& session_id,
                              const std::string& encrypted_data,
                              const std::string& iv);

  // Errors: those of SessionService::LookupWithKey.
  Result<bool> VerifySignature(const std::string& session_id,
                               const std::string& raw_data,
                               const std::string& signature);

  // Errors: those of LookupWithKey; kInvalidRequest (a code that breaks
  // CheckClientCode's rule); kRateLimited (with retry_after) past the
  // session's WeChat calls per minute; those of WeChatClient::GetPhoneNumber
  // and the token source; kWatermarkMismatch when WeChat's watermark names
  // another app.
  Result<PhoneNumber> GetPhoneNumber(const std::string& session_id,
                                     const std::string& code);

  // Whether WeChat still accepts the user's newest session_key. Errors:
  // those of LookupWithKey; kRateLimited as GetPhoneNumber; those of
  // WeChatClient::CheckSessionKey and the token source.
  Result<bool> CheckSessionKey(const std::string& session_id);

  ~OpenDataService();

 private:
  // Takes one of the session's WeChat calls; kRateLimited when none is left.
  Status TakeWeChatCall(const std::string& session_id);
  // The platform of a configured app (WeChat when it is no longer
  // configured), and the kUnsupportedForPlatform answer of `route` there.
  Platform PlatformOfApp(const std::string& appid) const;
  static Status Unsupported(const char* route, const std::string& appid,
                            Platform platform);

  const Config& config_;       // constant after construction
  SessionService& sessions_;   // thread-safe by contract
  WeChatClient& wechat_;       // thread-safe by contract
  AccessTokenSource& tokens_;  // thread-safe by contract
  const Clock& clock_;
  // One bucket per session (keyed by the SHA-256 of its id); null when
  // rate_limit.wechat_per_session_per_minute is 0. Thread-safe.
  std::unique_ptr<RateLimiter> wechat_limiter_;
};

}  // namespace wxsession

#endif  // WXSESSION_OPEN_DATA_H_
