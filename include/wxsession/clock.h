// Clock: where every piece of wxsessiond asks for the time, and how it waits.
//
// Time is injected so that expiry, rate limits, the sweeper and the
// access-token centre can be tested without sleeping: production code uses
// SystemClock, tests use ManualClock. A Clock tells two times:
//   - Now(): wall-clock Unix seconds, for anything stored or compared across
//     processes (session expiry, token lifetimes, refresh leases). It can
//     jump when the operator or NTP sets the system clock.
//   - MonotonicMillis(): milliseconds from an arbitrary origin that never go
//     backwards, for intervals inside this process (rate-limit refills, how
//     long a sweep batch took). Never store it or send it elsewhere.
// and waits two ways: SleepFor (plain) and WaitFor (on a condition variable,
// so another thread can end the wait early, e.g. a Stop).
//
// Thread-safety: every method of both implementations may be called from
// any thread, except where ManualClock says otherwise.
#ifndef WXSESSION_CLOCK_H_
#define WXSESSION_CLOCK_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "wxsession/thread_annotations.h"

namespace wxsession {

class Clock {
 public:
  virtual ~Clock() = default;

  // Current wall-clock time in whole Unix seconds.
  virtual int64_t Now() const = 0;

  // Milliseconds on a monotonic clock: never smaller than an earlier
  // answer, unaffected by changes to the wall clock.
  virtual int64_t MonotonicMillis() const = 0;

  // Lets `milliseconds` pass before returning (at once when <= 0).
  virtual void SleepFor(int64_t milliseconds) const = 0;

  // Waits on `wake`, whose mutex `lock` holds, until `done()` is true or
  // `milliseconds` have passed. Whoever makes done() true must do so under
  // that mutex and then notify `wake`. Returns done(): false on a timeout.
  virtual bool WaitFor(std::condition_variable& wake, MutexLock& lock,
                       int64_t milliseconds,
                       const std::function<bool()>& done) const = 0;
};

// The operating system's clocks: system_clock for Now(), steady_clock for
// MonotonicMillis() and both waits.
class SystemClock : public Clock {
 public:
  int64_t Now() const override;
  int64_t MonotonicMillis() const override;
  void SleepFor(int64_t milliseconds) const override;
  bool WaitFor(std::condition_variable& wake, MutexLock& lock,
               int64_t milliseconds,
               const std::function<bool()>& done) const override;
};

// A clock for tests that moves only when told to, or when code sleeps or
// waits on it; it never blocks.
//
// Advance and AdvanceMillis move both times; Set moves only the wall clock
// (as an operator setting the date would), so MonotonicMillis never goes
// backwards. SleepFor, and a WaitFor whose done() is still false, advance
// the clock by the whole duration at once, record the duration (Waits())
// and run the hook given to OnWait. So a thread that waits in a loop on a
// ManualClock does not block between rounds: stop it, or give it a
// SystemClock.
class ManualClock : public Clock {
 public:
  // Starts at `now` Unix seconds; MonotonicMillis starts at now * 1000.
  explicit ManualClock(int64_t now)
      : wall_ms_(now * 1000), monotonic_ms_(now * 1000) {}

  int64_t Now() const override { return wall_ms_.load() / 1000; }
  int64_t MonotonicMillis() const override { return monotonic_ms_.load(); }
  void SleepFor(int64_t milliseconds) const override;
  // Returns true at once, without advancing, when done() already is.
  bool WaitFor(std::condition_variable& wake, MutexLock& lock,
               int64_t milliseconds,
               const std::function<bool()>& done) const override;

  void Set(int64_t now) { wall_ms_.store(now * 1000); }
  void Advance(int64_t seconds) { AdvanceMillis(seconds * 1000); }
  void AdvanceMillis(int64_t milliseconds) {
    wall_ms_.fetch_add(milliseconds);
    monotonic_ms_.fetch_add(milliseconds);
  }

  // The duration in milliseconds of every sleep and every wait that timed
  // out so far, oldest first.
  std::vector<int64_t> Waits() const;

  // `hook` runs after each sleep or timed-out wait has advanced the clock,
  // with its duration: a test's stand-in for what happens meanwhile
  // elsewhere. It runs on the waiting thread, inside WaitFor with the
  // caller's lock held. Set it before the clock is in use.
  void OnWait(std::function<void(int64_t milliseconds)> hook) {
    on_wait_ = std::move(hook);
  }

 private:
  // Advances by `milliseconds`, records them and runs the hook.
  void PassWait(int64_t milliseconds) const;

  // Both mutable: waiting on a const Clock lets time pass.
  mutable std::atomic<int64_t> wall_ms_;
  mutable std::atomic<int64_t> monotonic_ms_;
  mutable Mutex waits_mutex_;
  mutable std::vector<int64_t> waits_ GUARDED_BY(waits_mutex_);
  std::function<void(int64_t)> on_wait_;  // constant once in use
};

}  // namespace wxsession

#endif  // WXSESSION_CLOCK_H_
