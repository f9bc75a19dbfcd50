// SqliteStore: the default SessionStore, one SQLite file in WAL mode.
//
// A bounded pool of connections, each with cached prepared statements, serves
// every thread; writes use BEGIN IMMEDIATE and a busy timeout. The file is created readable by its owner only. Migrations
// (migrations/*.sql, embedded) are applied in order at open, each in a
// transaction, and recorded in table schema_migrations.
//
// Thread-safety: all SessionStore methods may be called concurrently.
#ifndef WXSESSION_SQLITE_SQLITE_STORE_H_
#define WXSESSION_SQLITE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "wxsession/config.h"
#include "wxsession/store.h"
#include "wxsession/store_migration.h"

namespace wxsession {

struct SqliteOptions {
  std::string path;
  Durability durability = Durability::kNormal;
  int busy_timeout_ms = 5000;  // how long a writer waits for the lock
  // Connections open at most. SQLite work is CPU-bound, so a few per core
  // keep every core busy; more only add page caches.
  int max_connections = 8;
};

// Opens (creating if needed) and migrates the database. Errors:
// kStoreUnavailable naming the path when it cannot be opened or migrated.
Result<std::unique_ptr<SessionStore>> OpenSqliteStore(
    const SqliteOptions& options);

// Opens an existing database for `wxsessiond migrate-store`. Errors:
// kStoreUnavailable naming the path when the file does not exist (exporting
// never creates an empty database) or cannot be opened.
Result<std::unique_ptr<StoreExporter>> OpenSqliteExporter(
    const SqliteOptions& options);

// The PRAGMA statements run on every new connection (exposed for tests).
std::string SqliteConnectionPragmas(const SqliteOptions& options);

}  // namespace wxsession

#endif  // WXSESSION_SQLITE_SQLITE_STORE_H_
