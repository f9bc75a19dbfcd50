#include "wxsession/clock.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace wxsession {

int64_t SystemClock::Now() const {
  // system_clock, not steady_clock: sessions store absolute Unix times that
  // must survive a restart and be comparable across processes.
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::MonotonicMillis() const {
  // steady_clock: an interval measured across a wall-clock step (NTP, an
  // operator) must neither go negative nor span the jump.
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SystemClock::SleepFor(int64_t milliseconds) const {
  if (milliseconds <= 0) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
}

bool SystemClock::WaitFor(std::condition_variable& wake, MutexLock& lock,
                          int64_t milliseconds,
                          const std::function<bool()>& done) const {
  // wait_for measures on steady_clock, so the wait ignores wall-clock steps.
  const std::chrono::milliseconds timeout(std::max<int64_t>(0, milliseconds));
  return lock.WaitFor(wake, timeout, done);
}

void ManualClock::SleepFor(int64_t milliseconds) const {
  PassWait(std::max<int64_t>(0, milliseconds));
}

bool ManualClock::WaitFor(std::condition_variable& /*wake*/,
                          MutexLock& /*lock*/, int64_t milliseconds,
                          const std::function<bool()>& done) const {
  if (done()) return true;
  PassWait(std::max<int64_t>(0, milliseconds));
  return done();
}

std::vector<int64_t> ManualClock::Waits() const {
  MutexLock lock(waits_mutex_);
  return waits_;
}

void ManualClock::PassWait(int64_t milliseconds) const {
  wall_ms_.fetch_add(milliseconds);
  monotonic_ms_.fetch_add(milliseconds);
  {
    MutexLock lock(waits_mutex_);
    waits_.push_back(milliseconds);
  }
  if (on_wait_) on_wait_(milliseconds);
}

}  // namespace wxsession
