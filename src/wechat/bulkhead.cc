#include "wechat/bulkhead.h"

#include <algorithm>

#include "wxsession/thread_annotations.h"

namespace wxsession {

Bulkhead::Bulkhead(int max_concurrent, int max_waiting)
    : max_concurrent_(std::max(1, max_concurrent)),
      max_waiting_(std::max(0, max_waiting)) {}

bool Bulkhead::Enter(std::chrono::milliseconds max_wait) {
  MutexLock lock(mutex_);
  if (in_use_ < max_concurrent_ && waiting_ == 0) {
    ++in_use_;
    return true;
  }
  if (waiting_ >= max_waiting_ || max_wait.count() <= 0) return false;
  ++waiting_;
  const bool got = lock.WaitFor(freed_, max_wait, [this]() REQUIRES(mutex_) {
    return in_use_ < max_concurrent_;
  });
  --waiting_;
  if (!got) return false;
  ++in_use_;
  return true;
}

void Bulkhead::Leave() {
  {
    MutexLock lock(mutex_);
    --in_use_;
  }
  freed_.notify_one();
}

int Bulkhead::in_use() const {
  MutexLock lock(mutex_);
  return in_use_;
}

int Bulkhead::waiting() const {
  MutexLock lock(mutex_);
  return waiting_;
}

}  // namespace wxsession
