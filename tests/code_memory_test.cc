// LoginTable and CodeMemory: the idempotent-login memory on its own, with
// time passed in and digests made to collide on purpose.
#include "core/code_memory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "wxsession/crypto.h"

namespace wxsession {
namespace {

constexpr int64_t kStart = 1'700'000'000;  // unix seconds
constexpr int64_t kLifetime = 300;

// A digest whose index home is decided by `hash` (bytes 8..15) and whose
// identity by `tag`: equal hashes with different tags collide.
CodeDigest MakeDigest(uint64_t hash, uint32_t tag) {
  CodeDigest digest;
  std::memcpy(digest.bytes.data() + 8, &hash, sizeof(hash));
  std::memcpy(digest.bytes.data() + 1, &tag, sizeof(tag));
  return digest;
}

// A well-formed session id that says which test value it stands for.
std::string IdFor(uint32_t n) {
  std::string raw(32, '\0');
  std::memcpy(raw.data(), &n, sizeof(n));
  raw[31] = 'z';
  return crypto::Base64UrlEncode(raw);
}

TEST(LoginTable, AnEntryIsADigestAnIdAndATime) {
  // 16 + 32 + 8: nothing else is kept per code.
  EXPECT_EQ(LoginTable::kEntryBytes, 56u);
  LoginTable table(6250, kLifetime);  // one of the service's 16 shards
  // The ring and an index at most half full: under 70 bytes a code.
  EXPECT_LE(table.AllocatedBytes(), 6250u * 70);
}

// This process's resident memory, in KiB.
int64_t ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(LoginTable, GivesItsPagesBackOnceEveryCodeHasExpired) {
  LoginTable table(100000, kLifetime);  // 5.3 MiB of ring, 1 MiB of index
  const int64_t empty = ResidentKiB();
  ASSERT_GT(empty, 0);
  for (uint32_t i = 0; i < 100000; ++i) {
    ASSERT_TRUE(
        table.Remember(MakeDigest(i * 2654435761u, i), IdFor(i), kStart));
  }
  const int64_t full = ResidentKiB();
  // The ring's pages (5,469 KiB) and the index's (1,024 KiB), written.
  EXPECT_GE(full - empty, 6000);
  // Every code has expired: the next one empties the table first.
  const CodeDigest late = MakeDigest(7, 1'000'000);
  ASSERT_TRUE(table.Remember(late, IdFor(7), kStart + kLifetime + 1));
  const int64_t released = ResidentKiB();
  EXPECT_GE(full - released, 6000);
  // And it works as before: the new code is there, the old ones are not,
  // and it fills again.
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.Find(late, kStart + kLifetime + 1), IdFor(7));
  EXPECT_EQ(table.Find(MakeDigest(5u * 2654435761u, 5), kStart + kLifetime + 1),
            std::nullopt);
  for (uint32_t i = 0; i < 100000; ++i) {
    ASSERT_TRUE(table.Remember(MakeDigest(i * 2654435761u, i), IdFor(i),
                               kStart + kLifetime + 2));
  }
  EXPECT_EQ(table.Find(late, kStart + kLifetime + 2), std::nullopt);
  EXPECT_EQ(table.Find(MakeDigest(5u * 2654435761u, 5), kStart + kLifetime + 2),
            IdFor(5));
}

TEST(LoginTable, FindsWhatWasRememberedAndNothingElse) {
  LoginTable table(100, kLifetime);
  const std::string id = crypto::NewSessionId();
  const CodeDigest code = CodeDigest::Of("wxapp1", "alice.1");
  ASSERT_TRUE(table.Remember(code, id, kStart));
  EXPECT_EQ(table.Find(code, kStart), id);
  EXPECT_EQ(table.Find(CodeDigest::Of("wxapp1", "alice.2"), kStart),
            std::nullopt);
  // The appid is part of the digest.
  EXPECT_EQ(table.Find(CodeDigest::Of("wxapp2", "alice.1"), kStart),
            std::nullopt);
  EXPECT_EQ(table.size(), 1u);
}

TEST(LoginTable, IdsOfAnotherShapeAreNotRemembered) {
  LoginTable table(100, kLifetime);
  const CodeDigest code = CodeDigest::Of("wxapp1", "a");
  EXPECT_FALSE(table.Remember(code, "short", kStart));
  EXPECT_FALSE(table.Remember(code, std::string(43, '!'), kStart));
  EXPECT_EQ(table.Find(code, kStart), std::nullopt);
  EXPECT_EQ(table.size(), 0u);
}

TEST(LoginTable, ACodeIsForgottenOnceItsLifetimeHasPassed) {
  LoginTable table(100, kLifetime);
  const CodeDigest code = CodeDigest::Of("wxapp1", "a");
  ASSERT_TRUE(table.Remember(code, IdFor(1), kStart));
  EXPECT_EQ(table.Find(code, kStart + kLifetime), IdFor(1));
  EXPECT_EQ(table.Find(code, kStart + kLifetime + 1), std::nullopt);
  // A clock stepped back does not make it expire either.
  EXPECT_EQ(table.Find(code, kStart - 10), IdFor(1));
}

TEST(LoginTable, ExpiredCodesLeaveWhenTheNextArrives) {
  LoginTable table(100, kLifetime);
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(table.Remember(MakeDigest(i, i), IdFor(i), kStart + i));
  }
  ASSERT_TRUE(
      table.Remember(MakeDigest(9, 9), IdFor(9), kStart + 2 + kLifetime + 1));
  // Codes 0..2 are older than the lifetime; 3 and 4 are not.
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.Find(MakeDigest(3, 3), kStart + 3 + kLifetime), IdFor(3));
}

TEST(LoginTable, NeverHoldsMoreThanItsCapacity) {
  LoginTable table(4, kLifetime);
  const size_t bytes = table.AllocatedBytes();
  for (uint32_t i = 0; i < 1000; ++i) {
    ASSERT_TRUE(table.Remember(MakeDigest(i * 7919u, i), IdFor(i), kStart));
    ASSERT_LE(table.size(), 4u);
  }
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(table.AllocatedBytes(), bytes);
  for (uint32_t i = 996; i < 1000; ++i) {
    EXPECT_EQ(table.Find(MakeDigest(i * 7919u, i), kStart), IdFor(i)) << i;
  }
  EXPECT_EQ(table.Find(MakeDigest(995u * 7919u, 995), kStart), std::nullopt);
}

TEST(LoginTable, TheOldestArrivalIsForgottenFirstWhateverWasReadSince) {
  LoginTable table(3, kLifetime);
  const CodeDigest a = MakeDigest(1, 1), b = MakeDigest(2, 2),
                   c = MakeDigest(3, 3), d = MakeDigest(4, 4),
                   e = MakeDigest(5, 5);
  ASSERT_TRUE(table.Remember(a, IdFor(1), kStart));
  ASSERT_TRUE(table.Remember(b, IdFor(2), kStart));
  ASSERT_TRUE(table.Remember(c, IdFor(3), kStart));
  EXPECT_EQ(table.Find(a, kStart), IdFor(1));  // a read does not refresh
  ASSERT_TRUE(table.Remember(d, IdFor(4), kStart));
  EXPECT_EQ(table.Find(a, kStart), std::nullopt);
  EXPECT_EQ(table.Find(b, kStart), IdFor(2));
  // b remembered again (a new session for it) becomes the newest: c goes
  // next, then d, and b stays.
  ASSERT_TRUE(table.Remember(b, IdFor(22), kStart));
  EXPECT_EQ(table.Find(b, kStart), IdFor(22));
  EXPECT_EQ(table.size(), 3u);
  ASSERT_TRUE(table.Remember(e, IdFor(5), kStart));
  EXPECT_EQ(table.Find(c, kStart), std::nullopt);
  EXPECT_EQ(table.Find(d, kStart), IdFor(4));
  ASSERT_TRUE(table.Remember(a, IdFor(11), kStart));
  EXPECT_EQ(table.Find(d, kStart), std::nullopt);
  EXPECT_EQ(table.Find(b, kStart), IdFor(22));
  EXPECT_EQ(table.Find(e, kStart), IdFor(5));
  EXPECT_EQ(table.Find(a, kStart), IdFor(11));
}

TEST(LoginTable, CodesWithTheSameHomeSlotStayApart) {
  LoginTable table(8, kLifetime);  // an index of 16 slots
  // Five codes on one home slot, the last index slot, so the probe run
  // wraps to the start; two more whose homes are inside that run.
  const uint64_t last = 15;
  for (uint32_t tag = 0; tag < 5; ++tag) {
    ASSERT_TRUE(table.Remember(MakeDigest(last, tag), IdFor(tag), kStart));
  }
  ASSERT_TRUE(table.Remember(MakeDigest(0, 100), IdFor(100), kStart));
  ASSERT_TRUE(table.Remember(MakeDigest(1, 101), IdFor(101), kStart));
  for (uint32_t tag = 0; tag < 5; ++tag) {
    EXPECT_EQ(table.Find(MakeDigest(last, tag), kStart), IdFor(tag)) << tag;
  }
  EXPECT_EQ(table.Find(MakeDigest(last, 5), kStart), std::nullopt);
  // Forgetting the first of the run (the oldest) must leave the rest
  // reachable: the run closes up behind it.
  ASSERT_TRUE(table.Remember(MakeDigest(7, 200), IdFor(200), kStart));
  EXPECT_EQ(table.size(), 8u);
  ASSERT_TRUE(table.Remember(MakeDigest(7, 201), IdFor(201), kStart));
  EXPECT_EQ(table.Find(MakeDigest(last, 0), kStart), std::nullopt);
  for (uint32_t tag = 1; tag < 5; ++tag) {
    EXPECT_EQ(table.Find(MakeDigest(last, tag), kStart), IdFor(tag)) << tag;
  }
  EXPECT_EQ(table.Find(MakeDigest(0, 100), kStart), IdFor(100));
  EXPECT_EQ(table.Find(MakeDigest(1, 101), kStart), IdFor(101));
}

// Against a plain model (a map and an arrival queue), with few distinct
// home slots so that probe runs are long, overlap and wrap, and with time
// moving so that expiry, eviction and replacement interleave.
TEST(LoginTable, AgreesWithAPlainModelUnderRandomUse) {
  constexpr size_t kCapacity = 13;
  LoginTable table(kCapacity, kLifetime);
  struct Model {
    std::map<std::pair<uint64_t, uint32_t>, std::pair<uint32_t, int64_t>> live;
    std::deque<std::pair<std::pair<uint64_t, uint32_t>, int64_t>> arrivals;
  } model;
  std::mt19937 random(19);
  int64_t now = kStart;
  for (uint32_t step = 0; step < 5000; ++step) {
    if (random() % 8 == 0) now += random() % 60;
    if (random() % 500 == 0) now += 2 * kLifetime;  // all expire: Release
    const uint64_t hash = random() % 6 + 28;        // homes 28..31, 0 and 1
    const uint32_t tag = random() % 40;
    const std::pair<uint64_t, uint32_t> key(hash, tag);
    ASSERT_TRUE(
        table.Remember(MakeDigest(key.first, key.second), IdFor(step), now));
    // The model: drop expired arrivals, then a replaced one, then the oldest
    // when full.
    while (!model.arrivals.empty() &&
           model.arrivals.front().second < now - kLifetime) {
      auto found = model.live.find(model.arrivals.front().first);
      if (found != model.live.end() &&
          found->second.second == model.arrivals.front().second) {
        model.live.erase(found);
      }
      model.arrivals.pop_front();
    }
    auto replaced = model.live.find(key);
    if (replaced != model.live.end()) {
      for (auto& arrival : model.arrivals) {
        if (arrival.first == key) arrival.second = INT64_MIN;  // vacated
      }
      model.live.erase(replaced);
    }
    if (model.arrivals.size() == kCapacity) {
      auto found = model.live.find(model.arrivals.front().first);
      if (model.arrivals.front().second != INT64_MIN &&
          found != model.live.end()) {
        model.live.erase(found);
      }
      model.arrivals.pop_front();
    }
    model.live[key] = {step, now};
    model.arrivals.emplace_back(key, now);

    ASSERT_EQ(table.size(), model.live.size()) << "step " << step;
    for (uint64_t h = 28; h < 34; ++h) {
      for (uint32_t t = 0; t < 40; ++t) {
        auto expected = model.live.find({h, t});
        std::optional<std::string> found = table.Find(MakeDigest(h, t), now);
        if (expected == model.live.end()) {
          ASSERT_EQ(found, std::nullopt) << "step " << step;
        } else {
          ASSERT_EQ(found, IdFor(expected->second.first)) << "step " << step;
        }
      }
    }
  }
}

TEST(CodeMemory, AFinishedExchangeIsRememberedAndSharedWithWaiters) {
  CodeMemory memory(100, kLifetime);
  const CodeDigest code = CodeDigest::Of("wxapp1", "a");
  CodeMemory::Claim first = memory.Begin(code, kStart);
  ASSERT_TRUE(first.owner());
  CodeMemory::Claim second = memory.Begin(code, kStart);
  ASSERT_FALSE(second.owner());
  ASSERT_TRUE(second.in_flight.valid());
  const std::string id = crypto::NewSessionId();
  memory.Finish(code, id, kStart);
  ASSERT_TRUE(second.in_flight.get().ok());
  EXPECT_EQ(second.in_flight.get().value(), id);
  CodeMemory::Claim later = memory.Begin(code, kStart + kLifetime);
  EXPECT_EQ(later.remembered, id);
  EXPECT_TRUE(memory.Begin(code, kStart + kLifetime + 1).owner());
}

TEST(CodeMemory, AFailedExchangeReachesWaitersAndIsForgotten) {
  CodeMemory memory(100, kLifetime);
  const CodeDigest code = CodeDigest::Of("wxapp1", "a");
  ASSERT_TRUE(memory.Begin(code, kStart).owner());
  CodeMemory::Claim waiter = memory.Begin(code, kStart);
  memory.Finish(code, Status(ErrorCode::kUpstreamUnavailable, "busy"), kStart);
  ASSERT_FALSE(waiter.in_flight.get().ok());
  EXPECT_EQ(waiter.in_flight.get().status().code(),
            ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(memory.Begin(code, kStart).owner());
  EXPECT_EQ(memory.size(), 0u);
}

TEST(CodeMemory, TheServiceSizedMemoryStaysWithinItsBound) {
  CodeMemory memory(100000, kLifetime);
  // 16 shards of 6,250: 56 bytes a code plus the index, 6.3 MiB in all.
  EXPECT_LE(memory.AllocatedBytes(), size_t{7} << 20);
  for (uint32_t i = 0; i < 120000; ++i) {
    const CodeDigest code = CodeDigest::Of("wxapp1", "c" + std::to_string(i));
    ASSERT_TRUE(memory.Begin(code, kStart).owner());
    memory.Finish(code, IdFor(i), kStart);
  }
  EXPECT_LE(memory.size(), 100000u);
  EXPECT_GE(memory.size(), 90000u);  // shards fill unevenly, not by much
  // The newest codes are all there.
  for (uint32_t i = 119000; i < 120000; ++i) {
    const CodeDigest code = CodeDigest::Of("wxapp1", "c" + std::to_string(i));
    ASSERT_EQ(memory.Begin(code, kStart).remembered, IdFor(i)) << i;
  }
}

// Threads post the same codes at once, in step: each code is exchanged
// once, every thread ends up with that exchange's session, and the owner of
// each exchange holds it until another thread has joined it, so the
// in-flight path is taken for every code (not only when the scheduler
// happens to interleave).
TEST(CodeMemory, ConcurrentClaimsOfACodeShareOneExchange) {
  constexpr uint32_t kCodes = 400;
  constexpr int kThreads = 8;
  CodeMemory memory(100000, kLifetime);  // sharded, as in the service
  std::vector<std::atomic<int>> exchanges(kCodes);
  std::vector<std::atomic<int>> joined(kCodes);
  std::vector<std::vector<std::string>> seen(kThreads,
                                             std::vector<std::string>(kCodes));
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready++;
      while (ready.load() < kThreads) std::this_thread::yield();
      for (uint32_t i = 0; i < kCodes; ++i) {
        const CodeDigest code =
            CodeDigest::Of("wxapp1", "code." + std::to_string(i));
        CodeMemory::Claim claim = memory.Begin(code, kStart);
        if (claim.owner()) {
          exchanges[i]++;
          // Every other thread is at this code or behind it, so one joins;
          // the deadline only keeps a broken memory from hanging the test.
          const auto deadline =
              std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (joined[i].load() == 0 &&
                 std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
          }
          const std::string id = IdFor(i * 100 + t);
          memory.Finish(code, id, kStart);
          seen[t][i] = id;
        } else if (claim.remembered) {
          seen[t][i] = *claim.remembered;
        } else {
          joined[i]++;
          seen[t][i] = claim.in_flight.get().value();
        }
      }
      // Once more: every code is remembered now.
      for (uint32_t i = 0; i < kCodes; ++i) {
        const CodeDigest code =
            CodeDigest::Of("wxapp1", "code." + std::to_string(i));
        CodeMemory::Claim claim = memory.Begin(code, kStart);
        if (!claim.remembered || *claim.remembered != seen[t][i]) {
          seen[t][i] = "lost";
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (uint32_t i = 0; i < kCodes; ++i) {
    ASSERT_EQ(exchanges[i].load(), 1) << i;
    ASSERT_GE(joined[i].load(), 1) << i;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(seen[t][i], seen[0][i]) << i;
      ASSERT_NE(seen[t][i], "lost") << i;
    }
  }
  EXPECT_EQ(memory.size(), kCodes);
}

}  // namespace
}  // namespace wxsession
