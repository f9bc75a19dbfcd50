// OpenDataService: see open_data.h.
#include "wxsession/open_data.h"

#include "core/rate_limit.h"

#include <nlohmann/json.hpp>

#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

// AES-128: the key, the iv and each block are 16 bytes.
constexpr size_t kAesBytes = 16;

// What a client developer most needs to read when decryption fails though
// the input was well-formed: in the field this is nearly always a stale key.
constexpr char kStaleKeyHint[] =
    "; the usual cause is a wx.login after WeChat encrypted the data, which "
    "replaced the user's session_key: call wx.login (and POST /v1/login) "
    "before the tap that yields encryptedData, not after it";

Status DecryptFailed(const std::string& what) {
  return Status(ErrorCode::kDecryptFailed, what);
}

}  // namespace

Result<OpenDataInputs> DecodeOpenDataInputs(std::string_view session_key,
                                            std::string_view encrypted_data,
                                            std::string_view iv,
                                            size_t key_bytes,
                                            const char* key_error) {
  std::optional<std::string> key = crypto::Base64Decode(session_key);
  if (!key || key->size() != key_bytes) return DecryptFailed(key_error);
  std::optional<std::string> iv_bytes = crypto::Base64Decode(iv);
  if (!iv_bytes) return DecryptFailed("iv is not valid base64");
  if (iv_bytes->size() != kAesBytes) {
    return DecryptFailed("iv must decode to 16 bytes, got " +
                         std::to_string(iv_bytes->size()));
  }
  std::optional<std::string> ciphertext = crypto::Base64Decode(encrypted_data);
  if (!ciphertext) {
    return DecryptFailed(
        "encryptedData is not valid base64 (was it cut short, or URL-encoded "
        "so that '+' became a space?)");
  }
  if (ciphertext->empty() || ciphertext->size() % kAesBytes != 0) {
    return DecryptFailed(
        "encryptedData must decode to a non-empty multiple of 16 bytes, got " +
        std::to_string(ciphertext->size()) + " (was it cut short?)");
  }
  return OpenDataInputs{std::move(*key), std::move(*iv_bytes),
                        std::move(*ciphertext)};
}

Result<std::string> DecryptOpenData(std::string_view session_key,
                                    std::string_view encrypted_data,
                                    std::string_view iv,
                                    const std::string& appid, int64_t now,
                                    int64_t max_age_seconds,
                                    bool watermark_required) {
  Result<OpenDataInputs> in = DecodeOpenDataInputs(
      session_key, encrypted_data, iv, kAesBytes,
      "the stored session_key is not a 16-byte key; log in again");
  if (!in.ok()) return in.status();
  std::optional<std::string> plaintext =
      crypto::Aes128CbcDecrypt(in->key, in->iv, in->ciphertext);
  if (!plaintext) {
    return DecryptFailed(
        std::string("encryptedData does not decrypt with the user's current "
                    "session_key (bad padding)") +
        kStaleKeyHint);
  }
  const json object =
      json::parse(*plaintext, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return DecryptFailed(
        std::string("encryptedData decrypts, but not to a JSON object, so the "
                    "key or iv is not the one WeChat used") +
        kStaleKeyHint);
  }

  const auto watermark = object.find("watermark");
  const bool has_watermark =
      watermark != object.end() && watermark->is_object();
  std::string watermark_appid;
  if (has_watermark) {
    const auto found = watermark->find("appid");
    if (found != watermark->end() && found->is_string()) {
      watermark_appid = found->get<std::string>();
    }
  }
  if (watermark_appid != appid &&
      (watermark_required || !watermark_appid.empty())) {
    return Status(ErrorCode::kWatermarkMismatch,
                  watermark_appid.empty()
                      ? "the decrypted data carries no watermark.appid"
                      : "the decrypted data belongs to app " + watermark_appid +
                            ", not to this session's app " + appid);
  }
  if (max_age_seconds > 0) {
    const bool has_timestamp =
        has_watermark && watermark->find("timestamp") != watermark->end() &&
        watermark->find("timestamp")->is_number_integer();
    if (!has_timestamp) {
      return Status(ErrorCode::kWatermarkExpired,
                    "the decrypted data carries no watermark.timestamp, so "
                    "its age cannot be checked");
    }
    const int64_t age = now - watermark->find("timestamp")->get<int64_t>();
    if (age > max_age_seconds) {
      return Status(ErrorCode::kWatermarkExpired,
                    "the decrypted data is " + std::to_string(age) +
                        " s old; open_data.max_age allows " +
                        std::to_string(max_age_seconds) + " s: fetch it again");
    }
  }
  return std::move(*plaintext);
}

bool OpenDataSignatureMatches(std::string_view raw_data,
                              std::string_view signature,
                              std::string_view session_key) {
  std::string signed_text(raw_data);
  signed_text.append(session_key);
  return crypto::ConstantTimeEquals(crypto::Sha1Hex(signed_text), signature);
}

OpenDataService::OpenDataService(const Config& config, SessionService& sessions,
                                 WeChatClient& wechat,
                                 AccessTokenSource& tokens, const Clock& clock)
    : config_(config),
      sessions_(sessions),
      wechat_(wechat),
      tokens_(tokens),
      clock_(clock) {
  if (config.wechat_per_session_per_minute > 0) {
    const double rate =
        static_cast<double>(config.wechat_per_session_per_minute);
    // A whole minute's worth at once: a page that asks for the phone number
    // and checks the key on load needs a few at a time, not a trickle.
    wechat_limiter_ = std::make_unique<RateLimiter>(rate, rate, clock);
  }
}

OpenDataService::~OpenDataService() = default;

Status OpenDataService::TakeWeChatCall(const std::string& session_id) {
  if (!wechat_limiter_) return Status::Ok();
  RateLimiter::Decision decision =
      wechat_limiter_->Take(crypto::Sha256(session_id));
  if (decision.allowed) return Status::Ok();
  return Status(ErrorCode::kRateLimited,
                "too many calls to WeChat for this session; retry in " +
                    std::to_string(decision.retry_after_seconds) + " s")
      .set_retry_after(decision.retry_after_seconds);
}

Result<std::string> OpenDataService::Decrypt(const std::string& session_id,
                                             const std::string& encrypted_data,
                                             const std::string& iv) {
  Result<LiveSession> session = sessions_.LookupWithKey(session_id);
  if (!session.ok()) return session.status();
  const Platform platform = PlatformOfApp(session->appid);
  if (platform == Platform::kAlipay) {
    return Unsupported("/v1/decrypt", session->appid, platform);
  }
  if (platform == Platform::kBaidu) {
    return DecryptBaiduOpenData(session->session_key, encrypted_data, iv,
                                session->appid);
  }
  return DecryptOpenData(session->session_key, encrypted_data, iv,
                         session->appid, clock_.Now(),
                         config_.open_data_max_age,
                         /*watermark_required=*/platform == Platform::kWeChat);
}

Platform OpenDataService::PlatformOfApp(const std::string& appid) const {
  const AppConfig* app = config_.FindApp(appid);
  return app == nullptr ? Platform::kWeChat : app->platform;
}

Status OpenDataService::Unsupported(const char* route, const std::string& appid,
                                    Platform platform) {
  return Status(ErrorCode::kUnsupportedForPlatform,
                std::string(route) + " is not available on " +
                    PlatformName(platform) + " (app " + appid + ")");
}

Result<bool> OpenDataService::VerifySignature(const std::string& session_id,
                                              const std::string& raw_data,
                                              const std::string& signature) {
  Result<LiveSession> session = sessions_.LookupWithKey(session_id);
  if (!session.ok()) return session.status();
  if (const Platform platform = PlatformOfApp(session->appid);
      platform == Platform::kBaidu || platform == Platform::kAlipay) {
    return Unsupported("/v1/verify", session->appid, platform);
  }
  return OpenDataSignatureMatches(raw_data, signature, session->session_key);
}

Result<PhoneNumber> OpenDataService::GetPhoneNumber(
    const std::string& session_id, const std::string& code) {
  Result<LiveSession> session = sessions_.LookupWithKey(session_id);
  if (!session.ok()) return session.status();
  if (const Platform platform = PlatformOfApp(session->appid);
      platform != Platform::kWeChat) {
    return Unsupported("/v1/phone", session->appid, platform);
  }
  if (Status valid = CheckClientCode(code, "the getPhoneNumber button");
      !valid.ok()) {
    return valid;
  }
  if (Status allowed = TakeWeChatCall(session_id); !allowed.ok()) {
    return allowed;
  }
  Result<PhoneNumber> phone =
      wechat_.GetPhoneNumber(tokens_, session->appid, code, session->openid);
  if (!phone.ok()) return phone;
  if (phone->watermark_appid != session->appid) {
    return Status(ErrorCode::kWatermarkMismatch,
                  phone->watermark_appid.empty()
                      ? "WeChat's phone_info carries no watermark.appid"
                      : "WeChat's phone_info belongs to app " +
                            phone->watermark_appid + ", not to " +
                            session->appid);
  }
  return phone;
}

Result<bool> OpenDataService::CheckSessionKey(const std::string& session_id) {
  Result<LiveSession> session = sessions_.LookupWithKey(session_id);
  if (!session.ok()) return session.status();
  if (const Platform platform = PlatformOfApp(session->appid);
      platform != Platform::kWeChat) {
    return Unsupported("/v1/session/check", session->appid, platform);
  }
  if (Status allowed = TakeWeChatCall(session_id); !allowed.ok()) {
    return allowed;
  }
  return wechat_.CheckSessionKey(tokens_, session->appid, session->openid,
                                 session->session_key);
}

}  // namespace wxsession
