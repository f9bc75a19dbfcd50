// GroupCommit: items queued while a commit runs go into the next commit
// together; nothing returns before the commit that carried it.
#include "store/sqlite/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace wxsession {
namespace {

struct Item {
  int value = 0;
  int committed_in = -1;  // index of the commit that carried it
};

// A commit function whose first commit blocks until released, so a test can
// queue items behind it deterministically.
class Recorder {
 public:
  void Commit(const std::vector<Item*>& batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int index = static_cast<int>(batches_.size());
    std::vector<int> values;
    for (Item* item : batch) {
      item->committed_in = index;
      values.push_back(item->value);
    }
    batches_.push_back(values);
    entered_.notify_all();
    if (index == 0) released_.wait(lock, [this] { return released; });
  }
  void WaitForFirstCommit() {
    std::unique_lock<std::mutex> lock(mutex_);
    entered_.wait(lock, [this] { return !batches_.empty(); });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mutex_);
    released = true;
    released_.notify_all();
  }
  std::vector<std::vector<int>> batches() {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable entered_;
  std::condition_variable released_;
  bool released = false;
  std::vector<std::vector<int>> batches_;
};

TEST(GroupCommit, ALoneItemIsCommittedAtOnceByItsOwnThread) {
  std::vector<std::thread::id> committers;
  GroupCommit<Item> group([&](const std::vector<Item*>& batch) {
    committers.push_back(std::this_thread::get_id());
    for (Item* item : batch) item->committed_in = 7;
  });
  Item item;
  group.Submit(item);
  EXPECT_EQ(item.committed_in, 7);
  ASSERT_EQ(committers.size(), 1u);
  EXPECT_EQ(committers[0], std::this_thread::get_id());
  EXPECT_EQ(group.commits(), 1u);
}

// A leader held inside commit 0 (item value 1) with `n` more items (values
// 10, 11, ...) queued behind it by their own threads; Finish() lets the
// commits run and joins every thread.
class QueuedBehindACommit {
 public:
  QueuedBehindACommit(size_t n, size_t max_batch)
      : later(n),
        group_([this](const std::vector<Item*>& b) { recorder.Commit(b); },
               max_batch) {
    leader_ = std::thread([this] { group_.Submit(first); });
    recorder.WaitForFirstCommit();  // the leader is inside commit 0
    for (size_t i = 0; i < n; ++i) {
      later[i].value = 10 + static_cast<int>(i);
      followers_.emplace_back([this, i] { group_.Submit(later[i]); });
    }
    // Condition, not time: all of them are queued behind the running commit.
    while (group_.queued() < n) std::this_thread::yield();
  }

  void Finish() {
    recorder.Release();
    leader_.join();
    for (auto& thread : followers_) thread.join();
  }

  size_t commits() const { return group_.commits(); }

  Recorder recorder;
  Item first{1};
  std::vector<Item> later;

 private:
  GroupCommit<Item> group_;
  std::thread leader_;
  std::vector<std::thread> followers_;
};

TEST(GroupCommit, ItemsQueuedDuringACommitShareTheNextOne) {
  QueuedBehindACommit run(3, /*max_batch=*/256);
  EXPECT_EQ(run.first.committed_in, 0);
  for (const Item& item : run.later) EXPECT_EQ(item.committed_in, -1);
  run.Finish();

  std::vector<std::vector<int>> batches = run.recorder.batches();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0], std::vector<int>({1}));
  ASSERT_EQ(batches[1].size(), 3u);
  for (const Item& item : run.later) EXPECT_EQ(item.committed_in, 1);
  EXPECT_EQ(run.commits(), 2u);
}

TEST(GroupCommit, ABatchNeverExceedsItsBound) {
  QueuedBehindACommit run(5, /*max_batch=*/2);
  run.Finish();
  size_t carried = 0;
  for (const auto& batch : run.recorder.batches()) {
    EXPECT_LE(batch.size(), 2u);
    carried += batch.size();
  }
  EXPECT_EQ(carried, 6u);
  EXPECT_EQ(run.recorder.batches().size(), 4u);  // 1, then 2 + 2 + 1
}

TEST(GroupCommit, EveryItemOfManyThreadsIsCommittedExactlyOnce) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 200;
  std::mutex seen_mutex;
  std::vector<int> seen(kThreads * kPerThread, 0);
  std::atomic<int> running_commits{0};
  std::atomic<bool> overlapped{false};
  GroupCommit<Item> group([&](const std::vector<Item*>& batch) {
    if (running_commits.fetch_add(1) != 0) overlapped = true;
    {
      std::lock_guard<std::mutex> lock(seen_mutex);
      for (Item* item : batch) seen[item->value]++;
    }
    for (Item* item : batch) item->committed_in = 1;
    running_commits.fetch_sub(1);
  });
  std::vector<std::thread> threads;
  std::atomic<int> unfinished{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Item item{t * kPerThread + i};
        group.Submit(item);
        if (item.committed_in != 1) unfinished++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(overlapped.load()) << "two commits ran at once";
  EXPECT_EQ(unfinished.load(), 0) << "Submit returned before its commit";
  for (int count : seen) ASSERT_EQ(count, 1);
  EXPECT_LE(group.commits(), static_cast<size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace wxsession
