#include "wechat/bulkhead.h"

#include <algorithm>

namespace wxsession {

Bulkhead::Bulkhead(int max_concurrent, int max_waiting)
    : max_concurrent_(std::max(1, max_concurrent)),
      max_waiting_(std::max(0, max_waiting)) {}

bool Bulkhead::Enter(std::chrono::milliseconds max_wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (in_use_ < max_concurrent_ && waiting_ == 0) {
    ++in_use_;
    return true;
  }
  if (waiting_ >= max_waiting_ || max_wait.count() <= 0) return false;
  ++waiting_;
  const bool got = freed_.wait_for(
      lock, max_wait, [this] { return in_use_ < max_concurrent_; });
  --waiting_;
  if (!got) return false;
  ++in_use_;
  return true;
}

void Bulkhead::Leave() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --in_use_;
  }
  freed_.notify_one();
}

int Bulkhead::in_use() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_use_;
}

int Bulkhead::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

}  // namespace wxsession
