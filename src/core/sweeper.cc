#include "wxsession/sweeper.h"

#include <chrono>

namespace wxsession {

Sweeper::Sweeper(SessionStore& store, const Clock& clock,
                 int64_t interval_seconds, int64_t batch_rows,
                 Observer observer, Rest rest)
    : store_(store),
      clock_(clock),
      interval_seconds_(interval_seconds),
      batch_rows_(batch_rows),
      observer_(std::move(observer)),
      rest_(std::move(rest)) {}

Sweeper::~Sweeper() { Stop(); }

Result<int64_t> Sweeper::RunOnce() {
  const int64_t now = clock_.Now();
  int64_t total = 0;
  // Each batch is its own short transaction: a lookup or login waits behind
  // at most one batch, never behind the whole sweep.
  while (!stopping_.load()) {
    const auto started = std::chrono::steady_clock::now();
    Result<int64_t> deleted = store_.SweepExpired(now, batch_rows_);
    if (!deleted.ok()) return deleted;
    total += deleted.value();
    if (deleted.value() < batch_rows_) break;
    RestFor((std::chrono::steady_clock::now() - started) * kRestPerBatch);
  }
  if (user_retention_seconds_ <= 0) return total;
  while (!stopping_.load()) {
    const auto started = std::chrono::steady_clock::now();
    Result<int64_t> deleted =
        store_.SweepUsers(now, now - user_retention_seconds_, batch_rows_);
    if (!deleted.ok()) return deleted;
    total += deleted.value();
    if (deleted.value() < batch_rows_) break;
    RestFor((std::chrono::steady_clock::now() - started) * kRestPerBatch);
  }
  return total;
}

void Sweeper::RestFor(std::chrono::nanoseconds duration) {
  if (rest_) return rest_(duration);
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, duration, [this] { return stopping_.load(); });
}

void Sweeper::Start() {
  if (thread_.joinable()) return;
  stopping_.store(false);
  thread_ = std::thread([this] { Loop(); });
}

void Sweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sweeper::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_.load()) {
    wake_.wait_for(lock, std::chrono::seconds(interval_seconds_),
                   [this] { return stopping_.load(); });
    if (stopping_.load()) break;
    lock.unlock();
    Result<int64_t> deleted = RunOnce();
    if (observer_) observer_(deleted);
    lock.lock();
  }
}

}  // namespace wxsession
