// RedisStore: the SessionStore contract on Redis (hiredis), shared by every
// wxsessiond instance behind a load balancer.
//
// Keys, all under `prefix` (default "wxs:", so several apps share a Redis):
//   s:<hex sha256 of the id>  hash a(ppid) o(penid) c(reated) l(ast seen)
//                             e(xpires); the raw id is never stored
//   u:<appid>:<openid>        hash k (newest session_key), t (when it came),
//                             u (unionid), sc (prune cursor), c (created),
//                             ll (last login), q (logins so far; each
//                             session's q orders logins in one second)
//   o:<openid>                set of the hex hashes of the openid's sessions,
//                             so revoke-by-user needs no SCAN; members whose
//                             session expired are forgotten lazily
//   sessions                  zset hex -> expires_at, for Stats and RevokeAll
//   users                     zset appid:openid -> latest expiry, for Stats
//   ban:<appid>:<openid>      hash r(eason), s(ince), u(ntil, '' = for
//                             ever); lives until a minute past `until`
//   bans:<appid>              set of the openids banned in the app; members
//                             whose ban is gone are forgotten lazily
//   t:<appid>                 hash v (access token), e (expires_at)
//   tl:<appid>                the refresh lease: "<owner>|<until ms>", SET NX
//   PX signing_key:current       the kid of the current token-signing key
//   signing_key:index         set of every kept kid
//   signing_key:k:<kid>       hash a(lgorithm) k(ey, PEM) c(reated) r(etired)
//                             v(erify until); retired keys past v are
//                             deleted by the next rotation
//
// Expiry: a session key lives exactly until its expires_at (a TTL of
// expires_at - now on the injected clock, reset by Touch), so Redis deletes
// it by itself and SweepExpired is a no-op. A relative TTL (PEXPIRE) is used
// rather than PEXPIREAT so a clock that differs between this host and the
// Redis host cannot shorten or stretch sessions. A user's hash and openid set
// live as long as the user's longest-lived session, and the user's hash at
// least user_retention_seconds past the last login (for ever while a ban
// without `until` is in force), so SweepUsers is a no-op too. The index zsets
// drop an entry a minute after its session expired (kIndexGraceSeconds), a
// bounded number per login, like Redis's own lazy expiry.
//
// Each operation is one Lua script (EVALSHA, atomic), or one pipeline; with
// min_replicas_ack > 0, a login or revocation is followed on the same
// connection by WAIT, and reported as kStoreUnavailable unless that many
// replicas acknowledged it.
//
// Every failure to reach Redis (refused, timed out, failover in progress,
// READONLY, LOADING, OOM) is kStoreUnavailable, never kInvalidSession.
//
// Requires Redis 5 or newer (multi-field HSET, scripts replicated as
// effects). Debian 12 ships 7.0.
//
// Thread-safety: every method may be called concurrently.
#ifndef WXSESSION_REDIS_REDIS_STORE_H_
#define WXSESSION_REDIS_REDIS_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "core/store_locator.h"
#include "store/migration.h"
#include "wxsession/clock.h"
#include "wxsession/store.h"

namespace wxsession {

struct RedisStoreOptions {
  StoreLocator locator;  // a Redis kind, with its password
  std::string prefix = "wxs:";
  int64_t timeout_ms = 1000;  // connect, and each reply
  int pool_size = 16;         // connections, at most
  int min_replicas_ack = 0;   // WAIT for this many replicas; 0 = no WAIT
  // users.retention: a user's record outlives its last login this long.
  int64_t user_retention_seconds = 90 * 86400;
};

class RedisStore : public SessionStore, public StoreImporter {
 public:
  // How long an index entry outlives its session, in seconds: instances
  // whose clocks differ by seconds still agree on what is live.
  static constexpr int64_t kIndexGraceSeconds = 60;
  // Sessions removed per RevokeAll script run: about a millisecond of Redis
  // time, so other clients never wait long behind it.
  static constexpr int64_t kRevokeAllBatch = 1000;

  // Connections currently open, for tests.
  virtual int OpenConnections() const = 0;
};

// Makes a store; connects lazily, so it succeeds while Redis is down (every
// call then answers kStoreUnavailable until Redis is back). `clock` must
// outlive the store. Errors: kInvalidRequest when `options` is not a Redis
// locator or is out of range.
Result<std::unique_ptr<RedisStore>> OpenRedisStore(
    const RedisStoreOptions& options, const Clock& clock);

}  // namespace wxsession

#endif  // WXSESSION_REDIS_REDIS_STORE_H_
