// Seeds a wxsessiond SQLite database directly (not through HTTP), for the
// benchmarks: N live sessions and M expired ones, and a file with a sample of
// live session ids for wrk to rotate through.
//
// usage: bench_seed DB --live N [--expired M] [--tokens FILE] [--sample K]
//
// Session i's id is base64url(SHA-256("bench-session-" + i)), so it has the
// shape of a real id; four sessions share each user.
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "wxsession/crypto.h"

namespace {

int Fail(const char* what, sqlite3* db) {
  std::fprintf(stderr, "bench_seed: %s: %s\n", what,
               db ? sqlite3_errmsg(db) : "");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_seed DB --live N [--expired M] [--tokens FILE] "
                 "[--sample K]\n");
    return 2;
  }
  std::string path = argv[1];
  long long live = 0, expired = 0, sample = 10000;
  std::string tokens_path;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--live")
      live = std::atoll(argv[i + 1]);
    else if (flag == "--expired")
      expired = std::atoll(argv[i + 1]);
    else if (flag == "--tokens")
      tokens_path = argv[i + 1];
    else if (flag == "--sample")
      sample = std::atoll(argv[i + 1]);
  }
  {
    // Creates the file with the real schema (migrations).
    wxsession::SqliteOptions options;
    options.path = path;
    auto store = wxsession::OpenSqliteStore(options);
    if (!store.ok()) {
      std::fprintf(stderr, "bench_seed: %s\n",
                   store.status().message().c_str());
      return 1;
    }
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return Fail("open", db);
  // A throwaway bulk load: no fsync, one transaction.
  sqlite3_exec(db, "PRAGMA synchronous = OFF; BEGIN", nullptr, nullptr,
               nullptr);
  sqlite3_stmt* user = nullptr;
  sqlite3_stmt* session = nullptr;
  if (sqlite3_prepare_v2(
          db,
          "INSERT OR REPLACE INTO users (appid, openid, unionid, "
          "session_key, created_at, updated_at) VALUES "
          "('wxbench00000000000', ?1, NULL, ?2, ?3, ?3)",
          -1, &user, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "INSERT INTO sessions (id_hash, appid, openid, "
                         "created_at, last_seen_at, expires_at) VALUES "
                         "(?1, 'wxbench00000000000', ?2, ?3, ?3, ?4)",
                         -1, &session, nullptr) != SQLITE_OK) {
    return Fail("prepare", db);
  }
  const long long now = std::time(nullptr);
  const std::string key = wxsession::crypto::Base64Encode(std::string(16, 'k'));
  FILE* tokens =
      tokens_path.empty() ? nullptr : std::fopen(tokens_path.c_str(), "w");
  const long long total = live + expired;
  const long long sample_every =
      sample > 0 && live > sample ? live / sample : 1;
  auto started = std::chrono::steady_clock::now();
  for (long long i = 0; i < total; ++i) {
    const bool is_live = i < live;
    std::string id = wxsession::crypto::Base64UrlEncode(
        wxsession::crypto::Sha256("bench-session-" + std::to_string(i)));
    std::string hash = wxsession::crypto::Sha256(id);
    std::string openid = "obench" + std::to_string(i / 4);
    if (i % 4 == 0) {
      sqlite3_bind_text(user, 1, openid.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(user, 2, key.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(user, 3, now);
      if (sqlite3_step(user) != SQLITE_DONE) return Fail("insert user", db);
      sqlite3_reset(user);
    }
    sqlite3_bind_blob(session, 1, hash.data(), static_cast<int>(hash.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(session, 2, openid.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(session, 3, now - 60);
    // Live: a week ahead. Expired: a second ago, as if their ttl just ran out.
    sqlite3_bind_int64(session, 4, is_live ? now + 7 * 86400 : now - 1);
    if (sqlite3_step(session) != SQLITE_DONE) return Fail("insert session", db);
    sqlite3_reset(session);
    if (tokens && is_live && i % sample_every == 0) {
      std::fprintf(tokens, "%s\n", id.c_str());
    }
    if ((i + 1) % 250000 == 0) {
      std::fprintf(stderr, "bench_seed: %lld/%lld rows\n", i + 1, total);
    }
  }
  sqlite3_finalize(user);
  sqlite3_finalize(session);
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Fail("commit", db);
  }
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  if (tokens) std::fclose(tokens);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
          .count();
  std::fprintf(stderr,
               "bench_seed: %lld live + %lld expired sessions in %.1f s\n",
               live, expired, seconds);
  return 0;
}
