#include "wxsession/service.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "wxsession/crypto.h"

namespace wxsession {

// Remembers, for kCodeMemorySeconds, the login each (appid, code) produced,
// and lets concurrent posts of one code share a single upstream exchange.
// Keys are SHA-256(appid '\0' code): the code itself is not kept.
//
// The memory is bounded by count as well as age: a login campaign at 2,000
// logins/s would otherwise keep 600,000 entries (a few hundred MiB) for the
// five minutes. With the cap a retry is still recognised for
// kMaxRememberedCodes / (logins per second) seconds: 50 s at 2,000/s, far
// longer than a client waits before retrying a lost reply.
//
// Every login takes this memory's lock, so it is split into shards by
// the key's first byte (uniform: it is a SHA-256 digest), each with its own
// lock, map and share of the bound; with one lock, a login campaign's
// threads queued on it (futex waits were 6% of a login profile).
struct SessionService::CodeMemory {
  struct Entry {
    std::shared_future<Result<LoginResult>> login;
    int64_t created_at;
  };

  struct Shard {
    size_t max_entries = 1;  // constant after construction
    std::mutex mutex;
    std::unordered_map<std::string, Entry> entries;   // guarded by mutex
    std::deque<std::pair<int64_t, std::string>> age;  // guarded by mutex

    // Drops entries older than the code lifetime, and the oldest ones
    // beyond max_entries. Amortised O(1) per login.
    void ForgetOlderThan(int64_t cutoff) {
      // `>=`: the caller inserts one entry right after.
      while (!age.empty() && (age.front().first < cutoff ||
                              age.size() >= max_entries)) {
        auto found = entries.find(age.front().second);
        // A later entry under the same key (re-inserted after a failure)
        // has its own, younger age record: leave it.
        if (found != entries.end() &&
            found->second.created_at <= age.front().first) {
          entries.erase(found);
        }
        age.pop_front();
      }
    }
  };

  // Shards only when each still remembers many codes; a small bound (tests)
  // keeps one shard, so "the oldest code is forgotten first" holds exactly.
  static constexpr size_t kShards = 16;
  static constexpr size_t kMinPerShard = 1024;

  explicit CodeMemory(size_t max)
      : shards(max >= kShards * kMinPerShard ? kShards : 1) {
    for (Shard& shard : shards) {
      shard.max_entries = std::max<size_t>(1, max / shards.size());
    }
  }

  Shard& For(const std::string& key) {
    const auto first = static_cast<unsigned char>(key.empty() ? 0 : key[0]);
    return shards[first % shards.size()];
  }

  std::vector<Shard> shards;  // fixed size after construction
};

SessionService::SessionService(const Config& config, SessionStore& store,
                               WeChatClient& wechat, const Clock& clock,
                               size_t max_remembered_codes)
    : config_(config),
      store_(store),
      wechat_(wechat),
      clock_(clock),
      codes_(std::make_unique<CodeMemory>(max_remembered_codes)) {}

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

Status InvalidSession() {
  return Status(ErrorCode::kInvalidSession,
                "the session is unknown, expired or revoked; log in again");
}

}  // namespace

Status CheckClientCode(const std::string& code, const char* source) {
  if (code.empty() || code.size() > SessionService::kMaxCodeLength) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("code must be the non-empty string ") + source +
                      " returned (at most 128 characters)");
  }
  if (!std::all_of(code.begin(), code.end(), [](unsigned char c) {
        return c > 0x20 && c < 0x7f;
      })) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("code must be printable ASCII, as ") + source +
                      " returns it");
  }
  return Status::Ok();
}

Result<LoginResult> SessionService::Login(const std::string& appid,
                                          const std::string& code) {
  if (Status valid = CheckClientCode(code, "wx.login"); !valid.ok()) {
    return valid;
  }
  Result<const AppConfig*> found = config_.AppFor(appid);
  if (!found.ok()) return found.status();
  const AppConfig* app = found.value();

  const int64_t now = clock_.Now();
  const std::string key = crypto::Sha256(app->appid + '\0' + code);
  std::promise<Result<LoginResult>> promise;
  std::shared_future<Result<LoginResult>> earlier;
  CodeMemory::Shard& remembered = codes_->For(key);
  {
    std::lock_guard<std::mutex> lock(remembered.mutex);
    remembered.ForgetOlderThan(now - kCodeMemorySeconds);
    auto found = remembered.entries.find(key);
    if (found != remembered.entries.end()) {
      earlier = found->second.login;
    } else {
      remembered.entries.emplace(
          key, CodeMemory::Entry{promise.get_future().share(), now});
      remembered.age.emplace_back(now, key);
    }
  }

  if (earlier.valid()) {
    // The same code again: wait for (or reuse) the first exchange.
    Result<LoginResult> first = earlier.get();
    if (!first.ok()) return first.status();
    Result<LiveSession> live =
        store_.FindLive(crypto::Sha256(first->session_id), clock_.Now());
    if (!live.ok()) {
      if (live.status().code() == ErrorCode::kInvalidSession) {
        return Status(ErrorCode::kInvalidCode,
                      "this code was already used and its session has "
                      "ended; call wx.login for a new code");
      }
      return live.status();
    }
    LoginResult again = first.value();
    again.expires_at = live->expires_at;
    again.expires_in = std::max<int64_t>(0, live->expires_at - clock_.Now());
    return again;
  }

  Result<LoginResult> outcome = [&]() -> Result<LoginResult> {
    Result<WeChatSession> exchanged =
        wechat_.Code2Session(app->appid, app->secret, code);
    if (!exchanged.ok()) return exchanged.status();
    const int64_t created_at = clock_.Now();
    LoginResult result;
    result.session_id = crypto::NewSessionId();
    result.expires_at = EffectiveExpiry(config_, created_at, created_at);
    result.expires_in = result.expires_at - created_at;
    result.openid = exchanged->openid;
    result.unionid = exchanged->unionid;

    NewSession record;
    record.id_hash = crypto::Sha256(result.session_id);
    record.appid = app->appid;
    record.openid = exchanged->openid;
    record.unionid = exchanged->unionid;
    record.session_key = exchanged->session_key;
    record.created_at = created_at;
    record.expires_at = result.expires_at;
    Status saved = store_.CreateSession(record);
    if (!saved.ok()) return saved;
    return result;
  }();

  promise.set_value(outcome);
  if (!outcome.ok()) {
    // Only successes are remembered: after a failure (WeChat busy, store
    // full) a retry with the same code must reach WeChat again.
    std::lock_guard<std::mutex> lock(remembered.mutex);
    remembered.entries.erase(key);
  }
  return outcome;
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

Result<SessionInfo> SessionService::Lookup(const std::string& session_id) {
  Result<LiveSession> live = LookupWithKey(session_id);
  if (!live.ok()) return live.status();
  SessionInfo info;
  info.appid = live->appid;
  info.openid = live->openid;
  info.unionid = live->unionid;
  info.created_at = live->created_at;
  info.last_seen_at = live->last_seen_at;
  info.expires_at = live->expires_at;
  if (const AppConfig* app = config_.FindApp(live->appid)) {
    info.platform = PlatformName(app->platform);
  }
  return info;
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
