#include "store/sqlite/sqlite_backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace wxsession {
namespace {

Status Unavailable(const std::string& what) {
  return Status::Fault(ErrorCode::kStoreUnavailable, "backup: " + what);
}

std::string SqliteMessage(sqlite3* db, int rc) {
  return db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
}

// Closes a connection when the scope ends.
struct Connection {
  sqlite3* db = nullptr;
  ~Connection() {
    if (db) sqlite3_close_v2(db);
  }
};

// Removes the temporary copy unless told the copy is finished.
struct PartialFile {
  std::string path;
  bool keep = false;
  ~PartialFile() {
    if (keep) return;
    ::unlink(path.c_str());
    ::unlink((path + "-journal").c_str());
    ::unlink((path + "-wal").c_str());
    ::unlink((path + "-shm").c_str());
  }
};

// Runs one statement that answers a single text value.
Result<std::string> QueryText(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return Unavailable(sql + (": " + SqliteMessage(db, rc)));
  rc = sqlite3_step(stmt);
  std::string value;
  if (rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    value = text ? reinterpret_cast<const char*>(text) : "";
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) {
    return Unavailable(sql + (": " + SqliteMessage(db, rc)));
  }
  return value;
}

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0)
    return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0)
    return Unavailable("cannot flush " + path + ": " + std::strerror(saved));
  return Status::Ok();
}

// Creates the temporary copy's file, refusing to reuse one.
Status CreatePartial(PartialFile& partial, const std::string& out_path) {
  int fd = ::open(partial.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  0600);
  if (fd < 0) {
    int saved = errno;
    partial.keep = true;  // not ours to remove
    if (saved == ENOENT) {
      return Status(
          ErrorCode::kInvalidRequest,
          "backup: directory " + DirectoryOf(out_path) + " does not exist");
    }
    return Unavailable("cannot create " + partial.path + ": " +
                       std::strerror(saved));
  }
  ::close(fd);
  return Status::Ok();
}

// Copies every page of `source` into `copy` as one snapshot.
Status CopyPages(sqlite3* source, sqlite3* copy, int busy_timeout_ms) {
  sqlite3_backup* backup = sqlite3_backup_init(copy, "main", source, "main");
  if (backup == nullptr) {
    return Unavailable("cannot start: " + SqliteMessage(copy, 0));
  }
  // -1: every page in one step, so one read transaction spans the whole
  // copy and it is a single snapshot. BUSY/LOCKED only while another
  // connection holds an exclusive lock (a checkpoint truncating the WAL):
  // try again until the busy timeout.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(busy_timeout_ms);
  int rc = SQLITE_OK;
  do {
    rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    sqlite3_sleep(50);  // milliseconds between attempts
  } while (std::chrono::steady_clock::now() < deadline);
  int finish_rc = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    return Unavailable("copy failed: " + std::string(sqlite3_errstr(rc)));
  }
  if (finish_rc != SQLITE_OK) {
    return Unavailable("copy failed: " + SqliteMessage(copy, finish_rc));
  }
  return Status::Ok();
}

// Makes the copy one self-contained file and checks it; answers the number
// of sessions it holds.
Result<int64_t> CheckCopy(sqlite3* copy) {
  // The copy inherits WAL mode; a backup is one self-contained file.
  Result<std::string> mode = QueryText(copy, "PRAGMA journal_mode = DELETE");
  if (!mode.ok()) return mode.status();
  Result<std::string> check = QueryText(copy, "PRAGMA quick_check");
  if (!check.ok()) return check.status();
  if (check.value() != "ok") {
    return Unavailable("the copy failed its integrity check: " + check.value());
  }
  Result<std::string> sessions =
      QueryText(copy, "SELECT count(*) FROM sessions");
  if (!sessions.ok()) return sessions.status();
  return static_cast<int64_t>(std::stoll(sessions.value()));
}

// Flushes the finished copy and renames it to `out_path`, durably.
Status Publish(PartialFile& partial, const std::string& out_path) {
  if (Status synced = SyncPath(partial.path, O_RDONLY); !synced.ok()) {
    return synced;
  }
  if (::rename(partial.path.c_str(), out_path.c_str()) != 0) {
    return Unavailable("cannot rename the copy to " + out_path + ": " +
                       std::strerror(errno));
  }
  partial.keep = true;
  // The rename is durable only once the directory is flushed.
  return SyncPath(DirectoryOf(out_path), O_RDONLY | O_DIRECTORY);
}

}  // namespace

Result<BackupReport> BackupSqliteDatabase(const std::string& database,
                                          const std::string& out_path,
                                          int busy_timeout_ms) {
  struct stat info;
  if (::lstat(out_path.c_str(), &info) == 0) {
    return Status(ErrorCode::kInvalidRequest,
                  "backup: " + out_path +
                      " already exists; choose a new name (a backup never "
                      "overwrites a file)");
  }
  if (::stat(database.c_str(), &info) != 0) {
    return Unavailable("cannot open database " + database + ": " +
                       std::strerror(errno));
  }

  PartialFile partial{out_path + ".partial-" + std::to_string(::getpid())};
  if (Status created = CreatePartial(partial, out_path); !created.ok()) {
    return created;
  }

  Connection source;
  // Read-write without CREATE: a missing file is an error, and SQLite may
  // need to recover the WAL of a server that crashed.
  int rc = sqlite3_open_v2(database.c_str(), &source.db, SQLITE_OPEN_READWRITE,
                           nullptr);
  if (rc != SQLITE_OK) {
    return Unavailable("cannot open database " + database + ": " +
                       SqliteMessage(source.db, rc));
  }
  sqlite3_busy_timeout(source.db, busy_timeout_ms);

  Connection copy;
  rc = sqlite3_open_v2(partial.path.c_str(), &copy.db, SQLITE_OPEN_READWRITE,
                       nullptr);
  if (rc != SQLITE_OK) {
    return Unavailable("cannot open " + partial.path + ": " +
                       SqliteMessage(copy.db, rc));
  }
  if (Status copied = CopyPages(source.db, copy.db, busy_timeout_ms);
      !copied.ok()) {
    return copied;
  }
  Result<int64_t> sessions = CheckCopy(copy.db);
  if (!sessions.ok()) return sessions.status();
  BackupReport report;
  report.sessions = sessions.value();

  // Closed before renaming, so the renamed file is complete.
  rc = sqlite3_close_v2(copy.db);
  copy.db = nullptr;
  if (rc != SQLITE_OK) return Unavailable("cannot close the copy");
  if (Status published = Publish(partial, out_path); !published.ok()) {
    return published;
  }
  if (::stat(out_path.c_str(), &info) == 0) report.bytes = info.st_size;
  return report;
}

}  // namespace wxsession
