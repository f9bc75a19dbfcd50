#include "core/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wxsession {
namespace {

// Shards, each with its own lock: enough that two busy clients rarely share
// one on a machine with a handful of cores.
constexpr size_t kShards = 16;

struct Bucket {
  double tokens = 0;
  int64_t updated_ms = 0;
};

using BucketMap = std::unordered_map<std::string, Bucket>;

// Drops the buckets that have refilled to the burst by `now`: forgetting
// them changes no decision, since a new bucket starts full.
void DropFull(BucketMap& buckets, int64_t now, double tokens_per_ms,
              double burst) {
  for (auto it = buckets.begin(); it != buckets.end();) {
    const double refilled =
        it->second.tokens +
        static_cast<double>(now - it->second.updated_ms) * tokens_per_ms;
    it = refilled >= burst ? buckets.erase(it) : std::next(it);
  }
}

// Drops the least recently used buckets until at most `target` remain.
void DropOldest(BucketMap& buckets, size_t target) {
  if (buckets.size() <= target) return;
  std::vector<std::pair<int64_t, std::string>> by_age;
  by_age.reserve(buckets.size());
  for (const auto& [name, bucket] : buckets) {
    by_age.emplace_back(bucket.updated_ms, name);
  }
  const size_t drop = buckets.size() - target;
  std::nth_element(by_age.begin(), by_age.begin() + drop, by_age.end());
  for (size_t i = 0; i < drop; ++i) buckets.erase(by_age[i].second);
}

}  // namespace

struct RateLimiter::Shard {
  Mutex mutex;
  BucketMap buckets GUARDED_BY(mutex);
};

RateLimiter::RateLimiter(double per_minute, double burst, const Clock& clock,
                         size_t max_keys)
    : tokens_per_ms_(per_minute / 60000.0),  // 60,000 ms in a minute
      burst_(std::max(1.0, burst)),
      clock_(clock),
      max_keys_per_shard_(std::max<size_t>(1, max_keys / kShards)),
      shards_(new Shard[kShards]) {}

RateLimiter::~RateLimiter() = default;

RateLimiter::Decision RateLimiter::Take(const std::string& key) {
  const int64_t now = clock_.MonotonicMillis();
  Shard& shard = shards_[std::hash<std::string>{}(key) % kShards];
  MutexLock lock(shard.mutex);

  auto found = shard.buckets.find(key);
  if (found == shard.buckets.end()) {
    if (shard.buckets.size() >= max_keys_per_shard_) {
      // Make room for a quarter of the shard at once, so this O(n) pass runs
      // at most once per max/4 new keys.
      DropFull(shard.buckets, now, tokens_per_ms_, burst_);
      DropOldest(shard.buckets, max_keys_per_shard_ * 3 / 4);
    }
    found = shard.buckets.emplace(key, Bucket{burst_, now}).first;
  }

  Bucket& bucket = found->second;
  const int64_t elapsed = std::max<int64_t>(0, now - bucket.updated_ms);
  bucket.tokens = std::min(
      burst_, bucket.tokens + static_cast<double>(elapsed) * tokens_per_ms_);
  bucket.updated_ms = now;
  Decision decision;
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return decision;
  }
  decision.allowed = false;
  const double wait_ms = (1.0 - bucket.tokens) / tokens_per_ms_;
  decision.retry_after_seconds =
      std::max(1, static_cast<int>(std::ceil(wait_ms / 1000.0)));
  return decision;
}

size_t RateLimiter::TrackedKeys() const {
  size_t total = 0;
  for (size_t i = 0; i < kShards; ++i) {
    MutexLock lock(shards_[i].mutex);
    total += shards_[i].buckets.size();
  }
  return total;
}

}  // namespace wxsession
