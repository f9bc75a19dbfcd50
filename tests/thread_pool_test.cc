// GrowingThreadPool: grows on demand up to its cap, retires idle threads,
// runs every job, and shutdown waits for all threads.
#include "http/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace wxsession {
namespace {

// Polls `condition` for up to 5 s; the pool's threads run on their own.
template <typename Condition>
bool Eventually(Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return condition();
}

TEST(GrowingThreadPool, GrowsWhileEveryThreadIsBusyAndRunsEveryJob) {
  GrowingThreadPool pool(/*min_threads=*/1, /*max_threads=*/64);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> running{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 40; ++i) {
    pool.enqueue([&, released] {
      running++;
      released.wait();
      done++;
    });
  }
  // 40 blocked jobs at once: a fixed pool of 8 would leave 32 queued.
  EXPECT_TRUE(Eventually([&] { return running.load() == 40; }));
  EXPECT_EQ(pool.threads(), 40u);
  release.set_value();
  EXPECT_TRUE(Eventually([&] { return done.load() == 40; }));
  pool.shutdown();
  EXPECT_EQ(pool.threads(), 0u);
}

TEST(GrowingThreadPool, NeverExceedsItsCapAndQueuesTheRest) {
  GrowingThreadPool pool(/*min_threads=*/0, /*max_threads=*/2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> running{0};
  for (int i = 0; i < 5; ++i) {
    pool.enqueue([&, released] {
      running++;
      released.wait();
    });
  }
  EXPECT_TRUE(Eventually([&] { return running.load() == 2; }));
  EXPECT_EQ(pool.threads(), 2u);
  EXPECT_EQ(running.load(), 2);  // the other three wait for a thread
  release.set_value();
  EXPECT_TRUE(Eventually([&] { return running.load() == 5; }));
}

TEST(GrowingThreadPool, IdleThreadsRetireDownToTheFloor) {
  GrowingThreadPool pool(/*min_threads=*/1, /*max_threads=*/8,
                         /*idle_seconds=*/0);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> running{0};
  for (int i = 0; i < 6; ++i) {
    pool.enqueue([&, released] {
      running++;
      released.wait();
    });
  }
  EXPECT_TRUE(Eventually([&] { return running.load() == 6; }));
  release.set_value();
  EXPECT_TRUE(Eventually([&] { return pool.threads() == 1; }));
}

TEST(GrowingThreadPool, ShutdownRunsQueuedJobsFirst) {
  std::atomic<int> done{0};
  {
    GrowingThreadPool pool(/*min_threads=*/0, /*max_threads=*/1);
    for (int i = 0; i < 10; ++i) pool.enqueue([&] { done++; });
    pool.shutdown();
  }
  EXPECT_EQ(done.load(), 10);
}

}  // namespace
}  // namespace wxsession
