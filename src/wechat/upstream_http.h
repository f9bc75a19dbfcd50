// What every upstream client shares: the text helpers of the WeChat client
// (src/wechat/client.cc) and a small pool of keep-alive HTTP clients for one
// host, used by the other platforms' clients (src/platforms/).
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
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wxsession/thread_annotations.h"

namespace wxsession {

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
};

// Keep-alive clients for one host, each call taking an idle one.
class UpstreamHttp {
 public:
  // Bytes accepted in a reply body; larger replies are refused unread.
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
