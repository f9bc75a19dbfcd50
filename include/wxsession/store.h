// SessionStore: the one contract every session backend honours.
//
// A store keeps three kinds of record:
//   users    - one per (appid, openid): the newest session_key WeChat gave
//              that user, and the unionid when known. Every session of the
//              user decrypts with this newest key. A user also has a
//              created_at and the time of its last login, and is deleted
//              (SweepUsers) once it has no live session, no ban in force and
//              no login within the retention period.
//   sessions - one per login, keyed by SHA-256 of the session id. The raw
//              id is never given to a store, so it can never be stored.
//   bans     - at most one per user, put by an operator: while it is in
//              force (no `until`, or `until` > now) the user cannot log in.
//              A ban past its `until` is treated as absent on every read.
// A session's `expires_at` is its effective expiry: the sooner of the
// absolute ttl and the idle window, recomputed by the caller on Touch. A read
// treats an expired session as missing whether or not it has been swept.
//
// Every method may fail with kStoreUnavailable (the backend cannot serve:
// disk full, read-only, locked for too long, unreachable) or kInternal (a
// bug). Methods name any other outcome below.
//
// Thread-safety: implementations must allow concurrent calls from any
// number of threads.
#ifndef WXSESSION_STORE_H_
#define WXSESSION_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/status.h"

namespace wxsession {

struct NewSession {
  std::string id_hash;  // SHA-256 of the session id, 32 raw bytes
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;  // absent: keep what the user had
  std::string session_key;             // becomes the user's newest key
  int64_t created_at = 0;
  int64_t expires_at = 0;
  // At most this many live sessions of (appid, openid) remain after the
  // insert: the oldest (by created_at, then by login order) end in the
  // same transaction. 0 = no limit.
  int64_t max_sessions = 0;
};

struct LiveSession {
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;
  std::string session_key;  // the user's newest key
  int64_t created_at = 0;
  int64_t last_seen_at = 0;
  int64_t expires_at = 0;
};

// A WeChat access_token cached for one app (the access-token centre).
struct AccessToken {
  std::string appid;
  std::string token;       // up to 512 characters, per WeChat
  int64_t expires_at = 0;  // unix seconds
};

// A key that signs the JWTs wxsessiond issues (tokens.*), kept in the store
// so every instance on it signs and verifies with the same keys.
struct StoredSigningKey {
  std::string kid;          // RFC 7638 thumbprint of the public key
  std::string algorithm;    // "ES256" or "EdDSA"
  std::string private_key;  // PKCS#8 PEM; sealed at rest by SealedStore
  int64_t created_at = 0;
  int64_t retired_at = 0;    // 0: the current key
  int64_t verify_until = 0;  // retired keys: no token it signed is valid then
};

// One live session of a user, as an operator sees it (no key, no id).
struct SessionSummary {
  std::string id_hash;  // SHA-256 of the session id, 32 raw bytes
  int64_t created_at = 0;
  int64_t last_seen_at = 0;
  int64_t expires_at = 0;
};

// An operator's suspension of one user.
struct Ban {
  std::string appid;
  std::string openid;
  std::string reason;            // for operators; never sent to the client
  int64_t since = 0;             // unix seconds
  std::optional<int64_t> until;  // absent: for ever
};

// A user as an operator sees it.
struct UserRecord {
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;
  int64_t created_at = 0;
  std::optional<int64_t> last_login_at;  // absent: never logged in (a ban
                                         // made the record)
  int64_t live_sessions = 0;
  std::optional<Ban> ban;  // the ban in force, if any
};

struct StoreStats {
  int64_t sessions = 0;  // rows, including expired ones not yet swept
  int64_t live_sessions = 0;
  int64_t users = 0;
  int64_t database_bytes = 0;  // 0 where the backend cannot tell
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Records the user's newest session_key (and unionid, when given), the
  // time of this login, and the new session, atomically: either both are
  // durable or neither is. With session.max_sessions > 0, the user's oldest
  // live sessions beyond that number end in the same transaction.
  // Errors: kUserBanned (a ban on the user is in force at created_at;
  // nothing is written).
  virtual Status CreateSession(const NewSession& session) = 0;

  // The session behind `id_hash` if it exists and `expires_at > now`;
  // otherwise kInvalidSession.
  virtual Result<LiveSession> FindLive(const std::string& id_hash,
                                       int64_t now) = 0;

  // Records use of a session: sets last_seen_at and expires_at. A session
  // that no longer exists is not an error (it was revoked or swept).
  virtual Status Touch(const std::string& id_hash, int64_t last_seen_at,
                       int64_t expires_at) = 0;

  // Ends one session. Returns how many sessions ended (0 or 1).
  virtual Result<int64_t> Revoke(const std::string& id_hash) = 0;

  // Ends every session of `openid` (in `appid`, or in every app when appid
  // is empty). Returns how many ended.
  virtual Result<int64_t> RevokeUser(const std::string& appid,
                                     const std::string& openid) = 0;

  // Ends every session. Returns how many ended.
  virtual Result<int64_t> RevokeAll() = 0;

  // Deletes at most `max_rows` sessions with expires_at <= now, in one
  // short transaction. Returns how many it deleted; a caller that gets
  // max_rows back should call again.
  virtual Result<int64_t> SweepExpired(int64_t now, int64_t max_rows) = 0;

  virtual Result<StoreStats> Stats(int64_t now) = 0;

  // --- Users, their sessions and bans (the admin API).

  // The user (appid, openid) with its live session count and the ban in
  // force at `now`. Errors: kNotFound when the store has no such user.
  virtual Result<UserRecord> GetUser(const std::string& appid,
                                     const std::string& openid,
                                     int64_t now) = 0;

  // The user's sessions live at `now`, newest first (by created_at, then
  // login order). No user: an empty list, not an error.
  virtual Result<std::vector<SessionSummary>> ListSessions(
      const std::string& appid, const std::string& openid, int64_t now) = 0;

  // Puts (or replaces) `ban`, creating the user record when there is none
  // (created_at = ban.since, never logged in), and ends every session of the
  // user in the same transaction. A ban whose `until` is already past is
  // stored and simply not in force. Returns how many sessions ended.
  virtual Result<int64_t> PutBan(const Ban& ban) = 0;

  // Lifts the ban on (appid, openid). Errors: kNotFound when no ban is in
  // force at `now` (a lapsed one is removed all the same).
  virtual Status RemoveBan(const std::string& appid, const std::string& openid,
                           int64_t now) = 0;

  // The bans in force at `now` in `appid`, newest first.
  virtual Result<std::vector<Ban>> ListBans(const std::string& appid,
                                            int64_t now) = 0;

  // Deletes at most `max_rows` users that have no session live at `now`,
  // no ban in force at `now`, and whose last login (or, never logged in,
  // creation) is at or before `last_login_before`; lapsed bans go too. One
  // short transaction. Returns how many users it deleted; a caller that
  // gets max_rows back should call again. Backends that expire users by
  // themselves (Redis: a TTL of the retention period) return 0.
  virtual Result<int64_t> SweepUsers(int64_t now, int64_t last_login_before,
                                     int64_t max_rows) = 0;

  // --- Access-token centre: one token per app, shared by every process
  // --- (and, with Redis, every instance) that uses this store.

  // The cached token for `appid`, expired or not; kNotFound when none.
  virtual Result<AccessToken> GetAccessToken(const std::string& appid) = 0;

  // Replaces the cached token for token.appid.
  virtual Status PutAccessToken(const AccessToken& token) = 0;

  // Takes the refresh lock for `appid` for `owner` until now_ms + lease_ms,
  // if nobody else holds an unexpired lease. Returns whether it was taken.
  // A lease that is not released expires by itself, so a crashed holder
  // never blocks refreshes for longer than lease_ms.
  virtual Result<bool> TryLockTokenRefresh(const std::string& appid,
                                           const std::string& owner,
                                           int64_t now_ms,
                                           int64_t lease_ms) = 0;

  // Releases the lease if `owner` still holds it; otherwise does nothing.
  virtual Status UnlockTokenRefresh(const std::string& appid,
                                    const std::string& owner) = 0;

  // --- Signing keys for tokens (tokens.*): at most one current key, and the
  // --- retired keys that may still verify a token they signed.

  // The current key first (when there is one), then every retired key with
  // verify_until > now, newest first. Retired keys at or past verify_until
  // are missing whether or not they have been deleted.
  virtual Result<std::vector<StoredSigningKey>> ListSigningKeys(
      int64_t now) = 0;

  // Makes `key` (whose retired_at must be 0) the current key, if the
  // current key's kid is `expected_kid` ("" = there is no current key).
  // Atomically: the former current key is retired at key.created_at and kept
  // until `previous_verify_until`, and retired keys whose verify_until <=
  // key.created_at may be deleted. Returns false, changing nothing, when
  // another key is current (another instance got there first: list again).
  virtual Result<bool> ReplaceSigningKey(const std::string& expected_kid,
                                         const StoredSigningKey& key,
                                         int64_t previous_verify_until) = 0;

  // OK when the store can answer a read right now.
  virtual Status Ping() = 0;

  // Called once on a clean shutdown, after the last request: moves anything
  // the backend keeps in a journal into its main storage, so the data is
  // whole in one place (SQLite: the WAL is checkpointed and truncated).
  // Backends with nothing to flush do nothing. Errors: kStoreUnavailable
  // when the flush could not complete (the data stays safe in the journal).
  virtual Status Checkpoint() { return Status::Ok(); }
};

}  // namespace wxsession

#endif  // WXSESSION_STORE_H_
