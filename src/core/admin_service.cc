#include "wxsession/admin_service.h"

#include "ops/log.h"
#include "ops/metrics.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "wxsession/crypto.h"
#include "wxsession/platform.h"

namespace wxsession {

using json = nlohmann::json;

namespace {

constexpr size_t kHandleChars = 64;  // hex digits of a SHA-256

Status BadOpenid() {
  return Status(ErrorCode::kInvalidRequest,
                "openid must be 1 to 128 printable ASCII characters without "
                "space or '/'");
}

json BanObject(const Ban& ban, bool with_user) {
  json out = json::object();
  if (with_user) {
    out["appid"] = ban.appid;
    out["openid"] = ban.openid;
  }
  out["reason"] = ban.reason;
  out["since"] = ban.since;
  out["until"] = ban.until ? json(*ban.until) : json(nullptr);
  return out;
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

bool IsValidOpenid(const std::string& openid) {
  if (openid.empty() || openid.size() > AdminService::kMaxOpenidChars) {
    return false;
  }
  return std::all_of(openid.begin(), openid.end(), [](unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '/';
  });
}

bool IsValidSessionHandle(const std::string& handle) {
  return handle.size() == kHandleChars &&
         std::all_of(handle.begin(), handle.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string UserJson(const UserRecord& user, const Config& config) {
  const AppConfig* app = config.FindApp(user.appid);
  json out = {
      {"appid", user.appid},
      {"platform", app ? json(PlatformName(app->platform)) : json(nullptr)},
      {"openid", user.openid},
      {"unionid", user.unionid ? json(*user.unionid) : json(nullptr)},
      {"created_at", user.created_at},
      {"last_login_at",
       user.last_login_at ? json(*user.last_login_at) : json(nullptr)},
      {"sessions", user.live_sessions},
      {"ban", user.ban ? BanObject(*user.ban, false) : json(nullptr)}};
  return Dump(out);
}

std::string SessionsJson(const std::vector<SessionSummary>& sessions) {
  json list = json::array();
  for (const SessionSummary& s : sessions) {
    list.push_back({{"handle", crypto::HexEncode(s.id_hash)},
                    {"created_at", s.created_at},
                    {"last_seen_at", s.last_seen_at},
                    {"expires_at", s.expires_at}});
  }
  return Dump(json{{"sessions", list}});
}

std::string BansJson(const std::vector<Ban>& bans) {
  json list = json::array();
  for (const Ban& ban : bans) list.push_back(BanObject(ban, true));
  return Dump(json{{"bans", list}});
}

AdminService::AdminService(const Config& config, SessionStore& store,
                           const Clock& clock, Logger* logger, Metrics* metrics)
    : config_(config),
      store_(store),
      clock_(clock),
      logger_(logger),
      metrics_(metrics) {}

Result<std::string> AdminService::ResolveApp(const std::string& appid) const {
  Result<const AppConfig*> app = config_.AppFor(appid);
  if (!app.ok()) return app.status();
  return app.value()->appid;
}

void AdminService::Record(const std::string& action, const std::string& appid,
                          const char* subject_key, const std::string& subject,
                          const Status& outcome) {
  if (metrics_) metrics_->CountAdminAction(action);
  if (!logger_) return;
  std::vector<LogField> fields = {{"action", action}};
  if (!appid.empty()) fields.emplace_back("appid", appid);
  if (subject_key != nullptr) fields.emplace_back(subject_key, subject);
  fields.emplace_back("outcome", outcome.ok() ? std::string("ok")
                                              : ErrorCodeName(outcome.code()));
  logger_->Info("admin_action", fields);
}

Result<UserRecord> AdminService::GetUser(const std::string& appid,
                                         const std::string& openid) {
  Result<UserRecord> user = [&]() -> Result<UserRecord> {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    if (!IsValidOpenid(openid)) return BadOpenid();
    Result<UserRecord> found =
        store_.GetUser(app.value(), openid, clock_.Now());
    if (!found.ok() && found.status().code() == ErrorCode::kNotFound) {
      return Status(ErrorCode::kNotFound, "no such user");
    }
    return found;
  }();
  Record("get_user", appid, "openid", openid,
         user.ok() ? Status::Ok() : user.status());
  return user;
}

Result<std::vector<SessionSummary>> AdminService::ListSessions(
    const std::string& appid, const std::string& openid) {
  Result<std::vector<SessionSummary>> list =
      [&]() -> Result<std::vector<SessionSummary>> {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    if (!IsValidOpenid(openid)) return BadOpenid();
    return store_.ListSessions(app.value(), openid, clock_.Now());
  }();
  Record("list_sessions", appid, "openid", openid,
         list.ok() ? Status::Ok() : list.status());
  return list;
}

Status AdminService::RevokeSession(const std::string& handle) {
  Status outcome = [&]() -> Status {
    if (!IsValidSessionHandle(handle)) {
      return Status(ErrorCode::kInvalidRequest,
                    "a session handle is 64 lowercase hex digits (from "
                    "GET /v1/admin/users/{appid}/{openid}/sessions)");
    }
    const std::string id_hash = *crypto::LowerHexDecode(handle);
    Result<LiveSession> live = store_.FindLive(id_hash, clock_.Now());
    if (!live.ok()) {
      if (live.status().code() == ErrorCode::kInvalidSession) {
        return Status(ErrorCode::kNotFound, "no live session has this handle");
      }
      return live.status();
    }
    Result<int64_t> ended = store_.Revoke(id_hash);
    if (!ended.ok()) return ended.status();
    if (ended.value() == 0) {
      return Status(ErrorCode::kNotFound, "no live session has this handle");
    }
    return Status::Ok();
  }();
  Record("revoke_session", "", "handle", handle, outcome);
  return outcome;
}

Result<int64_t> AdminService::RevokeUserSessions(const std::string& appid,
                                                 const std::string& openid) {
  Result<int64_t> ended = [&]() -> Result<int64_t> {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    if (!IsValidOpenid(openid)) return BadOpenid();
    return store_.RevokeUser(app.value(), openid);
  }();
  Record("revoke_user_sessions", appid, "openid", openid,
         ended.ok() ? Status::Ok() : ended.status());
  return ended;
}

Result<UserRecord> AdminService::BanUser(const std::string& appid,
                                         const std::string& openid,
                                         const std::string& reason,
                                         std::optional<int64_t> until) {
  Result<UserRecord> user = [&]() -> Result<UserRecord> {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    if (!IsValidOpenid(openid)) return BadOpenid();
    if (reason.empty() || reason.size() > kMaxReasonChars) {
      return Status(ErrorCode::kInvalidRequest,
                    "reason must be a non-empty string of at most 500 bytes");
    }
    if (until && *until < 0) {
      return Status(ErrorCode::kInvalidRequest,
                    "until must be a unix time in seconds, or absent (for "
                    "ever)");
    }
    const int64_t now = clock_.Now();
    Ban ban{app.value(), openid, reason, now, until};
    Result<int64_t> ended = store_.PutBan(ban);
    if (!ended.ok()) return ended.status();
    return store_.GetUser(app.value(), openid, now);
  }();
  Record("ban", appid, "openid", openid,
         user.ok() ? Status::Ok() : user.status());
  return user;
}

Status AdminService::UnbanUser(const std::string& appid,
                               const std::string& openid) {
  Status outcome = [&]() -> Status {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    if (!IsValidOpenid(openid)) return BadOpenid();
    Status removed = store_.RemoveBan(app.value(), openid, clock_.Now());
    if (removed.code() == ErrorCode::kNotFound) {
      return Status(ErrorCode::kNotFound, "this user is not banned");
    }
    return removed;
  }();
  Record("unban", appid, "openid", openid, outcome);
  return outcome;
}

Result<std::vector<Ban>> AdminService::ListBans(const std::string& appid) {
  Result<std::vector<Ban>> bans = [&]() -> Result<std::vector<Ban>> {
    Result<std::string> app = ResolveApp(appid);
    if (!app.ok()) return app.status();
    return store_.ListBans(app.value(), clock_.Now());
  }();
  Record("list_bans", appid, nullptr, "",
         bans.ok() ? Status::Ok() : bans.status());
  return bans;
}

}  // namespace wxsession
