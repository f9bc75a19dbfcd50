#include "core/code_memory.h"

#include <sys/mman.h>
#include <algorithm>

#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "wxsession/crypto.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {

CodeDigest CodeDigest::Of(std::string_view appid, std::string_view code) {
  std::string input;
  input.reserve(appid.size() + 1 + code.size());
  input.append(appid);
  input.push_back('\0');
  input.append(code);
  const std::string full = crypto::Sha256(input);
  CodeDigest digest;
  std::memcpy(digest.bytes.data(), full.data(), digest.bytes.size());
  return digest;
}

namespace {

// Uniform already (a SHA-256 prefix); bytes 8..15, because the shard is
// chosen by byte 0.
uint64_t HashOf(const CodeDigest& code) {
  uint64_t hash;
  std::memcpy(&hash, code.bytes.data() + 8, sizeof(hash));
  return hash;
}

struct DigestHash {
  size_t operator()(const CodeDigest& code) const {
    return static_cast<size_t>(HashOf(code));
  }
};

// The smallest power of two >= 2 * capacity: the index is at most half
// full, so a probe ends after about 1.5 slots on a hit, 2.5 on a miss.
size_t IndexSizeFor(size_t capacity) {
  size_t size = 2;
  while (size < 2 * capacity) size *= 2;
  return size;
}

// Anonymous private pages: zero until written, and not resident until
// then; MADV_DONTNEED turns them back into that (see Release).
template <typename T>
T* ZeroPages(size_t count) {
  void* memory = ::mmap(nullptr, count * sizeof(T), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  return static_cast<T*>(memory);
}

bool DecodeSessionId(std::string_view id, LoginTable::RawSessionId* raw) {
  if (!crypto::LooksLikeSessionId(id)) return false;
  std::string standard(id);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  standard.push_back('=');  // 43 characters: 32 bytes and one pad
  std::optional<std::string> bytes = crypto::Base64Decode(standard);
  if (!bytes || bytes->size() != raw->size()) return false;
  std::memcpy(raw->data(), bytes->data(), raw->size());
  return true;
}

}  // namespace

// The ring holds entries in arrival order, so forgetting the oldest (by
// count or by age) is popping its head; the index maps a digest to its ring
// slot. Removal from the index shifts the following entries of the probe
// run back (no tombstones), so probes stay short however long the table
// runs. A replaced code leaves its ring slot behind, vacated, until the
// head reaches it.
LoginTable::LoginTable(size_t capacity, int64_t lifetime_seconds)
    : capacity_(std::clamp<size_t>(capacity, 1, size_t{1} << 30)),
      lifetime_seconds_(lifetime_seconds),
      index_mask_(IndexSizeFor(capacity_) - 1),
      ring_(ZeroPages<Entry>(capacity_)),
      index_(ZeroPages<uint32_t>(index_mask_ + 1)) {}

LoginTable::~LoginTable() {
  ::munmap(ring_, capacity_ * sizeof(Entry));
  ::munmap(index_, (index_mask_ + 1) * sizeof(uint32_t));
}

// Once every code has left (a campaign's codes expired), the pages go back
// to the kernel: the table's memory follows the codes it holds instead of
// staying at the campaign's high-water mark. The index is all zero already
// (each code left it as it went) and reads so afterwards; the ring's
// contents do not matter while used_ is 0.
void LoginTable::Release() {
  ::madvise(ring_, capacity_ * sizeof(Entry), MADV_DONTNEED);
  ::madvise(index_, (index_mask_ + 1) * sizeof(uint32_t), MADV_DONTNEED);
  head_ = 0;
  touched_ = false;
}

size_t LoginTable::AllocatedBytes() const {
  return capacity_ * sizeof(Entry) + (index_mask_ + 1) * sizeof(uint32_t);
}

size_t LoginTable::Home(const CodeDigest& code) const {
  return static_cast<size_t>(HashOf(code)) & index_mask_;
}

size_t LoginTable::IndexSlotOf(uint32_t ring_slot) const {
  size_t slot = Home(ring_[ring_slot].code);
  while (index_[slot] != ring_slot + 1) slot = (slot + 1) & index_mask_;
  return slot;
}

void LoginTable::Unindex(size_t index_slot) {
  size_t hole = index_slot;
  for (size_t next = (hole + 1) & index_mask_; index_[next] != 0;
       next = (next + 1) & index_mask_) {
    const size_t home = Home(ring_[index_[next] - 1].code);
    // The entry at `next` may fill the hole unless its home lies after the
    // hole (cyclically, up to `next`): then the hole is not on its path.
    if (((next - home) & index_mask_) >= ((next - hole) & index_mask_)) {
      index_[hole] = index_[next];
      hole = next;
    }
  }
  index_[hole] = 0;
}

void LoginTable::DropOldest() {
  if (ring_[head_].created_at != kVacated) {
    Unindex(IndexSlotOf(static_cast<uint32_t>(head_)));
    --live_;
  }
  head_ = (head_ + 1) % capacity_;
  --used_;
}

bool LoginTable::Remember(const CodeDigest& code, std::string_view session_id,
                          int64_t now) {
  RawSessionId raw;
  if (!DecodeSessionId(session_id, &raw)) return false;
  // Vacated slots count as expired (kVacated is the smallest int64_t).
  const int64_t cutoff = now - lifetime_seconds_;
  while (used_ > 0 && ring_[head_].created_at < cutoff) DropOldest();
  if (used_ == 0 && touched_) Release();

  for (size_t slot = Home(code); index_[slot] != 0;
       slot = (slot + 1) & index_mask_) {
    Entry& earlier = ring_[index_[slot] - 1];
    if (earlier.code == code) {
      earlier.created_at = kVacated;
      Unindex(slot);
      --live_;
      break;
    }
  }
  if (used_ == capacity_) DropOldest();

  const size_t ring_slot = (head_ + used_) % capacity_;
  ring_[ring_slot] = Entry{code, raw, now};
  touched_ = true;
  ++used_;
  ++live_;
  size_t slot = Home(code);
  while (index_[slot] != 0) slot = (slot + 1) & index_mask_;
  index_[slot] = static_cast<uint32_t>(ring_slot + 1);
  return true;
}

std::optional<std::string> LoginTable::Find(const CodeDigest& code,
                                            int64_t now) const {
  for (size_t slot = Home(code); index_[slot] != 0;
       slot = (slot + 1) & index_mask_) {
    const Entry& entry = ring_[index_[slot] - 1];
    if (!(entry.code == code)) continue;
    if (entry.created_at < now - lifetime_seconds_) return std::nullopt;
    return crypto::Base64UrlEncode(
        std::string_view(reinterpret_cast<const char*>(entry.session_id.data()),
                         entry.session_id.size()));
  }
  return std::nullopt;
}

// Every login takes a shard's lock, so there are 16, chosen by the digest's
// first byte; with one lock a login campaign's threads queued on it (futex
// waits were 6% of a login profile).
struct CodeMemory::Shard {
  Shard(size_t capacity, int64_t lifetime_seconds)
      : table(capacity, lifetime_seconds) {}

  struct InFlight {
    std::promise<Result<std::string>> promise;
    std::shared_future<Result<std::string>> outcome;
  };

  Mutex mutex;
  LoginTable table GUARDED_BY(mutex);
  // One entry per exchange in progress: as many as logins at once, not
  // codes in the window.
  std::unordered_map<CodeDigest, InFlight, DigestHash> in_flight
      GUARDED_BY(mutex);
};

namespace {
constexpr size_t kShards = 16;
constexpr size_t kMinPerShard = 1024;
}  // namespace

CodeMemory::CodeMemory(size_t max_codes, int64_t lifetime_seconds) {
  const size_t shards = max_codes >= kShards * kMinPerShard ? kShards : 1;
  for (size_t i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<Shard>(
        std::max<size_t>(1, max_codes / shards), lifetime_seconds));
  }
}

CodeMemory::~CodeMemory() = default;

CodeMemory::Shard& CodeMemory::For(const CodeDigest& code) {
  return *shards_[code.bytes[0] % shards_.size()];
}

CodeMemory::Claim CodeMemory::Begin(const CodeDigest& code, int64_t now) {
  Shard& shard = For(code);
  Claim claim;
  MutexLock lock(shard.mutex);
  auto found = shard.in_flight.find(code);
  if (found != shard.in_flight.end()) {
    claim.in_flight = found->second.outcome;
    return claim;
  }
  claim.remembered = shard.table.Find(code, now);
  if (claim.remembered) return claim;
  Shard::InFlight& mine = shard.in_flight[code];
  mine.outcome = mine.promise.get_future().share();
  return claim;
}

void CodeMemory::Finish(const CodeDigest& code,
                        const Result<std::string>& outcome, int64_t now) {
  Shard& shard = For(code);
  std::promise<Result<std::string>> promise;
  {
    MutexLock lock(shard.mutex);
    auto found = shard.in_flight.find(code);
    if (found == shard.in_flight.end()) return;  // not Begin's owner
    promise = std::move(found->second.promise);
    shard.in_flight.erase(found);
    // In one critical section with the erase: a Begin sees the exchange in
    // flight or its result remembered, never neither.
    if (outcome.ok()) shard.table.Remember(code, outcome.value(), now);
  }
  promise.set_value(outcome);
}

size_t CodeMemory::size() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    MutexLock lock(shard->mutex);
    total += shard->table.size();
  }
  return total;
}

size_t CodeMemory::AllocatedBytes() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    MutexLock lock(shard->mutex);
    total += shard->table.AllocatedBytes();
  }
  return total;
}

}  // namespace wxsession
