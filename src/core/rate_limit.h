// RateLimiter: one token bucket per key (a client address), used to bound
// POST /v1/login per client.
//
// A bucket holds at most `burst` tokens and refills at `per_minute` / 60
// tokens a second; each request takes one token, or is refused with the
// whole seconds until a token will be there (the Retry-After to send).
// Time comes from the injected Clock's MonotonicMillis (a wall-clock step
// neither refills nor drains a bucket), so tests need not sleep.
//
// Memory is bounded by `max_keys`. A bucket that has refilled to `burst`
// carries no information (a new bucket would be the same), so when the table
// is full such buckets are dropped first; if every bucket is still
// refilling, the stalest ones go, which at worst gives those clients a fresh
// burst. Keys are spread over shards, each with its own lock, so requests
// from different clients rarely wait on one another.
//
// Thread-safety: Take may be called from any thread.
#ifndef WXSESSION_RATE_LIMIT_H_
#define WXSESSION_RATE_LIMIT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "wxsession/clock.h"

namespace wxsession {

class RateLimiter {
 public:
  // 100,000 buckets of well under 100 bytes each: a few MB at most.
  static constexpr size_t kDefaultMaxKeys = 100000;

  struct Decision {
    bool allowed = true;
    int retry_after_seconds = 0;  // set when !allowed; at least 1
  };

  // `per_minute` > 0 and `burst` >= 1. `clock` must outlive the limiter.
  RateLimiter(double per_minute, double burst, const Clock& clock,
              size_t max_keys = kDefaultMaxKeys);
  ~RateLimiter();

  // Takes one token from `key`'s bucket.
  Decision Take(const std::string& key);

  // Buckets currently held (for tests and metrics).
  size_t TrackedKeys() const;

 private:
  struct Shard;
  const double tokens_per_ms_;       // constant after construction
  const double burst_;               // constant after construction
  const Clock& clock_;               // thread-safe by contract
  const size_t max_keys_per_shard_;  // constant after construction
  std::unique_ptr<Shard[]> shards_;  // each shard guards itself
};

}  // namespace wxsession

#endif  // WXSESSION_RATE_LIMIT_H_
