// The per-platform login exchanges and the client that picks one per app:
// see platform_client.h and docs/PLATFORMS.md.
#include "platforms/platform_client.h"

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "platforms/alipay_crypto.h"
#include "wechat/upstream_http.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

// Alipay's gateway: the method that exchanges an auth code, and the
// response node and error codes it answers with.
constexpr char kAlipayMethod[] = "alipay.system.oauth.token";
constexpr char kAlipayResponseNode[] = "alipay_system_oauth_token_response";
constexpr char kAlipayErrorNode[] = "error_response";
constexpr char kAlipaySuccessCode[] = "10000";
constexpr char kAlipayBusyCode[] = "20000";
constexpr char kAlipayInvalidCode[] = "isv.code-invalid";
constexpr char kAlipayCallLimited[] = "isv.app-call-limited";

// What one exchange came to: a JSON reply to read, or a Status, and
// whether one more try is safe.
// Its implicit noexcept destructor and moves can throw only in
// nlohmann::json's destructor (bad_alloc while it flattens nested values),
// where terminate is all that could be done anyway:
// NOLINTNEXTLINE(bugprone-exception-escape)
struct Outcome {
  Status status;
  json reply;
  std::string body;  // the raw reply, for Alipay's signature
  bool retry_safe = false;
};

// A code that may come as a number or as text (Alipay sends "40002").
std::string CodeText(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<long long>());
  return "";
}

class OtherPlatformClient final : public WeChatClient {
 public:
  OtherPlatformClient(const AppConfig& app, int64_t timeout_ms)
      : app_(app),
        title_(PlatformTitle(app.platform)),
        api_(LoginApiName(app.platform)) {
    const std::string base =
        app.api_base.empty() ? DefaultApiBase(app.platform) : app.api_base;
    if (std::optional<ApiBase> parsed = ParseApiBase(base)) {
      http_ = std::make_unique<UpstreamHttp>(std::move(*parsed), timeout_ms);
    }
    if (app.platform == Platform::kAlipay) {
      Result<alipay::RsaKey> own =
          alipay::RsaKey::PrivateFromText(app.private_key);
      Result<alipay::RsaKey> theirs =
          alipay::RsaKey::PublicFromText(app.alipay_public_key);
      if (own.ok()) private_key_ = own.value();
      if (theirs.ok()) alipay_public_key_ = theirs.value();
    }
  }

  Result<WeChatSession> Code2Session(const std::string& /*appid*/,
                                     const std::string& /*secret*/,
                                     const std::string& code) override {
    try {
      if (!http_) {
        return Status::Fault(
            ErrorCode::kInternal,
            std::string(title_) + " api_base is not an http(s) URL");
      }
      switch (app_.platform) {
        case Platform::kQQ:
          return QQ(code);
        case Platform::kDouyin:
          return Douyin(code);
        case Platform::kKuaishou:
          return Kuaishou(code);
        case Platform::kBaidu:
          return Baidu(code);
        case Platform::kAlipay:
          return Alipay(code);
        case Platform::kWeChat:
          break;
      }
      return Status::Fault(ErrorCode::kInternal,
                           "WeChat apps use the WeChat client");
    } catch (...) {
      return Status::Fault(
          ErrorCode::kInternal,
          std::string(title_) + " " + api_ + ": unexpected internal error");
    }
  }

  Result<StableAccessToken> StableToken(const std::string&, const std::string&,
                                        bool) override {
    return Unsupported("the access-token centre");
  }
  Result<PhoneNumber> GetPhoneNumber(AccessTokenSource&, const std::string&,
                                     const std::string&,
                                     const std::string&) override {
    return Unsupported("/v1/phone");
  }
  Result<bool> CheckSessionKey(AccessTokenSource&, const std::string&,
                               const std::string&,
                               const std::string&) override {
    return Unsupported("/v1/session/check");
  }

 private:
  Status Unsupported(const char* what) const {
    return Status(ErrorCode::kUnsupportedForPlatform,
                  std::string(what) + " is WeChat-only; app " + app_.appid +
                      " is a " + PlatformName(app_.platform) + " app");
  }

  // --- Statuses, in the words of this platform.
  Status Failed(ErrorCode code, const std::string& why) const {
    return Status(code, std::string(title_) + " " + api_ + " failed: " + why);
  }
  Status Unavailable(const std::string& why, int retry_after) const {
    return Status::Fault(ErrorCode::kUpstreamUnavailable,
                         std::string(title_) + " " + api_ + " " + why)
        .set_retry_after(retry_after);
  }
  // `label` plus the upstream's own message, cleaned, redacted and cut.
  std::string Quote(const std::string& label, const std::string& message,
                    const std::string& code) const {
    std::string text = CleanUpstreamText(message);
    text = Redact(text, {{app_.secret, "[secret]"}, {code, "[code]"}});
    text = TruncateUtf8(std::move(text), kMaxErrmsgBytes);
    return text.empty() ? label : label + " (" + text + ")";
  }

  // Sends once; maps transport failures and the HTTP statuses every
  // platform shares (429, 5xx). `lenient_status` lets a non-200 reply with
  // a JSON body through (Baidu's OAuth errors).
  Outcome SendOnce(const char* method, const std::string& path,
                   const std::string& body, const std::string& content_type,
                   bool lenient_status = false) const {
    Outcome out;
    UpstreamReply reply = http_->Send(method, path, body, content_type);
    if (!reply.replied) {
      out.retry_safe = reply.never_sent;
      if (reply.too_large) {
        out.status =
            Failed(ErrorCode::kUpstreamError, "reply larger than 64 KiB");
      } else if (reply.never_sent) {
        out.status = Unavailable("unreachable: could not connect",
                                 kUnreachableRetryAfterSeconds);
      } else if (reply.error == httplib::Error::Read ||
                 reply.error == httplib::Error::Write) {
        out.status = Unavailable("did not answer in time (timeout or reset)",
                                 kUnreachableRetryAfterSeconds);
      } else {
        out.status = Unavailable("failed: transport error",
                                 kUnreachableRetryAfterSeconds);
      }
      return out;
    }
    if (reply.http_status == 429) {
      out.status = Status(ErrorCode::kRateLimited,
                          std::string(title_) + " " + api_ +
                              " answered HTTP 429 (rate limited)")
                       .set_retry_after(kRateLimitedRetryAfterSeconds);
      return out;
    }
    if (reply.http_status >= 500) {
      out.status =
          Unavailable("answered HTTP " + std::to_string(reply.http_status),
                      kBusyRetryAfterSeconds);
      return out;
    }
    out.reply = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
    const bool is_object = !out.reply.is_discarded() && out.reply.is_object();
    if (reply.http_status != 200 && !(lenient_status && is_object)) {
      out.status = Failed(ErrorCode::kUpstreamError,
                          "HTTP status " + std::to_string(reply.http_status));
      return out;
    }
    if (!is_object) {
      out.status =
          Failed(ErrorCode::kUpstreamError, "reply is not a JSON object");
      return out;
    }
    out.body = std::move(reply.body);
    return out;
  }

  // One try, and a second only where the first cannot have been acted on:
  // `check` reads the reply and says (through retry_safe) whether the
  // platform answered "busy".
  template <typename Send, typename Check>
  Outcome Exchange(Send send, Check check) const {
    Outcome out = send();
    if (out.status.ok()) check(out);
    if (!out.status.ok() && out.retry_safe) {
      out = send();
      if (out.status.ok()) check(out);
    }
    return out;
  }

  static std::string Form(
      const std::vector<std::pair<std::string, std::string>>& fields) {
    std::string out;
    for (const auto& [name, value] : fields) {
      if (!out.empty()) out += '&';
      out += PercentEncode(name) + "=" + PercentEncode(value);
    }
    return out;
  }

  Result<WeChatSession> Session(std::optional<std::string> openid,
                                std::optional<std::string> session_key,
                                std::optional<std::string> unionid,
                                const char* openid_name,
                                const char* key_name) const {
    if (!openid || !session_key) {
      return Failed(
          ErrorCode::kUpstreamError,
          std::string("reply lacks ") + openid_name + " or " + key_name);
    }
    WeChatSession session;
    session.openid = std::move(*openid);
    session.session_key = std::move(*session_key);
    session.unionid = std::move(unionid);
    return session;
  }

  // --- QQ: WeChat's protocol on api.q.qq.com.
  Result<WeChatSession> QQ(const std::string& code) const {
    const std::string path =
        "/sns/jscode2session?appid=" + PercentEncode(app_.appid) +
        "&secret=" + PercentEncode(app_.secret) +
        "&js_code=" + PercentEncode(code) + "&grant_type=authorization_code";
    Outcome out = Exchange(
        [&] { return SendOnce("GET", path, "", ""); },
        [&](Outcome& o) {
          const auto it = o.reply.find("errcode");
          if (it == o.reply.end()) return;
          if (!it->is_number_integer()) {
            o.status =
                Failed(ErrorCode::kUpstreamError, "errcode is not an integer");
            return;
          }
          const long long errcode = it->get<long long>();
          if (errcode == 0) return;
          const std::string errmsg = o.reply.value("errmsg", json()).is_string()
                                         ? o.reply["errmsg"].get<std::string>()
                                         : "";
          const std::string what =
              Quote("errcode " + std::to_string(errcode), errmsg, code);
          o.retry_safe = errcode == -1;
          if (errcode == 40029 || errcode == 40163) {
            o.status = Failed(ErrorCode::kInvalidCode, what);
          } else if (errcode == -1) {
            o.status = Failed(ErrorCode::kUpstreamUnavailable, what)
                           .set_retry_after(kBusyRetryAfterSeconds);
          } else if (errcode == 45011) {
            o.status = Failed(ErrorCode::kRateLimited, what)
                           .set_retry_after(kRateLimitedRetryAfterSeconds);
          } else {
            o.status = Failed(ErrorCode::kUpstreamError, what);
          }
        });
    if (!out.status.ok()) return out.status;
    return Session(NonEmptyString(out.reply, "openid"),
                   NonEmptyString(out.reply, "session_key"),
                   NonEmptyString(out.reply, "unionid"), "openid",
                   "session_key");
  }

  // --- Douyin: JSON in, {"err_no", "err_tips", "data"} out.
  Result<WeChatSession> Douyin(const std::string& code) const {
    const std::string body = json{
        {"appid", app_.appid},
        {"secret", app_.secret},
        {"code", code}}.dump(-1, ' ', false, json::error_handler_t::replace);
    Outcome out = Exchange(
        [&] {
          return SendOnce("POST", "/api/apps/v2/jscode2session", body,
                          "application/json");
        },
        [&](Outcome& o) {
          const auto it = o.reply.find("err_no");
          if (it == o.reply.end() || !it->is_number_integer()) {
            o.status = Failed(ErrorCode::kUpstreamError,
                              "reply lacks an integer err_no");
            return;
          }
          const long long err_no = it->get<long long>();
          if (err_no == 0) return;
          const auto tips = o.reply.find("err_tips");
          const std::string what =
              Quote("err_no " + std::to_string(err_no),
                    tips != o.reply.end() && tips->is_string()
                        ? tips->get<std::string>()
                        : "",
                    code);
          o.retry_safe = err_no == -1;
          if (err_no == 40018 || err_no == 40019) {
            o.status = Failed(ErrorCode::kInvalidCode, what);
          } else if (err_no == -1) {
            o.status = Failed(ErrorCode::kUpstreamUnavailable, what)
                           .set_retry_after(kBusyRetryAfterSeconds);
          } else {
            o.status = Failed(ErrorCode::kUpstreamError, what);
          }
        });
    if (!out.status.ok()) return out.status;
    const auto data = out.reply.find("data");
    if (data == out.reply.end() || !data->is_object()) {
      return Failed(ErrorCode::kUpstreamError, "reply lacks data");
    }
    return Session(
        NonEmptyString(*data, "openid"), NonEmptyString(*data, "session_key"),
        NonEmptyString(*data, "unionid"), "data.openid", "data.session_key");
  }

  // --- Kuaishou: a form in, {"result": 1, ...} out.
  Result<WeChatSession> Kuaishou(const std::string& code) const {
    const std::string body = Form({{"app_id", app_.appid},
                                   {"app_secret", app_.secret},
                                   {"js_code", code}});
    Outcome out = Exchange(
        [&] {
          return SendOnce("POST", "/oauth2/mp/code2session", body,
                          "application/x-www-form-urlencoded");
        },
        [&](Outcome& o) {
          const auto it = o.reply.find("result");
          if (it != o.reply.end() && it->is_number_integer() &&
              it->get<long long>() == 1) {
            return;
          }
          const std::string result =
              it != o.reply.end() && it->is_number_integer()
                  ? std::to_string(it->get<long long>())
                  : "missing";
          const auto message = o.reply.find("error_msg");
          // Kuaishou documents no code for an invalid js_code: every
          // result but 1 is an error we cannot classify.
          o.status =
              Failed(ErrorCode::kUpstreamError,
                     Quote("result " + result,
                           message != o.reply.end() && message->is_string()
                               ? message->get<std::string>()
                               : "",
                           code));
        });
    if (!out.status.ok()) return out.status;
    return Session(NonEmptyString(out.reply, "open_id"),
                   NonEmptyString(out.reply, "session_key"), std::nullopt,
                   "open_id", "session_key");
  }

  // --- Baidu: a form in, {"openid", "session_key"} or an OAuth error out.
  Result<WeChatSession> Baidu(const std::string& code) const {
    const std::string body =
        Form({{"code", code}, {"client_id", app_.appid}, {"sk", app_.secret}});
    Outcome out = Exchange(
        [&] {
          return SendOnce("POST", "/oauth/jscode2sessionkey", body,
                          "application/x-www-form-urlencoded",
                          /*lenient_status=*/true);
        },
        [&](Outcome& o) {
          const auto it = o.reply.find("error");
          if (it == o.reply.end()) return;
          const std::string error =
              it->is_string() ? it->get<std::string>() : it->dump();
          const auto description = o.reply.find("error_description");
          const std::string what =
              Quote("error " + CleanUpstreamText(error),
                    description != o.reply.end() && description->is_string()
                        ? description->get<std::string>()
                        : "",
                    code);
          o.status =
              Failed(error == "invalid_grant" ? ErrorCode::kInvalidCode
                                              : ErrorCode::kUpstreamError,
                     what);
        });
    if (!out.status.ok()) return out.status;
    return Session(NonEmptyString(out.reply, "openid"),
                   NonEmptyString(out.reply, "session_key"), std::nullopt,
                   "openid", "session_key");
  }

  // --- Alipay: a signed form in, a signed JSON node out.
  Status AlipayError(const json& node, const std::string& code) const {
    const std::string main_code = CodeText(node, "code");
    const std::string sub_code = CodeText(node, "sub_code");
    std::string message = CodeText(node, "sub_msg");
    if (message.empty()) message = CodeText(node, "msg");
    const std::string what = Quote(
        "code " + CleanUpstreamText(main_code) +
            (sub_code.empty() ? ""
                              : " sub_code " + CleanUpstreamText(sub_code)),
        message, code);
    if (sub_code == kAlipayInvalidCode) {
      return Failed(ErrorCode::kInvalidCode, what);
    }
    if (sub_code == kAlipayCallLimited) {
      return Failed(ErrorCode::kRateLimited, what)
          .set_retry_after(kRateLimitedRetryAfterSeconds);
    }
    if (main_code == kAlipayBusyCode) {
      return Failed(ErrorCode::kUpstreamUnavailable, what)
          .set_retry_after(kBusyRetryAfterSeconds);
    }
    return Failed(ErrorCode::kUpstreamError, what);
  }

  Result<WeChatSession> Alipay(const std::string& code) const {
    if (!private_key_.valid() || !alipay_public_key_.valid()) {
      return Status::Fault(ErrorCode::kInternal, "Alipay app " + app_.appid +
                                                     " has no usable RSA keys");
    }
    std::map<std::string, std::string> params = {
        {"app_id", app_.appid},
        {"method", kAlipayMethod},
        {"charset", "utf-8"},
        {"sign_type", "RSA2"},
        {"timestamp", alipay::BeijingTimestamp(std::time(nullptr))},
        {"version", "1.0"},
        {"grant_type", "authorization_code"},
        {"code", code}};
    const std::string signature =
        private_key_.SignBase64(alipay::SignContent(params));
    if (signature.empty()) {
      return Status::Fault(ErrorCode::kInternal,
                           "Alipay request could not be signed");
    }
    params["sign"] = signature;
    std::vector<std::pair<std::string, std::string>> fields(params.begin(),
                                                            params.end());
    const std::string body = Form(fields);
    Outcome out = Exchange(
        [&] {
          return SendOnce("POST", "/gateway.do", body,
                          "application/x-www-form-urlencoded;charset=utf-8");
        },
        [&](Outcome& o) {
          // An error is an error whether or not it is signed.
          const auto error = o.reply.find(kAlipayErrorNode);
          if (error != o.reply.end()) {
            o.status =
                AlipayError(error->is_object() ? *error : json::object(), code);
            o.retry_safe = o.status.code() == ErrorCode::kUpstreamUnavailable;
            return;
          }
          const auto node = o.reply.find(kAlipayResponseNode);
          if (node == o.reply.end() || !node->is_object()) {
            o.status =
                Failed(ErrorCode::kUpstreamError,
                       std::string("reply lacks ") + kAlipayResponseNode);
            return;
          }
          const std::string node_code = CodeText(*node, "code");
          if (!node_code.empty() && node_code != kAlipaySuccessCode) {
            o.status = AlipayError(*node, code);
            o.retry_safe = o.status.code() == ErrorCode::kUpstreamUnavailable;
            return;
          }
          // Trusted only when the signature covers the node's exact bytes.
          const std::optional<std::string_view> raw =
              alipay::RawMemberValue(o.body, kAlipayResponseNode);
          const std::optional<std::string> sign =
              NonEmptyString(o.reply, "sign");
          if (!raw || !sign || !alipay_public_key_.VerifyBase64(*raw, *sign)) {
            o.status = Failed(ErrorCode::kUpstreamError,
                              "the response signature does not verify with "
                              "alipay_public_key_file");
          }
        });
    if (!out.status.ok()) return out.status;
    const json& node = out.reply[kAlipayResponseNode];
    std::optional<std::string> openid = NonEmptyString(node, "open_id");
    if (!openid) openid = NonEmptyString(node, "user_id");
    if (!openid) {
      return Failed(ErrorCode::kUpstreamError,
                    "reply lacks open_id or user_id");
    }
    WeChatSession session;
    session.openid = std::move(*openid);
    session.unionid = NonEmptyString(node, "union_id");
    return session;  // Alipay has no session_key
  }

  const AppConfig app_;
  const char* const title_;
  const char* const api_;
  std::unique_ptr<UpstreamHttp> http_;  // null when api_base is unusable
  alipay::RsaKey private_key_;          // Alipay only
  alipay::RsaKey alipay_public_key_;    // Alipay only
};

// Picks each app's client by appid.
class PlatformClient final : public WeChatClient {
 public:
  PlatformClient(const Config& config, std::unique_ptr<WeChatClient> wechat,
                 int64_t timeout_ms)
      : wechat_(std::move(wechat)) {
    for (const AppConfig& app : config.apps) {
      if (app.platform != Platform::kWeChat) {
        clients_[app.appid] = NewOtherPlatformClient(app, timeout_ms);
      } else if (!app.api_base.empty()) {
        WeChatHttpOptions options;
        options.api_base = app.api_base;
        options.timeout_ms = timeout_ms;
        clients_[app.appid] = NewHttpWeChatClient(options);
      }
    }
  }

  Result<WeChatSession> Code2Session(const std::string& appid,
                                     const std::string& secret,
                                     const std::string& code) override {
    return For(appid).Code2Session(appid, secret, code);
  }
  Result<StableAccessToken> StableToken(const std::string& appid,
                                        const std::string& secret,
                                        bool force_refresh) override {
    return For(appid).StableToken(appid, secret, force_refresh);
  }
  Result<PhoneNumber> GetPhoneNumber(AccessTokenSource& tokens,
                                     const std::string& appid,
                                     const std::string& code,
                                     const std::string& openid) override {
    return For(appid).GetPhoneNumber(tokens, appid, code, openid);
  }
  Result<bool> CheckSessionKey(AccessTokenSource& tokens,
                               const std::string& appid,
                               const std::string& openid,
                               const std::string& session_key) override {
    return For(appid).CheckSessionKey(tokens, appid, openid, session_key);
  }

 private:
  WeChatClient& For(const std::string& appid) {
    const auto found = clients_.find(appid);
    return found == clients_.end() ? *wechat_ : *found->second;
  }

  std::unique_ptr<WeChatClient> wechat_;
  // appid -> its own client; constant after construction.
  std::map<std::string, std::unique_ptr<WeChatClient>> clients_;
};

}  // namespace

std::unique_ptr<WeChatClient> NewOtherPlatformClient(const AppConfig& app,
                                                     int64_t timeout_ms) {
  return std::make_unique<OtherPlatformClient>(app, timeout_ms);
}

std::unique_ptr<WeChatClient> NewPlatformClient(
    const Config& config, std::unique_ptr<WeChatClient> wechat,
    int64_t timeout_ms) {
  return std::make_unique<PlatformClient>(config, std::move(wechat),
                                          timeout_ms);
}

Platform PlatformOf(const Config& config, const std::string& appid) {
  const AppConfig* app = config.FindApp(appid);
  return app == nullptr ? Platform::kWeChat : app->platform;
}

}  // namespace wxsession
