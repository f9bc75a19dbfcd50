// SqliteStore: the default SessionStore, one SQLite file in WAL mode.
//
// A bounded pool of connections, each with cached prepared statements, serves
// every thread; writes use BEGIN IMMEDIATE and a busy timeout, concurrent
// logins share commits, and a background thread checkpoints the WAL. The
// file is created readable by its owner only. Migrations
// (migrations/*.sql, embedded) are applied in order at open, each in a
// transaction, and recorded in table schema_migrations.
//
// Thread-safety: all SessionStore methods may be called concurrently.
#ifndef WXSESSION_SQLITE_SQLITE_STORE_H_
#define WXSESSION_SQLITE_SQLITE_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "store/migration.h"
#include "wxsession/config.h"
#include "wxsession/store.h"

namespace wxsession {

struct SqliteOptions {
  std::string path;
  Durability durability = Durability::kNormal;
  int busy_timeout_ms = 5000;  // how long a writer waits for the lock
  // Pages the database may grow to (PRAGMA max_page_count, set on every
  // connection); 0 = no cap. A write past it fails like a full disk.
  int64_t max_pages = 0;
  // SQLite VFS to open the file with; empty = the default. Tests register a
  // fault-injecting VFS here to play a full or read-only disk.
  std::string vfs;
  // Connections open at most. SQLite work is CPU-bound, so a few per core
  // keep every core busy; more only add page caches.
  int max_connections = 8;
  // WAL pages after which a background thread checkpoints (copies them into
  // the database file so the WAL can start over). Larger runs fewer, longer
  // checkpoints and lets a page changed many times be copied once.
  int checkpoint_frames = 10000;  // about 40 MiB of WAL at 4 KiB pages
};

// Opens (creating if needed) and migrates the database. Errors:
// kStoreUnavailable naming the path when it cannot be opened or migrated.
Result<std::unique_ptr<SessionStore>> OpenSqliteStore(
    const SqliteOptions& options);

// What `wxsessiond rekey` does to one stored session_key: the value to store
// instead (the same value leaves the row alone), or an error that stops the
// run.
using SessionKeyRewrite = std::function<Result<std::string>(
    const std::string& appid, const std::string& openid,
    const std::string& stored)>;

struct RewriteCounts {
  int64_t users = 0;      // rows visited
  int64_t rewritten = 0;  // rows whose value changed
};

// Passes every users row through `rewrite`, `batch_rows` rows per
// BEGIN IMMEDIATE transaction, so a running server's logins wait for one
// batch at most and never see a half-done batch. A run stopped by an error
// keeps the batches already committed (every row stays readable by a keyring
// holding both keys). Errors: the first error of `rewrite`, kStoreUnavailable.
Result<RewriteCounts> RewriteUserSessionKeys(const SqliteOptions& options,
                                             const SessionKeyRewrite& rewrite,
                                             int64_t batch_rows = 500);

// Opens an existing database for `wxsessiond migrate-store`. Errors:
// kStoreUnavailable naming the path when the file does not exist (exporting
// never creates an empty database) or cannot be opened.
Result<std::unique_ptr<StoreExporter>> OpenSqliteExporter(
    const SqliteOptions& options);

// The PRAGMA statements run on every new connection (exposed for tests).
std::string SqliteConnectionPragmas(const SqliteOptions& options);

}  // namespace wxsession

#endif  // WXSESSION_SQLITE_SQLITE_STORE_H_
