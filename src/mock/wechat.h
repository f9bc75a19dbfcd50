// MockWeChatServer: a stand-in for WeChat's server API on loopback, so the
// whole API can be tried and tested with no internet.
//
// GET /sns/jscode2session answers any appid and secret. The code decides the
// answer (errors come as HTTP 200 with {"errcode", "errmsg"}, as at WeChat):
//   "invalid" -> 40029   "blocked" -> 40226   "busy" -> -1
//   "limit"   -> 45011   a code exchanged before (by the app) -> 40163
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
// POST /cgi-bin/stable_token {"grant_type", "appid", "secret",
// "force_refresh"?} issues one token per appid (any secret), valid 7200 s.
// Like WeChat, a normal call answers the current token until its last
// 300 s, then a new one (the old one keeps working until it expires);
// force_refresh always makes a new one and kills the old one at once.
// Missing appid -> 41002, secret -> 41004, grant_type other than
// client_credential -> 40002, a body that is not a JSON object or a
// non-boolean force_refresh -> 47001, secret "errcode:N" -> errcode N.
//
// Calls that need a token (below) answer 41001 without access_token, 42001
// for a token that expired, 40001 for one that was replaced or never
// issued. The token decides the app.
//
// POST /wxa/business/getuserphonenumber?access_token=.. {"code", "openid"?}
// answers phone_info with a watermark for the token's app. Codes: "invalid"
// -> 40029, "busy" -> -1, "limit" -> 45011, "errcode:N" -> N, "http:500",
// "http:notjson" as above; a code used before -> 40029; a missing code ->
// 47001. Otherwise the prefix before the first '.' picks the number:
//   "us"       -> +1 2025550123, countryCode "1"
//   "numeric"  -> +86 13800138000 with countryCode as the number 86
//   "otherapp" -> +86 13800138000, watermarked for wxotherapp000000000
//   anything else -> 13800138000, countryCode "86".
//
// GET /wxa/checksession?access_token&openid&signature&sig_method answers
// errcode 0 when signature is hex HMAC-SHA256(key = the newest session_key
// issued to the user, message = ""), 87009 when it is not, 40003 for an
// openid with no key, 40097 for a sig_method other than hmac_sha256.
//
// Routes for tests only, answering without delay:
//   GET  /mock/session_key?appid=..&openid=..  -> {"session_key": "..."}, the
//        newest key issued to that user (to encrypt open data with it);
//        404 if none was issued, 400 without both parameters.
//   POST /mock/reset -> {"ok": true}; forgets which codes (login and phone)
//        were used, so they may be exchanged again (issued keys, tokens and
//        counters are kept).
//   POST /mock/fail_next?api=A&errcode=N[&times=K] -> {"ok": true}; the next
//        K (default 1) calls of API A (jscode2session, stable_token,
//        getuserphonenumber, checksession) answer errcode N before any
//        other check. 400 for an unknown api or a bad number.
//   POST /mock/invalidate_token?appid=.. -> {"ok": true}; replaces the
//        app's token as if someone else had force-refreshed it, so the
//        token callers hold now gets 40001.
//   GET  /mock/stats -> {"jscode2session", "stable_token",
//        "stable_token_forced", "getuserphonenumber", "checksession",
//        "douyin", "kuaishou", "baidu", "alipay"}: calls received per route
//        since the mock started.
//
// The other platforms' logins (Douyin, Kuaishou, Baidu, Alipay; QQ shares
// the jscode2session route) are served too: see
// src/mock/platforms.h. A secret "wrong-secret" answers 40125
// (invalid appsecret) here, as each platform's bad-credential error there.
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
  // Milliseconds every WeChat route waits before answering, to play a
  // WeChat that is far away. The /mock/ routes do not wait.
  int64_t delay_ms = 0;
  // The mock's own Alipay key (PEM or bare base64, private), which signs
  // its Alipay answers; "" = a fresh key pair made at construction.
  std::string alipay_key;
  // The app public key (PEM or bare base64) that Alipay requests must be
  // signed for; "" = every Alipay request is refused.
  std::string alipay_app_public_key;
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

  // The public half of the key the mock signs Alipay answers with (PEM):
  // what an app's alipay_public_key_file must hold to log in against it.
  std::string AlipayPublicKeyPem() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxsession

#endif  // WXSESSION_MOCK_WECHAT_H_
