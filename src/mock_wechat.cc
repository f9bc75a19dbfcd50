// MockWeChatServer on cpp-httplib. See mock_wechat.h for what it answers.

#include "mock_wechat.h"

#include <cstdlib>

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "httplib_server.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

// Worker threads at most. Each delayed request sleeps on one and each
// kept-alive connection holds one, so a fixed pool caps the mock at
// threads / delay: 128 threads at 100 ms would fake a WeChat that serves
// only 1,280 logins/s. Threads are made on demand (GrowingThreadPool).
constexpr size_t kMaxWorkerThreads = 2048;

// Requests served on one connection before the mock closes it. httplib's
// default (5) would force a reconnect every few calls, so benchmarks would
// measure handshakes rather than the client's connection reuse.
constexpr size_t kKeepAliveMaxRequests = 1000;

// Random bytes in a session_key, as WeChat issues them (AES-128 key).
constexpr size_t kSessionKeyBytes = 16;

// base64url characters taken from the digest; with the one-letter prefix
// the ids are 28 characters long, like WeChat's.
constexpr size_t kIdDigestChars = 27;

void ReplyJson(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

// WeChat reports errors with HTTP 200 and an errcode in the body.
void ReplyWeChatError(httplib::Response& res, int errcode,
                      const std::string& errmsg) {
  ReplyJson(res, json{{"errcode", errcode}, {"errmsg", errmsg}});
}

std::string UnionIdFor(const std::string& user) {
  return "u" + crypto::Base64UrlEncode(crypto::Sha256("union:" + user))
                   .substr(0, kIdDigestChars);
}

std::string UserKey(const std::string& appid, const std::string& openid) {
  // '\n' cannot occur in an appid or an openid, so keys cannot collide.
  return appid + '\n' + openid;
}

}  // namespace

struct MockWeChatServer::Impl {
  explicit Impl(MockWeChatOptions options_in) : options(options_in) {}

  // Waits delay_ms, or less if Stop() comes first so shutdown is not held
  // up by sleeping handlers.
  void Delay() {
    if (options.delay_ms <= 0) return;
    std::unique_lock<std::mutex> lock(mutex);
    stop_cv.wait_for(lock, std::chrono::milliseconds(options.delay_ms),
                     [this] { return stopping; });
  }

  void HandleCode2Session(const httplib::Request& req, httplib::Response& res) {
    Delay();
    const auto param = [&req](const char* name) {
      return req.has_param(name) ? req.get_param_value(name) : std::string();
    };
    const std::string appid = param("appid");
    const std::string code = param("js_code");
    if (appid.empty()) return ReplyWeChatError(res, 41002, "appid missing");
    if (param("secret").empty()) {
      return ReplyWeChatError(res, 41004, "appsecret missing");
    }
    if (code.empty()) return ReplyWeChatError(res, 41008, "missing code");
    if (param("grant_type") != "authorization_code") {
      return ReplyWeChatError(res, 40002, "invalid grant_type");
    }
    if (code == "invalid") return ReplyWeChatError(res, 40029, "invalid code");
    if (code == "blocked") {
      return ReplyWeChatError(res, 40226, "high risk user");
    }
    if (code == "busy") return ReplyWeChatError(res, -1, "system error");
    if (code == "limit") {
      return ReplyWeChatError(res, 45011, "api minute-quota reach limit");
    }
    // Codes that make any other reply, to try the client's error mapping.
    constexpr const char kErrcodePrefix[] = "errcode:";
    if (code.rfind(kErrcodePrefix, 0) == 0) {
      const std::string number = code.substr(sizeof(kErrcodePrefix) - 1);
      char* end = nullptr;
      long errcode = std::strtol(number.c_str(), &end, 10);
      if (!number.empty() && *end == '\0') {
        return ReplyWeChatError(res, static_cast<int>(errcode), "mock error");
      }
    }
    if (code == "http:500") {
      res.status = 500;
      return res.set_content("<html>internal error</html>", "text/html");
    }
    if (code == "http:notjson") {
      return res.set_content("<html>not json</html>", "text/html");
    }

    const std::string user = code.substr(0, code.find('.'));
    const std::string openid = OpenIdFor(appid, user);
    const std::string session_key =
        crypto::Base64Encode(crypto::RandomBytes(kSessionKeyBytes));
    {
      std::lock_guard<std::mutex> lock(mutex);
      // Only successful exchanges spend a code, as at WeChat.
      if (!used_codes.insert(code).second) {
        return ReplyWeChatError(res, 40163, "code been used");
      }
      latest_session_keys[UserKey(appid, openid)] = session_key;
    }
    json body{{"openid", openid}, {"session_key", session_key}};
    if (user.rfind("union", 0) == 0) body["unionid"] = UnionIdFor(user);
    ReplyJson(res, body);
  }

  void HandleSessionKey(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("appid") || !req.has_param("openid")) {
      return ReplyJson(res, json{{"error", "appid and openid are required"}},
                       400);
    }
    std::string session_key;
    {
      std::lock_guard<std::mutex> lock(mutex);
      const auto it = latest_session_keys.find(
          UserKey(req.get_param_value("appid"), req.get_param_value("openid")));
      if (it != latest_session_keys.end()) session_key = it->second;
    }
    if (session_key.empty()) {
      return ReplyJson(res, json{{"error", "no session_key issued"}}, 404);
    }
    ReplyJson(res, json{{"session_key", session_key}});
  }

  void HandleReset(httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      used_codes.clear();
    }
    ReplyJson(res, json{{"ok", true}});
  }

  const MockWeChatOptions options;  // constant after construction
  // Deep backlog: a burst of new connections from a filling client pool
  // would otherwise overflow httplib's 5 and stall for 1 s SYN retries.
  DeepBacklogServer server;  // thread-safe as httplib documents

  std::mutex mutex;
  std::condition_variable stop_cv;  // signalled when `stopping` turns true
  bool stopping = false;            // GUARDED_BY(mutex)
  bool serving = false;             // GUARDED_BY(mutex); Serve() is running
  // Codes exchanged successfully, which WeChat answers with 40163 again.
  std::set<std::string> used_codes;  // GUARDED_BY(mutex)
  // UserKey(appid, openid) -> the newest session_key issued.
  std::map<std::string, std::string> latest_session_keys;  // GUARDED_BY(mutex)
};

MockWeChatServer::MockWeChatServer(MockWeChatOptions options)
    : impl_(std::make_unique<Impl>(options)) {
  Impl* impl = impl_.get();
  httplib::Server& server = impl->server;
  // Replies are small and the client keeps connections alive; Nagle plus
  // delayed ACKs would add about 40 ms to each one.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(kKeepAliveMaxRequests);
  server.new_task_queue = [] {
    return new GrowingThreadPool(kMinThreads, kMaxWorkerThreads);
  };
  server.Get("/sns/jscode2session",
             [impl](const httplib::Request& req, httplib::Response& res) {
               impl->HandleCode2Session(req, res);
             });
  server.Get("/mock/session_key",
             [impl](const httplib::Request& req, httplib::Response& res) {
               impl->HandleSessionKey(req, res);
             });
  server.Post("/mock/reset",
              [impl](const httplib::Request&, httplib::Response& res) {
                impl->HandleReset(res);
              });
}

MockWeChatServer::~MockWeChatServer() { Stop(); }

Result<int> MockWeChatServer::Bind(const std::string& host, int port) {
  int bound = -1;
  if (port == 0) {
    bound = impl_->server.bind_to_any_port(host);
  } else if (impl_->server.bind_to_port(host, port)) {
    bound = port;
  }
  if (bound <= 0) {
    return Status(ErrorCode::kInternal, "mock-wechat: cannot bind " + host +
                                            ":" + std::to_string(port));
  }
  impl_->server.DeepenBacklog();
  return bound;
}

bool MockWeChatServer::Serve() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->stopping) return true;  // stopped before it started
    impl_->serving = true;
  }
  const bool ok = impl_->server.listen_after_bind();
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->serving = false;
  return ok;
}

void MockWeChatServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  // httplib's stop() does nothing until listen_after_bind has marked the
  // server running, so a Stop() racing a just-started Serve() would be lost
  // and Serve() would never return. Wait out that short window.
  while (true) {
    {
      std::lock_guard<std::mutex> lock(impl_->mutex);
      if (!impl_->serving) return;
    }
    if (impl_->server.is_running()) {
      impl_->server.stop();
      return;
    }
    std::this_thread::yield();
  }
}

std::string MockWeChatServer::OpenIdFor(const std::string& appid,
                                        const std::string& user) {
  return "o" + crypto::Base64UrlEncode(crypto::Sha256(appid + ":" + user))
                   .substr(0, kIdDigestChars);
}

}  // namespace wxsession
