// RedisStore beyond the shared conformance suite (store_test.cc): the key
// layout and TTLs, no SCAN, prefixes, the connection pool, timeouts,
// passwords, outages, WAIT, and Sentinel's ROLE check. Runs against real
// redis-server processes this test starts.
#include "store/redis/redis_store.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "redis_support.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::PickFreePort;
using testing_support::RedisCommand;
using testing_support::RedisServerProcess;
using testing_support::SharedRedis;

constexpr int64_t kNow = 1'700'000'000;  // unix seconds; the stores' clock

NewSession MakeSession(const std::string& id, const std::string& openid,
                       int64_t expires_at, const std::string& appid = "wxapp1",
                       const std::string& key = "key") {
  NewSession s;
  s.id_hash = crypto::Sha256(id);
  s.appid = appid;
  s.openid = openid;
  s.session_key = key;
  s.created_at = kNow;
  s.expires_at = expires_at;
  return s;
}

StoreLocator TcpLocator(int port, const std::string& password = "") {
  StoreLocator locator;
  locator.kind = StoreKind::kRedisTcp;
  locator.hosts = {{"127.0.0.1", port}};
  locator.password = password;
  return locator;
}

std::string UniquePrefix() {
  static int next = 0;
  return "rt" + std::to_string(next++) + ":";
}

int64_t ToInt(const std::string& text) { return std::atoll(text.c_str()); }

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = SharedRedis();
    ASSERT_NE(redis_, nullptr);
    prefix_ = UniquePrefix();
    store_ = Open(TcpLocator(redis_->port()));
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<RedisStore> Open(const StoreLocator& locator,
                                   int min_replicas_ack = 0,
                                   int64_t timeout_ms = 1000,
                                   int pool_size = 16) {
    RedisStoreOptions options;
    options.locator = locator;
    options.prefix = prefix_;
    options.timeout_ms = timeout_ms;
    options.pool_size = pool_size;
    options.min_replicas_ack = min_replicas_ack;
    auto store = OpenRedisStore(options, clock_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::string Cmd(const std::vector<std::string>& args) {
    return redis_->Command(args);
  }

  ManualClock clock_{kNow};
  RedisServerProcess* redis_ = nullptr;
  std::string prefix_;
  std::unique_ptr<RedisStore> store_;
};

TEST_F(RedisStoreTest, KeysHoldTheIdsHashNeverTheIdItself) {
  const std::string id = crypto::NewSessionId();
  NewSession session = MakeSession(id, "openid-a", kNow + 100);
  session.session_key = "the-session-key";
  ASSERT_TRUE(store_->CreateSession(session).ok());

  std::string keys = Cmd({"KEYS", prefix_ + "*"});
  EXPECT_EQ(keys.find(id), std::string::npos) << keys;
  const std::string session_key =
      prefix_ + "s:" + crypto::HexEncode(crypto::Sha256(id));
  EXPECT_NE(keys.find(session_key), std::string::npos) << keys;
  std::string fields = Cmd({"HGETALL", session_key});
  EXPECT_EQ(fields.find(id), std::string::npos);
  // The session_key lives in the user's hash only.
  EXPECT_EQ(fields.find("the-session-key"), std::string::npos) << fields;
  EXPECT_EQ(Cmd({"HGET", prefix_ + "u:wxapp1:openid-a", "k"}),
            "the-session-key");
}

TEST_F(RedisStoreTest, SessionTtlIsItsExpiryAndTouchMovesIt) {
  const std::string id = "ttl-id";
  const std::string key =
      prefix_ + "s:" + crypto::HexEncode(crypto::Sha256(id));
  ASSERT_TRUE(store_->CreateSession(MakeSession(id, "o1", kNow + 100)).ok());
  int64_t ttl = ToInt(Cmd({"PTTL", key}));
  EXPECT_GT(ttl, 98'000);  // ms; 100 s minus a little test time
  EXPECT_LE(ttl, 100'000);

  clock_.Advance(10);
  ASSERT_TRUE(store_->Touch(crypto::Sha256(id), kNow + 10, kNow + 510).ok());
  ttl = ToInt(Cmd({"PTTL", key}));
  EXPECT_GT(ttl, 498'000);
  EXPECT_LE(ttl, 500'000);
  // The user and the openid's session set live as long (each read a few
  // ms later than the last, hence the margin).
  EXPECT_GT(ToInt(Cmd({"PTTL", prefix_ + "u:wxapp1:o1"})), 498'000);
  EXPECT_GT(ToInt(Cmd({"PTTL", prefix_ + "o:o1"})), 498'000);

  // An idle window that ends sooner shortens the TTL again.
  ASSERT_TRUE(store_->Touch(crypto::Sha256(id), kNow + 10, kNow + 60).ok());
  EXPECT_LE(ToInt(Cmd({"PTTL", key})), 50'000);
}

TEST_F(RedisStoreTest, RedisDeletesAnExpiredSessionByItself) {
  const std::string id = "short-lived";
  const std::string key =
      prefix_ + "s:" + crypto::HexEncode(crypto::Sha256(id));
  ASSERT_TRUE(store_->CreateSession(MakeSession(id, "o2", kNow + 1)).ok());
  EXPECT_EQ(Cmd({"EXISTS", key}), "1");
  // A bounded wait for Redis's own expiry (a 1 s TTL).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Cmd({"EXISTS", key}) == "1" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Cmd({"EXISTS", key}), "0");
  // Gone even for a reader whose clock has not reached expiry.
  Result<LiveSession> live = store_->FindLive(crypto::Sha256(id), kNow);
  ASSERT_FALSE(live.ok());
  EXPECT_EQ(live.status().code(), ErrorCode::kInvalidSession);
  EXPECT_EQ(store_->SweepExpired(kNow + 10, 100).value(), 0);
}

TEST_F(RedisStoreTest, RevocationsNeverScanTheKeyspace) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store_
                    ->CreateSession(MakeSession("s" + std::to_string(i),
                                                "user" + std::to_string(i % 4),
                                                kNow + 100))
                    .ok());
  }
  ASSERT_EQ(Cmd({"CONFIG", "RESETSTAT"}), "OK");
  EXPECT_EQ(store_->RevokeUser("wxapp1", "user1").value(), 5);
  EXPECT_EQ(store_->RevokeUser("", "user2").value(), 5);
  EXPECT_EQ(store_->RevokeAll().value(), 10);
  std::string stats = Cmd({"INFO", "commandstats"});
  EXPECT_NE(stats.find("cmdstat_evalsha"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("cmdstat_scan:"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("cmdstat_keys:"), std::string::npos) << stats;
}

TEST_F(RedisStoreTest, AUsersSessionSetForgetsEndedSessionsLazily) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store_
                    ->CreateSession(MakeSession("dead" + std::to_string(i),
                                                "lazy", kNow + 100))
                    .ok());
  }
  // End them behind the store's back, as expiry does.
  for (int i = 0; i < 10; ++i) {
    Cmd({"DEL",
         prefix_ + "s:" +
             crypto::HexEncode(crypto::Sha256("dead" + std::to_string(i)))});
  }
  EXPECT_EQ(Cmd({"SCARD", prefix_ + "o:lazy"}), "10");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store_
                    ->CreateSession(MakeSession("live" + std::to_string(i),
                                                "lazy", kNow + 100))
                    .ok());
  }
  // Each login checked a slice; ten logins covered the whole set.
  EXPECT_EQ(Cmd({"SCARD", prefix_ + "o:lazy"}), "10");
  EXPECT_EQ(store_->RevokeUser("wxapp1", "lazy").value(), 10);
  EXPECT_EQ(Cmd({"SCARD", prefix_ + "o:lazy"}), "0");
}

TEST_F(RedisStoreTest, PrefixesKeepAppsSharingARedisApart) {
  std::unique_ptr<RedisStore> other = [&] {
    prefix_ = UniquePrefix();
    return Open(TcpLocator(redis_->port()));
  }();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(
      store_->CreateSession(MakeSession("same-id", "o", kNow + 99)).ok());
  ASSERT_TRUE(
      other->CreateSession(MakeSession("same-id", "o", kNow + 99)).ok());
  EXPECT_EQ(store_->RevokeAll().value(), 1);
  EXPECT_FALSE(store_->FindLive(crypto::Sha256("same-id"), kNow).ok());
  EXPECT_TRUE(other->FindLive(crypto::Sha256("same-id"), kNow).ok());
  EXPECT_EQ(other->Stats(kNow)->live_sessions, 1);
}

TEST_F(RedisStoreTest, UnixSocketAndDatabaseNumberAreHonoured) {
  StoreLocator locator;
  locator.kind = StoreKind::kRedisUnix;
  locator.unix_path = redis_->socket_path();
  locator.db = 3;
  auto store = Open(locator);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store->CreateSession(MakeSession("in-db-3", "o", kNow + 99)).ok());
  EXPECT_TRUE(store->FindLive(crypto::Sha256("in-db-3"), kNow).ok());
  // The key is in database 3, not 0.
  std::string key =
      prefix_ + "s:" + crypto::HexEncode(crypto::Sha256("in-db-3"));
  EXPECT_EQ(Cmd({"EXISTS", key}), "0");
  EXPECT_EQ(Cmd({"EVAL",
                 "redis.call('SELECT', 3) return redis.call('EXISTS', KEYS[1])",
                 "1", key}),
            "1");
}

TEST_F(RedisStoreTest, ThePoolNeverOpensMoreThanItsSize) {
  auto store = Open(TcpLocator(redis_->port()), 0, 1000, /*pool_size=*/2);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateSession(MakeSession("p", "o", kNow + 99)).ok());
  std::atomic<int> failures{0};
  std::atomic<int> most_open{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (!store->FindLive(crypto::Sha256("p"), kNow).ok()) failures++;
        int open = store->OpenConnections();
        int seen = most_open.load();
        while (open > seen && !most_open.compare_exchange_weak(seen, open)) {
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(most_open.load(), 2);
  EXPECT_GE(most_open.load(), 1);
}

TEST_F(RedisStoreTest, DroppedConnectionsAreReplacedWithoutAFailure) {
  ASSERT_TRUE(store_->CreateSession(MakeSession("k", "o", kNow + 99)).ok());
  ASSERT_TRUE(store_->Ping().ok());
  // Redis closes every client connection (a restart looks the same).
  EXPECT_NE(Cmd({"CLIENT", "KILL", "TYPE", "normal"}), "0");
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("k"), kNow).ok());
}

TEST_F(RedisStoreTest, AFlushedScriptCacheIsRefilled) {
  ASSERT_EQ(Cmd({"SCRIPT", "FLUSH"}), "OK");
  ASSERT_TRUE(store_->CreateSession(MakeSession("f", "o", kNow + 99)).ok());
  ASSERT_EQ(Cmd({"SCRIPT", "FLUSH"}), "OK");
  EXPECT_TRUE(store_->FindLive(crypto::Sha256("f"), kNow).ok());
}

// Every method answers kStoreUnavailable: a lookup must never turn an outage
// into "log in again".
void ExpectAllUnavailable(SessionStore& store, const std::string& secret) {
  std::vector<Status> outcomes = {
      store.CreateSession(MakeSession("x", "o", kNow + 99)),
      store.FindLive(crypto::Sha256("x"), kNow).status(),
      store.Touch(crypto::Sha256("x"), kNow, kNow + 9),
      store.Revoke(crypto::Sha256("x")).status(),
      store.RevokeUser("", "o").status(),
      store.RevokeAll().status(),
      store.Stats(kNow).status(),
      store.GetAccessToken("wxapp1").status(),
      store.PutAccessToken({"wxapp1", "t", kNow}),
      store.TryLockTokenRefresh("wxapp1", "me", kNow * 1000, 100).status(),
      store.UnlockTokenRefresh("wxapp1", "me"),
      store.Ping(),
  };
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].code(), ErrorCode::kStoreUnavailable)
        << "method #" << i << ": " << outcomes[i].ToString();
    if (!secret.empty()) {
      EXPECT_EQ(outcomes[i].operator_text().find(secret), std::string::npos);
    }
  }
}

TEST_F(RedisStoreTest, NobodyListeningIsStoreUnavailable) {
  auto store = Open(TcpLocator(PickFreePort(), "hunter2-never-printed"));
  ASSERT_NE(store, nullptr);
  ExpectAllUnavailable(*store, "hunter2-never-printed");
  Status ping = store->Ping();
  EXPECT_NE(ping.operator_text().find("127.0.0.1"), std::string::npos)
      << ping.message();
}

// A server that accepts connections (the kernel does, via the backlog) and
// never answers.
class SilentServer {
 public:
  SilentServer() { fd_ = testing_support::ListenOnLoopback(64, &port_); }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(RedisStoreTest, ASilentServerTimesOutAsStoreUnavailable) {
  SilentServer silent;
  auto store = Open(TcpLocator(silent.port()), 0, /*timeout_ms=*/200);
  ASSERT_NE(store, nullptr);
  auto started = std::chrono::steady_clock::now();
  Result<LiveSession> live = store->FindLive(crypto::Sha256("x"), kNow);
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(live.ok());
  EXPECT_EQ(live.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(live.status().operator_text().find("no reply within 200 ms"),
            std::string::npos)
      << live.status().message();
  // One timeout, not a hang: 200 ms, and at most a retry on a fresh
  // connection (this one was new, so none).
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
}

TEST_F(RedisStoreTest, PasswordsAreSentAndNeverPrinted) {
  RedisServerProcess::Options options;
  options.password = "correct-horse-battery";
  RedisServerProcess guarded(options);
  ASSERT_TRUE(guarded.Start()) << guarded.error();

  auto right = Open(TcpLocator(guarded.port(), "correct-horse-battery"));
  ASSERT_NE(right, nullptr);
  EXPECT_TRUE(right->CreateSession(MakeSession("a", "o", kNow + 9)).ok());
  EXPECT_TRUE(right->FindLive(crypto::Sha256("a"), kNow).ok());

  auto wrong = Open(TcpLocator(guarded.port(), "wrong-password-xyz"));
  ASSERT_NE(wrong, nullptr);
  ExpectAllUnavailable(*wrong, "wrong-password-xyz");
  EXPECT_NE(wrong->Ping().operator_text().find("authentication failed"),
            std::string::npos)
      << wrong->Ping().message();

  auto none = Open(TcpLocator(guarded.port()));
  ASSERT_NE(none, nullptr);
  Status refused = none->Ping();
  EXPECT_EQ(refused.code(), ErrorCode::kStoreUnavailable) << refused.ToString();
  EXPECT_EQ(refused.operator_text().find("correct-horse-battery"),
            std::string::npos);
}

TEST_F(RedisStoreTest, ServiceResumesWhenRedisComesBack) {
  RedisServerProcess own;
  ASSERT_TRUE(own.Start()) << own.error();
  auto store = Open(TcpLocator(own.port()));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateSession(MakeSession("r", "o", kNow + 99)).ok());
  own.Stop();
  ExpectAllUnavailable(*store, "");
  ASSERT_TRUE(own.Restart()) << own.error();
  // Same store object, no reopen: pooled connections were dropped and new
  // ones are made. (No persistence here: the session itself is gone.)
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_TRUE(store->CreateSession(MakeSession("r2", "o", kNow + 99)).ok());
  EXPECT_TRUE(store->FindLive(crypto::Sha256("r2"), kNow).ok());
}

TEST_F(RedisStoreTest, MinReplicasAckWaitsForAReplica) {
  RedisServerProcess master;
  ASSERT_TRUE(master.Start()) << master.error();
  auto store = Open(TcpLocator(master.port()), /*min_replicas_ack=*/1,
                    /*timeout_ms=*/400);
  ASSERT_NE(store, nullptr);
  // No replica: the login is written but not acknowledged.
  Status alone = store->CreateSession(MakeSession("w1", "o", kNow + 99));
  EXPECT_EQ(alone.code(), ErrorCode::kStoreUnavailable) << alone.ToString();
  EXPECT_NE(alone.operator_text().find("not acknowledged"), std::string::npos)
      << alone.message();
  EXPECT_EQ(store->Revoke(crypto::Sha256("w1")).status().code(),
            ErrorCode::kStoreUnavailable);

  RedisServerProcess::Options replica_options;
  replica_options.replica_of = master.port();
  RedisServerProcess replica(replica_options);
  ASSERT_TRUE(replica.Start()) << replica.error();
  ASSERT_TRUE(testing_support::WaitUntilReplicating(master, replica, 10));
  Status acknowledged = store->CreateSession(MakeSession("w2", "o", kNow + 99));
  EXPECT_TRUE(acknowledged.ok()) << acknowledged.ToString();
  // The replica holds it the moment the login is answered.
  EXPECT_EQ(
      replica.Command(
          {"EXISTS", prefix_ + "s:" + crypto::HexEncode(crypto::Sha256("w2"))}),
      "1");
}

// Answers every request on a port with one fixed RESP reply: enough to play
// a Sentinel that names a chosen address.
class FakeSentinel {
 public:
  explicit FakeSentinel(std::string reply) : reply_(std::move(reply)) {
    fd_ = testing_support::ListenOnLoopback(16, &port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeSentinel() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;  // ms; rechecks stop_
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      char buffer[512];
      if (::read(client, buffer, sizeof(buffer)) > 0) {
        requests_++;
        ssize_t ignored = ::write(client, reply_.data(), reply_.size());
        (void)ignored;
      }
      ::close(client);
    }
  }
  const std::string reply_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string MasterAddressReply(int port) {
  std::string text = std::to_string(port);
  return "*2\r\n$9\r\n127.0.0.1\r\n$" + std::to_string(text.size()) + "\r\n" +
         text + "\r\n";
}

TEST_F(RedisStoreTest, AMasterTurnedReplicaIsStoreUnavailable) {
  RedisServerProcess other;
  ASSERT_TRUE(other.Start()) << other.error();
  RedisServerProcess demoted;
  ASSERT_TRUE(demoted.Start()) << demoted.error();
  auto store = Open(TcpLocator(demoted.port()));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateSession(MakeSession("d", "o", kNow + 99)).ok());
  // What a failover does to an old master that comes back.
  ASSERT_EQ(
      demoted.Command({"REPLICAOF", "127.0.0.1", std::to_string(other.port())}),
      "OK");
  Status refused = store->CreateSession(MakeSession("d2", "o", kNow + 99));
  EXPECT_EQ(refused.code(), ErrorCode::kStoreUnavailable) << refused.ToString();
  EXPECT_NE(refused.operator_text().find("READONLY"), std::string::npos)
      << refused.message();
}

TEST_F(RedisStoreTest, SentinelsAnswerIsConfirmedWithRole) {
  RedisServerProcess master;
  ASSERT_TRUE(master.Start()) << master.error();
  RedisServerProcess::Options replica_options;
  replica_options.replica_of = master.port();
  RedisServerProcess replica(replica_options);
  ASSERT_TRUE(replica.Start()) << replica.error();

  StoreLocator locator;
  locator.kind = StoreKind::kRedisSentinel;
  locator.master_name = "mymaster";

  // A sentinel that names the replica: ROLE says "slave", so no command
  // reaches it and the store answers unavailable.
  FakeSentinel wrong(MasterAddressReply(replica.port()));
  locator.hosts = {{"127.0.0.1", PickFreePort()}, {"127.0.0.1", wrong.port()}};
  auto misled = Open(locator);
  ASSERT_NE(misled, nullptr);
  Status refused = misled->CreateSession(MakeSession("m", "o", kNow + 9));
  EXPECT_EQ(refused.code(), ErrorCode::kStoreUnavailable);
  EXPECT_NE(refused.operator_text().find("not the master"), std::string::npos)
      << refused.message();
  EXPECT_GE(wrong.requests(), 1);

  // A sentinel that names the master: served, after skipping the dead one.
  FakeSentinel right(MasterAddressReply(master.port()));
  locator.hosts = {{"127.0.0.1", PickFreePort()}, {"127.0.0.1", right.port()}};
  auto guided = Open(locator);
  ASSERT_NE(guided, nullptr);
  EXPECT_TRUE(guided->CreateSession(MakeSession("m", "o", kNow + 9)).ok());
  EXPECT_TRUE(guided->FindLive(crypto::Sha256("m"), kNow).ok());
  EXPECT_EQ(
      master.Command(
          {"EXISTS", prefix_ + "s:" + crypto::HexEncode(crypto::Sha256("m"))}),
      "1");
}

TEST_F(RedisStoreTest, NoSentinelAnsweringIsStoreUnavailable) {
  StoreLocator locator;
  locator.kind = StoreKind::kRedisSentinel;
  locator.master_name = "mymaster";
  locator.hosts = {{"127.0.0.1", PickFreePort()}};
  auto store = Open(locator);
  ASSERT_NE(store, nullptr);
  ExpectAllUnavailable(*store, "");
  EXPECT_NE(store->Ping().operator_text().find("no sentinel named the master"),
            std::string::npos)
      << store->Ping().message();
}

}  // namespace
}  // namespace wxsession
