// End to end: the real wxsessiond binary on a free loopback port against
// `wxsessiond mock-wechat`, driven over HTTP.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::ExpectError;
using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::Process;
using testing_support::ReadFile;
using testing_support::RunCommand;
using testing_support::ServerFixture;

class E2E : public ::testing::Test {
 protected:
  explicit E2E(const std::string& extra = "") : fixture_(extra) {}
  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", fixture_.port());
    client.set_read_timeout(10, 0);
    return client;
  }

  httplib::Result Login(const std::string& code,
                        const std::string& appid = "") {
    json body = {{"code", code}};
    if (!appid.empty()) body["appid"] = appid;
    return Client().Post("/v1/login", body.dump(), "application/json");
  }

  std::string LoginOk(const std::string& code) {
    auto res = Login(code);
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return "";
    EXPECT_EQ(res->status, 200) << res->body;
    json body = json::parse(res->body, nullptr, false);
    return body.value("session_id", "");
  }

  httplib::Result GetSession(const std::string& id) {
    return Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
  }

  ServerFixture fixture_;
};

TEST_F(E2E, LoginThenSessionThenLogout) {
  auto res = Login("alice.1");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json login = json::parse(res->body);
  std::string id = login["session_id"];
  EXPECT_EQ(id.size(), 43u);
  EXPECT_GT(login["expires_in"].get<int64_t>(), 0);
  EXPECT_GT(login["expires_at"].get<int64_t>(), 1'600'000'000);
  // expose_openid is off by default: the client learns nothing but the id.
  EXPECT_FALSE(login.contains("openid"));
  EXPECT_FALSE(login.contains("session_key"));

  auto session = GetSession(id);
  ASSERT_TRUE(session);
  ASSERT_EQ(session->status, 200) << session->body;
  json info = json::parse(session->body);
  EXPECT_EQ(info["appid"], ServerFixture::kAppId);
  EXPECT_EQ(info["openid"].get<std::string>().size(), 28u);
  EXPECT_TRUE(info["unionid"].is_null());
  for (const char* key : {"created_at", "last_seen_at", "expires_at"}) {
    EXPECT_TRUE(info[key].is_number_integer()) << key;
  }
  EXPECT_FALSE(info.contains("session_key"));

  // The X-WX-Session header works too.
  auto by_header = Client().Get("/v1/session", {{"X-WX-Session", id}});
  ASSERT_TRUE(by_header);
  EXPECT_EQ(by_header->status, 200);

  auto logout =
      Client().Post("/v1/logout", {{"Authorization", "Bearer " + id}}, "", "");
  ASSERT_TRUE(logout);
  EXPECT_EQ(logout->status, 204);
  auto after = GetSession(id);
  ExpectError(after, 401, "invalid_session");
  EXPECT_EQ(after->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
}

TEST_F(E2E, TwoCodesOfOneUserShareTheOpenIdAndUnionIdIsReported) {
  std::string a = LoginOk("alice.1");
  std::string b = LoginOk("alice.2");
  auto sa = json::parse(GetSession(a)->body);
  auto sb = json::parse(GetSession(b)->body);
  EXPECT_EQ(sa["openid"], sb["openid"]);
  std::string u = LoginOk("union_carol.1");
  auto su = json::parse(GetSession(u)->body);
  EXPECT_TRUE(su["unionid"].is_string());
}

TEST_F(E2E, RequestErrorsAreInvalidRequest) {
  auto client = Client();
  ExpectError(client.Post("/v1/login", "{not json", "application/json"), 400,
              "invalid_request");
  ExpectError(client.Post("/v1/login", "[1,2]", "application/json"), 400,
              "invalid_request");
  ExpectError(client.Post("/v1/login", "{}", "application/json"), 400,
              "invalid_request");
  ExpectError(client.Post("/v1/login", R"({"code": 42})", "application/json"),
              400, "invalid_request");
  ExpectError(client.Post("/v1/login", R"({"code": ""})", "application/json"),
              400, "invalid_request");
  ExpectError(
      client.Post("/v1/login", json({{"code", std::string(129, 'c')}}).dump(),
                  "application/json"),
      400, "invalid_request");
  ExpectError(client.Post("/v1/login", R"({"code": "x", "appid": 7})",
                          "application/json"),
              400, "invalid_request");
}

TEST_F(E2E, OversizedBodyIsPayloadTooLarge) {
  std::string big =
      json({{"code", "x"}, {"pad", std::string(70000, 'p')}}).dump();
  ExpectError(Client().Post("/v1/login", big, "application/json"), 413,
              "payload_too_large");
}

TEST_F(E2E, UnknownAppAndUnknownRoute) {
  ExpectError(Login("alice.1", "wxnotconfigured"), 400, "unknown_app");
  ExpectError(Client().Get("/v1/nothing-here"), 404, "not_found");
}

TEST_F(E2E, SessionErrorsAreInvalidSessionWithAChallenge) {
  auto missing = Client().Get("/v1/session");
  ExpectError(missing, 401, "invalid_session");
  EXPECT_FALSE(missing->get_header_value("WWW-Authenticate").empty());
  ExpectError(GetSession("not-a-session"), 401, "invalid_session");
  ExpectError(GetSession(std::string(43, 'A')), 401, "invalid_session");
  ExpectError(Client().Post("/v1/logout", "", "application/json"), 401,
              "invalid_session");
}

TEST_F(E2E, WeChatErrorsMapOntoTheTable) {
  ExpectError(Login("invalid"), 400, "invalid_code");
  ExpectError(Login("blocked"), 403, "login_blocked");
  auto limited = Login("limit");
  ExpectError(limited, 429, "rate_limited");
  EXPECT_FALSE(limited->get_header_value("Retry-After").empty());
  auto busy = Login("busy");
  ExpectError(busy, 503, "upstream_unavailable");
  EXPECT_FALSE(busy->get_header_value("Retry-After").empty());
  ExpectError(Login("errcode:40125"), 502, "upstream_error");
  ExpectError(Login("http:500"), 502, "upstream_error");
  ExpectError(Login("http:notjson"), 502, "upstream_error");
}

TEST_F(E2E, PostWithoutContentLengthHasNoBodyAndIsAnsweredAtOnce) {
  std::string id = LoginOk("kim.1");
  // curl -X POST with no data sends neither Content-Length nor chunked
  // encoding. The client waits 2 s, less than the server's 5 s read timeout,
  // so an answer proves the server did not wait for a body.
  std::string response = testing_support::RawHttp(
      fixture_.port(),
      "POST /v1/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + id +
          "\r\nConnection: close\r\n\r\n",
      2000);
  EXPECT_EQ(response.rfind("HTTP/1.1 204", 0), 0u) << response;
  std::string unknown = testing_support::RawHttp(
      fixture_.port(),
      "POST /v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      2000);
  EXPECT_EQ(unknown.rfind("HTTP/1.1 404", 0), 0u) << unknown;
  EXPECT_NE(unknown.find("not_found"), std::string::npos);
}

TEST_F(E2E, ChunkedLoginBodyIsRead) {
  std::string body = R"({"code":"chunk.1"})";
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  std::string response = testing_support::RawHttp(
      fixture_.port(),
      "POST /v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: application/json\r\nConnection: close\r\n\r\n" +
          std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n",
      5000);
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("session_id"), std::string::npos);
}

TEST_F(E2E, TheSameCodeAgainReturnsTheSameSession) {
  std::string first = LoginOk("bob.1");
  std::string again = LoginOk("bob.1");
  EXPECT_EQ(first, again);
}

TEST_F(E2E, ConcurrentPostsOfOneCodeGetOneSession) {
  std::vector<std::future<std::string>> logins;
  for (int i = 0; i < 10; ++i) {
    logins.push_back(
        std::async(std::launch::async, [this] { return LoginOk("dave.1"); }));
  }
  std::set<std::string> ids;
  for (auto& login : logins) ids.insert(login.get());
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids.begin()->size(), 43u);
}

TEST_F(E2E, FiftyParallelLoginsWithLookups) {
  std::vector<std::future<bool>> users;
  for (int i = 0; i < 50; ++i) {
    users.push_back(std::async(std::launch::async, [this, i] {
      std::string id = LoginOk("user" + std::to_string(i) + ".1");
      if (id.size() != 43) return false;
      for (int j = 0; j < 5; ++j) {
        auto res = GetSession(id);
        if (!res || res->status != 200) return false;
      }
      return true;
    }));
  }
  int ok = 0;
  for (auto& user : users) ok += user.get() ? 1 : 0;
  EXPECT_EQ(ok, 50);
  auto stats =
      RunCommand({BinaryPath(), "stats", "--config", fixture_.config_path()});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  json counts = json::parse(stats.out);
  EXPECT_EQ(counts["sessions"], 50);
  EXPECT_EQ(counts["users"], 50);
  EXPECT_GT(counts["database_bytes"].get<int64_t>(), 0);
}

TEST_F(E2E, RevokeFromTheCommandLineWhileServing) {
  std::string a = LoginOk("erin.1");
  std::string b = LoginOk("frank.1");
  std::string openid = json::parse(GetSession(a)->body)["openid"];
  auto revoke = RunCommand({BinaryPath(), "revoke", "--config",
                            fixture_.config_path(), "--openid", openid});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  EXPECT_EQ(json::parse(revoke.out)["revoked"], 1);
  ExpectError(GetSession(a), 401, "invalid_session");
  EXPECT_EQ(GetSession(b)->status, 200);
  auto all = RunCommand(
      {BinaryPath(), "revoke", "--config", fixture_.config_path(), "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  ExpectError(GetSession(b), 401, "invalid_session");
}

TEST_F(E2E, HealthzAnswersOk) {
  auto res = Client().Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["status"], "ok");
}

TEST_F(E2E, SessionsSurviveARestartAndSigtermExitsZero) {
  std::string id = LoginOk("gina.1");
  fixture_.StopServer(SIGTERM);
  auto code = fixture_.WaitServer(5000);
  ASSERT_TRUE(code.has_value()) << "did not stop within 5 s";
  EXPECT_EQ(*code, 0);
  ASSERT_TRUE(fixture_.Start());
  EXPECT_EQ(GetSession(id)->status, 200);
  // The restart forgot which session the code made, so WeChat now decides:
  // the mock answers 40163 (code already used).
  ExpectError(Login("gina.1"), 400, "invalid_code");
}

TEST_F(E2E, DatabaseAndLogsNeverHoldARawSessionIdOrTheSecret) {
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(LoginOk("scan" + std::to_string(i) + ".1"));
    ASSERT_EQ(GetSession(ids.back())->status, 200);
  }
  std::string files;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    files += ReadFile(fixture_.database() + suffix);
  }
  ASSERT_GT(files.size(), 0u);
  for (const auto& id : ids) {
    EXPECT_EQ(files.find(id), std::string::npos);
    // Nor a prefix long enough to matter.
    EXPECT_EQ(files.find(id.substr(0, 16)), std::string::npos);
  }
  std::string log = fixture_.server()->Stderr();
  EXPECT_NE(log.find("\"event\":\"request\""), std::string::npos) << log;
  EXPECT_EQ(log.find(ServerFixture::kSecret), std::string::npos);
  for (const auto& id : ids) EXPECT_EQ(log.find(id), std::string::npos);
}

class E2EShortTtl : public E2E {
 protected:
  E2EShortTtl()
      : E2E(R"("session": {"ttl": "1s", "idle_ttl": 0}, "sweep_interval": 1)") {
  }
};

TEST_F(E2EShortTtl, ExpiredSessionsAreRefusedAndSwept) {
  std::string id = LoginOk("henry.1");
  auto stats = [&] {
    auto out =
        RunCommand({BinaryPath(), "stats", "--config", fixture_.config_path()});
    return json::parse(out.out, nullptr, false);
  };
  EXPECT_EQ(stats()["sessions"], 1);
  // Wait for the sweeper: it runs every second; poll for up to 5 s.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int64_t left = 1;
  while (std::chrono::steady_clock::now() < deadline) {
    left = stats()["sessions"].get<int64_t>();
    if (left == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, 0);
  ExpectError(GetSession(id), 401, "invalid_session");
}

class E2EExposed : public E2E {
 protected:
  E2EExposed() : E2E(R"("expose_openid": true)") {}
};

TEST_F(E2EExposed, LoginAnswersOpenIdWhenExposed) {
  auto res = Login("ivy.1");
  ASSERT_TRUE(res);
  json body = json::parse(res->body);
  EXPECT_TRUE(body["openid"].is_string());
  EXPECT_TRUE(body.contains("unionid"));
  EXPECT_FALSE(body.contains("session_key"));
}

TEST(E2EUpstreamDown, RefusedConnectionIsUpstreamUnavailable) {
  ServerFixture fixture("", /*start_mock=*/false);
  ASSERT_TRUE(fixture.Start());
  httplib::Client client("127.0.0.1", fixture.port());
  auto res = client.Post("/v1/login", R"({"code":"x.1"})", "application/json");
  ExpectError(res, 503, "upstream_unavailable");
  EXPECT_FALSE(res->get_header_value("Retry-After").empty());
  // Lookups do not depend on WeChat.
  EXPECT_EQ(client.Get("/healthz")->status, 200);
}

TEST(E2EUpstreamSlow, ReadTimeoutIsUpstreamUnavailable) {
  Process slow({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
                "--delay", "3000"});
  auto line = slow.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line);
  int slow_port = testing_support::PortFromListeningLine(*line);
  // Timeout 1 s (the fixture's setting with an explicit api_base).
  ServerFixture fixture("", /*start_mock=*/false,
                        "http://127.0.0.1:" + std::to_string(slow_port));
  ASSERT_TRUE(fixture.Start());
  httplib::Client client("127.0.0.1", fixture.port());
  client.set_read_timeout(10, 0);
  auto started = std::chrono::steady_clock::now();
  auto res = client.Post("/v1/login", R"({"code":"x.1"})", "application/json");
  auto took = std::chrono::steady_clock::now() - started;
  ExpectError(res, 503, "upstream_unavailable");
  // Answered within the 1 s timeout plus slack, not after the 3 s delay.
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

}  // namespace
}  // namespace wxsession
