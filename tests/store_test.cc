// The SessionStore conformance suite, run against every backend (SQLite, and
// Redis on a real redis-server this test starts), plus SQLite-specific
// checks (file mode, migrations, concurrency). Redis-specific checks live in
// redis_store_test.cc.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "redis_support.h"
#include "store/redis/redis_store.h"
#include "store/sealed_store.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"
#include "wxsession/store.h"

namespace wxsession {
namespace {

using testing_support::TempDir;

constexpr int64_t kNow = 1'700'000'000;  // a fixed "now", unix seconds

// Makes a fresh, empty store of one backend for one test.
struct Backend {
  std::string name;
  std::function<std::unique_ptr<SessionStore>(TempDir&)> open;
  // Expired sessions vanish by themselves (Redis): a session created
  // already expired is never counted, and SweepExpired has nothing to do.
  bool expires_by_itself = false;
};

std::unique_ptr<SessionStore> OpenSqlite(TempDir& dir) {
  return testing_support::OpenTestSqliteStore(dir.File("store.db"));
}

// Test names and failure messages show the backend's name.
void PrintTo(const Backend& backend, std::ostream* out) {
  *out << backend.name;
}

// Redis computes TTLs from its clock; pinning it at kNow makes "kNow + 100"
// mean "100 s from now" there too.
ManualClock redis_clock(kNow);

std::unique_ptr<SessionStore> OpenRedis(TempDir&) {
  testing_support::RedisServerProcess* redis = testing_support::SharedRedis();
  if (redis == nullptr) return nullptr;
  // A fresh prefix per test: the tests share one server, never its keys.
  static int next = 0;
  RedisStoreOptions options;
  options.locator.kind = StoreKind::kRedisTcp;
  options.locator.hosts = {{"127.0.0.1", redis->port()}};
  options.prefix = "conformance" + std::to_string(next++) + ":";
  auto store = OpenRedisStore(options, redis_clock);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  return std::unique_ptr<SessionStore>(std::move(store).value());
}

NewSession MakeSession(const std::string& id, const std::string& openid,
                       const std::string& key, int64_t created_at,
                       int64_t expires_at,
                       const std::string& appid = "wxapp1") {
  NewSession s;
  s.id_hash = crypto::Sha256(id);
  s.appid = appid;
  s.openid = openid;
  s.session_key = key;
  s.created_at = created_at;
  s.expires_at = expires_at;
  return s;
}

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  TempDir dir_;
  std::unique_ptr<SessionStore> store_;
};

TEST_P(StoreConformance, CreatedSessionIsFoundWithItsUser) {
  NewSession s = MakeSession("id-1", "openid-a", "key-a", kNow, kNow + 100);
  s.unionid = "union-a";
  ASSERT_TRUE(store_->CreateSession(s).ok());
  Result<LiveSession> live = store_->FindLive(crypto::Sha256("id-1"), kNow);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(live->appid, "wxapp1");
  EXPECT_EQ(live->openid, "openid-a");
  ASSERT_TRUE(live->unionid.has_value());
  EXPECT_EQ(*live->unionid, "union-a");
  EXPECT_EQ(live->session_key, "key-a");
  EXPECT_EQ(live->created_at, kNow);
  EXPECT_EQ(live->last_seen_at, kNow);
  EXPECT_EQ(live->expires_at, kNow + 100);
}

TEST_P(StoreConformance, UnknownSessionIsInvalid) {
  Result<LiveSession> live = store_->FindLive(crypto::Sha256("nope"), kNow);
  ASSERT_FALSE(live.ok());
  EXPECT_EQ(live.status().code(), ErrorCode::kInvalidSession);
}

TEST_P(StoreConformance, ExpiredSessionIsMissingBeforeAnySweep) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-1", "o", "k", kNow, kNow + 10))
          .ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("id-1"), kNow + 9).ok());
  Result<LiveSession> at_expiry =
      store_->FindLive(crypto::Sha256("id-1"), kNow + 10);
  ASSERT_FALSE(at_expiry.ok());
  EXPECT_EQ(at_expiry.status().code(), ErrorCode::kInvalidSession);
}

TEST_P(StoreConformance, EverySessionOfAUserUsesTheNewestKey) {
  ASSERT_TRUE(
      store_
          ->CreateSession(MakeSession("id-1", "o", "old-key", kNow, kNow + 99))
          .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("id-2", "o", "new-key", kNow + 1, kNow + 99))
                  .ok());
  EXPECT_EQ(store_->FindLive(crypto::Sha256("id-1"), kNow + 2)->session_key,
            "new-key");
  EXPECT_EQ(store_->FindLive(crypto::Sha256("id-2"), kNow + 2)->session_key,
            "new-key");
}

TEST_P(StoreConformance, UnionIdIsKeptWhenALaterLoginLacksIt) {
  NewSession first = MakeSession("id-1", "o", "k1", kNow, kNow + 99);
  first.unionid = "u-1";
  ASSERT_TRUE(store_->CreateSession(first).ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-2", "o", "k2", kNow, kNow + 99))
          .ok());
  auto live = store_->FindLive(crypto::Sha256("id-2"), kNow);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live->unionid.has_value());
  EXPECT_EQ(*live->unionid, "u-1");
}

TEST_P(StoreConformance, SessionsOfTheSameOpenIdInTwoAppsAreSeparateUsers) {
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("id-1", "o", "k-app1", kNow, kNow + 99, "a1"))
                  .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("id-2", "o", "k-app2", kNow, kNow + 99, "a2"))
                  .ok());
  EXPECT_EQ(store_->FindLive(crypto::Sha256("id-1"), kNow)->session_key,
            "k-app1");
  EXPECT_EQ(store_->FindLive(crypto::Sha256("id-2"), kNow)->session_key,
            "k-app2");
}

TEST_P(StoreConformance, TouchMovesLastSeenAndExpiry) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-1", "o", "k", kNow, kNow + 10))
          .ok());
  ASSERT_TRUE(store_->Touch(crypto::Sha256("id-1"), kNow + 5, kNow + 50).ok());
  auto live = store_->FindLive(crypto::Sha256("id-1"), kNow + 20);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->last_seen_at, kNow + 5);
  EXPECT_EQ(live->expires_at, kNow + 50);
  // Touching a session that is gone is not an error.
  EXPECT_TRUE(store_->Touch(crypto::Sha256("gone"), kNow, kNow + 1).ok());
}

TEST_P(StoreConformance, RevokeEndsOneSession) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-1", "o", "k", kNow, kNow + 99))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-2", "o", "k", kNow, kNow + 99))
          .ok());
  Result<int64_t> revoked = store_->Revoke(crypto::Sha256("id-1"));
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(revoked.value(), 1);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("id-1"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("id-2"), kNow).ok());
  EXPECT_EQ(store_->Revoke(crypto::Sha256("id-1")).value(), 0);
}

TEST_P(StoreConformance, RevokeUserEndsOnlyThatUsersSessions) {
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("a1", "alice", "k", kNow, kNow + 99, "app1"))
                  .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("a2", "alice", "k", kNow, kNow + 99, "app1"))
                  .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("a3", "alice", "k", kNow, kNow + 99, "app2"))
                  .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(
                      MakeSession("b1", "bob", "k", kNow, kNow + 99, "app1"))
                  .ok());
  EXPECT_EQ(store_->RevokeUser("app1", "alice").value(), 2);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("a1"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("a3"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("b1"), kNow).ok());
  EXPECT_EQ(store_->RevokeUser("", "alice").value(), 1);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("a3"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("b1"), kNow).ok());
}

TEST_P(StoreConformance, RevokeAllEndsEverySession) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_
                    ->CreateSession(MakeSession("id" + std::to_string(i),
                                                "o" + std::to_string(i), "k",
                                                kNow, kNow + 99))
                    .ok());
  }
  EXPECT_EQ(store_->RevokeAll().value(), 5);
  EXPECT_EQ(store_->Stats(kNow)->sessions, 0);
}

TEST_P(StoreConformance, SweepDeletesOnlyExpiredAndRespectsTheBatchLimit) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(store_
                    ->CreateSession(MakeSession("old" + std::to_string(i), "o",
                                                "k", kNow - 100, kNow - 1))
                    .ok());
  }
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("fresh", "o", "k", kNow, kNow + 100))
          .ok());
  if (GetParam().expires_by_itself) {
    EXPECT_EQ(store_->SweepExpired(kNow, 10).value(), 0);
  } else {
    EXPECT_EQ(store_->SweepExpired(kNow, 10).value(), 10);
    EXPECT_EQ(store_->SweepExpired(kNow, 10).value(), 10);
    EXPECT_EQ(store_->SweepExpired(kNow, 10).value(), 5);
    EXPECT_EQ(store_->SweepExpired(kNow, 10).value(), 0);
  }
  for (int i = 0; i < 25; ++i) {
    EXPECT_FALSE(
        store_->FindLive(crypto::Sha256("old" + std::to_string(i)), kNow).ok());
  }
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("fresh"), kNow).ok());
  EXPECT_EQ(store_->Stats(kNow)->sessions, 1);
}

TEST_P(StoreConformance, StatsCountSessionsLiveSessionsAndUsers) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("1", "alice", "k", kNow, kNow + 99))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("2", "alice", "k", kNow, kNow + 99))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("3", "bob", "k", kNow - 9, kNow - 1))
          .ok());
  Result<StoreStats> stats = store_->Stats(kNow);
  ASSERT_TRUE(stats.ok());
  if (GetParam().expires_by_itself) {
    // Bob's only session was over before it was stored: Redis keeps neither
    // it nor him.
    EXPECT_EQ(stats->sessions, 2);
    EXPECT_EQ(stats->users, 1);
  } else {
    EXPECT_EQ(stats->sessions, 3);
    EXPECT_EQ(stats->users, 2);
  }
  EXPECT_EQ(stats->live_sessions, 2);
  EXPECT_TRUE(store_->Ping().ok());
}

TEST_P(StoreConformance, ConcurrentLoginsAndLookupsFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!store_
                 ->CreateSession(MakeSession(id, "user" + std::to_string(t),
                                             "k", kNow, kNow + 99))
                 .ok()) {
          failures++;
        }
        if (!store_->FindLive(crypto::Sha256(id), kNow).ok()) failures++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->Stats(kNow)->sessions, kThreads * kPerThread);
}

TEST_P(StoreConformance, AccessTokensAreCachedPerApp) {
  Result<AccessToken> none = store_->GetAccessToken("wxapp1");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->PutAccessToken({"wxapp1", "token-1", kNow + 7200}).ok());
  ASSERT_TRUE(store_->PutAccessToken({"wxapp2", "token-2", kNow + 10}).ok());
  ASSERT_TRUE(store_->PutAccessToken({"wxapp1", "token-1b", kNow + 9000}).ok());
  Result<AccessToken> one = store_->GetAccessToken("wxapp1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->token, "token-1b");
  EXPECT_EQ(one->expires_at, kNow + 9000);
  EXPECT_EQ(store_->GetAccessToken("wxapp2")->token, "token-2");
  // A 512-character token (WeChat's stated maximum) round-trips.
  std::string long_token(512, 't');
  ASSERT_TRUE(store_->PutAccessToken({"wxapp3", long_token, kNow}).ok());
  EXPECT_EQ(store_->GetAccessToken("wxapp3")->token, long_token);
}

TEST_P(StoreConformance, TokenRefreshLeaseIsExclusiveAndExpires) {
  const int64_t now_ms = kNow * 1000;
  EXPECT_TRUE(store_->TryLockTokenRefresh("wxapp1", "a", now_ms, 5000).value());
  EXPECT_FALSE(
      store_->TryLockTokenRefresh("wxapp1", "b", now_ms + 10, 5000).value());
  // Another app's lease is independent.
  EXPECT_TRUE(store_->TryLockTokenRefresh("wxapp2", "b", now_ms, 5000).value());
  // Only the holder releases it.
  ASSERT_TRUE(store_->UnlockTokenRefresh("wxapp1", "b").ok());
  EXPECT_FALSE(
      store_->TryLockTokenRefresh("wxapp1", "b", now_ms + 20, 5000).value());
  ASSERT_TRUE(store_->UnlockTokenRefresh("wxapp1", "a").ok());
  EXPECT_TRUE(
      store_->TryLockTokenRefresh("wxapp1", "b", now_ms + 30, 5000).value());
  // An abandoned lease expires by itself.
  EXPECT_TRUE(
      store_->TryLockTokenRefresh("wxapp1", "c", now_ms + 5031, 5000).value());
  // Taking the lease never loses the cached token.
  ASSERT_TRUE(store_->PutAccessToken({"wxapp1", "tok", kNow + 60}).ok());
  EXPECT_TRUE(
      store_->TryLockTokenRefresh("wxapp1", "d", now_ms + 99999, 5000).value());
  EXPECT_EQ(store_->GetAccessToken("wxapp1")->token, "tok");
}

StoredSigningKey SigningKey(const std::string& kid, int64_t created_at) {
  StoredSigningKey key;
  key.kid = kid;
  key.algorithm = "ES256";
  key.private_key = "-----BEGIN PRIVATE KEY-----\n" + kid + "\n-----END";
  key.created_at = created_at;
  return key;
}

std::vector<std::string> Kids(
    const Result<std::vector<StoredSigningKey>>& keys) {
  std::vector<std::string> kids;
  if (!keys.ok()) {
    ADD_FAILURE() << keys.status().ToString();
    return kids;
  }
  for (const StoredSigningKey& key : keys.value()) kids.push_back(key.kid);
  return kids;
}

TEST_P(StoreConformance,
       SigningKeysHaveOneCurrentAndRetiredOnesUntilTheyLapse) {
  EXPECT_TRUE(Kids(store_->ListSigningKeys(kNow)).empty());
  ASSERT_TRUE(store_->ReplaceSigningKey("", SigningKey("k1", kNow), 0).value());
  // Only the instance that saw "no key" may make the first one.
  EXPECT_FALSE(
      store_->ReplaceSigningKey("", SigningKey("k1b", kNow), 0).value());
  EXPECT_EQ(Kids(store_->ListSigningKeys(kNow)),
            std::vector<std::string>({"k1"}));

  ASSERT_TRUE(
      store_->ReplaceSigningKey("k1", SigningKey("k2", kNow + 10), kNow + 100)
          .value());
  // A rotation that read an older current key changes nothing.
  EXPECT_FALSE(
      store_->ReplaceSigningKey("k1", SigningKey("k2b", kNow + 11), kNow + 100)
          .value());
  Result<std::vector<StoredSigningKey>> both =
      store_->ListSigningKeys(kNow + 99);
  ASSERT_EQ(Kids(both), std::vector<std::string>({"k2", "k1"}));
  EXPECT_EQ(both->at(0).retired_at, 0);
  EXPECT_EQ(both->at(0).created_at, kNow + 10);
  EXPECT_EQ(both->at(0).algorithm, "ES256");
  EXPECT_EQ(both->at(0).private_key, SigningKey("k2", 0).private_key);
  EXPECT_EQ(both->at(1).retired_at, kNow + 10);
  EXPECT_EQ(both->at(1).verify_until, kNow + 100);
  EXPECT_EQ(both->at(1).private_key, SigningKey("k1", 0).private_key);

  // At verify_until the retired key is missing, swept or not.
  EXPECT_EQ(Kids(store_->ListSigningKeys(kNow + 100)),
            std::vector<std::string>({"k2"}));
  ASSERT_TRUE(
      store_->ReplaceSigningKey("k2", SigningKey("k3", kNow + 200), kNow + 300)
          .value());
  EXPECT_EQ(Kids(store_->ListSigningKeys(kNow + 200)),
            std::vector<std::string>({"k3", "k2"}));
  // Even read with an old "now", the lapsed k1 was deleted by the rotation.
  EXPECT_EQ(Kids(store_->ListSigningKeys(kNow)),
            std::vector<std::string>({"k3", "k2"}));
}

// --- Users, their sessions and bans (issue 15).

TEST_P(StoreConformance, GetUserShowsItsRecordAndLiveSessionCount) {
  EXPECT_EQ(store_->GetUser("wxapp1", "o", kNow).status().code(),
            ErrorCode::kNotFound);
  NewSession first = MakeSession("id-1", "o", "k1", kNow, kNow + 100);
  first.unionid = "union-o";
  ASSERT_TRUE(store_->CreateSession(first).ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("id-2", "o", "k2", kNow + 5, kNow + 10))
          .ok());
  Result<UserRecord> user = store_->GetUser("wxapp1", "o", kNow + 6);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(user->appid, "wxapp1");
  EXPECT_EQ(user->openid, "o");
  ASSERT_TRUE(user->unionid.has_value());
  EXPECT_EQ(*user->unionid, "union-o");
  EXPECT_EQ(user->created_at, kNow);
  ASSERT_TRUE(user->last_login_at.has_value());
  EXPECT_EQ(*user->last_login_at, kNow + 5);
  EXPECT_EQ(user->live_sessions, 2);
  EXPECT_FALSE(user->ban.has_value());
  // The second session has expired: only live ones count.
  EXPECT_EQ(store_->GetUser("wxapp1", "o", kNow + 10)->live_sessions, 1);
  // Another app's user of the same openid is another record.
  EXPECT_EQ(store_->GetUser("wxapp2", "o", kNow).status().code(),
            ErrorCode::kNotFound);
}

TEST_P(StoreConformance, ListSessionsGivesLiveOnesNewestFirst) {
  // Three logins in the same second: login order breaks the tie.
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(
        store_->CreateSession(MakeSession(id, "o", "k", kNow, kNow + 100))
            .ok());
  }
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("old", "o", "k", kNow - 5, kNow + 100))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("gone", "o", "k", kNow - 9, kNow + 1))
          .ok());
  ASSERT_TRUE(store_
                  ->CreateSession(MakeSession("other-app", "o", "k", kNow,
                                              kNow + 100, "wxapp2"))
                  .ok());
  Result<std::vector<SessionSummary>> list =
      store_->ListSessions("wxapp1", "o", kNow + 2);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ(list.value()[0].id_hash, crypto::Sha256("c"));
  EXPECT_EQ(list.value()[1].id_hash, crypto::Sha256("b"));
  EXPECT_EQ(list.value()[2].id_hash, crypto::Sha256("a"));
  EXPECT_EQ(list.value()[3].id_hash, crypto::Sha256("old"));
  EXPECT_EQ(list.value()[3].created_at, kNow - 5);
  EXPECT_EQ(list.value()[3].last_seen_at, kNow - 5);
  EXPECT_EQ(list.value()[3].expires_at, kNow + 100);
  EXPECT_TRUE(store_->ListSessions("wxapp1", "nobody", kNow)->empty());
}

TEST_P(StoreConformance, RevokeByHandleEndsOnlyThatSessionOfTheUser) {
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(
        store_->CreateSession(MakeSession(id, "o", "k", kNow, kNow + 100))
            .ok());
  }
  std::vector<SessionSummary> list =
      store_->ListSessions("wxapp1", "o", kNow).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(store_->Revoke(list[0].id_hash).value(), 1);
  EXPECT_EQ(store_->Revoke(list[0].id_hash).value(), 0);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("b"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("a"), kNow).ok());
  EXPECT_EQ(store_->ListSessions("wxapp1", "o", kNow)->size(), 1u);
  EXPECT_EQ(store_->GetUser("wxapp1", "o", kNow)->live_sessions, 1);
}

TEST_P(StoreConformance, ABanEndsEverySessionAndRefusesLogins) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("a", "o", "k", kNow, kNow + 100)).ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("b", "o", "k", kNow, kNow + 100)).ok());
  ASSERT_TRUE(store_
                  ->CreateSession(MakeSession("other", "o", "k", kNow,
                                              kNow + 100, "wxapp2"))
                  .ok());
  Result<int64_t> ended =
      store_->PutBan({"wxapp1", "o", "spam", kNow + 1, std::nullopt});
  ASSERT_TRUE(ended.ok()) << ended.status().ToString();
  EXPECT_EQ(ended.value(), 2);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("a"), kNow + 1).ok());
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("b"), kNow + 1).ok());
  // The same openid in another app is another user.
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("other"), kNow + 1).ok());

  Status login =
      store_->CreateSession(MakeSession("c", "o", "k", kNow + 2, kNow + 100));
  EXPECT_EQ(login.code(), ErrorCode::kUserBanned);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("c"), kNow + 2).ok());

  Result<UserRecord> user = store_->GetUser("wxapp1", "o", kNow + 2);
  ASSERT_TRUE(user.ok());
  ASSERT_TRUE(user->ban.has_value());
  EXPECT_EQ(user->ban->reason, "spam");
  EXPECT_EQ(user->ban->since, kNow + 1);
  EXPECT_FALSE(user->ban->until.has_value());
  EXPECT_EQ(user->live_sessions, 0);

  Result<std::vector<Ban>> bans = store_->ListBans("wxapp1", kNow + 2);
  ASSERT_TRUE(bans.ok());
  ASSERT_EQ(bans->size(), 1u);
  EXPECT_EQ(bans.value()[0].openid, "o");
  EXPECT_EQ(bans.value()[0].reason, "spam");
  EXPECT_TRUE(store_->ListBans("wxapp2", kNow + 2)->empty());

  ASSERT_TRUE(store_->RemoveBan("wxapp1", "o", kNow + 3).ok());
  EXPECT_EQ(store_->RemoveBan("wxapp1", "o", kNow + 3).code(),
            ErrorCode::kNotFound);
  EXPECT_TRUE(store_->ListBans("wxapp1", kNow + 3)->empty());
  EXPECT_FALSE(store_->GetUser("wxapp1", "o", kNow + 3)->ban.has_value());
  EXPECT_TRUE(
      store_->CreateSession(MakeSession("d", "o", "k", kNow + 4, kNow + 100))
          .ok());
}

TEST_P(StoreConformance, ABanOnANeverSeenOpenidCreatesItsUser) {
  ASSERT_EQ(store_->PutBan({"wxapp1", "new", "fraud", kNow, kNow + 50}).value(),
            0);
  Result<UserRecord> user = store_->GetUser("wxapp1", "new", kNow + 1);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(user->created_at, kNow);
  EXPECT_FALSE(user->last_login_at.has_value());
  EXPECT_FALSE(user->unionid.has_value());
  ASSERT_TRUE(user->ban.has_value());
  ASSERT_TRUE(user->ban->until.has_value());
  EXPECT_EQ(*user->ban->until, kNow + 50);
  EXPECT_EQ(
      store_->CreateSession(MakeSession("x", "new", "k", kNow + 49, kNow + 100))
          .code(),
      ErrorCode::kUserBanned);
}

TEST_P(StoreConformance, ABanLapsesAtItsUntil) {
  ASSERT_TRUE(
      store_->PutBan({"wxapp1", "o", "cool off", kNow, kNow + 10}).ok());
  EXPECT_TRUE(store_->GetUser("wxapp1", "o", kNow + 9)->ban.has_value());
  EXPECT_FALSE(store_->GetUser("wxapp1", "o", kNow + 10)->ban.has_value());
  EXPECT_EQ(store_->ListBans("wxapp1", kNow + 9)->size(), 1u);
  EXPECT_TRUE(store_->ListBans("wxapp1", kNow + 10)->empty());
  EXPECT_TRUE(
      store_->CreateSession(MakeSession("a", "o", "k", kNow + 10, kNow + 100))
          .ok());
  // Lifting a lapsed ban: nothing was in force.
  EXPECT_EQ(store_->RemoveBan("wxapp1", "o", kNow + 11).code(),
            ErrorCode::kNotFound);
}

TEST_P(StoreConformance, ABanWhoseUntilIsPastIsAcceptedAndNotInForce) {
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("a", "o", "k", kNow, kNow + 100)).ok());
  ASSERT_EQ(store_->PutBan({"wxapp1", "o", "late", kNow + 5, kNow - 1}).value(),
            1);
  EXPECT_FALSE(store_->GetUser("wxapp1", "o", kNow + 5)->ban.has_value());
  EXPECT_TRUE(
      store_->CreateSession(MakeSession("b", "o", "k", kNow + 6, kNow + 100))
          .ok());
}

TEST_P(StoreConformance, TheCapKeepsOnlyTheNewestSessionsOfTheUser) {
  auto login = [&](const std::string& id, int64_t at, const std::string& app) {
    NewSession s = MakeSession(id, "o", "k", at, kNow + 100, app);
    s.max_sessions = 2;
    return store_->CreateSession(s);
  };
  ASSERT_TRUE(login("a", kNow, "wxapp1").ok());
  ASSERT_TRUE(login("x", kNow, "wxapp2").ok());
  ASSERT_TRUE(login("b", kNow, "wxapp1").ok());
  ASSERT_TRUE(login("c", kNow, "wxapp1").ok());  // same second: a goes
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("a"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("b"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("c"), kNow).ok());
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("x"), kNow).ok());
  ASSERT_TRUE(login("d", kNow + 1, "wxapp1").ok());
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("b"), kNow + 1).ok());
  EXPECT_EQ(store_->ListSessions("wxapp1", "o", kNow + 1)->size(), 2u);
  // Without a cap nothing ends.
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("e", "o", "k", kNow + 2, kNow + 100))
          .ok());
  EXPECT_EQ(store_->ListSessions("wxapp1", "o", kNow + 2)->size(), 3u);
}

TEST_P(StoreConformance, TheCapHoldsForConcurrentLogins) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      NewSession s =
          MakeSession("c" + std::to_string(i), "o", "k", kNow, kNow + 100);
      s.max_sessions = 3;
      if (!store_->CreateSession(s).ok()) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->ListSessions("wxapp1", "o", kNow)->size(), 3u);
  EXPECT_EQ(store_->GetUser("wxapp1", "o", kNow)->live_sessions, 3);
}

TEST_P(StoreConformance, SweepUsersDeletesOnlyIdleUnbannedUsers) {
  if (GetParam().expires_by_itself) {
    // Users expire by TTL there (untested here: it takes real time).
    EXPECT_EQ(store_->SweepUsers(kNow, kNow, 10).value(), 0);
    return;
  }
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("1", "idle", "k", kNow, kNow + 5))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("2", "live", "k", kNow, kNow + 500))
          .ok());
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("3", "banned", "k", kNow, kNow + 5))
          .ok());
  ASSERT_TRUE(
      store_->PutBan({"wxapp1", "banned", "r", kNow, std::nullopt}).ok());
  ASSERT_TRUE(store_->PutBan({"wxapp1", "lapsed", "r", kNow, kNow + 50}).ok());
  ASSERT_TRUE(
      store_
          ->CreateSession(MakeSession("4", "recent", "k", kNow + 90, kNow + 95))
          .ok());
  // At kNow + 100 with a retention of 20 s: last logins before kNow + 80.
  EXPECT_EQ(store_->SweepUsers(kNow + 100, kNow + 80, 1).value(), 1);
  EXPECT_EQ(store_->SweepUsers(kNow + 100, kNow + 80, 10).value(), 1);
  EXPECT_EQ(store_->SweepUsers(kNow + 100, kNow + 80, 10).value(), 0);
  EXPECT_EQ(store_->GetUser("wxapp1", "idle", kNow + 100).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetUser("wxapp1", "lapsed", kNow + 100).status().code(),
            ErrorCode::kNotFound);
  EXPECT_TRUE(store_->GetUser("wxapp1", "live", kNow + 100).ok());
  EXPECT_TRUE(store_->GetUser("wxapp1", "recent", kNow + 100).ok());
  Result<UserRecord> banned = store_->GetUser("wxapp1", "banned", kNow + 100);
  ASSERT_TRUE(banned.ok());
  EXPECT_TRUE(banned->ban.has_value());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance,
                         ::testing::Values(Backend{"sqlite", OpenSqlite},
                                           Backend{"redis", OpenRedis, true}),
                         [](const auto& test) { return test.param.name; });

TEST(SqliteStore, DatabaseFilesAreReadableByTheOwnerOnly) {
  TempDir dir;
  auto store = OpenSqlite(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store->CreateSession(MakeSession("1", "o", "k", kNow, kNow + 9)).ok());
  for (const char* suffix : {"", "-wal"}) {
    struct stat info;
    ASSERT_EQ(::stat((dir.File("store.db") + suffix).c_str(), &info), 0)
        << suffix;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << suffix;
  }
}

// Logins share commits (group commit); a row that cannot be saved must fail
// only its own login, whichever batch it landed in.
TEST(SqliteStore, ADuplicateIdFailsOnlyItsOwnLoginAmongConcurrentOnes) {
  TempDir dir;
  auto store = OpenSqlite(dir);
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  std::atomic<int> saved{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every thread tries the shared id half way through.
        std::string id = i == kPerThread / 2 ? std::string("shared")
                                             : "t" + std::to_string(t) + "-" +
                                                   std::to_string(i);
        Status status = store->CreateSession(
            MakeSession(id, "user" + std::to_string(t), "k", kNow, kNow + 99));
        (status.ok() ? saved : refused)++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const int unique = kThreads * (kPerThread - 1) + 1;
  EXPECT_EQ(saved.load(), unique);
  EXPECT_EQ(refused.load(), kThreads - 1);
  EXPECT_EQ(store->Stats(kNow)->sessions, unique);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(
        store->FindLive(crypto::Sha256("t" + std::to_string(t) + "-0"), kNow)
            .ok());
  }
}

// The WAL header's salt-1 (bytes 16..19, big-endian) goes up by one each
// time the WAL starts over from its beginning, which SQLite does only after
// a checkpoint has copied every frame.
uint32_t WalSalt1(const std::string& wal_path) {
  std::ifstream in(wal_path, std::ios::binary);
  unsigned char header[20] = {};
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  if (!in) return 0;
  return (uint32_t{header[16]} << 24) | (uint32_t{header[17]} << 16) |
         (uint32_t{header[18]} << 8) | uint32_t{header[19]};
}

// Checkpoints run on a background thread, not inside commits (SQLite's own
// automatic checkpoint is off); they must still catch up with a writer that
// never pauses, or the WAL would never start over and grow with every login.
TEST(SqliteStore, BackgroundCheckpointsLetTheWalStartOver) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("store.db");
  options.checkpoint_frames = 20;
  auto opened = OpenSqliteStore(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<SessionStore> store = std::move(opened).value();
  const std::string wal = dir.File("store.db-wal");
  ASSERT_TRUE(
      store->CreateSession(MakeSession("id0", "user0", "k", kNow, kNow + 99))
          .ok());
  const uint32_t first_salt = WalSalt1(wal);
  // Each login adds about five pages; with no checkpoint the WAL would hold
  // them all and its salt would never change.
  int written = 1;
  while (WalSalt1(wal) - first_salt < 3 && written < 20000) {
    const std::string n = std::to_string(written++);
    ASSERT_TRUE(store
                    ->CreateSession(
                        MakeSession("id" + n, "user" + n, "k", kNow, kNow + 99))
                    .ok());
  }
  EXPECT_GE(WalSalt1(wal) - first_salt, 3u)
      << "the WAL never started over in " << written << " logins";
  EXPECT_EQ(store->Stats(kNow)->sessions, written);
  for (int i = 0; i < written; i += 97) {
    EXPECT_TRUE(
        store->FindLive(crypto::Sha256("id" + std::to_string(i)), kNow).ok())
        << i;
  }
}

int64_t QueryInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
  int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

std::string QueryText(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
  std::string value;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

TEST(SqliteStore, MigrationsAreRecordedAndAppliedOnce) {
  TempDir dir;
  { ASSERT_NE(OpenSqlite(dir), nullptr); }
  { ASSERT_NE(OpenSqlite(dir), nullptr); }  // reopening applies nothing twice
  std::string db = dir.File("store.db");
  EXPECT_EQ(QueryInt(db,
                     "SELECT count(*) FROM schema_migrations WHERE "
                     "version = 1 AND name = '0001_init.sql'"),
            1);
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(sqlite::EmbeddedMigrations().size()));
  EXPECT_EQ(QueryText(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryInt(db,
                     "SELECT count(*) FROM sqlite_master WHERE type = "
                     "'index' AND name = 'sessions_expires_at'"),
            1);
}

TEST(SqliteStore, RefusesADatabaseFromANewerVersion) {
  TempDir dir;
  { ASSERT_NE(OpenSqlite(dir), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("store.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO schema_migrations VALUES "
                         "(9999, '9999_future.sql', 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  SqliteOptions options;
  options.path = dir.File("store.db");
  auto store = OpenSqliteStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(store.status().operator_text().find("newer"), std::string::npos);
}

TEST(SqliteStore, DurabilityChoosesTheSynchronousLevel) {
  SqliteOptions options;
  options.durability = Durability::kFull;
  EXPECT_NE(SqliteConnectionPragmas(options).find("synchronous = FULL"),
            std::string::npos);
  options.durability = Durability::kNormal;
  EXPECT_NE(SqliteConnectionPragmas(options).find("synchronous = NORMAL"),
            std::string::npos);
  EXPECT_NE(SqliteConnectionPragmas(options).find("journal_mode = WAL"),
            std::string::npos);
}

TEST(SqliteStore, UnopenablePathIsStoreUnavailableNamingThePath) {
  SqliteOptions options;
  options.path = "/nonexistent-dir/for/sure/store.db";
  auto store = OpenSqliteStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(store.status().operator_text().find(options.path),
            std::string::npos);
}

// The whole contract again through the sealing decorator (sealed_store.h)
// over each backend: it must be invisible to every caller.
std::unique_ptr<SessionStore> Sealed(std::unique_ptr<SessionStore> inner) {
  if (!inner) return nullptr;
  return std::make_unique<SealedStore>(std::move(inner),
                                       SessionKeyring(crypto::RandomBytes(32)));
}

INSTANTIATE_TEST_SUITE_P(
    Sealed, StoreConformance,
    ::testing::Values(
        Backend{"sqlite", [](TempDir& dir) { return Sealed(OpenSqlite(dir)); }},
        Backend{"redis", [](TempDir& dir) { return Sealed(OpenRedis(dir)); },
                true}),
    [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace wxsession
