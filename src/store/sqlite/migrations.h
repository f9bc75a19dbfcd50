// The schema migrations compiled into the binary (migrations/*.sql).
#ifndef WXSESSION_SQLITE_MIGRATIONS_H_
#define WXSESSION_SQLITE_MIGRATIONS_H_

#include <string>
#include <vector>

namespace wxsession::sqlite {

struct Migration {
  int version;       // the file's numeric prefix
  std::string name;  // the file name
  std::string sql;
};

// Sorted by version. Generated at build time.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace wxsession::sqlite

#endif  // WXSESSION_SQLITE_MIGRATIONS_H_
