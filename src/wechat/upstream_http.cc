// UpstreamHttp: see upstream_http.h. The pool follows the WeChat client's
// (src/wechat/client.cc): one httplib::Client serialises its requests, so each
// call takes an idle client and gives it back with its connection open.
#include "wechat/upstream_http.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {
namespace {

// Idle clients kept for reuse, as the WeChat client keeps.
constexpr size_t kMaxIdleClients = 64;

}  // namespace

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
  auto client = std::make_unique<httplib::Client>(base_.scheme_host_port);
  client->set_keep_alive(true);
  client->set_connection_timeout(timeout_);
  client->set_read_timeout(timeout_);
  client->set_write_timeout(timeout_);
  client->set_url_encode(false);
  client->set_tcp_nodelay(true);
  return client;
}

void UpstreamHttp::Give(std::unique_ptr<httplib::Client> client) {
  MutexLock lock(mutex_);
  if (idle_.size() < kMaxIdleClients) idle_.push_back(std::move(client));
}

}  // namespace wxsession
