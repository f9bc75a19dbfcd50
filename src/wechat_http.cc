// WeChatClient over HTTP(S), on cpp-httplib.
//
// One httplib::Client serialises its requests on an internal mutex, so a
// single shared client would turn concurrent logins into a queue behind the
// slowest WeChat answer. Instead this keeps a small pool: each call takes an
// idle client (or makes one), and gives it back afterwards with its
// keep-alive connection still open, so the next call skips the TCP and TLS
// handshakes.
//
// Nothing in this file lets an exception out: httplib and nlohmann::json are
// used in their non-throwing forms, and Code2Session catches the rest.

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wxsession/status.h"
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

// Replaces every occurrence of `needle` in `text`.
void ReplaceAll(std::string& text, const std::string& needle,
                std::string_view replacement) {
  if (needle.empty()) return;
  size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) {
    text.replace(pos, needle.size(), replacement);
    pos += replacement.size();
  }
}

// Where WeChat lives, split the way httplib wants it: httplib::Client takes
// "scheme://host[:port]" only, so a path prefix is kept apart and put in
// front of every request path.
struct ApiBase {
  std::string scheme_host_port;
  std::string path_prefix;  // "" or "/something", no trailing '/'
};

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

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

// One HTTP exchange's outcome, and whether trying again is safe.
struct Attempt {
  Result<WeChatSession> result;
  bool retry_safe = false;
};

Status Unavailable(const std::string& why) {
  return Status(ErrorCode::kUpstreamUnavailable,
                std::string("WeChat ") + kCode2SessionApi + " " + why)
      .set_retry_after(kUnreachableRetryAfterSeconds);
}

Status UpstreamError(const std::string& why) {
  return Status(ErrorCode::kUpstreamError,
                std::string("WeChat ") + kCode2SessionApi + " failed: " + why);
}

// Maps a transport failure (no HTTP reply at all) onto a Status, deciding
// whether the request can have reached WeChat.
Attempt FromTransportError(httplib::Error error) {
  switch (error) {
    // The connection never carried the request: WeChat cannot have seen the
    // code, so one more try is safe.
    case httplib::Error::Connection:
      return {Unavailable("unreachable: could not connect"), true};
    case httplib::Error::ConnectionTimeout:
      return {Unavailable("unreachable: connect timed out"), true};
    case httplib::Error::SSLConnection:
      return {Unavailable("unreachable: TLS handshake failed"), true};
    // Sent, at least in part: WeChat may have exchanged the code already, so
    // a retry could only earn 40163 and hide the real outcome.
    case httplib::Error::Read:
      return {Unavailable("did not answer in time (timeout or reset)"), false};
    case httplib::Error::Write:
      return {Unavailable("request could not be sent in full"), false};
    // Local TLS setup problems: trying again will not help.
    case httplib::Error::SSLServerVerification:
      return {Unavailable("unreachable: TLS certificate not trusted"), false};
    case httplib::Error::SSLLoadingCerts:
      return {Unavailable("unreachable: CA certificates could not be loaded"),
              false};
    // The reply arrived but could not be used.
    case httplib::Error::Canceled:
      return {UpstreamError("reply larger than " +
                            std::to_string(kMaxReplyBytes) + " bytes"),
              false};
    case httplib::Error::Compression:
      return {UpstreamError("reply could not be decompressed"), false};
    case httplib::Error::ExceedRedirectCount:
      return {UpstreamError("too many redirects"), false};
    default:
      // Unknown and anything newer: whether the request left is not known,
      // so no retry.
      return {Unavailable("failed: transport error"), false};
  }
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
    try {
      if (!api_base_) {
        return Status(ErrorCode::kInternal,
                      "WeChat api_base is not an http(s) URL: " +
                          CleanUpstreamText(api_base_text_));
      }
      const std::string path =
          api_base_->path_prefix +
          "/sns/jscode2session?appid=" + PercentEncode(appid) +
          "&secret=" + PercentEncode(secret) +
          "&js_code=" + PercentEncode(code) + "&grant_type=authorization_code";
      // At most two tries, and the second only when the first cannot have
      // spent the code (see FromTransportError and errcode -1).
      Attempt attempt = ExchangeOnce(path, secret, code);
      if (!attempt.result.ok() && attempt.retry_safe) {
        attempt = ExchangeOnce(path, secret, code);
      }
      return std::move(attempt.result);
    } catch (const std::exception&) {
      // Only allocation failures or a library bug can land here; the
      // exception text is not quoted since it could echo the request.
      return Status(ErrorCode::kInternal,
                    "WeChat jscode2session: unexpected internal error");
    } catch (...) {
      return Status(ErrorCode::kInternal,
                    "WeChat jscode2session: unexpected internal error");
    }
  }

 private:
  // Sends one GET and interprets the reply.
  Attempt ExchangeOnce(const std::string& path, const std::string& secret,
                       const std::string& code) {
    std::unique_ptr<httplib::Client> client = TakeClient();
    if (!client->is_valid()) {
      // Only an SSL context that OpenSSL refused to create gets here.
      return {Status(ErrorCode::kInternal,
                     "WeChat client could not be set up (TLS context)"),
              false};
    }
    std::string body;
    const httplib::Result reply = client->Get(
        path, httplib::Headers{}, [&body](const char* data, size_t length) {
          if (body.size() + length > kMaxReplyBytes) return false;
          body.append(data, length);
          return true;
        });
    // httplib reconnects by itself when the kept-alive socket has died, so
    // the client is reusable whatever happened.
    ReturnClient(std::move(client));
    if (!reply) return FromTransportError(reply.error());
    return Interpret(reply->status, body, secret, code);
  }

  static Attempt Interpret(int http_status, const std::string& body,
                           const std::string& secret, const std::string& code) {
    if (http_status != 200) {
      return {UpstreamError("HTTP status " + std::to_string(http_status)),
              false};
    }
    const json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded() || !reply.is_object()) {
      return {UpstreamError("reply is not a JSON object"), false};
    }

    const auto errcode_it = reply.find("errcode");
    if (errcode_it != reply.end()) {
      if (!errcode_it->is_number_integer()) {
        return {UpstreamError("errcode is not an integer"), false};
      }
      const long long errcode = errcode_it->get<long long>();
      if (errcode != 0) {
        std::string errmsg;
        const auto errmsg_it = reply.find("errmsg");
        if (errmsg_it != reply.end() && errmsg_it->is_string()) {
          // Cleaned before redaction, so dropping a control character cannot
          // join the pieces of a secret back together afterwards.
          errmsg = CleanUpstreamText(errmsg_it->get_ref<const std::string&>());
          ReplaceAll(errmsg, secret, "[secret]");
          ReplaceAll(errmsg, code, "[code]");
        }
        // -1 means WeChat did not process the call, so trying again is safe.
        return {StatusFromWeChatError(kCode2SessionApi, errcode, errmsg),
                errcode == -1};
      }
    }

    const auto non_empty_string = [&reply](const char* key) {
      const auto it = reply.find(key);
      return it != reply.end() && it->is_string() &&
             !it->get_ref<const std::string&>().empty();
    };
    if (!non_empty_string("openid") || !non_empty_string("session_key")) {
      return {UpstreamError("reply lacks openid or session_key"), false};
    }
    WeChatSession session;
    session.openid = reply["openid"].get<std::string>();
    session.session_key = reply["session_key"].get<std::string>();
    if (non_empty_string("unionid")) {
      session.unionid = reply["unionid"].get<std::string>();
    }
    return {std::move(session), false};
  }

  std::unique_ptr<httplib::Client> TakeClient() {
    {
      std::lock_guard<std::mutex> lock(pool_mutex_);
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
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (idle_clients_.size() < kMaxIdleClients) {
      idle_clients_.push_back(std::move(client));
    }
    // Otherwise `client` is destroyed here, closing its connection.
  }

  const std::string api_base_text_;          // constant after construction
  const std::optional<ApiBase> api_base_;    // constant after construction
  const std::chrono::milliseconds timeout_;  // constant after construction

  std::mutex pool_mutex_;
  // Clients not in use, each possibly holding an open connection.
  // GUARDED_BY(pool_mutex_)
  std::vector<std::unique_ptr<httplib::Client>> idle_clients_;
};

}  // namespace

std::unique_ptr<WeChatClient> NewHttpWeChatClient(
    const WeChatHttpOptions& options) {
  return std::make_unique<HttpWeChatClient>(options);
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
      return Status(ErrorCode::kUpstreamUnavailable, std::move(message))
          .set_retry_after(kBusyRetryAfterSeconds);
    default:
      return Status(ErrorCode::kUpstreamError, std::move(message));
  }
}

}  // namespace wxsession
