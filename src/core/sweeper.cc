#include "wxsession/sweeper.h"

namespace wxsession {

Sweeper::Sweeper(SessionStore& store, const Clock& clock,
                 int64_t interval_seconds, int64_t batch_rows,
                 Observer observer)
    : store_(store),
      clock_(clock),
      interval_seconds_(interval_seconds),
      batch_rows_(batch_rows),
      observer_(std::move(observer)) {}

Sweeper::~Sweeper() { Stop(); }

Result<int64_t> Sweeper::RunOnce() {
  const int64_t now = clock_.Now();
  Result<int64_t> sessions =
      InBatches([&] { return store_.SweepExpired(now, batch_rows_); });
  if (!sessions.ok() || user_retention_seconds_ <= 0) return sessions;
  Result<int64_t> users = InBatches([&] {
    return store_.SweepUsers(now, now - user_retention_seconds_, batch_rows_);
  });
  if (!users.ok()) return users;
  return sessions.value() + users.value();
}

Result<int64_t> Sweeper::InBatches(
    const std::function<Result<int64_t>()>& batch) {
  int64_t total = 0;
  // Each batch is its own short transaction: a lookup or login waits behind
  // at most one batch, never behind the whole sweep.
  while (!stopping_.load()) {
    const int64_t started_ms = clock_.MonotonicMillis();
    Result<int64_t> deleted = batch();
    if (!deleted.ok()) return deleted;
    total += deleted.value();
    if (deleted.value() < batch_rows_) break;
    Rest((clock_.MonotonicMillis() - started_ms) * kRestPerBatch);
  }
  return total;
}

void Sweeper::Rest(int64_t milliseconds) {
  MutexLock lock(mutex_);
  clock_.WaitFor(wake_, lock, milliseconds,
                 [this] { return stopping_.load(); });
}

void Sweeper::Start() {
  if (thread_.joinable()) return;
  stopping_.store(false);
  thread_ = std::thread([this] { Loop(); });
}

void Sweeper::Stop() {
  {
    MutexLock lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sweeper::Loop() {
  MutexLock lock(mutex_);
  while (!stopping_.load()) {
    // 1,000 ms in a second.
    clock_.WaitFor(wake_, lock, interval_seconds_ * 1000,
                   [this] { return stopping_.load(); });
    if (stopping_.load()) break;
    lock.Unlock();
    Result<int64_t> deleted = RunOnce();
    if (observer_) observer_(deleted);
    lock.Lock();
  }
}

}  // namespace wxsession
