// SessionService::AdmitLogin: what a login must pass before its session is
// minted, beside WeChat's own check. Kept out of service.cc, whose login
// path and code memory change for other reasons.
#include "wxsession/platform.h"
#include "wxsession/service.h"

namespace wxsession {

Status SessionService::AdmitLogin(const std::string& appid,
                                  const WeChatSession& user,
                                  const std::string& client) {
  // Without a hook the store's own check, in the same transaction as the
  // insert (SessionStore::CreateSession), is the only one needed: no extra
  // read on the login path.
  if (login_hook_ == nullptr) return Status::Ok();
  Result<UserRecord> known = store_.GetUser(appid, user.openid, clock_.Now());
  if (!known.ok() && known.status().code() != ErrorCode::kNotFound) {
    return known.status();
  }
  if (known.ok() && known->ban) {
    return Status(ErrorCode::kUserBanned, "this account is suspended");
  }
  LoginHookEvent event;
  event.appid = appid;
  event.openid = user.openid;
  event.unionid = user.unionid;
  if (const AppConfig* app = config_.FindApp(appid)) {
    event.platform = PlatformName(app->platform);
  }
  event.new_user = !known.ok();
  event.client = client;
  Status verdict = login_hook_->Check(event);
  if (verdict.code() == ErrorCode::kHookUnavailable &&
      !config_.hook_deny_on_failure) {
    return Status::Ok();  // hooks.on_failure = "allow"
  }
  if (verdict.code() == ErrorCode::kHookUnavailable) {
    return Status(ErrorCode::kHookUnavailable,
                  "the login check is unavailable; retry in a moment")
        .set_retry_after(1)
        .set_detail(verdict.operator_text());
  }
  return verdict;
}

}  // namespace wxsession
