// AdminService: what an operator may do to users and sessions (issue 15),
// free of any HTTP type; the admin routes (http_api.cc) and the CLI
// (sessions, ban, unban) both call it.
//
// Every action checks its input first and changes nothing on bad input:
// kUnknownApp for an appid not configured (kInvalidRequest when it is left
// out among several apps), kInvalidRequest for an openid that is not 1-128
// printable ASCII characters without space or '/', or a session handle that
// is not 64 lowercase hex digits (the SHA-256 of the session id, which the
// store keeps instead of the id). Each action writes one "admin_action" log
// line (action, appid, openid or handle, outcome; never a token) and counts
// wxsessiond_admin_actions_total{action}. Store failures pass through
// (kStoreUnavailable).
//
// Thread-safety: every method may be called concurrently.
#ifndef WXSESSION_ADMIN_SERVICE_H_
#define WXSESSION_ADMIN_SERVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/status.h"
#include "wxsession/store.h"

namespace wxsession {

class Logger;   // ops/log.h
class Metrics;  // ops/metrics.h

class AdminService {
 public:
  static constexpr size_t kMaxOpenidChars = 128;
  static constexpr size_t kMaxReasonChars = 500;

  // Everything given must outlive the service; `logger` and `metrics` may
  // be null.
  AdminService(const Config& config, SessionStore& store, const Clock& clock,
               Logger* logger, Metrics* metrics);

  // Errors: kNotFound when the store has no such user.
  Result<UserRecord> GetUser(const std::string& appid,
                             const std::string& openid);
  // Live sessions, newest first.
  Result<std::vector<SessionSummary>> ListSessions(const std::string& appid,
                                                   const std::string& openid);
  // Ends the live session with this handle. Errors: kNotFound when no live
  // session has it.
  Status RevokeSession(const std::string& handle);
  // Ends every session of the user. Returns how many ended.
  Result<int64_t> RevokeUserSessions(const std::string& appid,
                                     const std::string& openid);
  // Bans the user (replacing an earlier ban), ending every session at once;
  // `until` (unix seconds) absent = for ever, already past = lapsed at once.
  // Returns the user afterwards. Errors: kInvalidRequest for an empty or
  // overlong reason, or a negative until.
  Result<UserRecord> BanUser(const std::string& appid,
                             const std::string& openid,
                             const std::string& reason,
                             std::optional<int64_t> until);
  // Errors: kNotFound when no ban is in force.
  Status UnbanUser(const std::string& appid, const std::string& openid);
  // The bans in force in the app, newest first.
  Result<std::vector<Ban>> ListBans(const std::string& appid);

 private:
  // The configured appid `appid` names, or the error.
  Result<std::string> ResolveApp(const std::string& appid) const;
  void Record(const std::string& action, const std::string& appid,
              const char* subject_key, const std::string& subject,
              const Status& outcome);

  const Config& config_;  // constant after construction
  SessionStore& store_;   // thread-safe by contract
  const Clock& clock_;
  Logger* const logger_;    // thread-safe; may be null
  Metrics* const metrics_;  // thread-safe; may be null
};

// Whether `openid` is 1-128 printable ASCII characters without space or '/'.
bool IsValidOpenid(const std::string& openid);
// Whether `handle` is 64 lowercase hex digits.
bool IsValidSessionHandle(const std::string& handle);

// The JSON bodies of the admin answers, shared by HTTP and the CLI's --json.
// `config` names the user's platform (by the appid) in the object.
std::string UserJson(const UserRecord& user, const Config& config);
std::string SessionsJson(const std::vector<SessionSummary>& sessions);
std::string BansJson(const std::vector<Ban>& bans);

}  // namespace wxsession

#endif  // WXSESSION_ADMIN_SERVICE_H_
