// SessionService: wxsessiond's use cases, free of any HTTP type.
//
// Login exchanges a wx.login code at WeChat, mints a session id, stores the
// session and the user's newest session_key, and answers the id. Lookup,
// Logout and the admin revocations work on ids and openids.
//
// Idempotent login: WeChat codes are single-use, so a client retrying after a
// lost reply would otherwise get invalid_code. The service remembers, in
// memory and for kCodeMemorySeconds, which session each (appid, code) made:
// a 16-byte digest of the pair (the code itself is not kept) and the session
// id, in a table of fixed size (src/core/code_memory.h). The same code again
// returns the same session; concurrent posts of one code share a single
// upstream call. A restart forgets this memory; the worst case is then
// WeChat's own invalid_code.
//
// Thread-safety: every method may be called concurrently.
#ifndef WXSESSION_SERVICE_H_
#define WXSESSION_SERVICE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/login_hook.h"
#include "wxsession/status.h"
#include "wxsession/store.h"
#include "wxsession/wechat.h"

namespace wxsession {

class CodeMemory;

struct LoginResult {
  std::string session_id;
  int64_t expires_at = 0;
  int64_t expires_in = 0;
  std::string openid;
  std::optional<std::string> unionid;
};

struct SessionInfo {
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;
  int64_t created_at = 0;
  int64_t last_seen_at = 0;
  int64_t expires_at = 0;
  // The app's platform, derived from the config by appid (appids are unique
  // across platforms); "wechat" for an app no longer configured.
  std::string platform = "wechat";
};

// The rule every code a client hands us for WeChat obeys (wx.login's code,
// the getPhoneNumber button's code): 1 to 128 printable ASCII characters,
// no space. Anything else (NUL, control characters, UTF-8) is not worth a
// call to WeChat: kInvalidRequest, the message naming `source` (e.g.
// "wx.login").
Status CheckClientCode(const std::string& code, const char* source);

// What a client or a proxy may know of a live session (no key): its user,
// times, and the platform of its app per `config` ("wechat" for an appid no
// longer configured). The one conversion every lookup path uses (session
// ids and JWTs alike).
SessionInfo SessionInfoFrom(const LiveSession& live, const Config& config);

class SessionService {
 public:
  static constexpr int64_t kCodeMemorySeconds = 300;  // a code's lifetime
  // Codes remembered at most: 56 bytes each plus the index, 6.3 MiB at the
  // cap, given back once every code has expired. A campaign at 2,000 logins/s
  // would otherwise keep 600,000 codes for the five minutes; with the cap a
  // retry is still recognised for 50 s at that rate, far longer than a client
  // waits before retrying a lost reply.
  static constexpr size_t kMaxRememberedCodes = 100000;
  static constexpr size_t kMaxCodeLength = 128;

  // `config`, `store`, `wechat` and `clock` must outlive the service.
  // `max_remembered_codes` bounds the idempotent-login memory (tests make
  // it small).
  SessionService(const Config& config, SessionStore& store,
                 WeChatClient& wechat, const Clock& clock,
                 size_t max_remembered_codes = kMaxRememberedCodes);
  ~SessionService();

  // Logs in with a wx.login code. `appid` may be empty when exactly one app
  // is configured; `client` is the client's address, for the login hook.
  // A login past session.max_per_user ends the user's oldest sessions.
  // Errors: kInvalidRequest (empty or overlong code, appid missing among
  // several apps), kUnknownApp, everything WeChatClient::Code2Session can
  // answer, kUserBanned (a ban is in force), kLoginDenied (the login hook
  // said no), kHookUnavailable (the hook failed and hooks.on_failure is
  // "deny"), kStoreUnavailable.
  Result<LoginResult> Login(const std::string& appid, const std::string& code,
                            const std::string& client = "");

  // Asks `hook` (may be null: no hook) before every new session. Call before
  // the first Login; `hook` must outlive the service.
  void SetLoginHook(LoginHook* hook) { login_hook_ = hook; }

  // The live session behind `session_id`, recording its use (at most once per
  // TouchInterval()). Errors: kInvalidSession (malformed, unknown, expired or
  // revoked id), kStoreUnavailable.
  Result<SessionInfo> Lookup(const std::string& session_id);

  // Like Lookup, but also hands out the user's newest session_key, for the
  // open-data routes. Never expose the key to a client.
  Result<LiveSession> LookupWithKey(const std::string& session_id);

  // Ends the session at once. Errors as Lookup.
  Status Logout(const std::string& session_id);

  // How often a session's last_seen_at is written: max(1 s, idle_ttl / 10).
  int64_t TouchInterval() const;

  // OK when the store answers.
  Status Health();

 private:
  // Before a session is minted for a user WeChat named: the ban check (so
  // a banned user's login never reaches the hook) and the login hook.
  // Defined in login_admission.cc.
  Status AdmitLogin(const std::string& appid, const WeChatSession& user,
                    const std::string& client);
  // The first login with a code: exchanges it with WeChat and saves the
  // session it makes.
  Result<LoginResult> Exchange(const AppConfig& app, const std::string& code,
                               const std::string& client);

  const Config& config_;  // constant after construction
  SessionStore& store_;   // thread-safe by contract
  WeChatClient& wechat_;  // thread-safe by contract
  const Clock& clock_;
  std::unique_ptr<CodeMemory> codes_;  // guards itself
  LoginHook* login_hook_ = nullptr;    // constant once serving; may be null
};

}  // namespace wxsession

#endif  // WXSESSION_SERVICE_H_
