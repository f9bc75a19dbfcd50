#include "store/sqlite/statement.h"

namespace wxsession {
namespace sqlite {

Status StoreError(int rc, const char* what, sqlite3* db) {
  int primary = rc & 0xff;
  std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = std::string("session store: ") + what + ": " + detail;
  switch (primary) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Fault(ErrorCode::kStoreUnavailable, message);
    default:
      return Status::Fault(ErrorCode::kInternal, message);
  }
}

Connection::~Connection() {
  for (auto& entry : statements) sqlite3_finalize(entry.second);
  if (db) sqlite3_close_v2(db);
}

Statement::~Statement() {
  if (stmt_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::Bind(int index, const std::string& text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
}

void Statement::Bind(int index, Blob blob) {
  sqlite3_bind_blob(stmt_, index, blob.bytes.data(),
                    static_cast<int>(blob.bytes.size()), SQLITE_TRANSIENT);
}

void Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
}

std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  int bytes = sqlite3_column_bytes(stmt_, column);
  return text ? std::string(reinterpret_cast<const char*>(text), bytes)
              : std::string();
}

std::string Statement::Bytes(int column) const {
  const void* bytes = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  return bytes ? std::string(static_cast<const char*>(bytes), size)
               : std::string();
}

std::optional<std::string> Statement::OptionalText(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Text(column);
}

std::optional<int64_t> Statement::OptionalInt(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int(column);
}

Result<sqlite3_stmt*> Prepare(Connection& c, const char* sql) {
  auto found = c.statements.find(sql);
  if (found != c.statements.end()) return found->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(c.db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                              nullptr);
  if (rc != SQLITE_OK) return StoreError(rc, "prepare", c.db);
  c.statements.emplace(sql, stmt);
  return stmt;
}

}  // namespace sqlite
}  // namespace wxsession
