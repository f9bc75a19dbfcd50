// Statement helpers for SqliteStore: the prepare, bind, step, check and
// reset that every query repeats, written once.
//
// Each Connection caches its prepared statements (keyed by the address of
// the static SQL text), so a query prepares once per connection and later
// calls only bind and step. The helpers bind their trailing arguments to
// ?1, ?2, ... in order: std::string binds TEXT, Blob binds a BLOB, integers
// bind INTEGER, and an empty std::optional binds NULL. A step that fails
// becomes StoreError(rc, what, db), so every error names its operation.
//
// Thread-safety: a Connection and its statements are used by one thread at
// a time.
#ifndef WXSESSION_SQLITE_STATEMENT_H_
#define WXSESSION_SQLITE_STATEMENT_H_

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "wxsession/status.h"

namespace wxsession {
namespace sqlite {

// Maps an SQLite result code onto the closed error set. Conditions an
// operator can fix or that pass (full disk, read-only file, lock held too
// long, I/O errors) are kStoreUnavailable; anything else is a bug.
Status StoreError(int rc, const char* what, sqlite3* db);

// One connection and its prepared statements.
struct Connection {
  sqlite3* db = nullptr;
  // Keyed by the address of the SQL literal: every statement text is a
  // static constant, so the pointer identifies it.
  std::unordered_map<const char*, sqlite3_stmt*> statements;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();
};

// Bytes to bind as a BLOB instead of TEXT (session id hashes).
struct Blob {
  std::string_view bytes;
};

// A borrowed cached statement, reset (and its bindings cleared) when the
// scope ends so the next caller finds it ready.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void Bind(int index, const std::string& text);
  void Bind(int index, Blob blob);
  void Bind(int index, int64_t value);
  template <typename T>
  void Bind(int index, const std::optional<T>& value) {
    if (value) {
      Bind(index, *value);
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }
  template <typename... Args>
  void BindAll(const Args&... args) {
    int index = 0;
    (Bind(++index, args), ...);
  }
  int Step() { return sqlite3_step(stmt_); }

  std::string Text(int column) const;
  std::string Bytes(int column) const;  // a BLOB column
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  // Column `column`, or nullopt where it is NULL.
  std::optional<std::string> OptionalText(int column) const;
  std::optional<int64_t> OptionalInt(int column) const;

 private:
  sqlite3_stmt* stmt_;
};

// The connection's statement for `sql`, prepared on first use and kept.
// Errors: StoreError(rc, "prepare", db).
Result<sqlite3_stmt*> Prepare(Connection& c, const char* sql);

// Runs a statement that answers no rows (a write). Errors: any step that
// does not end with SQLITE_DONE, as StoreError(rc, what, db).
template <typename... Args>
Status Run(Connection& c, const char* sql, const char* what,
           const Args&... args) {
  auto stmt = Prepare(c, sql);
  if (!stmt.ok()) return stmt.status();
  Statement st(stmt.value());
  st.BindAll(args...);
  int rc = st.Step();
  if (rc != SQLITE_DONE) return StoreError(rc, what, c.db);
  return Status::Ok();
}

// Steps once: calls `row(st)` on the first row if there is one and says
// whether there was. Errors: a step that answers neither a row nor DONE.
template <typename Row, typename... Args>
Result<bool> QueryRow(Connection& c, const char* sql, const char* what,
                      Row&& row, const Args&... args) {
  auto stmt = Prepare(c, sql);
  if (!stmt.ok()) return stmt.status();
  Statement st(stmt.value());
  st.BindAll(args...);
  int rc = st.Step();
  if (rc == SQLITE_DONE) return false;
  if (rc != SQLITE_ROW) return StoreError(rc, what, c.db);
  row(static_cast<const Statement&>(st));
  return true;
}

// Calls `row(st)` on every row. Errors: a step that answers neither.
template <typename Row, typename... Args>
Status ForEachRow(Connection& c, const char* sql, const char* what, Row&& row,
                  const Args&... args) {
  auto stmt = Prepare(c, sql);
  if (!stmt.ok()) return stmt.status();
  Statement st(stmt.value());
  st.BindAll(args...);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) row(static_cast<const Statement&>(st));
  if (rc != SQLITE_DONE) return StoreError(rc, what, c.db);
  return Status::Ok();
}

// Runs a statement whose rows, if any, do not matter (BEGIN, COMMIT, a
// probe). Errors: a step that answers neither a row nor DONE.
template <typename... Args>
Status Exec(Connection& c, const char* sql, const char* what,
            const Args&... args) {
  Result<bool> done = QueryRow(
      c, sql, what, [](const Statement&) {}, args...);
  return done.ok() ? Status::Ok() : done.status();
}

}  // namespace sqlite
}  // namespace wxsession

#endif  // WXSESSION_SQLITE_STATEMENT_H_
