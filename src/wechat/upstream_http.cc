// The upstream clients' shared pieces: see upstream_http.h.
//
// The pool: one httplib::Client serialises its requests on an internal
// mutex, so a single shared client would turn concurrent logins into a queue
// behind the slowest upstream answer. Each call takes an idle client (or
// makes one) and gives it back afterwards with its keep-alive connection
// still open, so the next call skips the TCP and TLS handshakes.
#include "wechat/upstream_http.h"

#include "wxsession/thread_annotations.h"

namespace wxsession {
namespace {

// Idle clients kept for reuse; each holds one keep-alive connection. Beyond
// this a burst's extra connections are closed, not hoarded.
constexpr size_t kMaxIdleClients = 64;

}  // namespace

std::optional<std::string> NonEmptyString(const nlohmann::json& object,
                                          const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string() ||
      it->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

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

UpstreamHttp::UpstreamHttp(ApiBase base, int64_t timeout_ms)
    : base_(std::move(base)), timeout_(timeout_ms) {}

UpstreamHttp::~UpstreamHttp() = default;

UpstreamReply UpstreamHttp::Send(const std::string& method,
                                 const std::string& path,
                                 const std::string& body,
                                 const std::string& content_type) {
  UpstreamReply reply;
  std::unique_ptr<httplib::Client> client = Take();
  if (!client->is_valid()) {
    reply.error = httplib::Error::SSLConnection;
    reply.setup_failed = true;
    return reply;
  }
  httplib::Request request;
  request.method = method;
  request.path = base_.path_prefix + path;
  if (!content_type.empty()) {
    request.body = body;
    request.set_header("Content-Type", content_type);
  }
  std::string received;
  request.content_receiver =
      [&received, &reply](const char* data, size_t length, uint64_t, uint64_t) {
        if (received.size() + length > kMaxReplyBytes) {
          reply.too_large = true;
          return false;
        }
        received.append(data, length);
        return true;
      };
  const httplib::Result result = client->send(request);
  // httplib reconnects by itself when the kept-alive socket has died, so the
  // client is reusable whatever happened.
  Give(std::move(client));
  if (!result) {
    reply.error = result.error();
    reply.never_sent = reply.error == httplib::Error::Connection ||
                       reply.error == httplib::Error::ConnectionTimeout ||
                       reply.error == httplib::Error::SSLConnection;
    return reply;
  }
  reply.replied = true;
  reply.http_status = result->status;
  reply.body = std::move(received);
  return reply;
}

std::unique_ptr<httplib::Client> UpstreamHttp::Take() {
  {
    MutexLock lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<httplib::Client> client = std::move(idle_.back());
      idle_.pop_back();
      return client;
    }
  }
  // Built outside the lock: creating an SSL context loads the CA store,
  // which other calls should not wait for.
  auto client = std::make_unique<httplib::Client>(base_.scheme_host_port);
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

void UpstreamHttp::Give(std::unique_ptr<httplib::Client> client) {
  MutexLock lock(mutex_);
  if (idle_.size() < kMaxIdleClients) idle_.push_back(std::move(client));
  // Otherwise `client` is destroyed here, closing its connection.
}

}  // namespace wxsession
