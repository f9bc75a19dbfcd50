#include "wxsession/service.h"

#include <algorithm>

#include "core/code_memory.h"
#include "wxsession/crypto.h"

namespace wxsession {

SessionService::SessionService(const Config& config, SessionStore& store,
                               WeChatClient& wechat, const Clock& clock,
                               size_t max_remembered_codes)
    : config_(config),
      store_(store),
      wechat_(wechat),
      clock_(clock),
      codes_(std::make_unique<CodeMemory>(max_remembered_codes,
                                          kCodeMemorySeconds)) {}

SessionService::~SessionService() = default;

int64_t SessionService::TouchInterval() const {
  // Writing last_seen_at on every lookup would turn reads into writes; a
  // tenth of the idle window keeps idle expiry within 10% of exact.
  return std::max<int64_t>(1, config_.session_idle_ttl / 10);
}

namespace {

int64_t EffectiveExpiry(const Config& config, int64_t created_at,
                        int64_t last_seen_at) {
  int64_t absolute = created_at + config.session_ttl;
  if (config.session_idle_ttl <= 0) return absolute;
  return std::min(absolute, last_seen_at + config.session_idle_ttl);
}

Status InvalidSession() { return InvalidSessionStatus(); }

}  // namespace

Status CheckClientCode(const std::string& code, const char* source) {
  if (code.empty() || code.size() > SessionService::kMaxCodeLength) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("code must be the non-empty string ") + source +
                      " returned (at most 128 characters)");
  }
  if (!std::all_of(code.begin(), code.end(),
                   [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("code must be printable ASCII, as ") + source +
                      " returns it");
  }
  return Status::Ok();
}

namespace {

// The session an earlier login with the same code made (or is making):
// remembered, or the outcome of the exchange in flight.
Result<std::string> EarlierSessionId(CodeMemory::Claim& claim) {
  if (claim.remembered) return std::move(*claim.remembered);
  const Result<std::string>& first = claim.in_flight.get();
  if (!first.ok()) return first.status();
  return first.value();
}

// The answer to the same code again: the session its first login made,
// while that session lives.
Result<LoginResult> RepeatLogin(SessionStore& store, const Clock& clock,
                                std::string session_id) {
  Result<LiveSession> live =
      store.FindLive(crypto::Sha256(session_id), clock.Now());
  if (!live.ok()) {
    if (live.status().code() == ErrorCode::kInvalidSession) {
      return Status(ErrorCode::kInvalidCode,
                    "this code was already used and its session has "
                    "ended; call wx.login for a new code");
    }
    return live.status();
  }
  LoginResult again;
  again.session_id = std::move(session_id);
  again.expires_at = live->expires_at;
  again.expires_in = std::max<int64_t>(0, live->expires_at - clock.Now());
  again.openid = std::move(live->openid);
  again.unionid = std::move(live->unionid);
  return again;
}

}  // namespace

Result<LoginResult> SessionService::Login(const std::string& appid,
                                          const std::string& code,
                                          const std::string& client) {
  if (Status valid = CheckClientCode(code, "wx.login"); !valid.ok()) {
    return valid;
  }
  Result<const AppConfig*> found = config_.AppFor(appid);
  if (!found.ok()) return found.status();
  const AppConfig* app = found.value();

  const int64_t now = clock_.Now();
  const CodeDigest key = CodeDigest::Of(app->appid, code);
  CodeMemory::Claim claim = codes_->Begin(key, now);
  if (!claim.owner()) {
    // The same code again: reuse (or wait for) the first exchange.
    Result<std::string> session_id = EarlierSessionId(claim);
    if (!session_id.ok()) return session_id.status();
    return RepeatLogin(store_, clock_, std::move(session_id.value()));
  }

  Result<LoginResult> outcome = Exchange(*app, code, client);
  // Only successes are remembered: after a failure (WeChat busy, store
  // full) a retry with the same code must reach WeChat again.
  codes_->Finish(key,
                 outcome.ok() ? Result<std::string>(outcome->session_id)
                              : Result<std::string>(outcome.status()),
                 now);
  return outcome;
}

Result<LoginResult> SessionService::Exchange(const AppConfig& app,
                                             const std::string& code,
                                             const std::string& client) {
  Result<WeChatSession> exchanged =
      wechat_.Code2Session(app.appid, app.secret, code);
  if (!exchanged.ok()) return exchanged.status();
  if (Status admitted = AdmitLogin(app.appid, exchanged.value(), client);
      !admitted.ok()) {
    return admitted;
  }
  const int64_t created_at = clock_.Now();
  LoginResult result;
  result.session_id = crypto::NewSessionId();
  result.expires_at = EffectiveExpiry(config_, created_at, created_at);
  result.expires_in = result.expires_at - created_at;
  result.openid = exchanged->openid;
  result.unionid = exchanged->unionid;

  NewSession record;
  record.id_hash = crypto::Sha256(result.session_id);
  record.appid = app.appid;
  record.openid = exchanged->openid;
  record.unionid = exchanged->unionid;
  record.session_key = exchanged->session_key;
  record.created_at = created_at;
  record.expires_at = result.expires_at;
  record.max_sessions = config_.session_max_per_user;
  Status saved = store_.CreateSession(record);
  if (!saved.ok()) return saved;
  return result;
}

Result<LiveSession> SessionService::LookupWithKey(
    const std::string& session_id) {
  if (!crypto::LooksLikeSessionId(session_id)) return InvalidSession();
  const std::string id_hash = crypto::Sha256(session_id);
  const int64_t now = clock_.Now();
  Result<LiveSession> live = store_.FindLive(id_hash, now);
  if (!live.ok()) return live;
  if (now - live->last_seen_at >= TouchInterval()) {
    int64_t expires_at = EffectiveExpiry(config_, live->created_at, now);
    // A failed touch (disk full, read-only) must not fail the lookup: the
    // session is live, and the next lookup tries again.
    if (store_.Touch(id_hash, now, expires_at).ok()) {
      live->last_seen_at = now;
      live->expires_at = expires_at;
    }
  }
  return live;
}

SessionInfo SessionInfoFrom(const LiveSession& live, const Config& config) {
  SessionInfo info;
  info.appid = live.appid;
  info.openid = live.openid;
  info.unionid = live.unionid;
  info.created_at = live.created_at;
  info.last_seen_at = live.last_seen_at;
  info.expires_at = live.expires_at;
  if (const AppConfig* app = config.FindApp(live.appid)) {
    info.platform = PlatformName(app->platform);
  }
  return info;
}

Result<SessionInfo> SessionService::Lookup(const std::string& session_id) {
  Result<LiveSession> live = LookupWithKey(session_id);
  if (!live.ok()) return live.status();
  return SessionInfoFrom(live.value(), config_);
}

Status SessionService::Logout(const std::string& session_id) {
  if (!crypto::LooksLikeSessionId(session_id)) return InvalidSession();
  const std::string id_hash = crypto::Sha256(session_id);
  Result<LiveSession> live = store_.FindLive(id_hash, clock_.Now());
  if (!live.ok()) return live.status();
  Result<int64_t> revoked = store_.Revoke(id_hash);
  if (!revoked.ok()) return revoked.status();
  return Status::Ok();
}

Status SessionService::Health() { return store_.Ping(); }

}  // namespace wxsession
