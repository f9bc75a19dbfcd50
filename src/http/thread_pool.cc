#include "http/thread_pool.h"

#include <chrono>
#include <thread>

#include "wxsession/thread_annotations.h"

namespace wxsession {

GrowingThreadPool::GrowingThreadPool(size_t min_threads, size_t max_threads,
                                     int idle_seconds)
    : min_threads_(min_threads),
      max_threads_(max_threads < 1 ? 1 : max_threads),
      idle_seconds_(idle_seconds) {
  MutexLock lock(mutex_);
  while (threads_ < min_threads_ && threads_ < max_threads_) {
    StartThreadLocked();
  }
}

GrowingThreadPool::~GrowingThreadPool() { shutdown(); }

void GrowingThreadPool::StartThreadLocked() {
  ++threads_;
  ++idle_;
  // Detached: a thread that retires cannot be joined by anyone in time.
  // shutdown() waits on all_exited_ instead, and a thread touches nothing
  // of the pool after its last unlock.
  std::thread([this] { Work(); }).detach();
}

void GrowingThreadPool::enqueue(std::function<void()> job) {
  MutexLock lock(mutex_);
  if (shutting_down_) return;
  jobs_.push_back(std::move(job));
  if (idle_ < jobs_.size() && threads_ < max_threads_) StartThreadLocked();
  work_ready_.notify_one();
}

void GrowingThreadPool::shutdown() {
  MutexLock lock(mutex_);
  shutting_down_ = true;
  work_ready_.notify_all();
  lock.Wait(all_exited_, [this]() REQUIRES(mutex_) { return threads_ == 0; });
}

size_t GrowingThreadPool::threads() const {
  MutexLock lock(mutex_);
  return threads_;
}

void GrowingThreadPool::Work() {
  MutexLock lock(mutex_);
  while (true) {
    bool woke = lock.WaitFor(
        work_ready_, std::chrono::seconds(idle_seconds_),
        [this]() REQUIRES(mutex_) { return !jobs_.empty() || shutting_down_; });
    if (jobs_.empty()) {
      // Idle too long (and above the floor), or shutting down with nothing
      // left to run: retire.
      if (shutting_down_ || (!woke && threads_ > min_threads_)) break;
      continue;
    }
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    --idle_;
    lock.Unlock();
    job();
    lock.Lock();
    ++idle_;
  }
  --idle_;
  --threads_;
  if (threads_ == 0) all_exited_.notify_all();
}

}  // namespace wxsession
