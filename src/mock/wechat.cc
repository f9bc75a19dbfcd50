// MockWeChatServer on cpp-httplib. See mock_wechat.h for what it answers.

#include "mock/wechat.h"
#include "wxsession/thread_annotations.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "http/connections.h"
#include "http/httplib_server.h"
#include "mock/platforms.h"
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

// Seconds a mock access_token lives, as WeChat's do.
constexpr int64_t kTokenLifetimeSeconds = 7200;
// Seconds before expiry from which a normal stable_token call rotates the
// token (WeChat: "about 5 minutes").
constexpr int64_t kTokenRotationWindowSeconds = 300;
// Random bytes in a mock access_token.
constexpr size_t kTokenRandomBytes = 32;

// The app a phone code prefixed "otherapp" is watermarked for.
constexpr char kOtherAppId[] = "wxotherapp000000000";

// The APIs /mock/fail_next can script.
constexpr const char* kScriptableApis[] = {
    "jscode2session", "stable_token", "getuserphonenumber", "checksession"};

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

// Parses a whole decimal integer (optionally negative).
std::optional<long> ParseInteger(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return value;
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
  explicit Impl(MockWeChatOptions options_in)
      : options(std::move(options_in)) {}

  // Waits delay_ms, or less if Stop() comes first so shutdown is not held
  // up by sleeping handlers.
  void Delay() {
    if (options.delay_ms <= 0) return;
    MutexLock lock(mutex);
    lock.WaitFor(stop_cv, std::chrono::milliseconds(options.delay_ms),
                 [this]() REQUIRES(mutex) { return stopping; });
  }

  void HandleCode2Session(const httplib::Request& req, httplib::Response& res) {
    Delay();
    if (ScriptedFailure("jscode2session", res)) return;
    const auto param = [&req](const char* name) {
      return req.has_param(name) ? req.get_param_value(name) : std::string();
    };
    const std::string appid = param("appid");
    const std::string code = param("js_code");
    if (appid.empty()) return ReplyWeChatError(res, 41002, "appid missing");
    if (param("secret").empty()) {
      return ReplyWeChatError(res, 41004, "appsecret missing");
    }
    if (param("secret") == "wrong-secret") {
      return ReplyWeChatError(res, 40125, "invalid appsecret");
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
    if (SpecialValueReply(code, res)) return;

    const std::string user = code.substr(0, code.find('.'));
    const std::string openid = OpenIdFor(appid, user);
    const std::string session_key =
        crypto::Base64Encode(crypto::RandomBytes(kSessionKeyBytes));
    {
      MutexLock lock(mutex);
      // Only successful exchanges spend a code, as at WeChat.
      // Per app: QQ apps share this route with WeChat's.
      if (!used_codes.insert(appid + '\n' + code).second) {
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
      MutexLock lock(mutex);
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
      MutexLock lock(mutex);
      used_codes.clear();
      used_phone_codes.clear();
    }
    ReplyJson(res, json{{"ok", true}});
  }

  // Counts the call to `api`, and answers a scripted errcode if one is
  // queued for it. Returns whether it answered.
  bool ScriptedFailure(const std::string& api, httplib::Response& res) {
    int errcode = 0;
    {
      MutexLock lock(mutex);
      ++calls[api];
      std::deque<int>& queue = scripted_failures[api];
      if (queue.empty()) return false;
      errcode = queue.front();
      queue.pop_front();
    }
    ReplyWeChatError(res, errcode, "mock scripted error");
    return true;
  }

  // Answers for the "errcode:N", "http:500" and "http:notjson" values a
  // caller can send in a code or secret. Returns whether it answered.
  static bool SpecialValueReply(const std::string& value,
                                httplib::Response& res) {
    constexpr const char kErrcodePrefix[] = "errcode:";
    if (value.rfind(kErrcodePrefix, 0) == 0) {
      if (std::optional<long> errcode =
              ParseInteger(value.substr(sizeof(kErrcodePrefix) - 1))) {
        ReplyWeChatError(res, static_cast<int>(*errcode), "mock error");
        return true;
      }
    }
    if (value == "http:500") {
      res.status = 500;
      res.set_content("<html>internal error</html>", "text/html");
      return true;
    }
    if (value == "http:notjson") {
      res.set_content("<html>not json</html>", "text/html");
      return true;
    }
    return false;
  }

  std::string NewToken(const std::string& appid) REQUIRES(mutex) {
    std::string token =
        "mock-at-" +
        crypto::Base64UrlEncode(crypto::RandomBytes(kTokenRandomBytes));
    token_apps[token] = appid;
    return token;
  }

  void HandleStableToken(const httplib::Request& req, httplib::Response& res) {
    Delay();
    if (ScriptedFailure("stable_token", res)) return;
    const json body =
        json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) {
      return ReplyWeChatError(res, 47001, "data format error");
    }
    const auto text = [&body](const char* key) {
      const auto it = body.find(key);
      return it != body.end() && it->is_string() ? it->get<std::string>()
                                                 : std::string();
    };
    const std::string appid = text("appid");
    const std::string secret = text("secret");
    if (text("grant_type") != "client_credential") {
      return ReplyWeChatError(res, 40002, "invalid grant_type");
    }
    if (appid.empty()) return ReplyWeChatError(res, 41002, "appid missing");
    if (secret.empty()) {
      return ReplyWeChatError(res, 41004, "appsecret missing");
    }
    bool force = false;
    if (const auto it = body.find("force_refresh"); it != body.end()) {
      if (!it->is_boolean()) {
        return ReplyWeChatError(res, 47001, "data format error");
      }
      force = it->get<bool>();
    }
    if (SpecialValueReply(secret, res)) return;

    const int64_t now = UnixNow();
    MutexLock lock(mutex);
    if (force) ++calls["stable_token_forced"];
    AppToken& app = app_tokens[appid];
    if (force) {
      // Forcing kills the previous token at once.
      app.previous.clear();
      app.current = NewToken(appid);
      app.expires_at = now + kTokenLifetimeSeconds;
    } else if (app.current.empty() ||
               app.expires_at - now <= kTokenRotationWindowSeconds) {
      // Rotation keeps the old token working until its own expiry.
      app.previous = app.current;
      app.previous_expires_at = app.expires_at;
      app.current = NewToken(appid);
      app.expires_at = now + kTokenLifetimeSeconds;
    }
    ReplyJson(res, json{{"access_token", app.current},
                        {"expires_in", app.expires_at - now}});
  }

  // The app `req`'s access_token belongs to, or "" after answering the
  // token's error.
  std::string AppForToken(const httplib::Request& req, httplib::Response& res)
      REQUIRES(mutex) {
    const std::string token = req.has_param("access_token")
                                  ? req.get_param_value("access_token")
                                  : std::string();
    if (token.empty()) {
      ReplyWeChatError(res, 41001, "access_token missing");
      return "";
    }
    const auto owner = token_apps.find(token);
    if (owner == token_apps.end()) {
      ReplyWeChatError(res, 40001,
                       "invalid credential, access_token is "
                       "invalid or not latest");
      return "";
    }
    const AppToken& app = app_tokens[owner->second];
    const int64_t now = UnixNow();
    const bool current = token == app.current;
    const bool previous = !app.previous.empty() && token == app.previous;
    if (!current && !previous) {
      ReplyWeChatError(res, 40001,
                       "invalid credential, access_token is "
                       "invalid or not latest");
      return "";
    }
    if (now >= (current ? app.expires_at : app.previous_expires_at)) {
      ReplyWeChatError(res, 42001, "access_token expired");
      return "";
    }
    return owner->second;
  }

  void HandlePhoneNumber(const httplib::Request& req, httplib::Response& res) {
    Delay();
    if (ScriptedFailure("getuserphonenumber", res)) return;
    std::string appid;
    {
      MutexLock lock(mutex);
      appid = AppForToken(req, res);
    }
    if (appid.empty()) return;
    const json body =
        json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    const auto code_it = body.is_object() ? body.find("code") : body.end();
    if (!body.is_object() || code_it == body.end() || !code_it->is_string() ||
        code_it->get_ref<const std::string&>().empty()) {
      return ReplyWeChatError(res, 47001, "data format error");
    }
    const std::string code = code_it->get<std::string>();
    if (code == "invalid") return ReplyWeChatError(res, 40029, "invalid code");
    if (code == "busy") return ReplyWeChatError(res, -1, "system error");
    if (code == "limit") {
      return ReplyWeChatError(res, 45011, "api minute-quota reach limit");
    }
    if (SpecialValueReply(code, res)) return;
    {
      MutexLock lock(mutex);
      // Button codes are single-use; WeChat answers a second use as invalid.
      if (!used_phone_codes.insert(appid + '\n' + code).second) {
        return ReplyWeChatError(res, 40029, "invalid code");
      }
    }
    const std::string kind = code.substr(0, code.find('.'));
    json info = {{"phoneNumber", "13800138000"},
                 {"purePhoneNumber", "13800138000"},
                 {"countryCode", "86"}};
    std::string watermark_appid = appid;
    if (kind == "us") {
      info = {{"phoneNumber", "+1 2025550123"},
              {"purePhoneNumber", "2025550123"},
              {"countryCode", "1"}};
    } else if (kind == "numeric") {
      info = {{"phoneNumber", "+86 13800138000"},
              {"purePhoneNumber", "13800138000"},
              {"countryCode", 86}};
    } else if (kind == "otherapp") {
      watermark_appid = kOtherAppId;
    }
    info["watermark"] = {{"timestamp", UnixNow()}, {"appid", watermark_appid}};
    ReplyJson(res,
              json{{"errcode", 0}, {"errmsg", "ok"}, {"phone_info", info}});
  }

  void HandleCheckSession(const httplib::Request& req, httplib::Response& res) {
    Delay();
    if (ScriptedFailure("checksession", res)) return;
    const auto param = [&req](const char* name) {
      return req.has_param(name) ? req.get_param_value(name) : std::string();
    };
    std::string session_key;
    {
      MutexLock lock(mutex);
      const std::string appid = AppForToken(req, res);
      if (appid.empty()) return;
      const auto found =
          latest_session_keys.find(UserKey(appid, param("openid")));
      if (found != latest_session_keys.end()) session_key = found->second;
    }
    if (param("sig_method") != "hmac_sha256") {
      return ReplyWeChatError(res, 40097, "invalid args");
    }
    if (session_key.empty()) {
      return ReplyWeChatError(res, 40003, "invalid openid");
    }
    if (param("signature") != crypto::HmacSha256Hex(session_key, "")) {
      return ReplyWeChatError(res, 87009, "invalid signature");
    }
    ReplyJson(res, json{{"errcode", 0}, {"errmsg", "ok"}});
  }

  void HandleFailNext(const httplib::Request& req, httplib::Response& res) {
    const std::string api =
        req.has_param("api") ? req.get_param_value("api") : std::string();
    bool known = false;
    for (const char* name : kScriptableApis) known = known || api == name;
    const std::optional<long> errcode =
        ParseInteger(req.has_param("errcode") ? req.get_param_value("errcode")
                                              : std::string());
    const std::optional<long> times =
        req.has_param("times") ? ParseInteger(req.get_param_value("times"))
                               : std::optional<long>(1);
    // 1000: more scripted failures than any test needs; bounds the queue.
    if (!known || !errcode || *errcode == 0 || !times || *times < 1 ||
        *times > 1000) {
      return ReplyJson(res,
                       json{{"error",
                             "want api=<one of jscode2session, "
                             "stable_token, getuserphonenumber, "
                             "checksession>, errcode=<non-zero>, "
                             "times=<1..1000>"}},
                       400);
    }
    {
      MutexLock lock(mutex);
      for (long i = 0; i < *times; ++i) {
        scripted_failures[api].push_back(static_cast<int>(*errcode));
      }
    }
    ReplyJson(res, json{{"ok", true}});
  }

  void HandleInvalidateToken(const httplib::Request& req,
                             httplib::Response& res) {
    const std::string appid =
        req.has_param("appid") ? req.get_param_value("appid") : std::string();
    if (appid.empty()) {
      return ReplyJson(res, json{{"error", "appid is required"}}, 400);
    }
    {
      MutexLock lock(mutex);
      AppToken& app = app_tokens[appid];
      app.previous.clear();
      app.current = NewToken(appid);
      app.expires_at = UnixNow() + kTokenLifetimeSeconds;
    }
    ReplyJson(res, json{{"ok", true}});
  }

  void HandleStats(httplib::Response& res) {
    json body = json::object();
    MutexLock lock(mutex);
    for (const char* name :
         {"jscode2session", "stable_token", "stable_token_forced",
          "getuserphonenumber", "checksession", "douyin", "kuaishou", "baidu",
          "alipay"}) {
      const auto found = calls.find(name);
      body[name] = found == calls.end() ? 0 : found->second;
    }
    ReplyJson(res, body);
  }

  const MockWeChatOptions options;  // constant after construction
  // wxsessiond's own connection layer (http_connections.h): a deep listen
  // backlog (a burst of new connections from a filling client pool would
  // otherwise overflow httplib's 5 and stall for 1 s SYN retries), and each
  // answer sent whole in one write, as WeChat's front ends do, instead of
  // httplib's headers-then-body pair of segments.
  GuardedServer server;  // thread-safe as httplib documents

  Mutex mutex;
  std::condition_variable stop_cv;  // signalled when `stopping` turns true
  bool stopping GUARDED_BY(mutex) = false;
  bool serving GUARDED_BY(mutex) = false;  // Serve() is running
  // Codes exchanged successfully, which WeChat answers with 40163 again.
  std::set<std::string> used_codes GUARDED_BY(mutex);
  // UserKey(appid, openid) -> the newest session_key issued.
  std::map<std::string, std::string> latest_session_keys GUARDED_BY(mutex);

  // One app's access tokens.
  struct AppToken {
    std::string current;     // "" before the first stable_token call
    int64_t expires_at = 0;  // unix seconds
    std::string previous;    // still valid after a normal rotation
    int64_t previous_expires_at = 0;
  };
  std::map<std::string, AppToken> app_tokens GUARDED_BY(mutex);
  // Every token ever issued -> its appid.
  std::map<std::string, std::string> token_apps GUARDED_BY(mutex);
  // appid '\n' code for phone codes already exchanged.
  std::set<std::string> used_phone_codes GUARDED_BY(mutex);
  // api -> errcodes its next calls answer (/mock/fail_next).
  std::map<std::string, std::deque<int>> scripted_failures GUARDED_BY(mutex);
  // Route name -> calls received (/mock/stats).
  std::map<std::string, int64_t> calls GUARDED_BY(mutex);
  // The Alipay keys; constant after construction.
  std::shared_ptr<MockAlipayKeys> alipay_keys;
};

MockWeChatServer::MockWeChatServer(MockWeChatOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
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
  server.Post("/cgi-bin/stable_token",
              [impl](const httplib::Request& req, httplib::Response& res) {
                impl->HandleStableToken(req, res);
              });
  server.Post("/wxa/business/getuserphonenumber",
              [impl](const httplib::Request& req, httplib::Response& res) {
                impl->HandlePhoneNumber(req, res);
              });
  server.Get("/wxa/checksession",
             [impl](const httplib::Request& req, httplib::Response& res) {
               impl->HandleCheckSession(req, res);
             });
  server.Post("/mock/fail_next",
              [impl](const httplib::Request& req, httplib::Response& res) {
                impl->HandleFailNext(req, res);
              });
  server.Post("/mock/invalidate_token",
              [impl](const httplib::Request& req, httplib::Response& res) {
                impl->HandleInvalidateToken(req, res);
              });
  server.Get("/mock/stats",
             [impl](const httplib::Request&, httplib::Response& res) {
               impl->HandleStats(res);
             });

  // The other platforms (issue 17).
  impl->alipay_keys = std::make_shared<MockAlipayKeys>();
  Result<alipay::RsaKey> own =
      alipay::RsaKey::PrivateFromText(impl->options.alipay_key);
  if (!own.ok()) own = alipay::GenerateRsaKey();
  if (own.ok()) impl->alipay_keys->mock_key = own.value();
  Result<alipay::RsaKey> app =
      alipay::RsaKey::PublicFromText(impl->options.alipay_app_public_key);
  if (app.ok()) impl->alipay_keys->app_public_key = app.value();
  MockPlatformHooks hooks;
  hooks.delay = [impl] { impl->Delay(); };
  hooks.spend_code = [impl](const std::string& key) {
    MutexLock lock(impl->mutex);
    return impl->used_codes.insert(key).second;
  };
  hooks.record_key = [impl](const std::string& appid, const std::string& openid,
                            const std::string& session_key) {
    MutexLock lock(impl->mutex);
    impl->latest_session_keys[UserKey(appid, openid)] = session_key;
  };
  hooks.count = [impl](const std::string& api) {
    MutexLock lock(impl->mutex);
    ++impl->calls[api];
  };
  RegisterMockPlatformRoutes(server, std::move(hooks), impl->alipay_keys);
}

std::string MockWeChatServer::AlipayPublicKeyPem() const {
  return impl_->alipay_keys->mock_key.PublicPem();
}

MockWeChatServer::~MockWeChatServer() { Stop(); }

Result<int> MockWeChatServer::Bind(const std::string& host, int port) {
  Result<int> bound = impl_->server.BindListener(host, port);
  if (!bound.ok()) {
    return Status::Fault(ErrorCode::kInternal,
                         "mock-wechat: " + bound.status().operator_text());
  }
  return bound;
}

bool MockWeChatServer::Serve() {
  {
    MutexLock lock(impl_->mutex);
    if (impl_->stopping) return true;  // stopped before it started
    impl_->serving = true;
  }
  const bool ok = impl_->server.listen_after_bind();
  MutexLock lock(impl_->mutex);
  impl_->serving = false;
  return ok;
}

void MockWeChatServer::Stop() {
  {
    MutexLock lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  // httplib's stop() does nothing until listen_after_bind has marked the
  // server running, so a Stop() racing a just-started Serve() would be lost
  // and Serve() would never return. Wait out that short window.
  while (true) {
    {
      MutexLock lock(impl_->mutex);
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
