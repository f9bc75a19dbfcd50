// What every upstream client shares (the WeChat client, src/wechat/client.cc,
// and the other platforms' clients, src/platforms/): the retry-after and
// quoting limits, the text helpers, reading a reply's fields, and a small
// pool of keep-alive HTTP clients for one host.
//
// Thread-safety: the functions are pure; UpstreamHttp may be used from any
// thread at once.
#ifndef WXSESSION_UPSTREAM_HTTP_H_
#define WXSESSION_UPSTREAM_HTTP_H_

#include <httplib.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wxsession/thread_annotations.h"

namespace wxsession {

// Bytes of an upstream error message (WeChat's errmsg and the like) quoted
// in a message: WeChat's are one short sentence plus a request id, so this
// keeps them whole while bounding what a broken upstream can push into our
// logs and replies.
constexpr size_t kMaxErrmsgBytes = 200;

// Seconds to wait after a quota answer (WeChat 45011, HTTP 429); the quotas
// are per minute ("retry next minute").
constexpr int kRateLimitedRetryAfterSeconds = 60;
// Seconds to wait after a "system busy" answer (WeChat errcode -1, HTTP
// 5xx); the upstream only says "later", and a second spreads a burst
// without making users wait long.
constexpr int kBusyRetryAfterSeconds = 1;
// Seconds to wait when the upstream cannot be reached or did not answer in
// time; longer than the busy case because a network fault rarely clears at
// once.
constexpr int kUnreachableRetryAfterSeconds = 5;

// The string at `key` of a JSON object if it is a non-empty string.
std::optional<std::string> NonEmptyString(const nlohmann::json& object,
                                          const char* key);

// RFC 3986 percent-encoding (every byte but the unreserved ones).
std::string PercentEncode(std::string_view text);
// Upstream text made fit to quote: control characters dropped, ill-formed
// UTF-8 replaced by '?'.
std::string CleanUpstreamText(std::string_view text);
// Well-formed UTF-8 cut to at most `max_bytes` (plus "...").
std::string TruncateUtf8(std::string text, size_t max_bytes);
// Every occurrence of each value replaced by its label (longest first).
std::string Redact(
    const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& redactions);

// An API base split the way httplib wants it: httplib::Client takes
// "scheme://host[:port]" only, so a path prefix is kept apart and put in
// front of every request path.
struct ApiBase {
  std::string scheme_host_port;
  std::string path_prefix;  // "" or "/something", no trailing '/'
};
// nullopt unless http(s)://host[:port][/path] with nothing else.
std::optional<ApiBase> ParseApiBase(const std::string& api_base);

// One request's outcome at the transport level: an HTTP status and body, or
// a transport error (no reply) with whether the request can have left.
struct UpstreamReply {
  bool replied = false;
  int http_status = 0;
  std::string body;
  httplib::Error error = httplib::Error::Success;
  // No reply, and the request cannot have reached the upstream (it never
  // connected): one more try is safe.
  bool never_sent = false;
  // The reply was larger than the limit and was dropped unread.
  bool too_large = false;
  // No HTTP client could be made (OpenSSL refused an SSL context); `error`
  // then reads SSLConnection.
  bool setup_failed = false;
};

// Keep-alive clients for one host, each call taking an idle one.
class UpstreamHttp {
 public:
  // Bytes accepted in a reply body; larger replies are refused unread (a
  // jscode2session answer is well under 1 KiB, so anything this large is
  // not the upstream).
  static constexpr size_t kMaxReplyBytes = 64 * 1024;

  UpstreamHttp(ApiBase base, int64_t timeout_ms);
  ~UpstreamHttp();

  // Sends `method` `path` (already percent-encoded, without the prefix)
  // with `body` of `content_type` ("" for none).
  UpstreamReply Send(const std::string& method, const std::string& path,
                     const std::string& body, const std::string& content_type);

 private:
  std::unique_ptr<httplib::Client> Take();
  void Give(std::unique_ptr<httplib::Client> client);

  const ApiBase base_;                       // constant after construction
  const std::chrono::milliseconds timeout_;  // constant after construction
  Mutex mutex_;
  std::vector<std::unique_ptr<httplib::Client>> idle_ GUARDED_BY(mutex_);
};

}  // namespace wxsession

#endif  // WXSESSION_UPSTREAM_HTTP_H_
