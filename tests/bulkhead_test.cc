#include "wechat/bulkhead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace wxsession {
namespace {

using std::chrono::milliseconds;

// Polls `condition` until it holds or 5 s pass.
template <typename Condition>
bool Eventually(Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return condition();
}

TEST(Bulkhead, LetsInUpToTheLimitAndNoMoreWithoutWaiting) {
  Bulkhead bulkhead(2, 2);
  EXPECT_TRUE(bulkhead.Enter(milliseconds(0)));
  EXPECT_TRUE(bulkhead.Enter(milliseconds(0)));
  EXPECT_EQ(bulkhead.in_use(), 2);
  EXPECT_FALSE(bulkhead.Enter(milliseconds(0)));
  bulkhead.Leave();
  EXPECT_TRUE(bulkhead.Enter(milliseconds(0)));
  bulkhead.Leave();
  bulkhead.Leave();
  EXPECT_EQ(bulkhead.in_use(), 0);
}

TEST(Bulkhead, AWaiterGetsThePlaceALeaverFrees) {
  Bulkhead bulkhead(1, 1);
  ASSERT_TRUE(bulkhead.Enter(milliseconds(0)));
  auto waiter = std::async(std::launch::async, [&] {
    return bulkhead.Enter(std::chrono::hours(1));
  });
  ASSERT_TRUE(Eventually([&] { return bulkhead.waiting() == 1; }));
  bulkhead.Leave();
  EXPECT_TRUE(waiter.get());
  EXPECT_EQ(bulkhead.in_use(), 1);
  EXPECT_EQ(bulkhead.waiting(), 0);
  bulkhead.Leave();
}

TEST(Bulkhead, AFullWaitingRoomRefusesAtOnce) {
  Bulkhead bulkhead(1, 1);
  ASSERT_TRUE(bulkhead.Enter(milliseconds(0)));
  auto waiter = std::async(std::launch::async, [&] {
    return bulkhead.Enter(std::chrono::hours(1));
  });
  ASSERT_TRUE(Eventually([&] { return bulkhead.waiting() == 1; }));
  // Would wait an hour if it queued; it must not queue.
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(bulkhead.Enter(std::chrono::hours(1)));
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            std::chrono::seconds(5));
  bulkhead.Leave();
  EXPECT_TRUE(waiter.get());
  bulkhead.Leave();
}

TEST(Bulkhead, AWaitThatRunsOutIsRefused) {
  Bulkhead bulkhead(1, 4);
  ASSERT_TRUE(bulkhead.Enter(milliseconds(0)));
  EXPECT_FALSE(bulkhead.Enter(milliseconds(20)));
  EXPECT_EQ(bulkhead.waiting(), 0);
  bulkhead.Leave();
}

}  // namespace
}  // namespace wxsession
