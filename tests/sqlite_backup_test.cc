// Online backup (src/store/sqlite/sqlite_backup.cc) and the WAL checkpoint run
// at shutdown (SessionStore::Checkpoint on SQLite).
#include "store/sqlite/sqlite_backup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::TempDir;
using testing_support::WriteFile;

constexpr int64_t kNow = 1'700'000'000;  // a fixed "now", unix seconds

std::unique_ptr<SessionStore> Open(const std::string& path) {
  return testing_support::OpenTestSqliteStore(path);
}

NewSession Session(const std::string& id) {
  NewSession s;
  s.id_hash = crypto::Sha256(id);
  s.appid = "wxapp1";
  s.openid = "o-" + id;
  s.session_key = "key-" + id;
  s.created_at = kNow;
  s.expires_at = kNow + 3600;
  return s;
}

int64_t FileSize(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 ? info.st_size : -1;
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) == 0;
}

TEST(SqliteBackup, ACopyTakenDuringWritesOpensAndHoldsEveryEarlierSession) {
  TempDir dir;
  auto store = Open(dir.File("live.db"));
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        store->CreateSession(Session("before" + std::to_string(i))).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (store->CreateSession(Session("during" + std::to_string(i))).ok()) {
        written.fetch_add(1);
      }
    }
  });
  // Let the writer get going so the copy really overlaps writes.
  while (written.load() < 50) std::this_thread::yield();
  Result<BackupReport> report =
      BackupSqliteDatabase(dir.File("live.db"), dir.File("copy.db"));
  int written_after_copy = written.load();
  stop.store(true);
  writer.join();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->sessions, 250);
  // +1: a session may commit before the writer counts it.
  EXPECT_LE(report->sessions, 200 + written_after_copy + 1);
  EXPECT_EQ(report->bytes, FileSize(dir.File("copy.db")));

  // One self-contained file, readable by its owner only.
  struct stat info;
  ASSERT_EQ(::stat(dir.File("copy.db").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_FALSE(Exists(dir.File("copy.db-wal")));
  std::ifstream header(dir.File("copy.db"), std::ios::binary);
  char bytes[20] = {};
  header.read(bytes, sizeof(bytes));
  EXPECT_EQ(bytes[18], 1) << "file format write version: 1 = rollback journal";
  EXPECT_EQ(bytes[19], 1) << "file format read version: 1 = rollback journal";

  auto copy = Open(dir.File("copy.db"));
  ASSERT_NE(copy, nullptr);
  for (int i = 0; i < 200; ++i) {
    std::string id = "before" + std::to_string(i);
    auto live = copy->FindLive(crypto::Sha256(id), kNow);
    ASSERT_TRUE(live.ok()) << id;
    EXPECT_EQ(live->session_key, "key-" + id);
  }
  EXPECT_EQ(copy->Stats(kNow)->sessions, report->sessions);
}

TEST(SqliteBackup, RefusesToOverwriteAndLeavesNothingBehindOnFailure) {
  TempDir dir;
  auto store = Open(dir.File("live.db"));
  ASSERT_NE(store, nullptr);
  WriteFile(dir.File("exists.db"), "precious");
  auto exists =
      BackupSqliteDatabase(dir.File("live.db"), dir.File("exists.db"));
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(testing_support::ReadFile(dir.File("exists.db")), "precious");

  auto no_dir =
      BackupSqliteDatabase(dir.File("live.db"), dir.File("missing/out.db"));
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.status().code(), ErrorCode::kInvalidRequest);

  auto no_db = BackupSqliteDatabase(dir.File("nothing.db"), dir.File("out.db"));
  ASSERT_FALSE(no_db.ok());
  EXPECT_EQ(no_db.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_FALSE(Exists(dir.File("out.db")));
  EXPECT_FALSE(Exists(dir.File("nothing.db"))) << "a backup must not create it";

  // Not a wxsessiond database: the copy is made, fails the checks, and is
  // removed.
  WriteFile(dir.File("garbage.db"), std::string(4096, 'x'));
  auto garbage = BackupSqliteDatabase(dir.File("garbage.db"), dir.File("g.db"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_FALSE(Exists(dir.File("g.db")));
  // No temporary file is left in the directory.
  int partials = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().string().find(".partial-") != std::string::npos)
      ++partials;
  }
  EXPECT_EQ(partials, 0);
}

TEST(SqliteCheckpoint, TruncatesTheWal) {
  TempDir dir;
  auto store = Open(dir.File("live.db"));
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store->CreateSession(Session("s" + std::to_string(i))).ok());
  }
  EXPECT_GT(FileSize(dir.File("live.db-wal")), 0);
  ASSERT_TRUE(store->Checkpoint().ok());
  EXPECT_EQ(FileSize(dir.File("live.db-wal")), 0);
  // Everything is in the main file now: a fresh reader sees it.
  auto again = Open(dir.File("live.db"));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Stats(kNow)->sessions, 50);
}

}  // namespace
}  // namespace wxsession
