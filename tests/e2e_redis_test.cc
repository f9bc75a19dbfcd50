// End to end with Redis: the real wxsessiond binary against real
// redis-server / redis-sentinel processes on loopback.
//   - two instances on one Redis share every session;
//   - Redis stopped and restarted mid-run: 503 store_unavailable while it is
//     down (never 401), and service resumes without restarting wxsessiond;
//   - a Sentinel failover: service resumes within seconds, and with
//     redis.min_replicas_ack 1 every acknowledged session survives it;
//   - migrate-store moves a SQLite deployment to Redis without logging
//     anyone out.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "redis_support.h"
#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::ReadFile;
using testing_support::RedisSentinelProcess;
using testing_support::RedisServerProcess;
using testing_support::RunCommand;
using testing_support::ServerFixture;
using testing_support::WriteFile;

using Clock = std::chrono::steady_clock;

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  return client;
}

httplib::Result Login(int port, const std::string& code) {
  return ClientFor(port).Post("/v1/login", json({{"code", code}}).dump(),
                              "application/json");
}

std::string LoginOk(int port, const std::string& code) {
  auto res = Login(port, code);
  EXPECT_TRUE(res) << "no response";
  if (!res) return "";
  EXPECT_EQ(res->status, 200) << res->body;
  return json::parse(res->body, nullptr, false).value("session_id", "");
}

httplib::Result GetSession(int port, const std::string& id) {
  return ClientFor(port).Get("/v1/session",
                             {{"Authorization", "Bearer " + id}});
}

httplib::Result Logout(int port, const std::string& id) {
  return ClientFor(port).Post("/v1/logout", {{"Authorization", "Bearer " + id}},
                              "", "");
}

int StatusOf(const httplib::Result& res) { return res ? res->status : -1; }

std::string ErrorOf(const httplib::Result& res) {
  if (!res) return "(no response)";
  return json::parse(res->body, nullptr, false).value("error", "");
}

void ExpectStoreUnavailable(const httplib::Result& res) {
  ASSERT_TRUE(res) << "no response";
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(ErrorOf(res), "store_unavailable") << res->body;
  EXPECT_FALSE(res->get_header_value("Retry-After").empty());
}

// Polls `condition` every 100 ms until it holds or `seconds` pass; returns
// how long it took, or nullopt.
std::optional<std::chrono::milliseconds> WaitFor(
    const std::function<bool()>& condition, int seconds) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    if (condition()) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          Clock::now() - start);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

std::string RedisConfig(const std::string& url, const std::string& redis = "") {
  return "\"store\": \"" + url + "\"" +
         (redis.empty() ? "" : ", \"redis\": {" + redis + "}");
}

TEST(E2ERedis, TwoInstancesOnOneRedisShareEverySession) {
  RedisServerProcess redis;
  ASSERT_TRUE(redis.Start()) << redis.error();
  const std::string extra = RedisConfig(redis.url(), R"("prefix": "e2e:")");
  ServerFixture a(extra);
  ServerFixture b(extra);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());

  // Logged in on A, known on B.
  std::string alice = LoginOk(a.port(), "alice.1");
  auto on_b = GetSession(b.port(), alice);
  ASSERT_EQ(StatusOf(on_b), 200) << (on_b ? on_b->body : "");
  json info = json::parse(on_b->body);
  EXPECT_EQ(info["appid"], ServerFixture::kAppId);
  const std::string openid = info["openid"];

  // Logged out on B, gone on A.
  auto out = Logout(b.port(), alice);
  EXPECT_EQ(StatusOf(out), 204);
  auto gone = GetSession(a.port(), alice);
  EXPECT_EQ(StatusOf(gone), 401);
  EXPECT_EQ(ErrorOf(gone), "invalid_session");

  // Revoked by user from the command line (pointed at B's config), gone on
  // both; another user untouched.
  std::string alice2 = LoginOk(a.port(), "alice.2");
  std::string alice3 = LoginOk(b.port(), "alice.3");
  std::string bob = LoginOk(b.port(), "bob.1");
  EXPECT_EQ(StatusOf(GetSession(b.port(), alice2)), 200);
  auto revoked = RunCommand({BinaryPath(), "revoke", "--config",
                             b.config_path(), "--openid", openid});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(json::parse(revoked.out)["revoked"], 2);
  for (int port : {a.port(), b.port()}) {
    EXPECT_EQ(StatusOf(GetSession(port, alice2)), 401);
    EXPECT_EQ(StatusOf(GetSession(port, alice3)), 401);
    EXPECT_EQ(StatusOf(GetSession(port, bob)), 200);
    EXPECT_EQ(StatusOf(ClientFor(port).Get("/healthz")), 200);
  }

  auto stats = RunCommand({BinaryPath(), "stats", "--config", a.config_path()});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  json counts = json::parse(stats.out);
  EXPECT_EQ(counts["live_sessions"], 1);
  // As with SQLite, revoking sessions keeps the user record (alice's newest
  // key); Redis lets it expire with her last session's expiry.
  EXPECT_EQ(counts["users"], 2);

  // Redis holds hashes of ids, never an id.
  std::string keys = redis.Command({"KEYS", "e2e:*"});
  EXPECT_NE(keys.find("e2e:s:"), std::string::npos) << keys;
  for (const std::string& id : {alice, alice2, alice3, bob}) {
    EXPECT_EQ(keys.find(id), std::string::npos);
  }
}

TEST(E2ERedis, RedisDownIs503NeverA401AndServiceResumesByItself) {
  RedisServerProcess::Options options;
  options.append_only = true;  // a clean stop flushes the AOF: data survives
  options.password = "e2e-redis-password-never-logged";
  RedisServerProcess redis(options);
  ASSERT_TRUE(redis.Start()) << redis.error();
  ServerFixture server(
      RedisConfig("redis://:" + options.password +
                      "@127.0.0.1:" + std::to_string(redis.port()),
                  R"("timeout": "300ms")"));
  ASSERT_TRUE(server.Start());
  const int port = server.port();

  std::string id = LoginOk(port, "carol.1");
  ASSERT_EQ(StatusOf(GetSession(port, id)), 200);

  redis.Stop();
  ExpectStoreUnavailable(GetSession(port, id));
  ExpectStoreUnavailable(Logout(port, id));
  ExpectStoreUnavailable(Login(port, "dave.1"));
  auto health = ClientFor(port).Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(ErrorOf(health), "store_unavailable");

  ASSERT_TRUE(redis.Restart()) << redis.error();
  auto healed = WaitFor(
      [&] { return StatusOf(ClientFor(port).Get("/healthz")) == 200; }, 10);
  ASSERT_TRUE(healed) << "wxsessiond did not reconnect to Redis";
  std::printf("[ measured ] healthz 200 again %lld ms after Redis restarted\n",
              static_cast<long long>(healed->count()));
  // The same process serves the old session (kept by the AOF) and new ones.
  EXPECT_EQ(StatusOf(GetSession(port, id)), 200);
  std::string fresh = LoginOk(port, "dave.2");
  EXPECT_EQ(StatusOf(GetSession(port, fresh)), 200);

  server.StopServer(SIGTERM);
  server.WaitServer(5000);
  EXPECT_EQ(server.server()->Stderr().find(options.password),
            std::string::npos);
}

// Issue 14: with Redis down, a client learns that the store is unavailable
// and nothing more; the operator's log line says where and why.
TEST(E2ERedis, ErrorsNameNoHostOrLibraryToClientsButTheLogDoes) {
  RedisServerProcess redis;
  ASSERT_TRUE(redis.Start()) << redis.error();
  ServerFixture server(RedisConfig(redis.url(), R"("timeout": "300ms")"));
  ASSERT_TRUE(server.Start());
  const int port = server.port();
  std::string id = LoginOk(port, "erin.1");
  redis.Stop();

  const std::string where = "127.0.0.1:" + std::to_string(redis.port());
  std::vector<httplib::Result> answers;
  answers.push_back(GetSession(port, id));
  answers.push_back(Login(port, "erin.2"));
  answers.push_back(Logout(port, id));
  answers.push_back(
      ClientFor(port).Get("/v1/auth", {{"Authorization", "Bearer " + id}}));
  answers.push_back(ClientFor(port).Post(
      "/v1/decrypt", {{"Authorization", "Bearer " + id}},
      R"({"encryptedData":"AAAA","iv":"AAAAAAAAAAAAAAAAAAAAAA=="})",
      "application/json"));
  for (const auto& res : answers) {
    ExpectStoreUnavailable(res);
    ASSERT_TRUE(res);
    for (const std::string& leak :
         {where, std::to_string(redis.port()), std::string("127.0.0.1"),
          std::string("redis"), std::string("Connection refused"),
          std::string("hiredis"), std::string("session store:")}) {
      EXPECT_EQ(res->body.find(leak), std::string::npos)
          << "the body names \"" << leak << "\": " << res->body;
    }
    json body = json::parse(res->body, nullptr, false);
    EXPECT_FALSE(body.value("message", "").empty()) << res->body;
  }
  server.StopServer(SIGTERM);
  server.WaitServer(5000);
  // The operator's log names the store's address.
  EXPECT_NE(server.server()->Stderr().find(where), std::string::npos)
      << server.server()->Stderr();
}

TEST(E2ERedis, SentinelFailoverKeepsEveryAcknowledgedSession) {
  RedisServerProcess master;
  ASSERT_TRUE(master.Start()) << master.error();
  RedisServerProcess::Options replica_options;
  replica_options.replica_of = master.port();
  RedisServerProcess replica(replica_options);
  ASSERT_TRUE(replica.Start()) << replica.error();
  ASSERT_TRUE(testing_support::WaitUntilReplicating(master, replica, 10));
  // down-after 1000 ms and failover-timeout 5000 ms: a failover in seconds.
  RedisSentinelProcess sentinel("mymaster", master.port(), 1000, 5000);
  ASSERT_TRUE(sentinel.Start()) << sentinel.error();
  ASSERT_TRUE(WaitFor(
      [&] {
        return sentinel.Command({"SENTINEL", "replicas", "mymaster"})
                   .find(std::to_string(replica.port())) != std::string::npos;
      },
      15))
      << "sentinel never saw the replica; log:\n"
      << sentinel.Log();

  ServerFixture server(RedisConfig(
      "redis-sentinel://127.0.0.1:" + std::to_string(sentinel.port()) +
          "/mymaster",
      R"("timeout": "500ms", "min_replicas_ack": 1)"));
  ASSERT_TRUE(server.Start());
  const int port = server.port();

  // Each login is answered only once the replica holds it.
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(LoginOk(port, "user" + std::to_string(i) + ".1"));
    ASSERT_FALSE(ids.back().empty())
        << "login #" << i << "; master:\n"
        << master.Command({"INFO", "replication"}) << "\nreplica:\n"
        << replica.Command({"INFO", "replication"}) << "\nsentinel log:\n"
        << sentinel.Log();
  }

  master.Stop(/*crash=*/true);
  std::vector<int> statuses;
  auto resumed = WaitFor(
      [&] {
        auto res = GetSession(port, ids.front());
        statuses.push_back(StatusOf(res));
        if (StatusOf(res) == 503) {
          EXPECT_EQ(ErrorOf(res), "store_unavailable");
        }
        return StatusOf(res) == 200;
      },
      30);
  ASSERT_TRUE(resumed) << "no recovery; sentinel log:\n" << sentinel.Log();
  std::printf(
      "[ measured ] sessions served again %lld ms after the master "
      "was killed (%zu polls)\n",
      static_cast<long long>(resumed->count()), statuses.size());
  for (int status : statuses) {
    EXPECT_TRUE(status == 200 || status == 503)
        << "a failover must never log anyone out; got " << status;
  }
  EXPECT_LT(resumed->count(), 15000);

  for (const std::string& id : ids) {
    auto res = GetSession(port, id);
    EXPECT_EQ(StatusOf(res), 200) << (res ? res->body : "");
  }
  EXPECT_EQ(StatusOf(ClientFor(port).Get("/healthz")), 200);
  // The promoted master has no replica left: a login can no longer be
  // acknowledged, so it is refused rather than answered unsafely.
  ExpectStoreUnavailable(Login(port, "late.1"));
}

TEST(E2ERedis, MigrateStoreMovesSqliteSessionsToRedis) {
  RedisServerProcess redis;
  ASSERT_TRUE(redis.Start()) << redis.error();
  ServerFixture server;  // SQLite
  ASSERT_TRUE(server.Start());
  std::string alice = LoginOk(server.port(), "alice.1");
  std::string bob = LoginOk(server.port(), "bob.1");
  std::string alice2 = LoginOk(server.port(), "alice.2");
  json before = json::parse(GetSession(server.port(), alice)->body);
  server.StopServer(SIGTERM);
  ASSERT_EQ(server.WaitServer(5000), 0);

  auto help = RunCommand({BinaryPath(), "migrate-store", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage: wxsessiond migrate-store"),
            std::string::npos);
  auto bad = RunCommand({BinaryPath(), "migrate-store", "--config",
                         server.config_path(), "--to", "mysql://x"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  // Without --to the config's store is the target; here it is SQLite.
  auto no_target = RunCommand(
      {BinaryPath(), "migrate-store", "--config", server.config_path()});
  EXPECT_EQ(no_target.exit_code, 1) << no_target.err;

  auto migrated = RunCommand({BinaryPath(), "migrate-store", "--config",
                              server.config_path(), "--to", redis.url()});
  ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  json counts = json::parse(migrated.out, nullptr, false);
  EXPECT_EQ(counts["sessions"], 3) << migrated.out;
  EXPECT_EQ(counts["users"], 2) << migrated.out;
  EXPECT_EQ(counts["access_tokens"], 0) << migrated.out;
  EXPECT_NE(migrated.err.find("3 sessions, 2 users copied"), std::string::npos)
      << migrated.err;

  // The same config with `store` pointing at Redis: everyone still logged in.
  std::string config = ReadFile(server.config_path());
  size_t end = config.rfind('}');
  config.insert(end, ",\n  " + RedisConfig(redis.url()) + "\n");
  std::string redis_config = server.dir().File("redis-config.json");
  WriteFile(redis_config, config);
  Process moved({BinaryPath(), "serve", "--config", redis_config});
  auto line = moved.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << moved.Stderr();
  const int port = PortFromListeningLine(*line);
  for (const std::string& id : {alice, bob, alice2}) {
    EXPECT_EQ(StatusOf(GetSession(port, id)), 200);
  }
  json after = json::parse(GetSession(port, alice)->body);
  EXPECT_EQ(after["openid"], before["openid"]);
  EXPECT_EQ(after["created_at"], before["created_at"]);
  moved.Signal(SIGTERM);
  EXPECT_EQ(moved.Wait(5000), 0);
}

}  // namespace
}  // namespace wxsession
