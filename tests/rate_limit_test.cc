#include "core/rate_limit.h"

#include <gtest/gtest.h>

#include <string>

namespace wxsession {
namespace {

// Every test moves a ManualClock by hand: none sleeps.
constexpr int64_t kStart = 1'700'000'000;  // unix seconds

TEST(RateLimiter, AllowsTheBurstThenRefusesWithRetryAfter) {
  ManualClock clock(kStart);
  RateLimiter limiter(/*per_minute=*/60, /*burst=*/3, clock);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take("1.2.3.4").allowed) << i;
  RateLimiter::Decision refused = limiter.Take("1.2.3.4");
  EXPECT_FALSE(refused.allowed);
  // One token a second: the next one is a second away.
  EXPECT_EQ(refused.retry_after_seconds, 1);
}

TEST(RateLimiter, RefillsAtTheConfiguredRateAndNeverBeyondTheBurst) {
  ManualClock clock(kStart);
  RateLimiter limiter(/*per_minute=*/6, /*burst=*/2, clock);  // 1 per 10 s
  EXPECT_TRUE(limiter.Take("k").allowed);
  EXPECT_TRUE(limiter.Take("k").allowed);
  RateLimiter::Decision refused = limiter.Take("k");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 10);
  clock.AdvanceMillis(4000);
  refused = limiter.Take("k");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 6);  // 0.4 of a token so far
  clock.AdvanceMillis(6000);
  EXPECT_TRUE(limiter.Take("k").allowed);
  EXPECT_FALSE(limiter.Take("k").allowed);
  // An hour idle refills to the burst (2), not to 360 tokens.
  clock.AdvanceMillis(3'600'000);
  EXPECT_TRUE(limiter.Take("k").allowed);
  EXPECT_TRUE(limiter.Take("k").allowed);
  EXPECT_FALSE(limiter.Take("k").allowed);
}

// Buckets refill on the monotonic clock: setting the wall clock an hour
// ahead (NTP, an operator) gives nobody a fresh burst.
TEST(RateLimiter, AWallClockStepNeitherRefillsNorDrains) {
  ManualClock clock(kStart);
  RateLimiter limiter(/*per_minute=*/60, /*burst=*/1, clock);
  EXPECT_TRUE(limiter.Take("k").allowed);
  clock.Set(kStart + 3600);
  EXPECT_FALSE(limiter.Take("k").allowed);
  clock.Set(kStart - 3600);
  EXPECT_FALSE(limiter.Take("k").allowed);
  clock.AdvanceMillis(1000);
  EXPECT_TRUE(limiter.Take("k").allowed);
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  ManualClock clock(kStart);
  RateLimiter limiter(60, 1, clock);
  EXPECT_TRUE(limiter.Take("a").allowed);
  EXPECT_FALSE(limiter.Take("a").allowed);
  EXPECT_TRUE(limiter.Take("b").allowed);
}

TEST(RateLimiter, RetryAfterIsAtLeastOneSecond) {
  ManualClock clock(kStart);
  RateLimiter limiter(/*per_minute=*/600000, /*burst=*/1, clock);
  EXPECT_TRUE(limiter.Take("k").allowed);
  RateLimiter::Decision refused = limiter.Take("k");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 1);
}

TEST(RateLimiter, MemoryStaysBoundedUnderManyAddresses) {
  ManualClock clock(kStart);
  const size_t max_keys = 1600;
  RateLimiter limiter(60, 5, clock, max_keys);
  for (int i = 0; i < 20000; ++i) {
    limiter.Take("10.0." + std::to_string(i / 256) + "." +
                 std::to_string(i % 256));
  }
  EXPECT_LE(limiter.TrackedKeys(), max_keys);
  EXPECT_GT(limiter.TrackedKeys(), max_keys / 2);
}

TEST(RateLimiter, FullBucketsAreDroppedBeforeBusyOnes) {
  ManualClock clock(kStart);
  // 16 shards of four buckets each: every shard fills up and evicts.
  RateLimiter limiter(60, 2, clock, 64);
  // A busy client drains its bucket.
  EXPECT_TRUE(limiter.Take("busy").allowed);
  EXPECT_TRUE(limiter.Take("busy").allowed);
  EXPECT_FALSE(limiter.Take("busy").allowed);
  // Many one-off clients, each leaving a nearly full bucket that refills
  // completely a second later.
  for (int i = 0; i < 200; ++i) {
    clock.AdvanceMillis(1000);
    limiter.Take("once-" + std::to_string(i));
    // The busy client keeps draining its bucket as it refills.
    limiter.Take("busy");
  }
  EXPECT_FALSE(limiter.Take("busy").allowed)
      << "the busy client's bucket was dropped and refilled";
}

}  // namespace
}  // namespace wxsession
