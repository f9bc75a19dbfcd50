// RedisStore: see redis_store.h for the key layout and expiry rules.
//
// Every operation that touches more than one key is a Lua script, run with
// EVALSHA (the script text travels only when Redis answers NOSCRIPT, e.g.
// right after a restart or a failover). Scripts make each operation atomic
// and one round trip. They build some key names from stored values (the
// user of a session, the sessions of a user): fine on a single Redis or a
// Sentinel-managed one, not on Redis Cluster, which wxsessiond does not use.
//
// Every script is idempotent, because the pool may send a pipeline twice
// (see RedisConnectionPool::Pipeline).
#include "store/redis/redis_store.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/redis/redis_connection.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

// Shared by the scripts below; prepended to each.
constexpr const char* kLuaHelpers = R"lua(
-- Makes `key` live at least `ttl` ms more (never shortens it).
local function extend(key, ttl)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', key, ttl)
  end
end
-- Raises `member`'s score in zset `key` to `score` (never lowers it).
local function raise(key, score, member)
  local old = redis.call('ZSCORE', key, member)
  if (not old) or tonumber(old) < tonumber(score) then
    redis.call('ZADD', key, score, member)
  end
end
)lua";

// KEYS: session, user, openid set, sessions zset, users zset, ban.
// ARGV: 1 hex, 2 appid, 3 openid, 4 has unionid ('1'/'0'), 5 unionid,
//       6 session_key, 7 key_updated_at, 8 created_at, 9 last_seen_at,
//       10 expires_at, 11 ttl ms, 12 import ('1': keep a newer key),
//       13 index cutoff (entries below are dropped), 14 prefix,
//       15 users zset member, 16 most live sessions (0: no cap),
//       17 user retention ms.
// Returns 1 when the session was stored, 0 when it had already expired,
// -1 when a ban on the user is in force (nothing written).
constexpr const char* kCreateScript = R"lua(
if ARGV[12] ~= '1' then
  local ban = redis.call('HMGET', KEYS[6], 's', 'u')
  if ban[1] and (ban[2] == '' or tonumber(ban[2]) > tonumber(ARGV[8])) then
    return -1
  end
end
local ttl = tonumber(ARGV[11])
local user_exists = redis.call('EXISTS', KEYS[2]) == 1
if ttl <= 0 and not user_exists then return 0 end
local newest = true
if ARGV[12] == '1' and user_exists then
  newest = tonumber(redis.call('HGET', KEYS[2], 't') or '0') <= tonumber(ARGV[7])
end
if newest then
  redis.call('HSET', KEYS[2], 'k', ARGV[6], 't', ARGV[7])
  if ARGV[4] == '1' then redis.call('HSET', KEYS[2], 'u', ARGV[5]) end
elseif ARGV[4] == '1' then
  redis.call('HSETNX', KEYS[2], 'u', ARGV[5])
end
if ttl <= 0 then return 0 end
-- The user record: created (c), last login (ll), logins so far (q), which
-- also orders the user's sessions made in one second.
redis.call('HSETNX', KEYS[2], 'c', ARGV[8])
local last = redis.call('HGET', KEYS[2], 'll')
if (not last) or tonumber(last) < tonumber(ARGV[8]) then
  redis.call('HSET', KEYS[2], 'll', ARGV[8])
end
local seq = redis.call('HINCRBY', KEYS[2], 'q', 1)
redis.call('HSET', KEYS[1], 'a', ARGV[2], 'o', ARGV[3], 'c', ARGV[8],
           'l', ARGV[9], 'e', ARGV[10], 'q', seq)
redis.call('PEXPIRE', KEYS[1], ttl)
extend(KEYS[2], ttl)
extend(KEYS[2], tonumber(ARGV[17]))
redis.call('SADD', KEYS[3], ARGV[1])
extend(KEYS[3], ttl)
-- Forget ended sessions of this openid lazily: each login checks a slice
-- of about 8 members, resuming where the last login stopped.
local scan = redis.call('SSCAN', KEYS[3], redis.call('HGET', KEYS[2], 'sc') or '0',
                        'COUNT', 8)
for _, hex in ipairs(scan[2]) do
  if redis.call('EXISTS', ARGV[14] .. 's:' .. hex) == 0 then
    redis.call('SREM', KEYS[3], hex)
  end
end
redis.call('HSET', KEYS[2], 'sc', scan[1])
redis.call('ZADD', KEYS[4], ARGV[10], ARGV[1])
raise(KEYS[5], ARGV[10], ARGV[15])
-- The per-user cap: keep the newest ARGV[16] live sessions in this app.
local most = tonumber(ARGV[16])
if most > 0 then
  local live = {}
  for _, hex in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local f = redis.call('HMGET', ARGV[14] .. 's:' .. hex, 'a', 'c', 'q', 'e')
    if f[1] == ARGV[2] and tonumber(f[4]) > tonumber(ARGV[8]) then
      live[#live + 1] = {hex, tonumber(f[2]), tonumber(f[3] or '0')}
    end
  end
  if #live > most then
    table.sort(live, function(x, y)
      if x[2] ~= y[2] then return x[2] > y[2] end
      return x[3] > y[3]
    end)
    for i = most + 1, #live do
      redis.call('DEL', ARGV[14] .. 's:' .. live[i][1])
      redis.call('SREM', KEYS[3], live[i][1])
      redis.call('ZREM', KEYS[4], live[i][1])
    end
  end
end
-- Drop index entries of long-ended sessions, at most 100 per login.
for _, index in ipairs({KEYS[4], KEYS[5]}) do
  local old = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[13],
                         'LIMIT', 0, 100)
  if #old > 0 then redis.call('ZREM', index, unpack(old)) end
end
return 1
)lua";

// KEYS: session. ARGV: 1 prefix.
// Returns nil, or {appid, openid, created, last_seen, expires, key, unionid}.
constexpr const char* kFindScript = R"lua(
local s = redis.call('HMGET', KEYS[1], 'a', 'o', 'c', 'l', 'e')
if not s[1] then return false end
local u = redis.call('HMGET', ARGV[1] .. 'u:' .. s[1] .. ':' .. s[2], 'k', 'u')
return {s[1], s[2], s[3], s[4], s[5], u[1], u[2]}
)lua";

// KEYS: session, sessions zset, users zset.
// ARGV: 1 last_seen_at, 2 expires_at, 3 ttl ms, 4 prefix, 5 hex.
constexpr const char* kTouchScript = R"lua(
local s = redis.call('HMGET', KEYS[1], 'a', 'o')
if not s[1] then return 0 end
local ttl = tonumber(ARGV[3])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('SREM', ARGV[4] .. 'o:' .. s[2], ARGV[5])
  return 1
end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
extend(ARGV[4] .. 'u:' .. s[1] .. ':' .. s[2], ttl)
extend(ARGV[4] .. 'o:' .. s[2], ttl)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
raise(KEYS[3], ARGV[2], s[1] .. ':' .. s[2])
return 1
)lua";

// KEYS: session, sessions zset. ARGV: 1 hex, 2 prefix. Returns 0 or 1.
constexpr const char* kRevokeScript = R"lua(
local o = redis.call('HGET', KEYS[1], 'o')
redis.call('ZREM', KEYS[2], ARGV[1])
if not o then return 0 end
redis.call('SREM', ARGV[2] .. 'o:' .. o, ARGV[1])
return redis.call('DEL', KEYS[1])
)lua";

// KEYS: openid set, sessions zset. ARGV: 1 appid ('' = every app), 2 prefix.
// Returns how many sessions ended; forgets members whose session is gone.
constexpr const char* kRevokeUserScript = R"lua(
local ended = 0
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. 's:' .. hex
  local app = redis.call('HGET', key, 'a')
  if (not app) or ARGV[1] == '' or app == ARGV[1] then
    if app then ended = ended + redis.call('DEL', key) end
    redis.call('SREM', KEYS[1], hex)
    redis.call('ZREM', KEYS[2], hex)
  end
end
return ended
)lua";

// KEYS: sessions zset. ARGV: 1 prefix, 2 batch size.
// Returns {sessions ended, index entries visited}.
constexpr const char* kRevokeAllScript = R"lua(
local batch = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local ended = 0
for _, hex in ipairs(batch) do
  local key = ARGV[1] .. 's:' .. hex
  local o = redis.call('HGET', key, 'o')
  if o then
    redis.call('SREM', ARGV[1] .. 'o:' .. o, hex)
    ended = ended + redis.call('DEL', key)
  end
end
if #batch > 0 then redis.call('ZREM', KEYS[1], unpack(batch)) end
return {ended, #batch}
)lua";

// KEYS: user, openid set, ban. ARGV: 1 appid, 2 now, 3 prefix.
// Returns nil, or {created, last login or '', unionid or '', has unionid,
// live sessions, has ban, reason, since, until or ''}.
constexpr const char* kGetUserScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local u = redis.call('HMGET', KEYS[1], 'c', 't', 'll', 'u')
local live = 0
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local f = redis.call('HMGET', ARGV[3] .. 's:' .. hex, 'a', 'e')
  if f[1] == ARGV[1] and tonumber(f[2]) > tonumber(ARGV[2]) then
    live = live + 1
  end
end
local b = redis.call('HMGET', KEYS[3], 'r', 's', 'u')
local banned = b[2] and (b[3] == '' or tonumber(b[3]) > tonumber(ARGV[2]))
return {u[1] or u[2] or '0', u[3] or '', u[4] or '', u[4] and 1 or 0, live,
        banned and 1 or 0, banned and b[1] or '', banned and b[2] or '0',
        banned and b[3] or ''}
)lua";

// KEYS: openid set. ARGV: 1 appid, 2 now, 3 prefix.
// Returns {hex, created, last seen, expires, login seq, ...} of live ones.
constexpr const char* kListSessionsScript = R"lua(
local out = {}
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[3] .. 's:' .. hex, 'a', 'c', 'l', 'e', 'q')
  if f[1] == ARGV[1] and tonumber(f[4]) > tonumber(ARGV[2]) then
    for _, v in ipairs({hex, f[2], f[3], f[4], f[5] or '0'}) do
      out[#out + 1] = v
    end
  end
end
return out
)lua";

// KEYS: ban, user, openid set, sessions zset, bans set of the app.
// ARGV: 1 reason, 2 since, 3 until ('' = for ever), 4 ban ttl ms ('' = none),
//       5 appid, 6 openid, 7 prefix.
// Returns how many sessions ended.
constexpr const char* kPutBanScript = R"lua(
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 's', ARGV[2], 'u', ARGV[3])
redis.call('SADD', KEYS[5], ARGV[6])
redis.call('HSETNX', KEYS[2], 'c', ARGV[2])
if ARGV[4] == '' then
  -- A ban for ever keeps its user for ever.
  redis.call('PERSIST', KEYS[2])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  extend(KEYS[2], tonumber(ARGV[4]))
end
local ended = 0
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local key = ARGV[7] .. 's:' .. hex
  local app = redis.call('HGET', key, 'a')
  if (not app) or app == ARGV[5] then
    if app then ended = ended + redis.call('DEL', key) end
    redis.call('SREM', KEYS[3], hex)
    redis.call('ZREM', KEYS[4], hex)
  end
end
return ended
)lua";

// KEYS: ban, user, bans set of the app. ARGV: 1 openid, 2 now,
// 3 user retention ms. Returns 1 when a ban in force was lifted, else 0.
constexpr const char* kRemoveBanScript = R"lua(
local b = redis.call('HMGET', KEYS[1], 's', 'u')
local in_force = b[1] and (b[2] == '' or tonumber(b[2]) > tonumber(ARGV[2]))
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
if not in_force then return 0 end
-- A user kept for ever by the ban is kept for the retention period from
-- its last login again (a minute at least).
if redis.call('PTTL', KEYS[2]) == -1 then
  local u = redis.call('HMGET', KEYS[2], 'll', 'c')
  local last = tonumber(u[1] or u[2] or ARGV[2])
  local left = (last - tonumber(ARGV[2])) * 1000 + tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.max(left, 60000))
end
return 1
)lua";

// KEYS: bans set of the app. ARGV: 1 appid, 2 now, 3 prefix.
// Returns {openid, reason, since, until or '', ...} of bans in force;
// forgets openids whose ban is gone.
constexpr const char* kListBansScript = R"lua(
local out = {}
for _, openid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local b = redis.call('HMGET', ARGV[3] .. 'ban:' .. ARGV[1] .. ':' .. openid,
                       'r', 's', 'u')
  if not b[2] then
    redis.call('SREM', KEYS[1], openid)
  elseif b[3] == '' or tonumber(b[3]) > tonumber(ARGV[2]) then
    for _, v in ipairs({openid, b[1], b[2], b[3]}) do out[#out + 1] = v end
  end
end
return out
)lua";

// KEYS: lease. ARGV: 1 owner, 2 now ms, 3 lease ms, 4 until ms.
// The value records the logical end of the lease, so the contract's now_ms
// decides (as with SQLite); PX makes Redis drop an abandoned lease by itself.
constexpr const char* kLockScript = R"lua(
local value = ARGV[1] .. '|' .. ARGV[4]
local held = redis.call('GET', KEYS[1])
if held then
  local holder, until_ms = string.match(held, '^(.*)|(%-?%d+)$')
  if holder ~= ARGV[1] and until_ms and tonumber(until_ms) > tonumber(ARGV[2]) then
    return 0
  end
  redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
  return 1
end
if redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[3]) then return 1 end
return 0
)lua";

// KEYS: lease. ARGV: 1 owner. Deletes the lease only if owner holds it.
constexpr const char* kUnlockScript = R"lua(
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

// KEYS: token. ARGV: 1 token, 2 expires_at. Keeps a later-expiring token.
constexpr const char* kImportTokenScript = R"lua(
local had = redis.call('HGET', KEYS[1], 'e')
if had and tonumber(had) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[2])
return 1
)lua";

// Signing keys (tokens.*). KEYS: current kid, index set of kids.
// ARGV: 1 key-hash prefix, 2 now. Returns {kid, alg, key, created, retired,
// verify_until} for the current key and each retired key still verifying.
constexpr const char* kListSigningKeysScript = R"lua(
local out = {}
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local k = redis.call('HMGET', ARGV[1] .. kid, 'a', 'k', 'c', 'r', 'v')
  if k[1] and (k[4] == '0' or tonumber(k[5]) > tonumber(ARGV[2])) then
    table.insert(out, {kid, k[1], k[2], k[3], k[4], k[5]})
  end
end
return out
)lua";

// KEYS: current kid, index set of kids. ARGV: 1 key-hash prefix, 2 expected
// current kid ('' = none), 3 kid, 4 alg, 5 key, 6 created_at, 7 the former
// key's verify_until. Returns 1 when replaced, 0 when another key is current
// (a resent script finds its own key current and answers 0: the caller then
// lists the keys and sees it).
constexpr const char* kReplaceSigningKeyScript = R"lua(
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[2] then return 0 end
if current ~= '' then
  redis.call('HSET', ARGV[1] .. current, 'r', ARGV[6], 'v', ARGV[7])
end
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local k = redis.call('HMGET', ARGV[1] .. kid, 'r', 'v')
  if (not k[1]) or (k[1] ~= '0' and tonumber(k[2]) <= tonumber(ARGV[6])) then
    redis.call('DEL', ARGV[1] .. kid)
    redis.call('SREM', KEYS[2], kid)
  end
end
redis.call('HSET', ARGV[1] .. ARGV[3], 'a', ARGV[4], 'k', ARGV[5],
           'c', ARGV[6], 'r', '0', 'v', '0')
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[3])
return 1
)lua";

struct Script {
  explicit Script(const char* body)
      : source(std::string(kLuaHelpers) + body), sha(crypto::Sha1Hex(source)) {}
  const std::string source;  // constant after construction
  const std::string sha;     // constant after construction
};

bool IsNoScript(const redisReply* reply) {
  return reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
         reply->len >= 8 && std::string(reply->str, 8) == "NOSCRIPT";
}

std::string ReplyString(const redisReply* reply) {
  if (reply == nullptr || (reply->type != REDIS_REPLY_STRING &&
                           reply->type != REDIS_REPLY_STATUS)) {
    return std::string();
  }
  return std::string(reply->str, reply->len);
}

int64_t ReplyInteger(const redisReply* reply) {
  if (reply == nullptr) return 0;
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  if (reply->type == REDIS_REPLY_STRING) {
    return std::strtoll(std::string(reply->str, reply->len).c_str(), nullptr,
                        10);
  }
  return 0;
}

std::string Seconds(int64_t value) { return std::to_string(value); }

// hiredis writes with write(2): a write to a connection the server closed
// raises SIGPIPE, whose default action ends the process. Ignore it (only if
// nobody chose another disposition), so the write fails with EPIPE instead.
void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current;
    if (sigaction(SIGPIPE, nullptr, &current) == 0 &&
        current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

class RedisStoreImpl : public RedisStore {
 public:
  RedisStoreImpl(const RedisStoreOptions& options, const Clock& clock)
      : options_(options),
        clock_(clock),
        pool_(RedisPoolOptions{options.locator, options.timeout_ms,
                               options.pool_size}),
        create_(kCreateScript),
        find_(kFindScript),
        touch_(kTouchScript),
        revoke_(kRevokeScript),
        revoke_user_(kRevokeUserScript),
        revoke_all_(kRevokeAllScript),
        lock_(kLockScript),
        unlock_(kUnlockScript),
        import_token_(kImportTokenScript),
        list_signing_keys_(kListSigningKeysScript),
        replace_signing_key_(kReplaceSigningKeyScript),
        get_user_(kGetUserScript),
        list_sessions_(kListSessionsScript),
        put_ban_(kPutBanScript),
        remove_ban_(kRemoveBanScript),
        list_bans_(kListBansScript) {}

  Status CreateSession(const NewSession& session) override {
    const int64_t now = clock_.Now();
    std::vector<RedisArgs> commands = {CreateCommand(
        session.id_hash, session.appid, session.openid, session.unionid,
        session.session_key, session.created_at, session.created_at,
        session.created_at, session.expires_at, now, /*import=*/false,
        session.max_sessions)};
    Result<std::vector<RedisReplyPtr>> replies =
        RunAcknowledged(std::move(commands), "save session");
    if (!replies.ok()) return replies.status();
    if (ReplyInteger(replies.value()[0].get()) < 0) {
      return Status(ErrorCode::kUserBanned, "this account is suspended");
    }
    return Status::Ok();
  }

  Result<LiveSession> FindLive(const std::string& id_hash,
                               int64_t now) override {
    auto replies = Run({Eval(find_, {SessionKey(id_hash)}, {options_.prefix})},
                       "find session");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    if (reply->type == REDIS_REPLY_NIL) return InvalidSession();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 7) {
      return Status::Fault(
          ErrorCode::kInternal,
          "session store: redis: unexpected reply to find session");
    }
    redisReply** field = reply->element;
    LiveSession live;
    live.appid = ReplyString(field[0]);
    live.openid = ReplyString(field[1]);
    live.created_at = ReplyInteger(field[2]);
    live.last_seen_at = ReplyInteger(field[3]);
    live.expires_at = ReplyInteger(field[4]);
    // A session without its user (evicted by a maxmemory policy) cannot
    // decrypt anything: treat it as gone.
    if (field[5]->type != REDIS_REPLY_STRING) return InvalidSession();
    live.session_key = ReplyString(field[5]);
    if (field[6]->type == REDIS_REPLY_STRING) {
      live.unionid = ReplyString(field[6]);
    }
    if (live.expires_at <= now) return InvalidSession();
    return live;
  }

  Status Touch(const std::string& id_hash, int64_t last_seen_at,
               int64_t expires_at) override {
    const std::string hex = crypto::HexEncode(id_hash);
    auto replies =
        Run({Eval(touch_, {SessionKey(id_hash), SessionsIndex(), UsersIndex()},
                  {Seconds(last_seen_at), Seconds(expires_at),
                   TtlMs(expires_at), options_.prefix, hex})},
            "touch session");
    return replies.ok() ? Status::Ok() : replies.status();
  }

  Result<int64_t> Revoke(const std::string& id_hash) override {
    auto replies =
        RunAcknowledged({Eval(revoke_, {SessionKey(id_hash), SessionsIndex()},
                              {crypto::HexEncode(id_hash), options_.prefix})},
                        "revoke session");
    if (!replies.ok()) return replies.status();
    return ReplyInteger(replies.value()[0].get());
  }

  Result<int64_t> RevokeUser(const std::string& appid,
                             const std::string& openid) override {
    auto replies = RunAcknowledged(
        {Eval(revoke_user_, {OpenidKey(openid), SessionsIndex()},
              {appid, options_.prefix})},
        "revoke user");
    if (!replies.ok()) return replies.status();
    return ReplyInteger(replies.value()[0].get());
  }

  Result<int64_t> RevokeAll() override {
    int64_t ended = 0;
    while (true) {
      auto replies = RunAcknowledged(
          {Eval(revoke_all_, {SessionsIndex()},
                {options_.prefix, std::to_string(kRevokeAllBatch)})},
          "revoke all");
      if (!replies.ok()) return replies.status();
      const redisReply* reply = replies.value()[0].get();
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return Status::Fault(
            ErrorCode::kInternal,
            "session store: redis: unexpected reply to revoke all");
      }
      ended += ReplyInteger(reply->element[0]);
      if (ReplyInteger(reply->element[1]) < kRevokeAllBatch) return ended;
    }
  }

  // Redis deletes expired sessions by itself.
  Result<int64_t> SweepExpired(int64_t, int64_t) override { return 0; }

  Result<StoreStats> Stats(int64_t now) override {
    const std::string after_now = "(" + Seconds(now);
    auto replies = Run({{"ZCARD", SessionsIndex()},
                        {"ZCOUNT", SessionsIndex(), after_now, "+inf"},
                        {"ZCOUNT", UsersIndex(), after_now, "+inf"}},
                       "stats");
    if (!replies.ok()) return replies.status();
    StoreStats stats;
    stats.sessions = ReplyInteger(replies.value()[0].get());
    stats.live_sessions = ReplyInteger(replies.value()[1].get());
    stats.users = ReplyInteger(replies.value()[2].get());
    stats.database_bytes = 0;  // the Redis may hold other data too
    return stats;
  }

  Result<UserRecord> GetUser(const std::string& appid,
                             const std::string& openid, int64_t now) override {
    auto replies = Run({Eval(get_user_,
                             {UserKey(appid, openid), OpenidKey(openid),
                              BanKey(appid, openid)},
                             {appid, Seconds(now), options_.prefix})},
                       "get user");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    if (reply->type == REDIS_REPLY_NIL) {
      return Status(ErrorCode::kNotFound, "no such user");
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 9) {
      return Status::Fault(
          ErrorCode::kInternal,
          "session store: redis: unexpected reply to get user");
    }
    redisReply** field = reply->element;
    UserRecord user;
    user.appid = appid;
    user.openid = openid;
    user.created_at = ReplyInteger(field[0]);
    if (!ReplyString(field[1]).empty()) {
      user.last_login_at = ReplyInteger(field[1]);
    }
    if (ReplyInteger(field[3]) == 1) user.unionid = ReplyString(field[2]);
    user.live_sessions = ReplyInteger(field[4]);
    if (ReplyInteger(field[5]) == 1) {
      Ban ban{appid, openid, ReplyString(field[6]), ReplyInteger(field[7]),
              std::nullopt};
      if (!ReplyString(field[8]).empty()) ban.until = ReplyInteger(field[8]);
      user.ban = std::move(ban);
    }
    return user;
  }

  Result<std::vector<SessionSummary>> ListSessions(const std::string& appid,
                                                   const std::string& openid,
                                                   int64_t now) override {
    auto replies = Run({Eval(list_sessions_, {OpenidKey(openid)},
                             {appid, Seconds(now), options_.prefix})},
                       "list sessions");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    constexpr size_t kFields = 5;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % kFields != 0) {
      return Status::Fault(
          ErrorCode::kInternal,
          "session store: redis: unexpected reply to list sessions");
    }
    struct Row {
      SessionSummary summary;
      int64_t seq;
    };
    std::vector<Row> rows;
    for (size_t i = 0; i < reply->elements; i += kFields) {
      redisReply** f = reply->element + i;
      std::optional<std::string> id_hash =
          crypto::LowerHexDecode(ReplyString(f[0]));
      if (!id_hash) continue;  // not ours: never written by this store
      rows.push_back({{*id_hash, ReplyInteger(f[1]), ReplyInteger(f[2]),
                       ReplyInteger(f[3])},
                      ReplyInteger(f[4])});
    }
    std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
      if (x.summary.created_at != y.summary.created_at) {
        return x.summary.created_at > y.summary.created_at;
      }
      return x.seq > y.seq;
    });
    std::vector<SessionSummary> sessions;
    sessions.reserve(rows.size());
    for (Row& row : rows) sessions.push_back(std::move(row.summary));
    return sessions;
  }

  Result<int64_t> PutBan(const Ban& ban) override {
    const int64_t now = clock_.Now();
    std::string ttl_ms;
    if (ban.until) {
      // Kept a while past its end, like the index entries, so instances
      // whose clocks differ agree; reads compare `until` with now.
      ttl_ms = std::to_string(
          (std::max<int64_t>(0, *ban.until - now) + kIndexGraceSeconds) * 1000);
    }
    auto replies = RunAcknowledged(
        {Eval(put_ban_,
              {BanKey(ban.appid, ban.openid), UserKey(ban.appid, ban.openid),
               OpenidKey(ban.openid), SessionsIndex(), BansKey(ban.appid)},
              {ban.reason, Seconds(ban.since),
               ban.until ? Seconds(*ban.until) : std::string(), ttl_ms,
               ban.appid, ban.openid, options_.prefix})},
        "ban user");
    if (!replies.ok()) return replies.status();
    return ReplyInteger(replies.value()[0].get());
  }

  Status RemoveBan(const std::string& appid, const std::string& openid,
                   int64_t now) override {
    auto replies = RunAcknowledged(
        {Eval(remove_ban_,
              {BanKey(appid, openid), UserKey(appid, openid), BansKey(appid)},
              {openid, Seconds(now),
               std::to_string(options_.user_retention_seconds * 1000)})},
        "unban user");
    if (!replies.ok()) return replies.status();
    if (ReplyInteger(replies.value()[0].get()) != 1) {
      return Status(ErrorCode::kNotFound, "the user is not banned");
    }
    return Status::Ok();
  }

  Result<std::vector<Ban>> ListBans(const std::string& appid,
                                    int64_t now) override {
    auto replies = Run({Eval(list_bans_, {BansKey(appid)},
                             {appid, Seconds(now), options_.prefix})},
                       "list bans");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    constexpr size_t kFields = 4;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % kFields != 0) {
      return Status::Fault(
          ErrorCode::kInternal,
          "session store: redis: unexpected reply to list bans");
    }
    std::vector<Ban> bans;
    for (size_t i = 0; i < reply->elements; i += kFields) {
      redisReply** f = reply->element + i;
      Ban ban{appid, ReplyString(f[0]), ReplyString(f[1]), ReplyInteger(f[2]),
              std::nullopt};
      if (!ReplyString(f[3]).empty()) ban.until = ReplyInteger(f[3]);
      bans.push_back(std::move(ban));
    }
    std::sort(bans.begin(), bans.end(), [](const Ban& x, const Ban& y) {
      if (x.since != y.since) return x.since > y.since;
      return x.openid < y.openid;
    });
    return bans;
  }

  // Users expire by themselves (a TTL of the retention period past their
  // last login, or of their longest session), as sessions do.
  Result<int64_t> SweepUsers(int64_t, int64_t, int64_t) override { return 0; }

  Result<AccessToken> GetAccessToken(const std::string& appid) override {
    auto replies = Run({{"HMGET", TokenKey(appid), "v", "e"}}, "get token");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
      return Status(ErrorCode::kNotFound,
                    "no access token cached for " + appid);
    }
    AccessToken token;
    token.appid = appid;
    token.token = ReplyString(reply->element[0]);
    token.expires_at = ReplyInteger(reply->element[1]);
    return token;
  }

  Status PutAccessToken(const AccessToken& token) override {
    auto replies = Run({{"HSET", TokenKey(token.appid), "v", token.token, "e",
                         Seconds(token.expires_at)}},
                       "put token");
    return replies.ok() ? Status::Ok() : replies.status();
  }

  Result<bool> TryLockTokenRefresh(const std::string& appid,
                                   const std::string& owner, int64_t now_ms,
                                   int64_t lease_ms) override {
    // PX needs a positive time; a zero lease is over at once anyway.
    const int64_t px = std::max<int64_t>(1, lease_ms);
    auto replies = Run({Eval(lock_, {LeaseKey(appid)},
                             {owner, std::to_string(now_ms), std::to_string(px),
                              std::to_string(now_ms + lease_ms)})},
                       "token lease");
    if (!replies.ok()) return replies.status();
    return ReplyInteger(replies.value()[0].get()) == 1;
  }

  Status UnlockTokenRefresh(const std::string& appid,
                            const std::string& owner) override {
    auto replies =
        Run({Eval(unlock_, {LeaseKey(appid)}, {owner})}, "release token lease");
    return replies.ok() ? Status::Ok() : replies.status();
  }

  Result<std::vector<StoredSigningKey>> ListSigningKeys(int64_t now) override {
    auto replies =
        Run({Eval(list_signing_keys_, {SigningKeyCurrent(), SigningKeyIndex()},
                  {SigningKeyPrefix(), Seconds(now)})},
            "list signing keys");
    if (!replies.ok()) return replies.status();
    const redisReply* reply = replies.value()[0].get();
    if (reply->type != REDIS_REPLY_ARRAY) {
      return Status::Fault(
          ErrorCode::kInternal,
          "session store: redis: unexpected reply to list signing "
          "keys");
    }
    std::vector<StoredSigningKey> keys;
    for (size_t i = 0; i < reply->elements; ++i) {
      const redisReply* row = reply->element[i];
      if (row->type != REDIS_REPLY_ARRAY || row->elements != 6) continue;
      StoredSigningKey key;
      key.kid = ReplyString(row->element[0]);
      key.algorithm = ReplyString(row->element[1]);
      key.private_key = ReplyString(row->element[2]);
      key.created_at = ReplyInteger(row->element[3]);
      key.retired_at = ReplyInteger(row->element[4]);
      key.verify_until = ReplyInteger(row->element[5]);
      keys.push_back(std::move(key));
    }
    // As the contract orders them: current first, then newest first.
    std::sort(keys.begin(), keys.end(),
              [](const StoredSigningKey& a, const StoredSigningKey& b) {
                if ((a.retired_at == 0) != (b.retired_at == 0)) {
                  return a.retired_at == 0;
                }
                return a.created_at > b.created_at;
              });
    return keys;
  }

  Result<bool> ReplaceSigningKey(const std::string& expected_kid,
                                 const StoredSigningKey& key,
                                 int64_t previous_verify_until) override {
    auto replies = RunAcknowledged(
        {Eval(replace_signing_key_, {SigningKeyCurrent(), SigningKeyIndex()},
              {SigningKeyPrefix(), expected_kid, key.kid, key.algorithm,
               key.private_key, Seconds(key.created_at),
               Seconds(previous_verify_until)})},
        "replace signing key");
    if (!replies.ok()) return replies.status();
    return ReplyInteger(replies.value()[0].get()) == 1;
  }

  Status Ping() override {
    auto replies = Run({{"PING"}}, "ping");
    return replies.ok() ? Status::Ok() : replies.status();
  }

  Result<int64_t> ImportSessions(
      const std::vector<ExportedSession>& sessions) override {
    if (sessions.empty()) return int64_t{0};
    const int64_t now = clock_.Now();
    std::vector<RedisArgs> commands;
    commands.reserve(sessions.size() + 1);
    for (const ExportedSession& s : sessions) {
      commands.push_back(CreateCommand(s.id_hash, s.appid, s.openid, s.unionid,
                                       s.session_key, s.key_updated_at,
                                       s.created_at, s.last_seen_at,
                                       s.expires_at, now, /*import=*/true));
    }
    auto replies = RunAcknowledged(std::move(commands), "import sessions");
    if (!replies.ok()) return replies.status();
    int64_t written = 0;
    for (size_t i = 0; i < sessions.size(); ++i) {
      written += ReplyInteger(replies.value()[i].get());
    }
    return written;
  }

  Status ImportAccessTokens(const std::vector<AccessToken>& tokens) override {
    std::vector<RedisArgs> commands;
    commands.reserve(tokens.size());
    for (const AccessToken& token : tokens) {
      commands.push_back(Eval(import_token_, {TokenKey(token.appid)},
                              {token.token, Seconds(token.expires_at)}));
    }
    if (commands.empty()) return Status::Ok();
    auto replies = Run(commands, "import tokens");
    return replies.ok() ? Status::Ok() : replies.status();
  }

  int OpenConnections() const override { return pool_.OpenConnections(); }

 private:
  static Status InvalidSession() { return InvalidSessionStatus(); }

  std::string SessionKey(const std::string& id_hash) const {
    return options_.prefix + "s:" + crypto::HexEncode(id_hash);
  }
  std::string UserKey(const std::string& appid,
                      const std::string& openid) const {
    return options_.prefix + "u:" + appid + ":" + openid;
  }
  std::string OpenidKey(const std::string& openid) const {
    return options_.prefix + "o:" + openid;
  }
  std::string BanKey(const std::string& appid,
                     const std::string& openid) const {
    return options_.prefix + "ban:" + appid + ":" + openid;
  }
  std::string BansKey(const std::string& appid) const {
    return options_.prefix + "bans:" + appid;
  }
  std::string SessionsIndex() const { return options_.prefix + "sessions"; }
  std::string UsersIndex() const { return options_.prefix + "users"; }
  std::string TokenKey(const std::string& appid) const {
    return options_.prefix + "t:" + appid;
  }
  std::string LeaseKey(const std::string& appid) const {
    return options_.prefix + "tl:" + appid;
  }
  std::string SigningKeyCurrent() const {
    return options_.prefix + "signing_key:current";
  }
  std::string SigningKeyIndex() const {
    return options_.prefix + "signing_key:index";
  }
  std::string SigningKeyPrefix() const {
    return options_.prefix + "signing_key:k:";
  }

  // Milliseconds from now (on the injected clock) until `expires_at`.
  std::string TtlMs(int64_t expires_at) const {
    constexpr int64_t kMsPerSecond = 1000;
    return std::to_string((expires_at - clock_.Now()) * kMsPerSecond);
  }

  RedisArgs Eval(const Script& script, const std::vector<std::string>& keys,
                 const std::vector<std::string>& args) const {
    RedisArgs command = {"EVALSHA", script.sha, std::to_string(keys.size())};
    command.insert(command.end(), keys.begin(), keys.end());
    command.insert(command.end(), args.begin(), args.end());
    return command;
  }

  RedisArgs CreateCommand(const std::string& id_hash, const std::string& appid,
                          const std::string& openid,
                          const std::optional<std::string>& unionid,
                          const std::string& session_key,
                          int64_t key_updated_at, int64_t created_at,
                          int64_t last_seen_at, int64_t expires_at, int64_t now,
                          bool import, int64_t max_sessions = 0) const {
    return Eval(create_,
                {SessionKey(id_hash), UserKey(appid, openid), OpenidKey(openid),
                 SessionsIndex(), UsersIndex(), BanKey(appid, openid)},
                {crypto::HexEncode(id_hash), appid, openid, unionid ? "1" : "0",
                 unionid.value_or(""), session_key, Seconds(key_updated_at),
                 Seconds(created_at), Seconds(last_seen_at),
                 Seconds(expires_at), TtlMs(expires_at), import ? "1" : "0",
                 Seconds(now - kIndexGraceSeconds), options_.prefix,
                 appid + ":" + openid, std::to_string(max_sessions),
                 std::to_string(std::max<int64_t>(
                     1, (created_at - now) * 1000 +
                            options_.user_retention_seconds * 1000))});
  }

  // Runs `commands` as one pipeline. When Redis has not seen a script (a
  // restart or a failover empties its script cache), loads every script and
  // runs the pipeline again. Maps error replies onto the closed set.
  Result<std::vector<RedisReplyPtr>> Run(const std::vector<RedisArgs>& commands,
                                         const char* what) {
    Result<std::vector<RedisReplyPtr>> replies = pool_.Pipeline(commands);
    if (!replies.ok()) return replies.status();
    bool missing_script = false;
    for (const RedisReplyPtr& reply : replies.value()) {
      missing_script = missing_script || IsNoScript(reply.get());
    }
    if (missing_script) {
      std::vector<RedisArgs> loads;
      for (const Script* script : AllScripts()) {
        loads.push_back({"SCRIPT", "LOAD", script->source});
      }
      auto loaded = pool_.Pipeline(loads);
      if (!loaded.ok()) return loaded.status();
      for (const RedisReplyPtr& reply : loaded.value()) {
        if (reply->type == REDIS_REPLY_ERROR) return ReplyError(*reply, what);
      }
      replies = pool_.Pipeline(commands);
      if (!replies.ok()) return replies.status();
    }
    for (const RedisReplyPtr& reply : replies.value()) {
      if (reply->type == REDIS_REPLY_ERROR) return ReplyError(*reply, what);
    }
    return replies;
  }

  // Like Run, then, with min_replicas_ack > 0, WAITs on the same connection
  // (WAIT covers the writes of its own connection) until that many replicas
  // hold the writes. Not acknowledged in time -> kStoreUnavailable: the
  // caller must not acknowledge the write either.
  Result<std::vector<RedisReplyPtr>> RunAcknowledged(
      std::vector<RedisArgs> commands, const char* what) {
    if (options_.min_replicas_ack <= 0) return Run(commands, what);
    // Half the reply timeout, so WAIT answers before the socket gives up.
    const int64_t wait_ms = std::max<int64_t>(1, options_.timeout_ms / 2);
    commands.push_back({"WAIT", std::to_string(options_.min_replicas_ack),
                        std::to_string(wait_ms)});
    Result<std::vector<RedisReplyPtr>> replies = Run(commands, what);
    if (!replies.ok()) return replies;
    int64_t acknowledged = ReplyInteger(replies.value().back().get());
    if (acknowledged < options_.min_replicas_ack) {
      return Status::Fault(
          ErrorCode::kStoreUnavailable,
          std::string("session store: ") + pool_.Describe() + ": " + what +
              " reached " + std::to_string(acknowledged) + " of the " +
              std::to_string(options_.min_replicas_ack) +
              " replica(s) required within " + std::to_string(wait_ms) +
              " ms; not acknowledged");
    }
    return replies;
  }

  Status ReplyError(const redisReply& reply, const char* what) const {
    ErrorCode code = IsUnavailableErrorReply(reply)
                         ? ErrorCode::kStoreUnavailable
                         : ErrorCode::kInternal;
    return Status::Fault(code, std::string("session store: ") +
                                   pool_.Describe() + ": " + what + ": " +
                                   ErrorReplyText(reply));
  }

  std::vector<const Script*> AllScripts() const {
    return {&create_,
            &find_,
            &touch_,
            &revoke_,
            &revoke_user_,
            &revoke_all_,
            &lock_,
            &unlock_,
            &import_token_,
            &list_signing_keys_,
            &replace_signing_key_,
            &get_user_,
            &list_sessions_,
            &put_ban_,
            &remove_ban_,
            &list_bans_};
  }

  const RedisStoreOptions options_;  // constant after construction
  const Clock& clock_;
  RedisConnectionPool pool_;  // thread-safe
  // Constant after construction.
  const Script create_, find_, touch_, revoke_, revoke_user_, revoke_all_,
      lock_, unlock_, import_token_, list_signing_keys_, replace_signing_key_,
      get_user_, list_sessions_, put_ban_, remove_ban_, list_bans_;
};

}  // namespace

Result<std::unique_ptr<RedisStore>> OpenRedisStore(
    const RedisStoreOptions& options, const Clock& clock) {
  if (!options.locator.is_redis()) {
    return Status(ErrorCode::kInvalidRequest,
                  "redis store: the locator does not name Redis");
  }
  if (options.prefix.empty() || options.timeout_ms <= 0 ||
      options.pool_size <= 0 || options.min_replicas_ack < 0) {
    return Status(ErrorCode::kInvalidRequest,
                  "redis store: prefix, timeout and pool size must be set");
  }
  IgnoreSigpipeOnce();
  return std::unique_ptr<RedisStore>(
      std::make_unique<RedisStoreImpl>(options, clock));
}

}  // namespace wxsession
