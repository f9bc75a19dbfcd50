// Sweeper against a real SQLite store with a manual clock: no sleeping.
#include "wxsession/sweeper.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::TempDir;

constexpr int64_t kNow = 1'700'000'000;  // unix seconds

class SweeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing_support::OpenTestSqliteStore(dir_.File("s.db"));
    ASSERT_NE(store_, nullptr);
  }
  void Add(const std::string& id, int64_t expires_at) {
    NewSession s;
    s.id_hash = crypto::Sha256(id);
    s.appid = "wxapp";
    s.openid = "o";
    s.session_key = "k";
    s.created_at = kNow - 1000;
    s.expires_at = expires_at;
    ASSERT_TRUE(store_->CreateSession(s).ok());
  }
  TempDir dir_;
  std::unique_ptr<SessionStore> store_;
};

TEST_F(SweeperTest, RunOnceDeletesEveryExpiredSessionInBatches) {
  for (int i = 0; i < 10; ++i) Add("old" + std::to_string(i), kNow - i);
  Add("live", kNow + 1);
  ManualClock clock(kNow);
  Sweeper sweeper(*store_, clock, 60, /*batch_rows=*/3);
  Result<int64_t> deleted = sweeper.RunOnce();
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted.value(), 10);
  EXPECT_EQ(store_->Stats(kNow)->sessions, 1);
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("live"), kNow).ok());
  // Time moves on: the last one expires too.
  clock.Advance(1);
  EXPECT_EQ(sweeper.RunOnce().value(), 1);
  EXPECT_EQ(sweeper.RunOnce().value(), 0);
}

// A big backlog is swept gently: after every full batch the sweeper rests
// kRestPerBatch times as long as the batch took; not after the last.
TEST_F(SweeperTest, RestsAfterEachFullBatchInProportionToItsDuration) {
  for (int i = 0; i < 10; ++i) Add("old" + std::to_string(i), kNow - i);
  ManualClock clock(kNow);
  std::vector<std::chrono::nanoseconds> rests;
  Sweeper sweeper(*store_, clock, 60, /*batch_rows=*/3, {},
                  [&rests](std::chrono::nanoseconds d) { rests.push_back(d); });
  ASSERT_EQ(sweeper.RunOnce().value(), 10);
  // Batches of 3, 3, 3 and then 1: a rest after each of the full ones.
  ASSERT_EQ(rests.size(), 3u);
  for (auto rest : rests) EXPECT_GT(rest.count(), 0);
  rests.clear();
  EXPECT_EQ(sweeper.RunOnce().value(), 0);
  EXPECT_TRUE(rests.empty());
}

TEST_F(SweeperTest, StopReturnsPromptlyWithoutWaitingForTheInterval) {
  ManualClock clock(kNow);
  Sweeper sweeper(*store_, clock, /*interval_seconds=*/3600);
  sweeper.Start();
  auto started = std::chrono::steady_clock::now();
  sweeper.Stop();
  auto took = std::chrono::steady_clock::now() - started;
  // Generous bound: Stop must not wait out the hour-long interval.
  EXPECT_LT(took, std::chrono::seconds(5));
  sweeper.Stop();  // idempotent
}

}  // namespace
}  // namespace wxsession
