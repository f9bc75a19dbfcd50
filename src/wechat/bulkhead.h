// Bulkhead: lets at most `max_concurrent` callers in at once and at most
// `max_waiting` more wait for a place, each for a bounded time.
//
// It keeps one slow dependency from swallowing every worker thread: with
// WeChat stalled, calls to it hold at most max_concurrent + max_waiting
// threads, and the rest stay free for work that does not need WeChat.
//
// Thread-safety: every method may be called from any thread.
#ifndef WXSESSION_BULKHEAD_H_
#define WXSESSION_BULKHEAD_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "wxsession/thread_annotations.h"

namespace wxsession {

class Bulkhead {
 public:
  // `max_concurrent` >= 1, `max_waiting` >= 0.
  Bulkhead(int max_concurrent, int max_waiting);

  // Takes a place, waiting up to `max_wait` for one. False, at once, when
  // max_waiting callers are already waiting; false after `max_wait` when no
  // place came free. A caller that got true must call Leave().
  bool Enter(std::chrono::milliseconds max_wait);
  void Leave();

  int in_use() const;
  int waiting() const;
  int max_concurrent() const { return max_concurrent_; }

 private:
  const int max_concurrent_;  // constant after construction
  const int max_waiting_;     // constant after construction
  mutable Mutex mutex_;
  std::condition_variable freed_;  // with mutex_
  int in_use_ GUARDED_BY(mutex_) = 0;
  int waiting_ GUARDED_BY(mutex_) = 0;
};

}  // namespace wxsession

#endif  // WXSESSION_BULKHEAD_H_
