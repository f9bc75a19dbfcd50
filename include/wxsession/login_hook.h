// LoginHook: the team's own check, asked before a session is minted.
//
// With hooks.login_url set, every login that exchanged its code at WeChat
// (not an idempotent retry of the same code, which reuses the first answer)
// POSTs {"event":"login","appid","openid","unionid","new_user","client"} to
// the URL, signed with
//   X-WXS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
// under the content of hooks.secret_file (docs/API.md shows how a backend
// verifies it). A 2xx allows the login; a 403 denies it, with the hook's
// {"message"} (cut to 200 characters) as the client's message; anything else
// (timeout, refused, 5xx, any other status) is a failure, which
// SessionService treats as hooks.on_failure says.
//
// Thread-safety: Check may be called concurrently.
#ifndef WXSESSION_LOGIN_HOOK_H_
#define WXSESSION_LOGIN_HOOK_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/status.h"

namespace wxsession {

class Logger;  // ops/log.h

struct LoginHookEvent {
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;
  std::string platform;   // PlatformName of the app's platform
  bool new_user = false;  // no record of this user before this login
  std::string client;     // the client's address, as the access log has it
};

class LoginHook {
 public:
  // Longest client message taken from a denying hook's {"message"}.
  static constexpr size_t kMaxMessageChars = 200;

  virtual ~LoginHook() = default;

  // OK: allowed. kLoginDenied: the hook answered 403 (message: the hook's,
  // or a default). kHookUnavailable: no usable answer (the message says
  // why, for the log; it never holds the secret).
  virtual Status Check(const LoginHookEvent& event) = 0;
};

// The JSON body sent for `event` (exposed for tests).
std::string LoginHookBody(const LoginHookEvent& event);

// The X-WXS-Signature value for `body` sent at unix time `t`.
std::string LoginHookSignature(const std::string& secret, int64_t t,
                               const std::string& body);

// The hook of `config` (hooks.login_url, secret, timeout), over HTTP(S);
// nullptr when no hook is configured. `clock` signs the timestamps; each
// failure and denial is logged to `logger` (may be null). Both must outlive
// the hook.
std::unique_ptr<LoginHook> NewHttpLoginHook(const Config& config,
                                            const Clock& clock, Logger* logger);

}  // namespace wxsession

#endif  // WXSESSION_LOGIN_HOOK_H_
