// Online backup of a wxsessiond SQLite database.
//
// Copies the database with SQLite's online backup API while servers and
// admin commands keep reading and writing it: the copy is one consistent
// snapshot (a single read transaction spans the whole copy, and WAL mode
// lets writers carry on meanwhile). The copy is written to a temporary file
// beside `out_path`, checked, made self-contained (rollback journal, no
// -wal), flushed to disk and only then renamed to `out_path`, so `out_path`
// never names a partial copy. It holds session hashes and session_keys, so
// it is created readable by its owner only (0600).
//
// Thread-safety: a free function; it opens its own connections.
#ifndef WXSESSION_SQLITE_SQLITE_BACKUP_H_
#define WXSESSION_SQLITE_SQLITE_BACKUP_H_

#include <cstdint>
#include <string>

#include "wxsession/status.h"

namespace wxsession {

struct BackupReport {
  int64_t bytes = 0;     // size of the finished copy
  int64_t sessions = 0;  // rows in its sessions table, expired ones included
};

// Copies `database` to `out_path`. Errors: kInvalidRequest when out_path
// already exists or its directory does not; kStoreUnavailable when the
// database cannot be opened or read, or the copy cannot be written or fails
// its integrity check (nothing is left at out_path then).
Result<BackupReport> BackupSqliteDatabase(const std::string& database,
                                          const std::string& out_path,
                                          int busy_timeout_ms = 5000);

}  // namespace wxsession

#endif  // WXSESSION_SQLITE_SQLITE_BACKUP_H_
