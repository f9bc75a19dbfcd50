// GrowingThreadPool: cpp-httplib's TaskQueue with threads made on demand.
//
// cpp-httplib serves each connection on one thread for as long as the
// connection stays open (keep-alive included). A fixed pool smaller than the
// number of open connections therefore leaves the extra connections queued
// until another closes, which shows as 0.5-5 s tail latency with 32
// keep-alive clients on 16 threads, and lets a burst of slow logins (WeChat
// at 100 ms) starve every lookup. This pool starts a thread whenever a
// connection arrives and no thread is idle, up to `max_threads`; a thread
// idle for `idle_seconds` exits, down to `min_threads`.
//
// Thread-safety: enqueue and shutdown may be called from any thread.
#ifndef WXSESSION_THREAD_POOL_H_
#define WXSESSION_THREAD_POOL_H_

#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

#include "wxsession/thread_annotations.h"

namespace wxsession {

class GrowingThreadPool : public httplib::TaskQueue {
 public:
  GrowingThreadPool(size_t min_threads, size_t max_threads,
                    int idle_seconds = 30);
  ~GrowingThreadPool() override;

  void enqueue(std::function<void()> job) override;
  // Runs every queued job, then waits for all threads to exit.
  void shutdown() override;

  size_t threads() const;  // for tests and metrics

 private:
  void StartThreadLocked() REQUIRES(mutex_);
  void Work();

  const size_t min_threads_;  // constant after construction
  const size_t max_threads_;  // constant after construction
  const int idle_seconds_;    // constant after construction
  mutable Mutex mutex_;
  std::condition_variable work_ready_;  // with mutex_
  std::condition_variable all_exited_;  // with mutex_
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mutex_);
  size_t threads_ GUARDED_BY(mutex_) = 0;
  size_t idle_ GUARDED_BY(mutex_) = 0;
  bool shutting_down_ GUARDED_BY(mutex_) = false;
};

}  // namespace wxsession

#endif  // WXSESSION_THREAD_POOL_H_
