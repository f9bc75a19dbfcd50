// Clock: where every piece of wxsessiond asks for the current time.
//
// Time is injected so that expiry, idle timeouts and the sweeper can be tested
// without sleeping: production code uses SystemClock, tests use ManualClock.
//
// Thread-safety: both implementations may be called from any thread.
#ifndef WXSESSION_CLOCK_H_
#define WXSESSION_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace wxsession {

class Clock {
 public:
  virtual ~Clock() = default;
  // Current wall-clock time in whole Unix seconds.
  virtual int64_t Now() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t Now() const override;
};

// A clock that only moves when told to.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t now) : now_(now) {}
  int64_t Now() const override { return now_.load(); }
  void Set(int64_t now) { now_.store(now); }
  void Advance(int64_t seconds) { now_.fetch_add(seconds); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace wxsession

#endif  // WXSESSION_CLOCK_H_
