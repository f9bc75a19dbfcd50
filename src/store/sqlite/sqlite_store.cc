// SqliteStore: SessionStore on one SQLite file in WAL mode.
//
// Connections: a bounded pool. A request borrows a connection (with its
// cached prepared statements) for one operation and returns it; the pool's
// lock is held only to pop and push. It is bounded because the HTTP layer
// runs up to a thousand threads (one per open connection) while SQLite work
// is CPU-bound: a connection per thread would multiply page caches for no
// gain on a machine with a few cores.
//
// Writes run in BEGIN IMMEDIATE so a writer takes the lock up front instead
// of failing half way on SQLITE_BUSY; busy_timeout makes concurrent writers
// queue for up to SqliteOptions::busy_timeout_ms. Logins that arrive
// together share one commit (group_commit.h), and WAL checkpoints run on a
// background thread instead of inside a login's commit.
#include "store/sqlite/sqlite_store.h"
#include "wxsession/thread_annotations.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "store/sqlite/group_commit.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/statement.h"

namespace wxsession {
namespace {

using sqlite::Blob;
using sqlite::Connection;
using sqlite::Exec;
using sqlite::ForEachRow;
using sqlite::QueryRow;
using sqlite::Run;
using sqlite::Statement;
using sqlite::StoreError;

constexpr const char* kBegin = "BEGIN IMMEDIATE";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kRollback = "ROLLBACK";

constexpr const char* kUpsertUser =
    "INSERT INTO users (appid, openid, unionid, session_key, created_at, "
    "updated_at, last_login_at, login_count) VALUES (?1, ?2, ?3, ?4, ?5, ?5, "
    "?5, 1) "
    "ON CONFLICT (appid, openid) DO UPDATE SET "
    "session_key = excluded.session_key, "
    "unionid = COALESCE(excluded.unionid, users.unionid), "
    "updated_at = excluded.updated_at, "
    "last_login_at = max(users.last_login_at, excluded.last_login_at), "
    "login_count = users.login_count + 1";
// login_seq: the user's login count, just raised by kUpsertUser.
constexpr const char* kInsertSession =
    "INSERT INTO sessions (id_hash, appid, openid, created_at, last_seen_at, "
    "expires_at, login_seq) VALUES (?1, ?2, ?3, ?4, ?4, ?5, "
    "(SELECT login_count FROM users WHERE appid = ?2 AND openid = ?3))";
constexpr const char* kBanInForce =
    "SELECT 1 FROM bans WHERE appid = ?1 AND openid = ?2 AND "
    "(until IS NULL OR until > ?3)";
// The user's live sessions past the newest ?4 (sessions_user index).
constexpr const char* kCapSessions =
    "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions "
    "WHERE appid = ?1 AND openid = ?2 AND expires_at > ?3 "
    "ORDER BY created_at DESC, login_seq DESC LIMIT -1 OFFSET ?4)";
constexpr const char* kGetUser =
    "SELECT u.unionid, u.created_at, u.last_login_at, u.login_count, "
    "(SELECT count(*) FROM sessions s WHERE s.appid = u.appid AND "
    "s.openid = u.openid AND s.expires_at > ?3) "
    "FROM users u WHERE u.appid = ?1 AND u.openid = ?2";
constexpr const char* kGetBan =
    "SELECT reason, since, until FROM bans WHERE appid = ?1 AND openid = ?2 "
    "AND (until IS NULL OR until > ?3)";
constexpr const char* kListSessions =
    "SELECT id_hash, created_at, last_seen_at, expires_at FROM sessions "
    "WHERE appid = ?1 AND openid = ?2 AND expires_at > ?3 "
    "ORDER BY created_at DESC, login_seq DESC";
// A ban on someone who never logged in still needs a user to show.
constexpr const char* kEnsureUser =
    "INSERT INTO users (appid, openid, session_key, created_at, updated_at, "
    "last_login_at, login_count) VALUES (?1, ?2, '', ?3, ?3, ?3, 0) "
    "ON CONFLICT (appid, openid) DO NOTHING";
constexpr const char* kPutBan =
    "INSERT INTO bans (appid, openid, reason, since, until) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (appid, openid) DO UPDATE SET "
    "reason = excluded.reason, since = excluded.since, until = excluded.until";
constexpr const char* kDeleteBanInForce =
    "DELETE FROM bans WHERE appid = ?1 AND openid = ?2 AND "
    "(until IS NULL OR until > ?3)";
constexpr const char* kDeleteBan =
    "DELETE FROM bans WHERE appid = ?1 AND openid = ?2";
constexpr const char* kListBans =
    "SELECT openid, reason, since, until FROM bans WHERE appid = ?1 AND "
    "(until IS NULL OR until > ?2) ORDER BY since DESC, openid";
constexpr const char* kSweepLapsedBans =
    "DELETE FROM bans WHERE until IS NOT NULL AND until <= ?1";
// Walks users_last_login from the oldest; a user kept by a live session or
// a ban is visited again next time (few: retention outlasts session.ttl).
constexpr const char* kSweepUsers =
    "DELETE FROM users WHERE (appid, openid) IN (SELECT u.appid, u.openid "
    "FROM users u WHERE u.last_login_at <= ?2 "
    "AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.appid = u.appid AND "
    "s.openid = u.openid AND s.expires_at > ?1) "
    "AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.appid = u.appid AND "
    "b.openid = u.openid AND (b.until IS NULL OR b.until > ?1)) "
    "ORDER BY u.last_login_at LIMIT ?3)";
constexpr const char* kFindLive =
    "SELECT s.appid, s.openid, u.unionid, u.session_key, s.created_at, "
    "s.last_seen_at, s.expires_at FROM sessions s JOIN users u "
    "ON u.appid = s.appid AND u.openid = s.openid "
    "WHERE s.id_hash = ?1 AND s.expires_at > ?2";
constexpr const char* kTouch =
    "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 "
    "WHERE id_hash = ?1";
constexpr const char* kRevoke = "DELETE FROM sessions WHERE id_hash = ?1";
constexpr const char* kRevokeUserInApp =
    "DELETE FROM sessions WHERE appid = ?1 AND openid = ?2";
constexpr const char* kRevokeUserEverywhere =
    "DELETE FROM sessions WHERE openid = ?1";
constexpr const char* kRevokeAll = "DELETE FROM sessions";
// The subquery walks the expires_at index, so a batch costs O(batch), not a
// table scan.
constexpr const char* kSweep =
    "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions "
    "WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
constexpr const char* kCountSessions = "SELECT count(*) FROM sessions";
constexpr const char* kCountLive =
    "SELECT count(*) FROM sessions WHERE expires_at > ?1";
constexpr const char* kCountUsers = "SELECT count(*) FROM users";
constexpr const char* kPing = "SELECT 1 FROM sessions LIMIT 1";
constexpr const char* kGetToken =
    "SELECT token, expires_at FROM access_tokens WHERE appid = ?1 AND "
    "token != ''";
constexpr const char* kPutToken =
    "INSERT INTO access_tokens (appid, token, expires_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (appid) DO UPDATE SET token = excluded.token, "
    "expires_at = excluded.expires_at";
constexpr const char* kEnsureTokenRow =
    "INSERT INTO access_tokens (appid) VALUES (?1) ON CONFLICT DO NOTHING";
// One statement decides: the lease is free, expired, or already ours.
constexpr const char* kTakeLease =
    "UPDATE access_tokens SET lock_owner = ?2, lock_until_ms = ?3 + ?4 "
    "WHERE appid = ?1 AND (lock_owner IS NULL OR lock_until_ms <= ?3 OR "
    "lock_owner = ?2)";
// Keyset pagination over the users' primary key: each batch starts after
// the last row of the previous one.
constexpr const char* kUsersAfter =
    "SELECT appid, openid, session_key FROM users WHERE (appid, openid) > "
    "(?1, ?2) ORDER BY appid, openid LIMIT ?3";
constexpr const char* kSetSessionKey =
    "UPDATE users SET session_key = ?3 WHERE appid = ?1 AND openid = ?2";
constexpr const char* kReleaseLease =
    "UPDATE access_tokens SET lock_owner = NULL, lock_until_ms = 0 "
    "WHERE appid = ?1 AND lock_owner = ?2";

// Signing keys (tokens.*): one current key, retired ones until verify_until.
constexpr const char* kListSigningKeys =
    "SELECT kid, algorithm, private_key, created_at, retired_at, "
    "verify_until FROM signing_keys WHERE retired_at = 0 OR verify_until > ?1 "
    "ORDER BY retired_at = 0 DESC, created_at DESC";
constexpr const char* kCurrentSigningKey =
    "SELECT kid FROM signing_keys WHERE retired_at = 0";
constexpr const char* kRetireSigningKey =
    "UPDATE signing_keys SET retired_at = ?1, verify_until = ?2 "
    "WHERE retired_at = 0";
constexpr const char* kDropSigningKeys =
    "DELETE FROM signing_keys WHERE retired_at != 0 AND verify_until <= ?1";
constexpr const char* kInsertSigningKey =
    "INSERT INTO signing_keys (kid, algorithm, private_key, created_at) "
    "VALUES (?1, ?2, ?3, ?4)";

// Migration export: pages through live sessions by id_hash, so each batch
// is an index range scan, inside one read transaction (one snapshot).
constexpr const char* kBeginRead = "BEGIN";
constexpr const char* kExportSessions =
    "SELECT s.id_hash, s.appid, s.openid, u.unionid, u.session_key, "
    "u.updated_at, s.created_at, s.last_seen_at, s.expires_at "
    "FROM sessions s JOIN users u ON u.appid = s.appid AND u.openid = s.openid "
    "WHERE s.expires_at > ?1 AND s.id_hash > ?2 ORDER BY s.id_hash LIMIT ?3";
constexpr const char* kExportTokens =
    "SELECT appid, token, expires_at FROM access_tokens "
    "WHERE token != '' AND expires_at > ?1";

class SqliteStore : public SessionStore, public StoreExporter {
 public:
  explicit SqliteStore(SqliteOptions options) : options_(std::move(options)) {}

  ~SqliteStore() override {
    {
      MutexLock lock(checkpoint_mutex_);
      checkpoint_stopping_ = true;
      checkpoint_cv_.notify_one();
    }
    if (checkpointer_.joinable()) checkpointer_.join();
    MutexLock lock(pool_mutex_);
    idle_.clear();
  }

  // Opens the first connection and brings the schema up to date.
  Status Init() {
    Status created = CreateOwnerOnlyFile();
    if (!created.ok()) return created;
    Result<Lease> conn = Acquire();
    if (!conn.ok()) return conn.status();
    return Migrate(*conn.value());
  }

  // Logins share commits (see group_commit.h): a login that arrives while
  // another commits waits for the next commit and goes in with every other
  // login queued by then.
  Status CreateSession(const NewSession& s) override {
    PendingSession pending{&s, Status::Ok()};
    logins_.Submit(pending);
    return pending.status;
  }

  Result<LiveSession> FindLive(const std::string& id_hash,
                               int64_t now) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    LiveSession live;
    Result<bool> found = QueryRow(
        c, kFindLive, "find session",
        [&](const Statement& st) {
          live = {st.Text(0), st.Text(1), st.OptionalText(2), st.Text(3),
                  st.Int(4),  st.Int(5),  st.Int(6)};
        },
        Blob{id_hash}, now);
    if (!found.ok()) return found.status();
    if (!found.value()) return InvalidSessionStatus();
    return live;
  }

  Status Touch(const std::string& id_hash, int64_t last_seen_at,
               int64_t expires_at) override {
    MutexLock writer(write_mutex_);
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    return Run(*conn.value(), kTouch, "touch session", Blob{id_hash},
               last_seen_at, expires_at);
  }

  Result<int64_t> Revoke(const std::string& id_hash) override {
    return WriteInTransaction(kRevoke, "revoke session", Blob{id_hash});
  }

  Result<int64_t> RevokeUser(const std::string& appid,
                             const std::string& openid) override {
    if (appid.empty()) {
      return WriteInTransaction(kRevokeUserEverywhere, "revoke user", openid);
    }
    return WriteInTransaction(kRevokeUserInApp, "revoke user", appid, openid);
  }

  Result<int64_t> RevokeAll() override {
    return WriteInTransaction(kRevokeAll, "revoke all");
  }

  Result<int64_t> SweepExpired(int64_t now, int64_t max_rows) override {
    return WriteInTransaction(kSweep, "sweep", now, max_rows);
  }

  Result<StoreStats> Stats(int64_t now) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    StoreStats stats;
    Status counted = Count(c, kCountSessions, &stats.sessions);
    if (counted.ok()) counted = Count(c, kCountLive, &stats.live_sessions, now);
    if (counted.ok()) counted = Count(c, kCountUsers, &stats.users);
    if (!counted.ok()) return counted;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      struct stat info;
      if (::stat((options_.path + suffix).c_str(), &info) == 0) {
        stats.database_bytes += info.st_size;
      }
    }
    return stats;
  }

  Result<UserRecord> GetUser(const std::string& appid,
                             const std::string& openid, int64_t now) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    // One read transaction: the user and its ban from one snapshot.
    Status begun = Exec(c, kBeginRead, "begin read");
    if (!begun.ok()) return begun;
    Result<UserRecord> user = [&]() -> Result<UserRecord> {
      UserRecord record;
      record.appid = appid;
      record.openid = openid;
      Result<bool> found = QueryRow(
          c, kGetUser, "get user",
          [&](const Statement& st) {
            record.unionid = st.OptionalText(0);
            record.created_at = st.Int(1);
            if (st.Int(3) > 0) record.last_login_at = st.Int(2);
            record.live_sessions = st.Int(4);
          },
          appid, openid, now);
      if (!found.ok()) return found.status();
      if (!found.value()) return Status(ErrorCode::kNotFound, "no such user");
      Result<bool> banned = QueryRow(
          c, kGetBan, "get ban",
          [&](const Statement& st) {
            record.ban =
                Ban{appid, openid, st.Text(0), st.Int(1), st.OptionalInt(2)};
          },
          appid, openid, now);
      if (!banned.ok()) return banned.status();
      return record;
    }();
    Exec(c, kCommit, "end read");  // a read: ending it cannot lose anything
    return user;
  }

  Result<std::vector<SessionSummary>> ListSessions(const std::string& appid,
                                                   const std::string& openid,
                                                   int64_t now) override {
    return ReadAll<SessionSummary>(
        kListSessions, "list sessions",
        [](const Statement& st) {
          return SessionSummary{st.Bytes(0), st.Int(1), st.Int(2), st.Int(3)};
        },
        appid, openid, now);
  }

  Result<int64_t> PutBan(const Ban& ban) override {
    int64_t ended = 0;
    Status status = Write([&](Connection& c) -> Status {
      Status done =
          Run(c, kEnsureUser, "ban user", ban.appid, ban.openid, ban.since);
      if (done.ok()) {
        done = Run(c, kPutBan, "ban user", ban.appid, ban.openid, ban.reason,
                   ban.since, ban.until);
      }
      if (done.ok()) {
        done = Run(c, kRevokeUserInApp, "ban user", ban.appid, ban.openid);
      }
      if (done.ok()) ended = sqlite3_changes64(c.db);
      return done;
    });
    if (!status.ok()) return status;
    return ended;
  }

  Status RemoveBan(const std::string& appid, const std::string& openid,
                   int64_t now) override {
    bool was_in_force = false;
    Status status = Write([&](Connection& c) -> Status {
      Status done = Run(c, kDeleteBanInForce, "unban user", appid, openid, now);
      if (!done.ok()) return done;
      was_in_force = sqlite3_changes(c.db) > 0;
      return Run(c, kDeleteBan, "unban user", appid, openid);
    });
    if (!status.ok()) return status;
    if (!was_in_force)
      return Status(ErrorCode::kNotFound, "the user is not banned");
    return Status::Ok();
  }

  Result<std::vector<Ban>> ListBans(const std::string& appid,
                                    int64_t now) override {
    return ReadAll<Ban>(
        kListBans, "list bans",
        [&](const Statement& st) {
          return Ban{appid, st.Text(0), st.Text(1), st.Int(2),
                     st.OptionalInt(3)};
        },
        appid, now);
  }

  Result<int64_t> SweepUsers(int64_t now, int64_t last_login_before,
                             int64_t max_rows) override {
    int64_t deleted = 0;
    Status status = Write([&](Connection& c) -> Status {
      Status done = Run(c, kSweepLapsedBans, "sweep bans", now);
      if (!done.ok()) return done;
      done =
          Run(c, kSweepUsers, "sweep users", now, last_login_before, max_rows);
      if (done.ok()) deleted = sqlite3_changes64(c.db);
      return done;
    });
    if (!status.ok()) return status;
    return deleted;
  }

  Result<AccessToken> GetAccessToken(const std::string& appid) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    AccessToken token;
    token.appid = appid;
    Result<bool> found = QueryRow(
        *conn.value(), kGetToken, "get access token",
        [&](const Statement& st) {
          token.token = st.Text(0);
          token.expires_at = st.Int(1);
        },
        appid);
    if (!found.ok()) return found.status();
    if (!found.value()) {
      return Status(ErrorCode::kNotFound,
                    "no access token cached for " + appid);
    }
    return token;
  }

  Status PutAccessToken(const AccessToken& token) override {
    Result<int64_t> written =
        WriteInTransaction(kPutToken, "put access token", token.appid,
                           token.token, token.expires_at);
    return written.ok() ? Status::Ok() : written.status();
  }

  Result<bool> TryLockTokenRefresh(const std::string& appid,
                                   const std::string& owner, int64_t now_ms,
                                   int64_t lease_ms) override {
    bool taken = false;
    Status status = Write([&](Connection& c) -> Status {
      Status done = Run(c, kEnsureTokenRow, "token lease", appid);
      if (!done.ok()) return done;
      done = Run(c, kTakeLease, "token lease", appid, owner, now_ms, lease_ms);
      if (done.ok()) taken = sqlite3_changes(c.db) == 1;
      return done;
    });
    if (!status.ok()) return status;
    return taken;
  }

  Status UnlockTokenRefresh(const std::string& appid,
                            const std::string& owner) override {
    Result<int64_t> released =
        WriteInTransaction(kReleaseLease, "release token lease", appid, owner);
    return released.ok() ? Status::Ok() : released.status();
  }

  Result<std::vector<StoredSigningKey>> ListSigningKeys(int64_t now) override {
    return ReadAll<StoredSigningKey>(
        kListSigningKeys, "list signing keys",
        [](const Statement& st) {
          return StoredSigningKey{st.Text(0), st.Text(1), st.Text(2),
                                  st.Int(3),  st.Int(4),  st.Int(5)};
        },
        now);
  }

  Result<bool> ReplaceSigningKey(const std::string& expected_kid,
                                 const StoredSigningKey& key,
                                 int64_t previous_verify_until) override {
    bool replaced = false;
    Status status = Write([&](Connection& c) -> Status {
      std::string current;
      Result<bool> found =
          QueryRow(c, kCurrentSigningKey, "replace signing key",
                   [&](const Statement& st) { current = st.Text(0); });
      if (!found.ok()) return found.status();
      if (current != expected_kid) return Status::Ok();
      Status done = Run(c, kRetireSigningKey, "retire signing key",
                        key.created_at, previous_verify_until);
      if (done.ok()) {
        done = Run(c, kDropSigningKeys, "drop signing keys", key.created_at);
      }
      if (done.ok()) {
        done = Run(c, kInsertSigningKey, "save signing key", key.kid,
                   key.algorithm, key.private_key, key.created_at);
      }
      replaced = done.ok();
      return done;
    });
    if (!status.ok()) return status;
    return replaced;
  }

  // See RewriteUserSessionKeys in sqlite_store.h.
  Result<RewriteCounts> RewriteUserSessionKeys(const SessionKeyRewrite& rewrite,
                                               int64_t batch_rows) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    RewriteCounts counts;
    UserKey after;  // ("", "") sorts before every user
    bool more = true;
    while (more) {
      Status status = InTransaction(c, [&]() -> Status {
        return RewriteBatch(c, rewrite, batch_rows, &after, &more, &counts);
      });
      if (!status.ok()) return status;
    }
    return counts;
  }

  Status ExportLiveSessions(int64_t now, size_t batch_size,
                            const SessionSink& sink) override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    Status begun = Exec(c, kBeginRead, "begin export");
    if (!begun.ok()) return begun;
    Status status = [&]() -> Status {
      std::string after;  // the empty blob sorts before every id_hash
      while (true) {
        std::vector<ExportedSession> batch;
        Status read = ReadExportBatch(c, now, after, batch_size, &batch);
        if (!read.ok()) return read;
        if (batch.empty()) return Status::Ok();
        after = batch.back().id_hash;
        Status sunk = sink(batch);
        if (!sunk.ok()) return sunk;
        if (batch.size() < batch_size) return Status::Ok();
      }
    }();
    // A read transaction: ending it cannot lose anything.
    Exec(c, status.ok() ? kCommit : kRollback, "end export");
    return status;
  }

  Result<std::vector<AccessToken>> ExportAccessTokens(int64_t now) override {
    return ReadAll<AccessToken>(
        kExportTokens, "export access tokens",
        [](const Statement& st) {
          return AccessToken{st.Text(0), st.Text(1), st.Int(2)};
        },
        now);
  }

  Status Ping() override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    return Exec(*conn.value(), kPing, "ping");
  }

  Status Checkpoint() override {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    // TRUNCATE: copy every frame into the database and cut the -wal file to
    // zero bytes, so the database file alone holds everything. Waits up to
    // busy_timeout_ms for readers and writers to finish; SQLITE_BUSY after.
    int rc = sqlite3_wal_checkpoint_v2(
        c.db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    if (rc != SQLITE_OK) return StoreError(rc, "checkpoint", c.db);
    return Status::Ok();
  }

 private:
  // Checkpoints: SQLite's automatic checkpoint (every 1000 WAL pages) runs
  // inside the commit that crossed the mark, in a request thread, holding
  // the write lock while it copies pages and fsyncs; every login queued
  // behind it waited. Here a commit that leaves the WAL at or past
  // checkpoint_frames only wakes a background thread, which checkpoints on
  // its own connection while logins go on. Called by SQLite after each
  // commit on a connection of this store.
  static int OnWalCommit(void* arg, sqlite3*, const char*, int frames) {
    auto* store = static_cast<SqliteStore*>(arg);
    if (frames >= store->options_.checkpoint_frames) store->RequestCheckpoint();
    return SQLITE_OK;
  }

  void RequestCheckpoint() {
    MutexLock lock(checkpoint_mutex_);
    if (checkpoint_stopping_) return;
    checkpoint_wanted_ = true;
    if (!checkpointer_.joinable()) {
      checkpointer_ = std::thread([this] { CheckpointLoop(); });
    }
    checkpoint_cv_.notify_one();
  }

  void CheckpointLoop() {
    std::unique_ptr<Connection> conn;  // its own: never one lookups need
    MutexLock lock(checkpoint_mutex_);
    while (true) {
      lock.Wait(checkpoint_cv_, [this]() REQUIRES(checkpoint_mutex_) {
        return checkpoint_wanted_ || checkpoint_stopping_;
      });
      if (checkpoint_stopping_) return;
      checkpoint_wanted_ = false;
      lock.Unlock();
      if (!conn) {
        auto opened = OpenConnection();
        if (opened.ok()) conn = std::move(opened).value();
      }
      // A failure (a full disk) leaves the frames in the WAL, where readers
      // still find them; the next commit past the mark asks again.
      if (conn) CheckpointInBackground(*conn);
      lock.Lock();
    }
  }

  // PASSIVE copies what it can without blocking anyone. Under steady logins
  // new frames arrive meanwhile, and a WAL that is never wholly copied is
  // never restarted from its beginning, so it would only grow. So a second
  // pass then copies the frames committed during the first with in-process
  // writers held back; once it has copied everything, the next commit
  // starts the WAL over.
  void CheckpointInBackground(Connection& c) {
    int rc = sqlite3_wal_checkpoint_v2(c.db, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       nullptr, nullptr);
    if (rc != SQLITE_OK) return;
    MutexLock writer(write_mutex_);
    sqlite3_wal_checkpoint_v2(c.db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
  }

  struct PendingSession {
    const NewSession* session;
    Status status;  // set by CommitSessions
  };

  // One count(*) for Stats; a count always answers a row.
  template <typename... Args>
  static Status Count(Connection& c, const char* sql, int64_t* out,
                      const Args&... args) {
    Result<bool> found = QueryRow(
        c, sql, "stats", [&](const Statement& st) { *out = st.Int(0); },
        args...);
    if (!found.ok()) return found.status();
    if (!found.value()) return StoreError(SQLITE_DONE, "stats", c.db);
    return Status::Ok();
  }

  struct UserKey {
    std::string appid, openid;
  };

  // One batch of RewriteUserSessionKeys, inside its transaction: up to
  // `batch_rows` users after `*after`, each passed through `rewrite`.
  // Advances `*after` and says in `*more` whether a full batch was read.
  static Status RewriteBatch(Connection& c, const SessionKeyRewrite& rewrite,
                             int64_t batch_rows, UserKey* after, bool* more,
                             RewriteCounts* counts) {
    struct Row {
      std::string appid, openid, stored;
    };
    std::vector<Row> rows;
    Status read = ForEachRow(
        c, kUsersAfter, "read users",
        [&](const Statement& st) {
          rows.push_back({st.Text(0), st.Text(1), st.Text(2)});
        },
        after->appid, after->openid, batch_rows);
    if (!read.ok()) return read;
    *more = static_cast<int64_t>(rows.size()) == batch_rows;
    for (const Row& row : rows) {
      Result<std::string> value = rewrite(row.appid, row.openid, row.stored);
      if (!value.ok()) return value.status();
      ++counts->users;
      if (value.value() == row.stored) continue;
      Status written = Run(c, kSetSessionKey, "rewrite user", row.appid,
                           row.openid, value.value());
      if (!written.ok()) return written;
      ++counts->rewritten;
    }
    if (!rows.empty()) *after = {rows.back().appid, rows.back().openid};
    return Status::Ok();
  }

  // Up to `batch_size` live sessions whose id_hash sorts after `after`.
  static Status ReadExportBatch(Connection& c, int64_t now,
                                const std::string& after, size_t batch_size,
                                std::vector<ExportedSession>* batch) {
    return ForEachRow(
        c, kExportSessions, "export sessions",
        [&](const Statement& st) {
          // Columns in the order of ExportedSession's fields.
          batch->push_back({st.Bytes(0), st.Text(1), st.Text(2),
                            st.OptionalText(3), st.Text(4), st.Int(5),
                            st.Int(6), st.Int(7), st.Int(8)});
        },
        now, Blob{after}, static_cast<int64_t>(batch_size));
  }

  // One transaction for the whole batch. Should it fail, each session is
  // retried in its own transaction, so one bad row (a duplicate id) fails
  // only its own login and a fault reports the same error to each.
  void CommitSessions(const std::vector<PendingSession*>& batch) {
    MutexLock writer(write_mutex_);
    auto conn = Acquire();
    if (!conn.ok()) {
      for (PendingSession* p : batch) p->status = conn.status();
      return;
    }
    Connection& c = *conn.value();
    // A banned user's login is refused on its own (nothing written for
    // it); the rest of the batch commits.
    std::vector<bool> refused(batch.size(), false);
    Status all = InTransaction(c, [&]() -> Status {
      for (size_t i = 0; i < batch.size(); ++i) {
        Status one = InsertSession(c, *batch[i]->session);
        if (one.code() == ErrorCode::kUserBanned) {
          batch[i]->status = one;
          refused[i] = true;
          continue;
        }
        if (!one.ok()) return one;
      }
      return Status::Ok();
    });
    if (all.ok() || batch.size() == 1) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (!refused[i] || !all.ok()) batch[i]->status = all;
      }
      return;
    }
    for (PendingSession* p : batch) {
      p->status =
          InTransaction(c, [&] { return InsertSession(c, *p->session); });
    }
  }

  // The ban check, the user's newest session_key, the session, then the
  // per-user cap; inside a transaction. kUserBanned writes nothing.
  static Status InsertSession(Connection& c, const NewSession& s) {
    Result<bool> banned = QueryRow(
        c, kBanInForce, "check ban", [](const Statement&) {}, s.appid, s.openid,
        s.created_at);
    if (!banned.ok()) return banned.status();
    if (banned.value()) {
      return Status(ErrorCode::kUserBanned, "this account is suspended");
    }
    Status done = Run(c, kUpsertUser, "save user", s.appid, s.openid, s.unionid,
                      s.session_key, s.created_at);
    if (!done.ok()) return done;
    done = Run(c, kInsertSession, "save session", Blob{s.id_hash}, s.appid,
               s.openid, s.created_at, s.expires_at);
    if (!done.ok() || s.max_sessions <= 0) return done;
    return Run(c, kCapSessions, "cap sessions", s.appid, s.openid, s.created_at,
               s.max_sessions);
  }

  // SQLite would create the file with the process umask (often 0644). Create
  // it first with 0600 so sessions and keys are readable by the owner only;
  // SQLite gives the -wal and -shm files the same mode as the database.
  Status CreateOwnerOnlyFile() {
    if (options_.path == ":memory:") return Status::Ok();
    int fd = ::open(options_.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::Fault(ErrorCode::kStoreUnavailable,
                           "session store: cannot open " + options_.path +
                               ": " + std::strerror(errno));
    }
    ::close(fd);
    return Status::Ok();
  }

  // A borrowed connection; returned to the pool when the lease ends.
  class Lease {
   public:
    Lease(SqliteStore* store, std::unique_ptr<Connection> conn)
        : store_(store), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&& other) noexcept = default;
    ~Lease() {
      if (conn_) store_->Release(std::move(conn_));
    }
    Connection& operator*() const { return *conn_; }

   private:
    SqliteStore* store_;
    std::unique_ptr<Connection> conn_;
  };

  Result<Lease> Acquire() {
    {
      MutexLock lock(pool_mutex_);
      lock.Wait(pool_available_, [this]() REQUIRES(pool_mutex_) {
        return !idle_.empty() || open_ < options_.max_connections;
      });
      if (!idle_.empty()) {
        std::unique_ptr<Connection> conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
      ++open_;  // reserve the slot; opened outside the lock
    }
    auto opened = OpenConnection();
    if (!opened.ok()) {
      MutexLock lock(pool_mutex_);
      --open_;
      pool_available_.notify_one();
      return opened.status();
    }
    return Lease(this, std::move(opened).value());
  }

  void Release(std::unique_ptr<Connection> conn) {
    MutexLock lock(pool_mutex_);
    idle_.push_back(std::move(conn));
    pool_available_.notify_one();
  }

  Result<std::unique_ptr<Connection>> OpenConnection() {
    auto conn = std::make_unique<Connection>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                SQLITE_OPEN_NOMUTEX;  // one thread per connection
    int rc =
        sqlite3_open_v2(options_.path.c_str(), &conn->db, flags,
                        options_.vfs.empty() ? nullptr : options_.vfs.c_str());
    if (rc != SQLITE_OK) {
      Status error =
          StoreError(rc, ("open " + options_.path).c_str(), conn->db);
      return Status::Fault(ErrorCode::kStoreUnavailable, error.detail());
    }
    sqlite3_extended_result_codes(conn->db, 1);
    sqlite3_busy_timeout(conn->db, options_.busy_timeout_ms);
    // Replaces SQLite's automatic checkpoint, which runs in the committing
    // thread while it holds the write lock (see CheckpointLoop).
    sqlite3_wal_hook(conn->db, &SqliteStore::OnWalCommit, this);
    const std::string pragmas = SqliteConnectionPragmas(options_);
    char* error = nullptr;
    rc = sqlite3_exec(conn->db, pragmas.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      std::string detail = error ? error : sqlite3_errstr(rc);
      sqlite3_free(error);
      return Status::Fault(ErrorCode::kStoreUnavailable,
                           "session store: " + options_.path + ": " + detail);
    }
    return conn;
  }

  template <typename Body>
  Status InTransaction(Connection& c, Body body) {
    Status begun = Exec(c, kBegin, "begin");
    if (!begun.ok()) return begun;
    Status done = body();
    if (done.ok()) done = Exec(c, kCommit, "commit");
    if (!done.ok() && !sqlite3_get_autocommit(c.db)) {
      // Best effort: the error that made us roll back is the one to report.
      Exec(c, kRollback, "rollback");
    }
    return done;
  }

  // Runs `body(c)` in one transaction on a borrowed connection, with the
  // process's other writers held back (see write_mutex_).
  template <typename Body>
  Status Write(Body body) {
    MutexLock writer(write_mutex_);
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    Connection& c = *conn.value();
    return InTransaction(c, [&] { return body(c); });
  }

  // Every row of `sql`, bound to `args`, on a borrowed connection; `make`
  // turns a row into a T.
  template <typename T, typename Make, typename... Args>
  Result<std::vector<T>> ReadAll(const char* sql, const char* what, Make make,
                                 const Args&... args) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    std::vector<T> rows;
    Status listed = ForEachRow(
        *conn.value(), sql, what,
        [&](const Statement& st) { rows.push_back(make(st)); }, args...);
    if (!listed.ok()) return listed;
    return rows;
  }

  // Runs one write statement, bound to `args`, in its own transaction;
  // returns the number of rows it changed.
  template <typename... Args>
  Result<int64_t> WriteInTransaction(const char* sql, const char* what,
                                     const Args&... args) {
    int64_t changed = 0;
    Status status = Write([&](Connection& c) -> Status {
      Status done = Run(c, sql, what, args...);
      if (done.ok()) changed = sqlite3_changes64(c.db);
      return done;
    });
    if (!status.ok()) return status;
    return changed;
  }

  // Applies every embedded migration newer than the database, each in its
  // own transaction together with its row in schema_migrations. Another
  // process may be migrating at the same time: BEGIN IMMEDIATE serialises
  // us, and the version is checked again inside the transaction.
  Status Migrate(Connection& c) {
    char* error = nullptr;
    int rc = sqlite3_exec(c.db,
                          "CREATE TABLE IF NOT EXISTS schema_migrations ("
                          "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                          "applied_at INTEGER NOT NULL)",
                          nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      std::string detail = error ? error : sqlite3_errstr(rc);
      sqlite3_free(error);
      return Status::Fault(ErrorCode::kStoreUnavailable,
                           "session store: " + options_.path + ": " + detail);
    }
    const auto& migrations = sqlite::EmbeddedMigrations();
    int known = migrations.empty() ? 0 : migrations.back().version;
    for (const auto& migration : migrations) {
      Status status = InTransaction(c, [&]() -> Status {
        sqlite3_stmt* raw = nullptr;
        int step = sqlite3_prepare_v2(
            c.db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
            &raw, nullptr);
        if (step != SQLITE_OK) return StoreError(step, "migrate", c.db);
        step = sqlite3_step(raw);
        int64_t current = step == SQLITE_ROW ? sqlite3_column_int64(raw, 0) : 0;
        sqlite3_finalize(raw);
        if (current > known) {
          return Status::Fault(
              ErrorCode::kStoreUnavailable,
              "session store: " + options_.path + " has schema version " +
                  std::to_string(current) +
                  ", newer than this wxsessiond knows (" +
                  std::to_string(known) + "); upgrade wxsessiond");
        }
        if (current >= migration.version) return Status::Ok();
        char* err = nullptr;
        rc = sqlite3_exec(c.db, migration.sql.c_str(), nullptr, nullptr, &err);
        if (rc != SQLITE_OK) {
          std::string detail = err ? err : sqlite3_errstr(rc);
          sqlite3_free(err);
          return Status::Fault(ErrorCode::kStoreUnavailable,
                               "session store: migration " + migration.name +
                                   " failed: " + detail);
        }
        std::string record =
            "INSERT INTO schema_migrations (version, name, applied_at) "
            "VALUES (" +
            std::to_string(migration.version) + ", '" + migration.name +
            "', strftime('%s','now'))";
        rc = sqlite3_exec(c.db, record.c_str(), nullptr, nullptr, nullptr);
        if (rc != SQLITE_OK) return StoreError(rc, "record migration", c.db);
        return Status::Ok();
      });
      if (!status.ok()) return status;
    }
    return Status::Ok();
  }

  const SqliteOptions options_;  // constant after construction
  // Held around every write, before a connection is borrowed. SQLite lets
  // one writer in at a time anyway; without this, in-process writers found
  // the lock taken and slept in SQLite's busy handler (1, 2, 5, 10 ms...),
  // which showed as context switches and 9 ms median logins under load,
  // and writers waiting for the lock held pool connections lookups need.
  // Other processes (the admin CLI) still meet busy_timeout.
  Mutex write_mutex_;
  GroupCommit<PendingSession> logins_{
      [this](const std::vector<PendingSession*>& batch) {
        try {
          CommitSessions(batch);
        } catch (const std::exception& e) {  // bad_alloc: fail, never hang
          for (PendingSession* p : batch) {
            p->status =
                Status::Fault(ErrorCode::kInternal,
                              std::string("session store: ") + e.what());
          }
        }
      }};
  Mutex checkpoint_mutex_;
  std::condition_variable checkpoint_cv_;  // with checkpoint_mutex_
  bool checkpoint_wanted_ GUARDED_BY(checkpoint_mutex_) = false;
  bool checkpoint_stopping_ GUARDED_BY(checkpoint_mutex_) = false;
  std::thread checkpointer_;  // started on the first request
  Mutex pool_mutex_;
  std::condition_variable pool_available_;  // with pool_mutex_
  std::vector<std::unique_ptr<Connection>> idle_ GUARDED_BY(pool_mutex_);
  int open_ GUARDED_BY(pool_mutex_) = 0;  // connections open, idle or lent
};

}  // namespace

Result<std::unique_ptr<StoreExporter>> OpenSqliteExporter(
    const SqliteOptions& options) {
  struct stat info;
  if (::stat(options.path.c_str(), &info) != 0) {
    return Status::Fault(ErrorCode::kStoreUnavailable,
                         "session store: cannot open " + options.path + ": " +
                             std::strerror(errno));
  }
  auto store = std::make_unique<SqliteStore>(options);
  Status status = store->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<StoreExporter>(std::move(store));
}

std::string SqliteConnectionPragmas(const SqliteOptions& options) {
  const std::string synchronous =
      options.durability == Durability::kFull ? "FULL" : "NORMAL";
  return
      // WAL: readers never block the writer nor each other.
      "PRAGMA journal_mode = WAL;"
      // NORMAL: a commit is durable across a process crash; FULL also
      // across power loss, at one fsync per commit.
      "PRAGMA synchronous = " +
      synchronous +
      ";"
      // Sessions reference users by value; nothing relies on FK checks.
      "PRAGMA foreign_keys = OFF;"
      // Temporary b-trees (sorting) stay in memory.
      "PRAGMA temp_store = MEMORY;"
      // A WAL that grew past this (a long reader held a checkpoint back) is
      // cut back to it when the WAL next starts over.
      "PRAGMA journal_size_limit = 67108864;" +
      // A size cap: writes past it fail with SQLITE_FULL, as on a full disk.
      (options.max_pages > 0 ? "PRAGMA max_page_count = " +
                                   std::to_string(options.max_pages) + ";"
                             : std::string());
}

Result<RewriteCounts> RewriteUserSessionKeys(const SqliteOptions& options,
                                             const SessionKeyRewrite& rewrite,
                                             int64_t batch_rows) {
  if (batch_rows < 1) batch_rows = 1;
  SqliteStore store(options);
  Status status = store.Init();
  if (!status.ok()) return status;
  return store.RewriteUserSessionKeys(rewrite, batch_rows);
}

Result<std::unique_ptr<SessionStore>> OpenSqliteStore(
    const SqliteOptions& options) {
  // SQLite's memory statistics take one process-wide mutex around every
  // allocation; with many request threads that mutex showed up as futex
  // waits in a lookup profile. Must precede sqlite3_initialize; a later call
  // fails harmlessly (SQLITE_MISUSE) and leaves the statistics on.
  static std::once_flag configured;
  std::call_once(configured,
                 [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  auto store = std::make_unique<SqliteStore>(options);
  Status status = store->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<SessionStore>(std::move(store));
}

}  // namespace wxsession
