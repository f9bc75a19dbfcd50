// End to end: faults around the server. The store full (storage.max_pages),
// WeChat gone or slow after users have logged in: logins answer 503 with a
// clear log line, existing sessions keep being served, and service comes
// back without a restart. (A read-only or failing disk is played under the
// store in store_faults_test.cc; e2e_login_test.cc has the plain
// upstream-down and upstream-slow answers.)
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::RunCommand;
using testing_support::ServerFixture;

httplib::Result Login(int port, const std::string& code, int timeout_s = 10) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(timeout_s, 0);
  return client.Post("/v1/login", json({{"code", code}}).dump(),
                     "application/json");
}

httplib::Result Lookup(int port, const std::string& id, int timeout_ms) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(0, timeout_ms * 1000);
  client.set_read_timeout(0, timeout_ms * 1000);
  return client.Get("/v1/session", {{"Authorization", "Bearer " + id}});
}

// Log lines of `event` in the server's stderr.
std::vector<json> Events(ServerFixture& fixture, const std::string& event) {
  std::vector<json> out;
  std::string log = fixture.server()->Stderr();
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    json line = json::parse(log.substr(start, end - start), nullptr, false);
    if (line.is_object() && line.value("event", "") == event) {
      out.push_back(line);
    }
    start = end + 1;
  }
  return out;
}

TEST(E2EStoreFull, LoginsAnswer503LookupsGoOnAndServiceReturnsWithSpace) {
  // 14 pages of 4 KiB: the schema and a few dozen users.
  ServerFixture fixture(
      R"("storage": {"max_pages": 14}, "rate_limit": {"login_per_minute": 0})");
  ASSERT_TRUE(fixture.Start());
  std::vector<std::string> ids;
  std::optional<httplib::Response> refused;
  for (int i = 0; i < 3000 && !refused; ++i) {
    auto res = Login(fixture.port(), "full" + std::to_string(i) + ".1");
    ASSERT_TRUE(res);
    if (res->status != 200) {
      refused = res.value();
    } else {
      ids.push_back(json::parse(res->body)["session_id"]);
    }
  }
  ASSERT_TRUE(refused) << "never filled up";
  ASSERT_GT(ids.size(), 5u);
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(json::parse(refused->body)["error"], "store_unavailable");
  EXPECT_FALSE(refused->get_header_value("Retry-After").empty());

  // The operator's line says what and why.
  std::vector<json> failures = Events(fixture, "login_failed");
  ASSERT_FALSE(failures.empty()) << fixture.server()->Stderr();
  EXPECT_EQ(failures.back().value("level", ""), "warn");
  EXPECT_EQ(failures.back().value("error", ""), "store_unavailable");
  EXPECT_NE(failures.back().value("detail", "").find("full"), std::string::npos)
      << failures.back().dump();

  // Every acknowledged session is still served; health is fine (reads work).
  for (const std::string& id : ids) {
    auto res = Lookup(fixture.port(), id, 2000);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
  }
  httplib::Client client("127.0.0.1", fixture.port());
  EXPECT_EQ(client.Get("/healthz")->status, 200);

  // Space returns (here: the operator ends every session), and logins work
  // again with the same process.
  auto revoke = RunCommand(
      {BinaryPath(), "revoke", "--config", fixture.config_path(), "--all"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  auto after = Login(fixture.port(), "after.1");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200) << after->body;
}

// WeChat at an address the test controls, so it can vanish or slow down
// after users have logged in.
class E2EUpstreamFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    StartMock({});
    ASSERT_GT(mock_port_, 0);
    fixture_ = std::make_unique<ServerFixture>(
        "", /*start_mock=*/false,
        "http://127.0.0.1:" + std::to_string(mock_port_));
    ASSERT_TRUE(fixture_->Start());
    for (const char* user : {"ann.1", "bob.1", "cid.1"}) {
      auto res = Login(fixture_->port(), user);
      ASSERT_TRUE(res && res->status == 200);
      ids_.push_back(json::parse(res->body)["session_id"]);
    }
  }

  void StartMock(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinaryPath(), "mock-wechat", "--listen",
                                     "127.0.0.1:" + std::to_string(mock_port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    mock_ = std::make_unique<Process>(argv);
    auto line = mock_->WaitForLine("listening on", 10000);
    ASSERT_TRUE(line);
    mock_port_ = PortFromListeningLine(*line);
  }

  void StopMock() {
    mock_->Signal(SIGKILL);
    mock_->Wait(5000);
  }

  // Every earlier session answers 200 within `timeout_ms`.
  void ExpectLookupsServed(int timeout_ms) {
    for (const std::string& id : ids_) {
      auto res = Lookup(fixture_->port(), id, timeout_ms);
      ASSERT_TRUE(res) << "lookup did not answer within " << timeout_ms
                       << " ms";
      EXPECT_EQ(res->status, 200) << res->body;
    }
  }

  int mock_port_ = 0;
  std::unique_ptr<Process> mock_;
  std::unique_ptr<ServerFixture> fixture_;
  std::vector<std::string> ids_;
};

TEST_F(E2EUpstreamFaults, WeChatGoneLoginsAnswer503LookupsAreUnaffected) {
  StopMock();
  auto res = Login(fixture_->port(), "dee.1", /*timeout_s=*/3);
  ASSERT_TRUE(res) << "no answer within 3 s";
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(json::parse(res->body)["error"], "upstream_unavailable");
  ExpectLookupsServed(500);
  // WeChat returns on the same address: logins work, no restart.
  StartMock({});
  auto back = Login(fixture_->port(), "dee.2");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, 200) << back->body;
}

TEST_F(E2EUpstreamFaults, WeChatSlowLoginsTimeOutLookupsStayFast) {
  StopMock();
  StartMock({"--delay", "3000"});
  // Eight logins stuck on a WeChat that takes 3 s (the server waits 1 s).
  std::vector<std::future<httplib::Result>> logins;
  for (int i = 0; i < 8; ++i) {
    logins.push_back(std::async(std::launch::async, [this, i] {
      return Login(fixture_->port(), "slow" + std::to_string(i) + ".1",
                   /*timeout_s=*/3);
    }));
  }
  // While they wait, lookups answer within 500 ms each.
  ExpectLookupsServed(500);
  for (auto& login : logins) {
    httplib::Result res = login.get();
    ASSERT_TRUE(res) << "a login got no answer within 3 s";
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"], "upstream_unavailable");
  }
  ExpectLookupsServed(500);
}

}  // namespace
}  // namespace wxsession
