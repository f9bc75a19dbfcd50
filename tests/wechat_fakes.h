// Fakes for the tests of the WeChat HTTP client (src/wechat/client.cc), its
// transport (src/wechat/upstream_http.cc) and mock-wechat (src/mock/):
// an in-test HTTP server that plays WeChat's endpoints, a port that refuses
// connections, and a scripted AccessTokenSource.
//
// Not to be confused with ScriptedWeChatClient (test_support.h), which
// stands in for the whole WeChatClient inside the service's tests.
#ifndef WXSESSION_TESTS_WECHAT_FAKES_H_
#define WXSESSION_TESTS_WECHAT_FAKES_H_

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http/httplib_server.h"
#include "wxsession/status.h"
#include "wxsession/wechat.h"

namespace wxsession::testing_support {

// Timeout for calls that should succeed: generous (ms) so a loaded machine
// cannot turn a pass into a failure.
constexpr int64_t kPatientTimeoutMs = 10000;
// Timeout (ms) for the tests that wait for the client to give up.
constexpr int64_t kShortTimeoutMs = 300;

// The app the tests log in to, and its secret.
constexpr char kAppId[] = "wx0123456789abcdef";
constexpr char kSecret[] = "SeCrEt-0123456789abcdef0123456789";

// "code N: operator text", for assertion messages.
std::string Describe(const Status& status);

// The real HTTP WeChatClient, talking to `api_base`.
std::unique_ptr<WeChatClient> HttpClientFor(
    const std::string& api_base, int64_t timeout_ms = kPatientTimeoutMs);

std::string LoopbackBase(int port);

// An HTTP server on 127.0.0.1 that plays WeChat: answers with `handler`
// (GET or POST on `path`) and counts the calls.
// Declare it before any client that talks to it: the client must close its
// kept-alive connection before the server stops, or Stop waits for it.
class FakeWeChatServer {
 public:
  using Handler =
      std::function<void(const httplib::Request&, httplib::Response&)>;

  explicit FakeWeChatServer(Handler handler,
                            const std::string& path = "/sns/jscode2session");
  ~FakeWeChatServer() { Stop(); }
  FakeWeChatServer(const FakeWeChatServer&) = delete;
  FakeWeChatServer& operator=(const FakeWeChatServer&) = delete;

  // Stops and waits for every handler to finish, so calls() is final.
  void Stop();

  int port() const { return port_; }
  std::string base() const { return LoopbackBase(port_); }
  int calls() const { return calls_.load(); }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res);

  const Handler handler_;
  // Deep backlog: the concurrency test opens more connections at once than
  // httplib's default backlog of 5 holds, and a dropped SYN costs 1 s.
  DeepBacklogServer server_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> calls_{0};
};

void ReplyJson(httplib::Response& res, const nlohmann::json& body);
// A handler that answers every call with `body`.
FakeWeChatServer::Handler AlwaysReply(nlohmann::json body);
// A jscode2session success for `openid`.
nlohmann::json SuccessBody(const std::string& openid = "o-fake-openid");
// A handler that answers the first call with errcode -1 (system busy) and
// every later one with `body`.
FakeWeChatServer::Handler BusyOnceThen(nlohmann::json body);

// The calls `fake` served, final: closes `client` first (its kept-alive
// connection would hold Stop up), then stops `fake`, which waits for every
// handler.
int FinalCalls(std::unique_ptr<WeChatClient>& client, FakeWeChatServer& fake);

// A loopback port that refuses connections: bound, so no one else can take
// it while the test runs, but not listening, so the kernel answers RST.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = -1;
};

// An AccessTokenSource that hands out `current` and, when asked to replace
// a rejected token, `replacement`.
class ScriptedTokens : public AccessTokenSource {
 public:
  explicit ScriptedTokens(std::string current, std::string replacement = "")
      : current_(std::move(current)), replacement_(std::move(replacement)) {}

  Result<std::string> AccessTokenFor(const std::string& appid) override;
  Result<std::string> ReplaceRejectedAccessToken(
      const std::string& appid, const std::string& rejected) override;

  void FailWith(Status error);
  int gets() const;
  int replacements() const;
  std::vector<std::string> rejected() const;
  std::vector<std::string> appids() const;

 private:
  mutable std::mutex mutex_;
  std::string current_;  // GUARDED_BY(mutex_)
  const std::string replacement_;
  Status error_;                       // GUARDED_BY(mutex_)
  int gets_ = 0;                       // GUARDED_BY(mutex_)
  int replacements_ = 0;               // GUARDED_BY(mutex_)
  std::vector<std::string> rejected_;  // GUARDED_BY(mutex_)
  std::vector<std::string> appids_;    // GUARDED_BY(mutex_)
};

}  // namespace wxsession::testing_support

#endif  // WXSESSION_TESTS_WECHAT_FAKES_H_
