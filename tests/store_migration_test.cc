// migrate-store's engine: SQLite's export, Redis's import, and MigrateStore
// between them, against a real redis-server.
#include "store/migration.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "redis_support.h"
#include "store/redis/redis_store.h"
#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::SharedRedis;
using testing_support::TempDir;

constexpr int64_t kNow = 1'700'000'000;  // unix seconds

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteOptions sqlite_options;
    sqlite_options.path = dir_.File("sessions.db");
    auto sqlite = OpenSqliteStore(sqlite_options);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status().ToString();
    sqlite_ = std::move(sqlite).value();
    auto exporter = OpenSqliteExporter(sqlite_options);
    ASSERT_TRUE(exporter.ok()) << exporter.status().ToString();
    exporter_ = std::move(exporter).value();

    testing_support::RedisServerProcess* redis = SharedRedis();
    ASSERT_NE(redis, nullptr);
    static int next = 0;
    RedisStoreOptions options;
    options.locator.kind = StoreKind::kRedisTcp;
    options.locator.hosts = {{"127.0.0.1", redis->port()}};
    options.prefix = "migration" + std::to_string(next++) + ":";
    auto store = OpenRedisStore(options, clock_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    redis_ = std::move(store).value();
  }

  void Login(const std::string& id, const std::string& openid,
             const std::string& key, int64_t created_at, int64_t expires_at,
             std::optional<std::string> unionid = std::nullopt) {
    NewSession s;
    s.id_hash = crypto::Sha256(id);
    s.appid = "wxapp1";
    s.openid = openid;
    s.unionid = unionid;
    s.session_key = key;
    s.created_at = created_at;
    s.expires_at = expires_at;
    ASSERT_TRUE(sqlite_->CreateSession(s).ok());
  }

  Result<MigrationCounts> Migrate(size_t batch, int* progress_calls) {
    return MigrateStore(*exporter_, *redis_, kNow, batch,
                        [progress_calls](const MigrationCounts&) {
                          if (progress_calls) ++*progress_calls;
                        });
  }

  TempDir dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<SessionStore> sqlite_;
  std::unique_ptr<StoreExporter> exporter_;
  std::unique_ptr<RedisStore> redis_;
};

TEST_F(MigrationTest, CopiesLiveSessionsWithEveryFieldAndSkipsTheRest) {
  Login("s1", "alice", "alice-key-1", kNow - 100, kNow + 1000, "union-a");
  Login("s2", "alice", "alice-key-2", kNow - 50, kNow + 2000);
  Login("s3", "bob", "bob-key", kNow - 10, kNow + 3000);
  Login("s4", "carol", "carol-key", kNow - 900, kNow - 1);  // over
  ASSERT_TRUE(sqlite_->Touch(crypto::Sha256("s1"), kNow - 5, kNow + 900).ok());
  ASSERT_TRUE(
      sqlite_->PutAccessToken({"wxapp1", "token-live", kNow + 60}).ok());
  ASSERT_TRUE(sqlite_->PutAccessToken({"wxapp2", "token-old", kNow - 60}).ok());

  int progress = 0;
  Result<MigrationCounts> counts = Migrate(/*batch=*/2, &progress);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->sessions, 3);
  EXPECT_EQ(counts->users, 2);
  EXPECT_EQ(counts->access_tokens, 1);
  EXPECT_GE(progress, 2);  // two batches of sessions, then the tokens

  Result<LiveSession> s1 = redis_->FindLive(crypto::Sha256("s1"), kNow);
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  EXPECT_EQ(s1->openid, "alice");
  EXPECT_EQ(s1->session_key, "alice-key-2");  // the user's newest key
  ASSERT_TRUE(s1->unionid.has_value());
  EXPECT_EQ(*s1->unionid, "union-a");
  EXPECT_EQ(s1->created_at, kNow - 100);
  EXPECT_EQ(s1->last_seen_at, kNow - 5);
  EXPECT_EQ(s1->expires_at, kNow + 900);
  EXPECT_EQ(redis_->FindLive(crypto::Sha256("s3"), kNow)->expires_at,
            kNow + 3000);
  EXPECT_FALSE(redis_->FindLive(crypto::Sha256("s4"), kNow).ok());
  EXPECT_EQ(redis_->GetAccessToken("wxapp1")->token, "token-live");
  EXPECT_EQ(redis_->GetAccessToken("wxapp2").status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(redis_->Stats(kNow)->live_sessions, 3);
}

TEST_F(MigrationTest, ARerunChangesNothingAndKeepsNewerKeys) {
  Login("s1", "alice", "old-key", kNow - 100, kNow + 1000);
  ASSERT_TRUE(Migrate(100, nullptr).ok());
  // Alice logs in on the Redis side after the first copy.
  NewSession newer;
  newer.id_hash = crypto::Sha256("s9");
  newer.appid = "wxapp1";
  newer.openid = "alice";
  newer.session_key = "new-key";
  newer.created_at = kNow + 10;
  newer.expires_at = kNow + 5000;
  ASSERT_TRUE(redis_->CreateSession(newer).ok());

  Result<MigrationCounts> again = Migrate(100, nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->sessions, 1);
  EXPECT_EQ(redis_->FindLive(crypto::Sha256("s1"), kNow)->session_key,
            "new-key");
  EXPECT_EQ(redis_->Stats(kNow)->live_sessions, 2);
}

TEST_F(MigrationTest, AnEmptyDatabaseCopiesNothing) {
  Result<MigrationCounts> counts = Migrate(100, nullptr);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->sessions, 0);
  EXPECT_EQ(counts->users, 0);
  EXPECT_EQ(counts->access_tokens, 0);
}

TEST(SqliteExporter, RefusesAMissingFileAndCreatesNone) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("nope.db");
  auto exporter = OpenSqliteExporter(options);
  ASSERT_FALSE(exporter.ok());
  EXPECT_EQ(exporter.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(exporter.status().operator_text().find(options.path),
            std::string::npos);
  struct stat info;
  EXPECT_NE(::stat(options.path.c_str(), &info), 0);
}

}  // namespace
}  // namespace wxsession
