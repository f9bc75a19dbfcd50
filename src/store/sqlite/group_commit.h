// GroupCommit: many threads each need one small write committed; one of them
// (the leader) commits everything queued so far in a single transaction
// while the others wait, then the next leader takes whatever queued up
// meanwhile (adapter-internal).
//
// Why: SQLite lets one writer in at a time, and in WAL mode the fixed cost of
// a commit (BEGIN IMMEDIATE's locks, the WAL frame of every page touched, the
// wal-index update) dominates a login's small insert. Logins that arrive
// while a commit is running share the next one. Nothing is acknowledged
// before its transaction has committed: Submit returns only after the commit
// that carried the item, and the commit function records the outcome of
// each item in the item itself.
//
// There is no timer and no extra thread: a lone writer commits at once, with
// the latency it had before; batches form only when writers already queue.
//
// Thread-safety: Submit may be called from any thread. The commit function
// runs in one leader at a time and must not throw.
#ifndef WXSESSION_SQLITE_GROUP_COMMIT_H_
#define WXSESSION_SQLITE_GROUP_COMMIT_H_

#include <algorithm>
#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

#include "wxsession/thread_annotations.h"

namespace wxsession {

template <class Item>
class GroupCommit {
 public:
  // Commits `batch` (in queue order) and records each item's outcome in it.
  using CommitFn = std::function<void(const std::vector<Item*>& batch)>;

  // `max_batch` bounds one transaction, so one commit never holds the write
  // lock for long; the rest wait for the next one.
  explicit GroupCommit(CommitFn commit, size_t max_batch = 256)
      : commit_(std::move(commit)),
        max_batch_(std::max<size_t>(1, max_batch)) {}

  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Returns once `item` has been through a commit (run by this thread or by
  // another); its outcome is whatever the commit function recorded in it.
  void Submit(Item& item) EXCLUDES(mutex_) {
    Slot slot;
    slot.item = &item;
    MutexLock lock(mutex_);
    queue_.push_back(&slot);
    while (!slot.done) {
      if (leading_) {
        lock.Wait(slot.wake);
        continue;
      }
      Lead();
    }
  }

  // Items waiting for a leader (for tests).
  size_t queued() const EXCLUDES(mutex_) {
    MutexLock lock(mutex_);
    return queue_.size();
  }

  // Commits run and items they carried (for tests and statistics).
  size_t commits() const EXCLUDES(mutex_) {
    MutexLock lock(mutex_);
    return commits_;
  }

 private:
  // One per waiting thread, on its stack. Each has its own condition
  // variable so that a commit wakes exactly the threads it carried, plus
  // the next leader; one shared condition variable woke every waiter, and
  // they all queued again on mutex_ (a tenth of a login profile).
  struct Slot {
    Item* item = nullptr;
    bool done = false;             // guarded by the GroupCommit's mutex_
    std::condition_variable wake;  // waited on with mutex_
  };

  // Takes the oldest queued items (always including the caller's when the
  // queue is short, which it is unless max_batch_ is exceeded) and commits
  // them with mutex_ released.
  void Lead() REQUIRES(mutex_) {
    leading_ = true;
    const size_t take = std::min(queue_.size(), max_batch_);
    std::vector<Slot*> slots(queue_.begin(), queue_.begin() + take);
    queue_.erase(queue_.begin(), queue_.begin() + take);
    mutex_.Unlock();
    std::vector<Item*> batch;
    batch.reserve(slots.size());
    for (Slot* slot : slots) batch.push_back(slot->item);
    commit_(batch);
    mutex_.Lock();
    // Notified with mutex_ held: a slot lives on its thread's stack until
    // that thread sees `done`, which it cannot before mutex_ is released.
    for (Slot* slot : slots) {
      slot->done = true;
      slot->wake.notify_one();  // the leader's own: nobody waits, a no-op
    }
    ++commits_;
    leading_ = false;
    // The oldest waiter leads the next commit.
    if (!queue_.empty()) queue_.front()->wake.notify_one();
  }

  const CommitFn commit_;   // constant after construction
  const size_t max_batch_;  // constant after construction
  mutable Mutex mutex_;
  std::vector<Slot*> queue_ GUARDED_BY(mutex_);
  bool leading_ GUARDED_BY(mutex_) = false;  // a commit is running
  size_t commits_ GUARDED_BY(mutex_) = 0;
};

}  // namespace wxsession

#endif  // WXSESSION_SQLITE_GROUP_COMMIT_H_
