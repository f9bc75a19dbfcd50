// Store faults: a full disk, a read-only file system and a size cap, played
// under the real SQLite store (through a fault-injecting SQLite VFS and
// storage.max_pages), and what SessionService makes of them: logins fail
// with kStoreUnavailable, lookups of existing sessions keep working, and
// everything recovers without reopening once the fault is gone.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"
#include "wxsession/service.h"

namespace wxsession {
namespace {

using testing_support::ScriptedWeChatClient;
using testing_support::TempDir;

constexpr int64_t kNow = 1'700'000'000;  // unix seconds

// --- A VFS that fails writes on demand -------------------------------------
//
// "wxs-faulty" wraps the default VFS. While `fail_writes` holds an SQLite
// result code, every xWrite/xTruncate/xSync answers it: SQLITE_FULL plays a
// full disk, SQLITE_IOERR_WRITE what a read-only remount (EROFS) gives.
// Reads are untouched.

std::atomic<int> fail_writes{SQLITE_OK};
sqlite3_vfs* real_vfs = nullptr;

struct FaultyFile {
  sqlite3_file base;
  sqlite3_file* real;  // points just past this struct
};

sqlite3_file* Real(sqlite3_file* file) {
  return reinterpret_cast<FaultyFile*>(file)->real;
}

int FaultyClose(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int FaultyRead(sqlite3_file* f, void* buffer, int amount, sqlite3_int64 at) {
  return Real(f)->pMethods->xRead(Real(f), buffer, amount, at);
}
int FaultyWrite(sqlite3_file* f, const void* data, int amount,
                sqlite3_int64 at) {
  if (int rc = fail_writes.load(); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xWrite(Real(f), data, amount, at);
}
int FaultyTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (int rc = fail_writes.load(); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FaultySync(sqlite3_file* f, int flags) {
  if (int rc = fail_writes.load(); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FaultyFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int FaultyLock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xLock(Real(f), level);
}
int FaultyUnlock(sqlite3_file* f, int level) {
  return Real(f)->pMethods->xUnlock(Real(f), level);
}
int FaultyCheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FaultyFileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int FaultySectorSize(sqlite3_file* f) {
  return Real(f)->pMethods->xSectorSize(Real(f));
}
int FaultyDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int FaultyShmMap(sqlite3_file* f, int page, int size, int extend,
                 void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), page, size, extend, out);
}
int FaultyShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void FaultyShmBarrier(sqlite3_file* f) {
  Real(f)->pMethods->xShmBarrier(Real(f));
}
int FaultyShmUnmap(sqlite3_file* f, int remove) {
  return Real(f)->pMethods->xShmUnmap(Real(f), remove);
}

// Version 2: WAL needs the shm methods; without xFetch SQLite skips mmap.
const sqlite3_io_methods kFaultyMethods = {
    2,
    FaultyClose,
    FaultyRead,
    FaultyWrite,
    FaultyTruncate,
    FaultySync,
    FaultyFileSize,
    FaultyLock,
    FaultyUnlock,
    FaultyCheckReservedLock,
    FaultyFileControl,
    FaultySectorSize,
    FaultyDeviceCharacteristics,
    FaultyShmMap,
    FaultyShmLock,
    FaultyShmBarrier,
    FaultyShmUnmap,
    nullptr,
    nullptr,
};

int FaultyOpen(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags,
               int* out_flags) {
  auto* faulty = reinterpret_cast<FaultyFile*>(file);
  faulty->real = reinterpret_cast<sqlite3_file*>(faulty + 1);
  faulty->base.pMethods = nullptr;
  int rc = real_vfs->xOpen(real_vfs, name, faulty->real, flags, out_flags);
  if (rc == SQLITE_OK) faulty->base.pMethods = &kFaultyMethods;
  return rc;
}

constexpr const char* kFaultyVfs = "wxs-faulty";

void RegisterFaultyVfs() {
  static sqlite3_vfs vfs;
  if (real_vfs != nullptr) return;
  real_vfs = sqlite3_vfs_find(nullptr);
  vfs = *real_vfs;
  vfs.zName = kFaultyVfs;
  vfs.szOsFile = static_cast<int>(sizeof(FaultyFile)) + real_vfs->szOsFile;
  vfs.xOpen = FaultyOpen;
  vfs.pNext = nullptr;
  ASSERT_EQ(sqlite3_vfs_register(&vfs, /*makeDflt=*/0), SQLITE_OK);
}

NewSession Session(const std::string& id, const std::string& openid) {
  NewSession s;
  s.id_hash = crypto::Sha256(id);
  s.appid = "wxapp1";
  s.openid = openid;
  s.session_key = crypto::Base64Encode(crypto::RandomBytes(16));
  s.created_at = kNow;
  s.expires_at = kNow + 1000;
  return s;
}

class StoreFaults : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    RegisterFaultyVfs();
    fail_writes = SQLITE_OK;
    SqliteOptions options;
    options.path = dir_.File("faults.db");
    options.vfs = kFaultyVfs;
    auto store = OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override { fail_writes = SQLITE_OK; }

  TempDir dir_;
  std::unique_ptr<SessionStore> store_;
};

TEST_P(StoreFaults, WritesFailAsUnavailableReadsGoOnAndItRecovers) {
  ASSERT_TRUE(store_->CreateSession(Session("before", "amy")).ok());
  fail_writes = GetParam();

  Status refused = store_->CreateSession(Session("during", "ben"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), ErrorCode::kStoreUnavailable) << refused.ToString();
  EXPECT_NE(refused.operator_text().find("session store"), std::string::npos);
  EXPECT_FALSE(store_->Revoke(crypto::Sha256("before")).ok());
  EXPECT_FALSE(store_->Touch(crypto::Sha256("before"), kNow, kNow + 5).ok());
  // Reads are unaffected, and nothing half-written is visible.
  Result<LiveSession> live = store_->FindLive(crypto::Sha256("before"), kNow);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(live->openid, "amy");
  EXPECT_EQ(store_->FindLive(crypto::Sha256("during"), kNow).status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_TRUE(store_->Ping().ok());

  // The fault passes: the same store (no reopen) writes again.
  fail_writes = SQLITE_OK;
  Status again = store_->CreateSession(Session("during", "ben"));
  ASSERT_TRUE(again.ok()) << again.ToString();
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("during"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("before"), kNow).ok());
  EXPECT_EQ(store_->Stats(kNow)->sessions, 2);
}

INSTANTIATE_TEST_SUITE_P(Faults, StoreFaults,
                         ::testing::Values(SQLITE_FULL, SQLITE_IOERR_WRITE,
                                           SQLITE_READONLY),
                         [](const auto& test) {
                           switch (test.param) {
                             case SQLITE_FULL:
                               return std::string("DiskFull");
                             case SQLITE_IOERR_WRITE:
                               return std::string("ReadOnlyRemount");
                             default:
                               return std::string("ReadOnly");
                           }
                         });

// storage.max_pages: the database cannot grow past the cap, as on a full
// disk, and space freed by revoking sessions is used again.
TEST(StoreSizeCap, LoginsFailAtTheCapLookupsWorkAndFreedSpaceIsReused) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("capped.db");
  {
    auto fresh = OpenSqliteStore(options);  // the schema alone
    ASSERT_TRUE(fresh.ok());
  }
  // A few pages above the empty schema (7 tables and indexes + page 1).
  options.max_pages = 14;
  EXPECT_NE(SqliteConnectionPragmas(options).find("max_page_count = 14"),
            std::string::npos);
  auto opened = OpenSqliteStore(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<SessionStore> store = std::move(opened).value();

  Config config;
  config.apps.push_back({"wxapp1", "secret"});
  ManualClock clock(kNow);
  ScriptedWeChatClient wechat;
  SessionService service(config, *store, wechat, clock);

  std::vector<std::string> ids;
  Status full;
  for (int i = 0; i < 5000 && full.ok(); ++i) {
    Result<LoginResult> login =
        service.Login("", "user" + std::to_string(i) + ".1");
    if (login.ok()) {
      ids.push_back(login->session_id);
    } else {
      full = login.status();
    }
  }
  ASSERT_FALSE(full.ok()) << "the cap was never reached";
  EXPECT_EQ(full.code(), ErrorCode::kStoreUnavailable) << full.ToString();
  EXPECT_NE(full.operator_text().find("full"), std::string::npos)
      << full.message();
  ASSERT_GT(ids.size(), 10u);

  // Every acknowledged session is still served, touch failures or not.
  clock.Advance(config.session_idle_ttl / 2);
  for (const std::string& id : ids) {
    ASSERT_TRUE(service.Lookup(id).ok()) << id;
  }
  // Space returns (an operator revokes, or the sweeper reclaims)...
  for (size_t i = 0; i < ids.size() / 2; ++i) {
    ASSERT_TRUE(service.Logout(ids[i]).ok());
  }
  // ...and logins work again with no restart.
  Result<LoginResult> after = service.Login("", "late.1");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(service.Lookup(after->session_id).ok());
  EXPECT_TRUE(service.Lookup(ids.back()).ok());
}

}  // namespace
}  // namespace wxsession
