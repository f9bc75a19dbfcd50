// MockWeChatServer: a stand-in for WeChat's server API on loopback, so the
// whole login flow can be tried and tested with no internet.
//
// GET /sns/jscode2session answers any appid and secret. The code decides the
// answer (errors come as HTTP 200 with {"errcode", "errmsg"}, as at WeChat):
//   "invalid" -> 40029   "blocked" -> 40226   "busy" -> -1
//   "limit"   -> 45011   a code exchanged before -> 40163
//   "errcode:N" -> errcode N (e.g. errcode:40125, a bad secret)
//   "http:500"  -> HTTP 500 with an HTML body
//   "http:notjson" -> HTTP 200 with an HTML body
//   anything else -> a user. The user is the part of the code before the
//   first '.', so "alice.1" and "alice.2" are two logins of one user; the
//   openid is OpenIdFor(appid, user), and a fresh random session_key (16
//   bytes, standard base64) is issued on every exchange. A user whose name
//   starts with "union" also gets a unionid, "u" + 27 base64url characters
//   of SHA-256("union:" + user). Only successful exchanges spend a code.
// Checked first, in this order: a missing appid -> 41002, secret -> 41004,
// js_code -> 41008, and a grant_type other than authorization_code -> 40002.
//
// Two routes exist for tests only, and answer without delay:
//   GET  /mock/session_key?appid=..&openid=..  -> {"session_key": "..."}, the
//        newest key issued to that user (to encrypt open data with it);
//        404 if none was issued, 400 without both parameters.
//   POST /mock/reset -> {"ok": true}; forgets which codes were used, so
//        codes may be exchanged again (issued keys are kept).
//
// Thread-safety: Bind, Serve and Stop may be called from different threads;
// Stop makes a running Serve return after in-flight requests finish (and
// cuts delay_ms short), and a Serve that starts after Stop returns at once.
// All state is guarded inside.
#ifndef WXSESSION_MOCK_WECHAT_H_
#define WXSESSION_MOCK_WECHAT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "wxsession/status.h"

namespace wxsession {

struct MockWeChatOptions {
  // Milliseconds jscode2session waits before answering, to play a WeChat
  // that is far away. The /mock/ routes do not wait.
  int64_t delay_ms = 0;
};

class MockWeChatServer {
 public:
  explicit MockWeChatServer(MockWeChatOptions options = {});
  ~MockWeChatServer();

  // Binds host:port (port 0 = any free port). Returns the bound port, or
  // kInternal naming the address when it cannot bind.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop(). Returns false if the server could not run.
  bool Serve();
  void Stop();

  // The openid the mock derives for `user` in `appid` (tests predict it).
  static std::string OpenIdFor(const std::string& appid,
                               const std::string& user);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxsession

#endif  // WXSESSION_MOCK_WECHAT_H_
