#include "wxsession/clock.h"

#include <chrono>

namespace wxsession {

int64_t SystemClock::Now() const {
  // system_clock, not steady_clock: sessions store absolute Unix times that
  // must survive a restart and be comparable across processes.
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wxsession
