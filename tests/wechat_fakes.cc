#include "wechat_fakes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace wxsession::testing_support {

std::string Describe(const Status& status) {
  return "code " + std::to_string(static_cast<int>(status.code())) + ": " +
         status.operator_text();
}

std::unique_ptr<WeChatClient> HttpClientFor(const std::string& api_base,
                                            int64_t timeout_ms) {
  WeChatHttpOptions options;
  options.api_base = api_base;
  options.timeout_ms = timeout_ms;
  return NewHttpWeChatClient(options);
}

std::string LoopbackBase(int port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

FakeWeChatServer::FakeWeChatServer(Handler handler, const std::string& path)
    : handler_(std::move(handler)) {
  // Enough workers (count) for the concurrency test's parked requests.
  server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
  // Without it a reply on a reused connection waits ~40 ms for an ACK.
  server_.set_tcp_nodelay(true);
  server_.Get(path, [this](const httplib::Request& req,
                           httplib::Response& res) { Handle(req, res); });
  server_.Post(path, [this](const httplib::Request& req,
                            httplib::Response& res) { Handle(req, res); });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ > 0) {
    server_.DeepenBacklog();
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
}

void FakeWeChatServer::Handle(const httplib::Request& req,
                              httplib::Response& res) {
  ++calls_;
  handler_(req, res);
}

void FakeWeChatServer::Stop() {
  if (!thread_.joinable()) return;
  // stop() is ignored until listen_after_bind has started running.
  while (!server_.is_running()) std::this_thread::yield();
  server_.stop();
  thread_.join();
}

void ReplyJson(httplib::Response& res, const nlohmann::json& body) {
  res.set_content(body.dump(), "application/json");
}

FakeWeChatServer::Handler AlwaysReply(nlohmann::json body) {
  return [body](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, body);
  };
}

nlohmann::json SuccessBody(const std::string& openid) {
  return nlohmann::json{{"openid", openid},
                        {"session_key", "c2Vzc2lvbmtleTEyMzQ1Ng=="}};
}

FakeWeChatServer::Handler BusyOnceThen(nlohmann::json body) {
  auto seen = std::make_shared<std::atomic<int>>(0);
  return [seen, body](const httplib::Request&, httplib::Response& res) {
    if ((*seen)++ == 0) {
      ReplyJson(res,
                nlohmann::json{{"errcode", -1}, {"errmsg", "system error"}});
    } else {
      ReplyJson(res, body);
    }
  };
}

int FinalCalls(std::unique_ptr<WeChatClient>& client, FakeWeChatServer& fake) {
  client.reset();
  fake.Stop();
  return fake.calls();
}

RefusingPort::RefusingPort() {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd_ >= 0 &&
      bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port_ = ntohs(address.sin_port);
  }
}

RefusingPort::~RefusingPort() {
  if (fd_ >= 0) close(fd_);
}

Result<std::string> ScriptedTokens::AccessTokenFor(const std::string& appid) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++gets_;
  appids_.push_back(appid);
  if (!error_.ok()) return error_;
  return current_;
}

Result<std::string> ScriptedTokens::ReplaceRejectedAccessToken(
    const std::string& appid, const std::string& rejected) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++replacements_;
  appids_.push_back(appid);
  rejected_.push_back(rejected);
  current_ = replacement_;
  return current_;
}

void ScriptedTokens::FailWith(Status error) {
  std::lock_guard<std::mutex> lock(mutex_);
  error_ = std::move(error);
}

int ScriptedTokens::gets() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return gets_;
}

int ScriptedTokens::replacements() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return replacements_;
}

std::vector<std::string> ScriptedTokens::rejected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rejected_;
}

std::vector<std::string> ScriptedTokens::appids() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return appids_;
}

}  // namespace wxsession::testing_support
