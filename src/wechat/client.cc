// WeChatClient over HTTP(S), on cpp-httplib.
//
// One httplib::Client serialises its requests on an internal mutex, so a
// single shared client would turn concurrent logins into a queue behind the
// slowest WeChat answer. Instead this keeps a small pool: each call takes an
// idle client (or makes one), and gives it back afterwards with its
// keep-alive connection still open, so the next call skips the TCP and TLS
// handshakes.
//
// Every call goes through one path: build the request, exchange it (retrying
// once where that is safe), turn errcodes into a Status, then read the
// fields of that API. Calls that carry an access_token also go through
// CallWithToken, which swaps a rejected token once.
//
// Nothing in this file lets an exception out: httplib and nlohmann::json are
// used in their non-throwing forms, and each public call catches the rest.

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wechat/upstream_http.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"
#include "wxsession/thread_annotations.h"
#include "wxsession/wechat.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

// Idle clients kept for reuse; each holds one keep-alive connection to
// WeChat. Beyond this a burst's extra connections are closed, not hoarded.
constexpr size_t kMaxIdleClients = 64;

// Bytes of errmsg quoted in a message: WeChat's are one short sentence plus
// a request id, so this keeps them whole while bounding what a broken
// upstream can push into our logs and replies.
constexpr size_t kMaxErrmsgBytes = 200;

// Bytes accepted in a reply body: a jscode2session answer is well under
// 1 KiB, so anything this large is not WeChat and is refused unread.
constexpr size_t kMaxReplyBytes = 64 * 1024;

// Seconds to wait after 45011; WeChat's quota is per minute ("retry next
// minute").
constexpr int kRateLimitedRetryAfterSeconds = 60;
// Seconds to wait after errcode -1 (system busy); WeChat only says "later",
// and a second spreads a burst without making users wait long.
constexpr int kBusyRetryAfterSeconds = 1;
// Seconds to wait when WeChat cannot be reached or did not answer in time;
// longer than the busy case because a network fault rarely clears at once.
constexpr int kUnreachableRetryAfterSeconds = 5;

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

}  // namespace

// The helpers from here to ParseApiBase are shared with the other
// platforms' clients (src/wechat/upstream_http.h).

// RFC 3986 percent-encoding: unreserved characters stay, every other byte
// becomes %XX. Stricter than httplib's own encoder, which leaves '&', '='
// and '+' alone and would let a code containing them corrupt the query.
std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                            c == '.' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 when it
// is not one. Strict (no overlongs, no surrogates, nothing past U+10FFFF)
// because nlohmann::json::dump throws on anything less when the HTTP layer
// renders the message.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) -> unsigned char {
    return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
  };
  const auto continuation = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned char second = byte(1);
    if (lead == 0xE0 && second < 0xA0) return 0;  // overlong
    if (lead == 0xED && second > 0x9F) return 0;  // UTF-16 surrogate
    return continuation(1) && continuation(2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned char second = byte(1);
    if (lead == 0xF0 && second < 0x90) return 0;  // overlong
    if (lead == 0xF4 && second > 0x8F) return 0;  // beyond U+10FFFF
    return continuation(1) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

// Makes upstream text fit to quote: control characters dropped (they could
// forge log lines), ill-formed UTF-8 replaced by '?'.
std::string CleanUpstreamText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      ++i;
      continue;
    }
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      out.push_back('?');
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

// Cuts well-formed UTF-8 to at most `max_bytes` (plus "..."), never inside a
// character.
std::string TruncateUtf8(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  text.resize(cut);
  text += "...";
  return text;
}

// Replaces every occurrence of each value in `redactions` by its label, in
// one pass: at each position the longest matching value wins, so a short
// value (a code "c") cannot cut a longer one (a token containing "c") into
// pieces that no longer match, and labels are never rewritten.
std::string Redact(
    const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& redactions) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const std::pair<std::string, std::string>* best = nullptr;
    for (const auto& redaction : redactions) {
      const std::string& value = redaction.first;
      if (!value.empty() && text.compare(i, value.size(), value) == 0 &&
          (best == nullptr || value.size() > best->first.size())) {
        best = &redaction;
      }
    }
    if (best != nullptr) {
      out += best->second;
      i += best->first.size();
    } else {
      out.push_back(text[i]);
      ++i;
    }
  }
  return out;
}

namespace {

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

// Accepts http:// or https://, a host (or [IPv6]), an optional port
// 1-65535 and an optional path. nullopt for anything else, including a
// query, a fragment or user info, none of which an API base can carry.
std::optional<ApiBase> ParseApiBase(const std::string& api_base) {
  std::string scheme;
  size_t rest_at = 0;
  for (const char* candidate : {"http", "https"}) {
    const std::string prefix = std::string(candidate) + "://";
    if (api_base.size() > prefix.size()) {
      bool matches = true;
      for (size_t i = 0; i < prefix.size() && matches; ++i) {
        char c = api_base[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        matches = c == prefix[i];
      }
      if (matches) {
        scheme = candidate;
        rest_at = prefix.size();
      }
    }
  }
  if (scheme.empty()) return std::nullopt;
  const std::string rest = api_base.substr(rest_at);
  if (rest.find_first_of("?#@ \t\r\n") != std::string::npos) {
    return std::nullopt;
  }
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();

  // Host, then ":port" if any.
  size_t port_at;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos || close == 1) return std::nullopt;
    port_at = close + 1;
  } else {
    port_at = authority.find(':');
    if (port_at == std::string::npos) port_at = authority.size();
    if (port_at == 0) return std::nullopt;
  }
  if (port_at < authority.size()) {
    if (authority[port_at] != ':') return std::nullopt;
    const std::string port = authority.substr(port_at + 1);
    // Five digits at most keeps stoi-style parsing in httplib in range.
    if (!AllDigits(port) || port.size() > 5) return std::nullopt;
    const int value = std::stoi(port);
    if (value < 1 || value > 65535) return std::nullopt;
  }
  return ApiBase{scheme + "://" + authority, path};
}

namespace {

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
                                 std::to_string(kMaxReplyBytes) + " bytes"),
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

// The string at `key` if it is a non-empty string.
std::optional<std::string> NonEmptyString(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string() ||
      it->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

class HttpWeChatClient final : public WeChatClient {
 public:
  explicit HttpWeChatClient(const WeChatHttpOptions& options)
      : api_base_text_(options.api_base),
        api_base_(ParseApiBase(options.api_base)),
        timeout_(options.timeout_ms) {}

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
      if (!api_base_) {
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

  // Sends one request and interprets the reply.
  Exchange ExchangeOnce(const Request& request) {
    std::unique_ptr<httplib::Client> client = TakeClient();
    if (!client->is_valid()) {
      // Only an SSL context that OpenSSL refused to create gets here.
      return Failed(
          Status::Fault(ErrorCode::kInternal,
                        "WeChat client could not be set up (TLS context)"),
          false);
    }
    std::string body;
    httplib::Request http_request;
    http_request.method = request.method;
    http_request.path = api_base_->path_prefix + request.path;
    if (!request.body.empty()) {
      http_request.body = request.body;
      http_request.set_header("Content-Type", "application/json");
    }
    http_request.content_receiver = [&body](const char* data, size_t length,
                                            uint64_t /*offset*/,
                                            uint64_t /*total*/) {
      if (body.size() + length > kMaxReplyBytes) return false;
      body.append(data, length);
      return true;
    };
    const httplib::Result reply = client->send(http_request);
    // httplib reconnects by itself when the kept-alive socket has died, so
    // the client is reusable whatever happened.
    ReturnClient(std::move(client));
    if (!reply) return FromTransportError(request.api, reply.error());
    return Interpret(request, reply->status, body);
  }

  std::unique_ptr<httplib::Client> TakeClient() {
    {
      MutexLock lock(pool_mutex_);
      if (!idle_clients_.empty()) {
        std::unique_ptr<httplib::Client> client =
            std::move(idle_clients_.back());
        idle_clients_.pop_back();
        return client;
      }
    }
    // Built outside the lock: creating an SSL context loads the CA store,
    // which other calls should not wait for.
    auto client =
        std::make_unique<httplib::Client>(api_base_->scheme_host_port);
    client->set_keep_alive(true);
    client->set_connection_timeout(timeout_);
    client->set_read_timeout(timeout_);
    client->set_write_timeout(timeout_);
    // The path is already percent-encoded; httplib must not touch it again.
    client->set_url_encode(false);
    // Requests are small and latency-bound; Nagle would only delay them.
    client->set_tcp_nodelay(true);
    return client;
  }

  void ReturnClient(std::unique_ptr<httplib::Client> client) {
    MutexLock lock(pool_mutex_);
    if (idle_clients_.size() < kMaxIdleClients) {
      idle_clients_.push_back(std::move(client));
    }
    // Otherwise `client` is destroyed here, closing its connection.
  }

  const std::string api_base_text_;          // constant after construction
  const std::optional<ApiBase> api_base_;    // constant after construction
  const std::chrono::milliseconds timeout_;  // constant after construction

  Mutex pool_mutex_;
  // Clients not in use, each possibly holding an open connection.
  std::vector<std::unique_ptr<httplib::Client>> idle_clients_
      GUARDED_BY(pool_mutex_);
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
