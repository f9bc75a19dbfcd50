// Sweeper: reclaims expired sessions in the background.
//
// Reads already treat expired sessions as missing (SessionStore::FindLive),
// so the sweeper only reclaims space. Like Redis's active expiry it bounds
// its work: each transaction deletes at most `batch_rows` rows, so a lookup
// never waits behind more than one short batch, and a run stops early when
// asked to stop. After each full batch it rests kRestPerBatch times as long
// as the batch took, so a large backlog (200k sessions expiring together,
// or a server that was down) takes at most a quarter of a core from the
// lookups running beside it, instead of competing for the CPU flat out.
// It runs every `interval_seconds`.
//
// Every wait and every measure of a batch goes through the Clock: the
// interval and the rests are Clock::WaitFor on the sweeper's condition
// variable, so Stop ends them at once; with a ManualClock they pass at once
// and are recorded (ManualClock::Waits), and a Start()ed sweeper on a
// ManualClock runs round after round until stopped. Batches are timed with
// MonotonicMillis: a batch under a millisecond may read 0 or 1, which
// averages out to its true length over a backlog of many batches.
//
// Thread-safety: Start/Stop from one owning thread; RunOnce may be called
// from any thread (tests call it directly with a ManualClock).
#ifndef WXSESSION_SWEEPER_H_
#define WXSESSION_SWEEPER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "wxsession/clock.h"
#include "wxsession/status.h"
#include "wxsession/store.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {

class Sweeper {
 public:
  static constexpr int64_t kDefaultBatchRows = 1000;
  // Rest after a full batch, as a multiple of the time the batch took.
  static constexpr int kRestPerBatch = 3;

  // Called after each run with the number of rows deleted (or the error).
  using Observer = std::function<void(const Result<int64_t>&)>;

  // `store` and `clock` must outlive the sweeper.
  Sweeper(SessionStore& store, const Clock& clock, int64_t interval_seconds,
          int64_t batch_rows = kDefaultBatchRows, Observer observer = {});
  ~Sweeper();  // stops the thread

  // Also delete users idle for `retention_seconds` (users.retention; see
  // SessionStore::SweepUsers), after the sessions, in the same bounded
  // batches. Call before Start; 0 (the default) keeps users.
  void SweepUsersAfter(int64_t retention_seconds) {
    user_retention_seconds_ = retention_seconds;
  }

  // Deletes every session expired at clock.Now(), batch by batch, then the
  // users past their retention. Returns the total rows deleted, or the
  // first store error.
  Result<int64_t> RunOnce();

  void Start();
  // Wakes the thread, lets the current batch finish, joins. Idempotent.
  void Stop();

 private:
  void Loop();
  // Runs `batch` until it deletes fewer than batch_rows_ rows, resting after
  // each full batch. The rows deleted, or the first error.
  Result<int64_t> InBatches(const std::function<Result<int64_t>()>& batch);
  // Waits `milliseconds`, or less if Stop is called.
  void Rest(int64_t milliseconds);

  SessionStore& store_;
  const Clock& clock_;                  // thread-safe by contract
  const int64_t interval_seconds_;      // constant after construction
  const int64_t batch_rows_;            // constant after construction
  int64_t user_retention_seconds_ = 0;  // constant once started
  Observer observer_;                   // constant after construction
  std::atomic<bool> stopping_{false};
  Mutex mutex_;
  std::condition_variable wake_;  // with mutex_
  std::thread thread_;            // owned by the Start/Stop caller
};

}  // namespace wxsession

#endif  // WXSESSION_SWEEPER_H_
