// WeChatClient over HTTP(S), on cpp-httplib, through the keep-alive pool
// every upstream client shares (UpstreamHttp, src/wechat/upstream_http.h).
//
// Every call goes through one path: build the request, exchange it (retrying
// once where that is safe), turn errcodes into a Status, then read the
// fields of that API. Calls that carry an access_token also go through
// CallWithToken, which swaps a rejected token once.
//
// Nothing in this file lets an exception out: httplib and nlohmann::json are
// used in their non-throwing forms, and each public call catches the rest.

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wechat/upstream_http.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"
#include "wxsession/wechat.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

constexpr char kCode2SessionApi[] = "jscode2session";
constexpr char kStableTokenApi[] = "stable_token";
constexpr char kPhoneNumberApi[] = "getuserphonenumber";
constexpr char kCheckSessionApi[] = "checksession";

// WeChat errcodes that mean "the access_token you sent is no good": 40001
// invalid credential (replaced or never valid), 42001 expired.
constexpr long long kErrcodeInvalidCredential = 40001;
constexpr long long kErrcodeTokenExpired = 42001;
// checksession: the signature does not match, i.e. the key is stale.
constexpr long long kErrcodeInvalidSignature = 87009;

// Longest access_token accepted. WeChat says to reserve 512 characters;
// four times that leaves room for a format change without letting a broken
// upstream fill the store.
constexpr size_t kMaxAccessTokenChars = 2048;
// Longest expires_in accepted, in seconds. WeChat answers 7200; a month is
// far beyond any real answer and keeps now + expires_in from overflowing.
constexpr long long kMaxExpiresInSeconds = 30LL * 86400;

// What one call sends.
struct Request {
  const char* api;     // for messages, e.g. "jscode2session"
  const char* method;  // "GET" or "POST"
  std::string path;    // with the api_base prefix and the query
  std::string body;    // JSON for POST, empty for GET
  // Values that must never be quoted back, each with what to show instead:
  // WeChat's errmsg sometimes echoes the request.
  std::vector<std::pair<std::string, std::string>> redactions;
};

// One exchange's outcome: a JSON object reply with errcode 0 (or none), or
// a Status; plus whether trying again is safe, and WeChat's errcode if any.
// Its implicit noexcept destructor and moves can throw only in
// nlohmann::json's destructor (bad_alloc while it flattens nested values),
// where terminate is all that could be done anyway:
// NOLINTNEXTLINE(bugprone-exception-escape)
struct Exchange {
  Status status;
  json reply;
  long long errcode = 0;
  bool retry_safe = false;

  bool ok() const { return status.ok(); }
};

Status Unavailable(const char* api, const std::string& why) {
  return Status::Fault(ErrorCode::kUpstreamUnavailable,
                       std::string("WeChat ") + api + " " + why)
      .set_retry_after(kUnreachableRetryAfterSeconds);
}

Status UpstreamError(const char* api, const std::string& why) {
  return Status::Fault(ErrorCode::kUpstreamError,
                       std::string("WeChat ") + api + " failed: " + why);
}

Exchange Failed(Status status, bool retry_safe) {
  Exchange exchange;
  exchange.status = std::move(status);
  exchange.retry_safe = retry_safe;
  return exchange;
}

// Maps a transport failure (no HTTP reply at all) onto a Status, deciding
// whether the request can have reached WeChat.
Exchange FromTransportError(const char* api, httplib::Error error) {
  switch (error) {
    // The connection never carried the request: WeChat cannot have seen it
    // (nor spent a code in it), so one more try is safe.
    case httplib::Error::Connection:
      return Failed(Unavailable(api, "unreachable: could not connect"), true);
    case httplib::Error::ConnectionTimeout:
      return Failed(Unavailable(api, "unreachable: connect timed out"), true);
    case httplib::Error::SSLConnection:
      return Failed(Unavailable(api, "unreachable: TLS handshake failed"),
                    true);
    // Sent, at least in part: WeChat may have exchanged the code already, so
    // a retry could only earn 40163 and hide the real outcome.
    case httplib::Error::Read:
      return Failed(
          Unavailable(api, "did not answer in time (timeout or reset)"), false);
    case httplib::Error::Write:
      return Failed(Unavailable(api, "request could not be sent in full"),
                    false);
    // Local TLS setup problems: trying again will not help.
    case httplib::Error::SSLServerVerification:
      return Failed(
          Unavailable(api, "unreachable: TLS certificate not trusted"), false);
    case httplib::Error::SSLLoadingCerts:
      return Failed(
          Unavailable(api, "unreachable: CA certificates could not be loaded"),
          false);
    // The reply arrived but could not be used.
    case httplib::Error::Canceled:
      return Failed(
          UpstreamError(api, "reply larger than " +
                                 std::to_string(UpstreamHttp::kMaxReplyBytes) +
                                 " bytes"),
          false);
    case httplib::Error::Compression:
      return Failed(UpstreamError(api, "reply could not be decompressed"),
                    false);
    case httplib::Error::ExceedRedirectCount:
      return Failed(UpstreamError(api, "too many redirects"), false);
    default:
      // Unknown and anything newer: whether the request left is not known,
      // so no retry.
      return Failed(Unavailable(api, "failed: transport error"), false);
  }
}

// Reads an HTTP reply: status, JSON shape, errcode.
Exchange Interpret(const Request& request, int http_status,
                   const std::string& body) {
  const char* api = request.api;
  if (http_status != 200) {
    return Failed(
        UpstreamError(api, "HTTP status " + std::to_string(http_status)),
        false);
  }
  Exchange exchange;
  exchange.reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (exchange.reply.is_discarded() || !exchange.reply.is_object()) {
    return Failed(UpstreamError(api, "reply is not a JSON object"), false);
  }
  const auto errcode_it = exchange.reply.find("errcode");
  if (errcode_it == exchange.reply.end()) return exchange;
  if (!errcode_it->is_number_integer()) {
    return Failed(UpstreamError(api, "errcode is not an integer"), false);
  }
  const long long errcode = errcode_it->get<long long>();
  if (errcode == 0) return exchange;

  std::string errmsg;
  const auto errmsg_it = exchange.reply.find("errmsg");
  if (errmsg_it != exchange.reply.end() && errmsg_it->is_string()) {
    // Cleaned before redaction, so dropping a control character cannot join
    // the pieces of a secret back together afterwards.
    errmsg = CleanUpstreamText(errmsg_it->get_ref<const std::string&>());
    errmsg = Redact(errmsg, request.redactions);
  }
  // -1 means WeChat did not process the call, so trying again is safe.
  Exchange failed =
      Failed(StatusFromWeChatError(api, errcode, errmsg), errcode == -1);
  failed.errcode = errcode;
  return failed;
}

class HttpWeChatClient final : public WeChatClient {
 public:
  explicit HttpWeChatClient(const WeChatHttpOptions& options)
      : api_base_text_(options.api_base), http_(NewHttp(options)) {}

  Result<WeChatSession> Code2Session(const std::string& appid,
                                     const std::string& secret,
                                     const std::string& code) override {
    return Guarded<WeChatSession>(
        kCode2SessionApi, [&]() -> Result<WeChatSession> {
          Request request{kCode2SessionApi,
                          "GET",
                          "/sns/jscode2session?appid=" + PercentEncode(appid) +
                              "&secret=" + PercentEncode(secret) +
                              "&js_code=" + PercentEncode(code) +
                              "&grant_type=authorization_code",
                          "",
                          {{secret, "[secret]"}, {code, "[code]"}}};
          Exchange exchange = ExchangeWithSafeRetry(request);
          if (!exchange.ok()) return exchange.status;
          const json& reply = exchange.reply;
          std::optional<std::string> openid = NonEmptyString(reply, "openid");
          std::optional<std::string> session_key =
              NonEmptyString(reply, "session_key");
          if (!openid || !session_key) {
            return UpstreamError(kCode2SessionApi,
                                 "reply lacks openid or session_key");
          }
          WeChatSession session;
          session.openid = std::move(*openid);
          session.session_key = std::move(*session_key);
          session.unionid = NonEmptyString(reply, "unionid");
          return session;
        });
  }

  Result<StableAccessToken> StableToken(const std::string& appid,
                                        const std::string& secret,
                                        bool force_refresh) override {
    return Guarded<StableAccessToken>(
        kStableTokenApi, [&]() -> Result<StableAccessToken> {
          const json body = {{"grant_type", "client_credential"},
                             {"appid", appid},
                             {"secret", secret},
                             {"force_refresh", force_refresh}};
          Request request{
              kStableTokenApi,
              "POST",
              "/cgi-bin/stable_token",
              body.dump(-1, ' ', false, json::error_handler_t::replace),
              {{secret, "[secret]"}}};
          Exchange exchange = ExchangeWithSafeRetry(request);
          if (!exchange.ok()) return exchange.status;
          std::optional<std::string> token =
              NonEmptyString(exchange.reply, "access_token");
          if (!token || token->size() > kMaxAccessTokenChars) {
            return UpstreamError(kStableTokenApi,
                                 "reply lacks a usable access_token");
          }
          const auto expires_in = exchange.reply.find("expires_in");
          if (expires_in == exchange.reply.end() ||
              !expires_in->is_number_integer() ||
              expires_in->get<long long>() <= 0 ||
              expires_in->get<long long>() > kMaxExpiresInSeconds) {
            return UpstreamError(kStableTokenApi,
                                 "reply lacks a positive expires_in");
          }
          return StableAccessToken{
              std::move(*token),
              static_cast<int64_t>(expires_in->get<long long>())};
        });
  }

  Result<PhoneNumber> GetPhoneNumber(AccessTokenSource& tokens,
                                     const std::string& appid,
                                     const std::string& code,
                                     const std::string& openid) override {
    return Guarded<PhoneNumber>(kPhoneNumberApi, [&]() -> Result<PhoneNumber> {
      json body = {{"code", code}};
      if (!openid.empty()) body["openid"] = openid;
      const std::string body_text =
          body.dump(-1, ' ', false, json::error_handler_t::replace);
      Result<json> reply =
          CallWithToken(tokens, appid, [&](const std::string& token) {
            return Request{kPhoneNumberApi,
                           "POST",
                           "/wxa/business/getuserphonenumber?access_token=" +
                               PercentEncode(token),
                           body_text,
                           {{token, "[access_token]"}, {code, "[code]"}}};
          });
      if (!reply.ok()) return reply.status();
      return ReadPhoneInfo(reply.value());
    });
  }

  Result<bool> CheckSessionKey(AccessTokenSource& tokens,
                               const std::string& appid,
                               const std::string& openid,
                               const std::string& session_key) override {
    return Guarded<bool>(kCheckSessionApi, [&]() -> Result<bool> {
      const std::string signature = CheckSessionSignature(session_key);
      Result<json> reply = CallWithToken(
          tokens, appid,
          [&](const std::string& token) {
            return Request{
                kCheckSessionApi,
                "GET",
                "/wxa/checksession?access_token=" + PercentEncode(token) +
                    "&openid=" + PercentEncode(openid) +
                    "&signature=" + signature + "&sig_method=hmac_sha256",
                "",
                {{token, "[access_token]"},
                 {signature, "[signature]"},
                 {session_key, "[session_key]"}}};
          },
          kErrcodeInvalidSignature);
      if (!reply.ok()) return reply.status();
      const auto errcode = reply->find("errcode");
      return !(errcode != reply->end() && errcode->is_number_integer() &&
               errcode->get<long long>() == kErrcodeInvalidSignature);
    });
  }

 private:
  // Runs `call`, turning any exception into kInternal. Only allocation
  // failures or a library bug can throw here; the exception text is not
  // quoted since it could echo the request.
  template <typename T, typename Call>
  Result<T> Guarded(const char* api, Call&& call) {
    try {
      if (!http_) {
        return Status::Fault(ErrorCode::kInternal,
                             "WeChat api_base is not an http(s) URL: " +
                                 CleanUpstreamText(api_base_text_));
      }
      return call();
    } catch (...) {
      return Status::Fault(
          ErrorCode::kInternal,
          std::string("WeChat ") + api + ": unexpected internal error");
    }
  }

  // At most two tries, and the second only when the first cannot have been
  // acted on (see FromTransportError and errcode -1).
  Exchange ExchangeWithSafeRetry(const Request& request) {
    Exchange exchange = ExchangeOnce(request);
    if (!exchange.ok() && exchange.retry_safe) exchange = ExchangeOnce(request);
    return exchange;
  }

  // Makes a call that carries an access_token. When WeChat rejects the token
  // (40001, 42001), asks `tokens` for a replacement and calls once more.
  // `accepted_errcode` (if not 0) is an errcode this API answers as a
  // result rather than a failure; the reply is then returned as is.
  template <typename Build>
  Result<json> CallWithToken(AccessTokenSource& tokens,
                             const std::string& appid, Build&& build,
                             long long accepted_errcode = 0) {
    Result<std::string> token = tokens.AccessTokenFor(appid);
    if (!token.ok()) return token.status();
    Exchange exchange = ExchangeWithSafeRetry(build(token.value()));
    if (!exchange.ok() && (exchange.errcode == kErrcodeInvalidCredential ||
                           exchange.errcode == kErrcodeTokenExpired)) {
      Result<std::string> replacement =
          tokens.ReplaceRejectedAccessToken(appid, token.value());
      if (!replacement.ok()) return replacement.status();
      exchange = ExchangeWithSafeRetry(build(replacement.value()));
    }
    if (!exchange.ok()) {
      if (accepted_errcode != 0 && exchange.errcode == accepted_errcode) {
        return json{{"errcode", accepted_errcode}};
      }
      return exchange.status;
    }
    return std::move(exchange.reply);
  }

  static Result<PhoneNumber> ReadPhoneInfo(const json& reply) {
    const auto info = reply.find("phone_info");
    if (info == reply.end() || !info->is_object()) {
      return UpstreamError(kPhoneNumberApi, "reply lacks phone_info");
    }
    PhoneNumber phone;
    std::optional<std::string> number = NonEmptyString(*info, "phoneNumber");
    std::optional<std::string> pure = NonEmptyString(*info, "purePhoneNumber");
    if (!number || !pure) {
      return UpstreamError(kPhoneNumberApi,
                           "phone_info lacks phoneNumber or purePhoneNumber");
    }
    phone.phone_number = std::move(*number);
    phone.pure_phone_number = std::move(*pure);
    // Documented as a string, seen as a number: both become text.
    const auto country = info->find("countryCode");
    if (country != info->end() && country->is_string() &&
        !country->get_ref<const std::string&>().empty()) {
      phone.country_code = country->get<std::string>();
    } else if (country != info->end() && country->is_number_unsigned()) {
      phone.country_code = std::to_string(country->get<unsigned long long>());
    } else {
      return UpstreamError(kPhoneNumberApi, "phone_info lacks countryCode");
    }
    const auto watermark = info->find("watermark");
    if (watermark != info->end() && watermark->is_object()) {
      phone.watermark_appid =
          NonEmptyString(*watermark, "appid").value_or(std::string());
      const auto timestamp = watermark->find("timestamp");
      if (timestamp != watermark->end() && timestamp->is_number_integer()) {
        phone.watermark_timestamp = timestamp->get<int64_t>();
      }
    }
    return phone;
  }

  static std::unique_ptr<UpstreamHttp> NewHttp(
      const WeChatHttpOptions& options) {
    std::optional<ApiBase> base = ParseApiBase(options.api_base);
    if (!base) return nullptr;
    return std::make_unique<UpstreamHttp>(std::move(*base), options.timeout_ms);
  }

  // Sends one request and interprets the reply.
  Exchange ExchangeOnce(const Request& request) {
    UpstreamReply reply =
        http_->Send(request.method, request.path, request.body,
                    request.body.empty() ? "" : "application/json");
    if (reply.setup_failed) {
      // Only an SSL context that OpenSSL refused to create gets here.
      return Failed(
          Status::Fault(ErrorCode::kInternal,
                        "WeChat client could not be set up (TLS context)"),
          false);
    }
    if (!reply.replied) return FromTransportError(request.api, reply.error);
    return Interpret(request, reply.http_status, reply.body);
  }

  const std::string api_base_text_;           // constant after construction
  const std::unique_ptr<UpstreamHttp> http_;  // null if api_base is not a URL
};

}  // namespace

std::unique_ptr<WeChatClient> NewHttpWeChatClient(
    const WeChatHttpOptions& options) {
  return std::make_unique<HttpWeChatClient>(options);
}

std::string CheckSessionSignature(const std::string& session_key) {
  return crypto::HmacSha256Hex(session_key, "");
}

Status StatusFromWeChatError(const std::string& api, long long errcode,
                             const std::string& errmsg) {
  std::string message =
      "WeChat " + api + " failed: errcode " + std::to_string(errcode);
  const std::string quoted =
      TruncateUtf8(CleanUpstreamText(errmsg), kMaxErrmsgBytes);
  if (!quoted.empty()) message += " (" + quoted + ")";

  switch (errcode) {
    case 40029:  // invalid code
    case 40163:  // code already used
      return Status(ErrorCode::kInvalidCode, std::move(message));
    case 40226:  // high-risk user blocked
      return Status(ErrorCode::kLoginBlocked, std::move(message));
    case 45011:  // per-minute API quota reached
      return Status(ErrorCode::kRateLimited, std::move(message))
          .set_retry_after(kRateLimitedRetryAfterSeconds);
    case -1:  // system busy
      return Status::Fault(ErrorCode::kUpstreamUnavailable, std::move(message))
          .set_retry_after(kBusyRetryAfterSeconds);
    default:
      return Status::Fault(ErrorCode::kUpstreamError, std::move(message));
  }
}

}  // namespace wxsession
