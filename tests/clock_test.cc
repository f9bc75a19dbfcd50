// The two Clocks: SystemClock against the operating system, ManualClock as
// the tests of every other module rely on it.
#include "wxsession/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

namespace wxsession {
namespace {

constexpr int64_t kStart = 1'700'000'000;  // unix seconds

TEST(SystemClock, NowIsTheUnixTime) {
  SystemClock clock;
  const int64_t unix_now = static_cast<int64_t>(std::time(nullptr));
  // A second either way for a tick between the two reads.
  EXPECT_NEAR(clock.Now(), unix_now, 1);
}

TEST(SystemClock, MonotonicMillisNeverGoBackAndFollowSleeps) {
  SystemClock clock;
  int64_t previous = clock.MonotonicMillis();
  for (int i = 0; i < 100000; ++i) {
    const int64_t now = clock.MonotonicMillis();
    ASSERT_GE(now, previous);
    previous = now;
  }
  const int64_t before = clock.MonotonicMillis();
  clock.SleepFor(20);
  // A sleep lasts at least what was asked; there is no upper bound to test
  // on a shared machine.
  EXPECT_GE(clock.MonotonicMillis() - before, 20);
}

TEST(SystemClock, WaitForTimesOutOrEndsWhenDone) {
  SystemClock clock;
  Mutex mutex;
  std::condition_variable wake;
  bool done = false;  // written under mutex
  MutexLock lock(mutex);

  const int64_t before = clock.MonotonicMillis();
  EXPECT_FALSE(clock.WaitFor(wake, lock, 20, [&] { return done; }));
  EXPECT_GE(clock.MonotonicMillis() - before, 20);

  // Another thread ends an hour-long wait.
  std::thread stopper([&] {
    MutexLock guard(mutex);
    done = true;
    wake.notify_all();
  });
  EXPECT_TRUE(clock.WaitFor(wake, lock, 3'600'000, [&] { return done; }));
  lock.Unlock();
  stopper.join();
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock(kStart);
  EXPECT_EQ(clock.Now(), kStart);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000);
  clock.AdvanceMillis(1500);
  EXPECT_EQ(clock.Now(), kStart + 1);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000 + 1500);
  clock.Advance(10);
  EXPECT_EQ(clock.Now(), kStart + 11);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000 + 11500);
  EXPECT_TRUE(clock.Waits().empty());
}

TEST(ManualClock, SetMovesTheWallClockOnly) {
  ManualClock clock(kStart);
  clock.Set(kStart - 3600);
  EXPECT_EQ(clock.Now(), kStart - 3600);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000);
  clock.Advance(1);
  EXPECT_EQ(clock.Now(), kStart - 3599);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000 + 1000);
}

TEST(ManualClock, SleepPassesTheTimeAtOnceAndIsRecorded) {
  ManualClock clock(kStart);
  std::vector<int64_t> hooked;
  clock.OnWait([&](int64_t ms) { hooked.push_back(ms); });
  const auto started = std::chrono::steady_clock::now();
  clock.SleepFor(3'600'000);
  clock.SleepFor(250);
  clock.SleepFor(-5);  // as a SystemClock would: no time passes
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::seconds(5));
  EXPECT_EQ(clock.Now(), kStart + 3600);
  EXPECT_EQ(clock.MonotonicMillis(), kStart * 1000 + 3'600'250);
  EXPECT_EQ(clock.Waits(), (std::vector<int64_t>{3'600'000, 250, 0}));
  EXPECT_EQ(hooked, clock.Waits());
}

TEST(ManualClock, WaitForPassesUnlessAlreadyDone) {
  ManualClock clock(kStart);
  Mutex mutex;
  std::condition_variable wake;
  MutexLock lock(mutex);
  EXPECT_FALSE(clock.WaitFor(wake, lock, 60'000, [] { return false; }));
  EXPECT_EQ(clock.Now(), kStart + 60);
  EXPECT_TRUE(clock.WaitFor(wake, lock, 60'000, [] { return true; }));
  EXPECT_EQ(clock.Now(), kStart + 60);
  EXPECT_EQ(clock.Waits(), (std::vector<int64_t>{60'000}));
  EXPECT_TRUE(lock.held());
}

}  // namespace
}  // namespace wxsession
