// The idempotent-login memory: which session each recent (appid, code) made.
//
// WeChat codes are single-use, so a client retrying a login after a lost
// reply would otherwise get invalid_code; SessionService answers such a retry
// with the session the first attempt made. Two pieces:
//
// LoginTable remembers, for a fixed number of codes and a fixed time, a
// 16-byte digest of (appid, code) and the 32 raw bytes of the session id: 56
// bytes a code, in two arrays mapped once (a ring in arrival order, and an
// open-addressing index over it), no heap node per code. When every code in
// it has expired, its pages go back to the kernel. What the retry
// answers besides the id (openid, unionid, expiry) is read from the store,
// which has to be asked anyway: the session may have ended since.
//
// CodeMemory is the thread-safe front: LoginTables in shards, each with its
// own lock, plus the exchanges in flight, so that concurrent posts of one
// code share one call to WeChat. Only exchanges that succeeded are
// remembered.
//
// Thread-safety: LoginTable is not thread-safe (CodeMemory locks around it);
// every CodeMemory method may be called from any thread.
#ifndef WXSESSION_CODE_MEMORY_H_
#define WXSESSION_CODE_MEMORY_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wxsession/status.h"

namespace wxsession {

// The first 16 bytes of SHA-256(appid '\0' code). 128 bits: an accidental
// collision among the 100,000 codes remembered at once has odds near 2^-95,
// and finding a code whose digest matches someone else's (whose code one
// does not know) means about 2^128 / 100,000 guesses, each a login request.
// The code itself is not kept.
struct CodeDigest {
  std::array<uint8_t, 16> bytes{};

  static CodeDigest Of(std::string_view appid, std::string_view code);
  bool operator==(const CodeDigest& other) const {
    return bytes == other.bytes;
  }
};

class LoginTable {
 public:
  // A session id is 32 random bytes (crypto::NewSessionId), kept raw.
  using RawSessionId = std::array<uint8_t, 32>;

  // Remembers at most `capacity` codes (at least 1), each for
  // `lifetime_seconds`: alive while created_at >= now - lifetime_seconds.
  LoginTable(size_t capacity, int64_t lifetime_seconds);
  ~LoginTable();
  LoginTable(const LoginTable&) = delete;
  LoginTable& operator=(const LoginTable&) = delete;

  // Remembers that `code` made `session_id` at `now`. First forgets codes
  // older than the lifetime (and, if that was every code, gives the
  // table's pages back to the kernel) and, when the table is full, the
  // oldest code (arrival order, whatever their age). A code already remembered
  // is replaced (and becomes the newest). Returns false, remembering nothing,
  // when `session_id` is not the shape crypto::NewSessionId makes.
  bool Remember(const CodeDigest& code, std::string_view session_id,
                int64_t now);

  // The session id `code` made, if it is remembered and younger than the
  // lifetime at `now`.
  std::optional<std::string> Find(const CodeDigest& code, int64_t now) const;

  // Codes held, including expired ones not yet dropped (they go when a
  // Remember passes them, or are skipped by Find).
  size_t size() const { return live_; }
  size_t capacity() const { return capacity_; }
  // Bytes the two arrays take once every slot was used; they never grow.
  // Resident are only the pages written since the table was last empty.
  size_t AllocatedBytes() const;

  struct Entry {
    CodeDigest code;
    RawSessionId session_id;
    int64_t created_at;  // kVacated: replaced, no longer in the index
  };
  static constexpr size_t kEntryBytes = sizeof(Entry);

 private:
  static constexpr int64_t kVacated = INT64_MIN;

  size_t Home(const CodeDigest& code) const;
  // The index slot that points at ring slot `ring_slot`.
  size_t IndexSlotOf(uint32_t ring_slot) const;
  void Unindex(size_t index_slot);
  void DropOldest();
  void Release();

  const size_t capacity_;
  const int64_t lifetime_seconds_;
  const size_t index_mask_;  // index size - 1; the size is a power of two
  // Both mapped pages: those the table never reached, or gave back in
  // Release, cost no memory.
  Entry* ring_;      // capacity_ entries, oldest at head_
  uint32_t* index_;  // ring slot + 1, or 0 for empty; linear probing
  size_t head_ = 0;
  size_t used_ = 0;       // ring slots in use, vacated ones included
  size_t live_ = 0;       // ring slots in the index
  bool touched_ = false;  // written since construction or the last Release
};

class CodeMemory {
 public:
  // `max_codes` is split over the shards; a small bound (tests) keeps one
  // shard, so "the oldest code is forgotten first" holds exactly.
  CodeMemory(size_t max_codes, int64_t lifetime_seconds);
  ~CodeMemory();

  // What Begin found for a code.
  struct Claim {
    // The session a finished exchange of this code made; empty otherwise.
    std::optional<std::string> remembered;
    // Set when another caller is exchanging this code: its outcome (the
    // session id, or why it failed).
    std::shared_future<Result<std::string>> in_flight;
    // Neither: the caller owns the exchange and must call Finish once.
    bool owner() const { return !remembered && !in_flight.valid(); }
  };

  Claim Begin(const CodeDigest& code, int64_t now);

  // Ends the exchange the caller owns (Begin said owner()). On success the
  // code is remembered as having made the session, at `now`; either way
  // every caller waiting on it gets `outcome`, and a failed code is
  // forgotten, so the next Begin owns a new exchange.
  void Finish(const CodeDigest& code, const Result<std::string>& outcome,
              int64_t now);

  // Codes remembered, in all shards (for tests and the benchmark's notes).
  size_t size() const;
  size_t AllocatedBytes() const;

 private:
  struct Shard;
  Shard& For(const CodeDigest& code);
  std::vector<std::unique_ptr<Shard>> shards_;  // constant after construction
};

}  // namespace wxsession

#endif  // WXSESSION_CODE_MEMORY_H_
