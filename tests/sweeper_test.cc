// Sweeper against a real SQLite store with a manual clock: no sleeping
// (but for Stop against a real clock's wait).
#include "wxsession/sweeper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
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

// A store whose every sweep batch takes `batch_ms` on a ManualClock.
class SlowSweepStore : public testing_support::ForwardingStore {
 public:
  SlowSweepStore(SessionStore& inner, ManualClock& clock, int64_t batch_ms)
      : ForwardingStore(inner), clock_(clock), batch_ms_(batch_ms) {}
  Result<int64_t> SweepExpired(int64_t now, int64_t max_rows) override {
    clock_.AdvanceMillis(batch_ms_);
    return ForwardingStore::SweepExpired(now, max_rows);
  }
  Result<int64_t> SweepUsers(int64_t now, int64_t before,
                             int64_t max_rows) override {
    clock_.AdvanceMillis(batch_ms_);
    return ForwardingStore::SweepUsers(now, before, max_rows);
  }

 private:
  ManualClock& clock_;
  const int64_t batch_ms_;
};

// A big backlog is swept gently: after every full batch the sweeper rests
// kRestPerBatch times as long as the batch took; not after the last.
TEST_F(SweeperTest, RestsAfterEachFullBatchInProportionToItsDuration) {
  for (int i = 0; i < 10; ++i) Add("old" + std::to_string(i), kNow - i);
  ManualClock clock(kNow);
  SlowSweepStore slow(*store_, clock, /*batch_ms=*/7);
  Sweeper sweeper(slow, clock, 60, /*batch_rows=*/3);
  ASSERT_EQ(sweeper.RunOnce().value(), 10);
  // Batches of 3, 3, 3 and then 1: a rest after each of the full ones.
  const int64_t rest = 7 * Sweeper::kRestPerBatch;
  EXPECT_EQ(clock.Waits(), (std::vector<int64_t>{rest, rest, rest}));
  EXPECT_EQ(sweeper.RunOnce().value(), 0);
  EXPECT_EQ(clock.Waits().size(), 3u);
}

// The thread waits the interval on the clock before each run: sessions that
// expire within the first interval are gone after the first run.
TEST_F(SweeperTest, StartedSweeperRunsAfterEachInterval) {
  Add("expires-in-30s", kNow + 30);
  Add("expires-in-2h", kNow + 7200);
  ManualClock clock(kNow);
  std::promise<Result<int64_t>> first_run;
  std::atomic<bool> reported{false};
  Sweeper sweeper(*store_, clock, /*interval_seconds=*/60,
                  Sweeper::kDefaultBatchRows,
                  [&](const Result<int64_t>& deleted) {
                    if (!reported.exchange(true)) first_run.set_value(deleted);
                  });
  std::future<Result<int64_t>> ran = first_run.get_future();
  sweeper.Start();
  ASSERT_EQ(ran.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  sweeper.Stop();
  EXPECT_EQ(ran.get().value(), 1);
  ASSERT_FALSE(clock.Waits().empty());
  EXPECT_EQ(clock.Waits().front(), 60'000);
}

// Stop wakes the thread out of a real hour-long wait.
TEST_F(SweeperTest, StopReturnsPromptlyWithoutWaitingForTheInterval) {
  SystemClock clock;
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
