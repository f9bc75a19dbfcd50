// End to end, running wxsessiond in production: metrics, the auth gateway
// route, logs, the login rate limit, the upstream bulkhead, TLS, backup
// during writes, SIGTERM during load and systemd notification. The real
// binary on free loopback ports against `wxsessiond mock-wechat`.
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "prometheus_text.h"
#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::ExpectError;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing_support::BinaryPath;
using testing_support::ParsePrometheusText;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::PromText;
using testing_support::RunCommand;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WaitFor;
using testing_support::WriteFile;

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  client.set_connection_timeout(5, 0);
  return client;
}

httplib::Result PostLogin(int port, const std::string& code,
                          const httplib::Headers& headers = {}) {
  return ClientFor(port).Post(
      "/v1/login", headers, json({{"code", code}}).dump(), "application/json");
}

std::string LoginOk(int port, const std::string& code) {
  auto res = PostLogin(port, code);
  EXPECT_TRUE(res) << httplib::to_string(res.error());
  if (!res) return "";
  EXPECT_EQ(res->status, 200) << res->body;
  return json::parse(res->body, nullptr, false).value("session_id", "");
}

httplib::Result GetSession(int port, const std::string& id) {
  return ClientFor(port).Get("/v1/session",
                             {{"Authorization", "Bearer " + id}});
}

// Fetches /metrics until `ready` holds (up to 5 s) and returns it parsed.
// Polling, because a request is counted just after its answer is sent: the
// scrape that follows it can arrive first.
PromText Scrape(int port, const std::function<bool(const PromText&)>& ready) {
  PromText parsed;
  WaitFor(
      [&] {
        auto res = ClientFor(port).Get("/metrics");
        EXPECT_TRUE(res);
        if (!res) return true;  // give up: the failure is recorded
        parsed = ParsePrometheusText(res->body);
        EXPECT_EQ(parsed.error, "") << res->body;
        return ready(parsed);
      },
      std::chrono::seconds(5));
  return parsed;
}

// Starts `wxsessiond serve --config config` with `env`; sets *port.
std::unique_ptr<Process> StartServer(
    const std::string& config, int* port,
    const std::map<std::string, std::string>& env = {},
    const std::vector<std::string>& extra_args = {}) {
  std::vector<std::string> argv = {BinaryPath(), "serve", "--config", config};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto server = std::make_unique<Process>(argv, env);
  auto line = server->WaitForLine("listening on", 10000);
  *port = line ? PortFromListeningLine(*line) : 0;
  if (!line) ADD_FAILURE() << "server did not start:\n" << server->Stderr();
  return server;
}

// Starts a mock WeChat; returns its api_base.
std::string StartMock(std::unique_ptr<Process>* mock, int delay_ms = 0) {
  std::vector<std::string> argv = {BinaryPath(), "mock-wechat", "--listen",
                                   "127.0.0.1:0"};
  if (delay_ms > 0) {
    argv.push_back("--delay");
    argv.push_back(std::to_string(delay_ms));
  }
  *mock = std::make_unique<Process>(argv);
  auto line = (*mock)->WaitForLine("listening on", 10000);
  EXPECT_TRUE(line) << "mock-wechat did not start";
  return "http://127.0.0.1:" +
         std::to_string(line ? PortFromListeningLine(*line) : 0);
}

// A config with one app whose secret is in a file, WeChat at `api_base`
// with a 3 s timeout, plus `extra` members (not "wechat").
std::string WriteConfig(TempDir& dir, const std::string& name,
                        const std::string& api_base,
                        const std::string& extra = "") {
  WriteFile(dir.File("secret"), std::string(ServerFixture::kSecret) + "\n");
  std::string path = dir.File(name);
  WriteFile(path, "{\"listen\": \"127.0.0.1:0\", \"database\": \"" +
                      dir.File("sessions.db") +
                      "\", \"apps\": [{\"appid\": \"" + ServerFixture::kAppId +
                      "\", \"secret_file\": \"" + dir.File("secret") +
                      "\"}], \"wechat\": {\"api_base\": \"" + api_base +
                      "\", \"timeout\": \"3s\"}" +
                      (extra.empty() ? "" : ", " + extra) + "}");
  return path;
}

// --- Metrics ----------------------------------------------------------------

TEST(E2EMetrics, ParseAsPrometheusTextAndCountByRoutePatternOnly) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  const int port = fixture.port();
  std::string alice = LoginOk(port, "alice.1");
  std::string bob = LoginOk(port, "bob.1");
  ASSERT_EQ(GetSession(port, alice)->status, 200);
  ExpectError(PostLogin(port, "invalid"), 400, "invalid_code");
  ExpectError(GetSession(port, "nope"), 401, "invalid_session");
  // A raw path that must never become a label.
  const std::string odd_path = "/v1/" + alice;
  ExpectError(ClientFor(port).Get(odd_path), 404, "not_found");
  std::string openid = json::parse(GetSession(port, alice)->body)["openid"];
  // Seven requests before the scrape.
  Scrape(port, [](const PromText& text) {
    double total = 0;
    auto found = text.families.find("wxsessiond_http_requests_total");
    if (found == text.families.end()) return false;
    for (const auto& sample : found->second.samples) total += sample.value;
    return total >= 7;
  });

  auto res = ClientFor(port).Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type")
                .rfind("text/plain; version=0.0.4", 0),
            0u)
      << res->get_header_value("Content-Type");
  PromText parsed = ParsePrometheusText(res->body);
  ASSERT_EQ(parsed.error, "") << res->body;
  for (const auto& [name, family] : parsed.families) {
    EXPECT_EQ(name.rfind("wxsessiond_", 0), 0u) << name;
  }
  // Nothing per-user anywhere in the text.
  EXPECT_EQ(res->body.find(alice), std::string::npos);
  EXPECT_EQ(res->body.find(openid), std::string::npos);
  EXPECT_EQ(res->body.find(odd_path), std::string::npos);
  EXPECT_EQ(res->body.find("127.0.0.1"), std::string::npos);

  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/login"}, {"status", "200"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/login"}, {"status", "400"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/session"}, {"status", "200"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "unmatched"}, {"status", "404"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_http_request_duration_seconds_count",
                         {{"route", "/v1/login"}}),
            3);
  EXPECT_EQ(parsed.Value("wxsessiond_logins_total", {{"result", "ok"}}), 2);
  EXPECT_EQ(
      parsed.Value("wxsessiond_logins_total", {{"result", "invalid_code"}}), 1);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "jscode2session"},
                          {"result", "ok"},
                          {"platform", "wechat"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_request_duration_seconds_count",
                         {{"api", "jscode2session"}, {"platform", "wechat"}}),
            3);
  EXPECT_EQ(parsed.Value("wxsessiond_live_sessions"), 2);
  EXPECT_EQ(parsed.Value("wxsessiond_build_info", {{"version", "0.1.0"}}), 1);
  EXPECT_EQ(parsed.families["wxsessiond_sweeper_runs_total"].type, "counter");
}

// --- The auth gateway route -------------------------------------------------

TEST(E2EAuth, LiveSessionGets204WithIdentityHeadersOthers401) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  const int port = fixture.port();
  std::string carol = LoginOk(port, "union_carol.1");  // has a unionid
  std::string dave = LoginOk(port, "dave.1");          // has none
  json carol_info = json::parse(GetSession(port, carol)->body);

  auto ok =
      ClientFor(port).Get("/v1/auth", {{"Authorization", "Bearer " + carol}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 204);
  EXPECT_TRUE(ok->body.empty());
  EXPECT_EQ(ok->get_header_value("X-WX-AppID"), ServerFixture::kAppId);
  EXPECT_EQ(ok->get_header_value("X-WX-OpenID"), carol_info["openid"]);
  EXPECT_EQ(ok->get_header_value("X-WX-UnionID"), carol_info["unionid"]);
  EXPECT_EQ(ok->get_header_value("Cache-Control"), "no-store");

  auto by_header = ClientFor(port).Get("/v1/auth", {{"X-WX-Session", dave}});
  ASSERT_TRUE(by_header);
  EXPECT_EQ(by_header->status, 204);
  EXPECT_FALSE(by_header->get_header_value("X-WX-OpenID").empty());
  EXPECT_FALSE(by_header->has_header("X-WX-UnionID"));

  auto missing = ClientFor(port).Get("/v1/auth");
  ExpectError(missing, 401, "invalid_session");
  EXPECT_FALSE(missing->get_header_value("WWW-Authenticate").empty());
  EXPECT_FALSE(missing->has_header("X-WX-OpenID"));
  ExpectError(ClientFor(port).Get("/v1/auth", {{"Authorization", "Bearer x"}}),
              401, "invalid_session");
  ASSERT_EQ(
      ClientFor(port)
          .Post("/v1/logout", {{"Authorization", "Bearer " + dave}}, "", "")
          ->status,
      204);
  ExpectError(ClientFor(port).Get("/v1/auth", {{"X-WX-Session", dave}}), 401,
              "invalid_session");
}

// --- Logs -------------------------------------------------------------------

// The JSON log lines of `stderr_text` whose event is `event`.
std::vector<json> LogLines(const std::string& stderr_text,
                           const std::string& event) {
  std::vector<json> lines;
  size_t start = 0;
  while (start < stderr_text.size()) {
    size_t end = stderr_text.find('\n', start);
    if (end == std::string::npos) end = stderr_text.size();
    json line =
        json::parse(stderr_text.substr(start, end - start), nullptr, false);
    if (line.is_object() && line.value("event", "") == event) {
      lines.push_back(line);
    }
    start = end + 1;
  }
  return lines;
}

TEST(E2ELogs, OneJsonLinePerRequestWithRouteStatusDurationAndRequestId) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  const int port = fixture.port();
  std::string id = LoginOk(port, "erin.1");
  auto res = ClientFor(port).Get(
      "/v1/session",
      {{"Authorization", "Bearer " + id}, {"X-Request-Id", "trace-42.a_b"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("X-Request-Id"), "trace-42.a_b");
  // An unsafe id is replaced by a fresh one.
  auto unsafe = ClientFor(port).Get("/healthz", {{"X-Request-Id", "a b\"c"}});
  ASSERT_TRUE(unsafe);
  std::string fresh = unsafe->get_header_value("X-Request-Id");
  EXPECT_FALSE(fresh.empty());
  EXPECT_NE(fresh, "a b\"c");
  // A session id in a path (a 404) must not reach the log either.
  ClientFor(port).Get("/v1/" + id);
  ClientFor(port).Get("/v1/auth", {{"Authorization", "Bearer " + id}});

  fixture.StopServer(SIGTERM);
  ASSERT_EQ(fixture.WaitServer(5000), 0);
  std::string log = fixture.server()->Stderr();
  std::vector<json> requests = LogLines(log, "request");
  ASSERT_EQ(requests.size(), 5u) << log;  // login, session, healthz, 404, auth
  bool found = false;
  for (const json& line : requests) {
    for (const char* key : {"time", "level", "request_id", "method", "route",
                            "status", "duration_ms", "client"}) {
      EXPECT_TRUE(line.contains(key)) << key << " in " << line.dump();
    }
    EXPECT_FALSE(line.contains("path")) << line.dump();
    EXPECT_TRUE(line["status"].is_number_integer());
    EXPECT_TRUE(line["duration_ms"].is_number());
    if (line["request_id"] == "trace-42.a_b") {
      found = true;
      EXPECT_EQ(line["route"], "/v1/session");
      EXPECT_EQ(line["status"], 200);
      EXPECT_EQ(line["level"], "info");
    }
  }
  EXPECT_TRUE(found) << log;
  EXPECT_EQ(log.find(id), std::string::npos) << "a session id reached the log";
  EXPECT_EQ(log.find(ServerFixture::kSecret), std::string::npos);
  EXPECT_EQ(LogLines(log, "listening").size(), 1u);
  EXPECT_EQ(LogLines(log, "stopping").size(), 1u);
  EXPECT_EQ(LogLines(log, "stopped").size(), 1u);
  ASSERT_EQ(LogLines(log, "checkpoint").size(), 1u);
  EXPECT_EQ(LogLines(log, "checkpoint")[0]["result"], "ok");
}

TEST(E2ELogs, TextFormatAndLevelAreConfigurable) {
  ServerFixture text(R"("log": {"format": "text"})");
  ASSERT_TRUE(text.Start());
  LoginOk(text.port(), "fred.1");
  text.StopServer(SIGTERM);
  ASSERT_EQ(text.WaitServer(5000), 0);
  std::string log = text.server()->Stderr();
  EXPECT_NE(log.find(" info request request_id="), std::string::npos) << log;
  EXPECT_NE(log.find(" route=/v1/login status=200 "), std::string::npos) << log;
  EXPECT_EQ(log.find("{\""), std::string::npos)
      << "JSON in a text log: " << log;

  ServerFixture quiet(R"("log": {"level": "warn"})");
  ASSERT_TRUE(quiet.Start());
  LoginOk(quiet.port(), "gina.1");
  ExpectError(PostLogin(quiet.port(), "blocked"), 403, "login_blocked");
  quiet.StopServer(SIGTERM);
  ASSERT_EQ(quiet.WaitServer(5000), 0);
  std::string warn_log = quiet.server()->Stderr();
  EXPECT_TRUE(LogLines(warn_log, "request").empty()) << warn_log;
  EXPECT_EQ(LogLines(warn_log, "login_failed").size(), 1u) << warn_log;
}

// --- Login rate limit -------------------------------------------------------

TEST(E2ERateLimit, LoginsPastTheBurstGet429WithRetryAfter) {
  ServerFixture fixture(
      R"("rate_limit": {"login_per_minute": 6, "login_burst": 2})");
  ASSERT_TRUE(fixture.Start());
  const int port = fixture.port();
  std::string id = LoginOk(port, "hank.1");
  LoginOk(port, "hank.2");
  auto limited = PostLogin(port, "hank.3");
  ExpectError(limited, 429, "rate_limited");
  int retry = std::atoi(limited->get_header_value("Retry-After").c_str());
  // One login per 10 s: the next token is at most 10 s away.
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 10);
  // Counted before WeChat is asked, and lookups are not limited.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(GetSession(port, id)->status, 200);

  // Loopback is a trusted proxy by default: the address it forwards has its
  // own bucket.
  auto other = PostLogin(port, "ivan.1", {{"X-Forwarded-For", "198.51.100.7"}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200) << other->body;
  auto real_ip = PostLogin(port, "ivan.2", {{"X-Real-IP", "198.51.100.8"}});
  ASSERT_TRUE(real_ip);
  EXPECT_EQ(real_ip->status, 200) << real_ip->body;

  auto metrics = Scrape(port, [](const PromText& text) {
    return text.Value("wxsessiond_logins_total", {{"result", "ok"}}) == 4;
  });
  EXPECT_EQ(
      metrics.Value("wxsessiond_logins_total", {{"result", "rate_limited"}}),
      1);
  EXPECT_EQ(metrics.Value("wxsessiond_upstream_requests_total",
                          {{"api", "jscode2session"},
                           {"result", "ok"},
                           {"platform", "wechat"}}),
            4);
}

TEST(E2ERateLimit, ForwardedHeadersFromAnUntrustedPeerDoNotEscapeTheLimit) {
  ServerFixture fixture(
      R"("rate_limit": {"login_per_minute": 6, "login_burst": 1},
         "trusted_proxies": [])");
  ASSERT_TRUE(fixture.Start());
  LoginOk(fixture.port(), "jack.1");
  for (const char* forged : {"198.51.100.1", "198.51.100.2"}) {
    ExpectError(PostLogin(fixture.port(), std::string("jack.") + forged,
                          {{"X-Forwarded-For", forged}, {"X-Real-IP", forged}}),
                429, "rate_limited");
  }
}

// --- Bulkhead: a stalled WeChat
// -----------------------------------------------

TEST(E2EBulkhead, LookupsStayFastWhileWeChatStalls) {
  TempDir dir;
  std::unique_ptr<Process> fast_mock;
  std::string fast = StartMock(&fast_mock);
  // 16 threads: calls to WeChat (4 running, 10 waiting) may hold 14 of
  // them; 2 are reserved.
  const std::string extra = R"("http": {"threads": 16})";
  int port = 0;
  std::vector<std::string> ids;
  {
    auto server =
        StartServer(WriteConfig(dir, "fast.json", fast, extra), &port);
    for (int i = 0; i < 4; ++i)
      ids.push_back(LoginOk(port, "kim" + std::to_string(i) + ".1"));
    server->Signal(SIGTERM);
    ASSERT_EQ(server->Wait(5000), 0);
  }
  // Now WeChat takes 20 s to answer; the timeout is 3 s.
  std::unique_ptr<Process> stalled_mock;
  std::string stalled = StartMock(&stalled_mock, 20000);
  auto server =
      StartServer(WriteConfig(dir, "stalled.json", stalled, extra), &port);
  ASSERT_GT(port, 0);

  // One kept-alive connection for lookups, opened before the storm.
  httplib::Client lookups("127.0.0.1", port);
  lookups.set_keep_alive(true);
  lookups.set_read_timeout(10, 0);
  ASSERT_EQ(lookups.Get("/v1/session", {{"Authorization", "Bearer " + ids[0]}})
                ->status,
            200);

  // 40 logins at once, far more than the 16 threads.
  std::vector<std::future<int>> logins;
  for (int i = 0; i < 40; ++i) {
    logins.push_back(std::async(std::launch::async, [port, i] {
      auto res = PostLogin(port, "stall" + std::to_string(i) + ".1");
      return res ? res->status : -1;
    }));
  }
  // Wait until the storm has arrived: 14 logins hold the bulkhead (4 at
  // WeChat, 10 waiting), the other 26 were turned away, and calls are still
  // stuck at WeChat. Without this the lookups below could all run before
  // the storm and check nothing.
  const std::map<std::string, std::string> wechat = {{"api", "jscode2session"},
                                                     {"platform", "wechat"}};
  double rejected = 0;
  double in_flight = 0;
  const bool arrived = WaitFor([&] {
    auto res = ClientFor(port).Get("/metrics");
    if (!res) return false;
    const PromText text = ParsePrometheusText(res->body);
    rejected =
        text.Value("wxsessiond_upstream_rejected_total", wechat).value_or(0);
    in_flight = text.Value("wxsessiond_upstream_in_flight").value_or(0);
    return rejected >= 26 && in_flight >= 1;
  });
  ASSERT_TRUE(arrived) << "the storm never filled the bulkhead: " << rejected
                       << " rejected, " << in_flight << " in flight";
  // While they are stuck, lookups on the kept-alive connection and on new
  // connections answer at once.
  double slowest_ms = 0;
  for (int i = 0; i < 40; ++i) {
    auto started = steady_clock::now();
    auto res = (i % 2 == 0)
                   ? lookups.Get("/v1/session",
                                 {{"Authorization", "Bearer " + ids[i % 4]}})
                   : GetSession(port, ids[i % 4]);
    double ms =
        std::chrono::duration<double, std::milli>(steady_clock::now() - started)
            .count();
    ASSERT_TRUE(res) << "lookup " << i << ": "
                     << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    slowest_ms = std::max(slowest_ms, ms);
  }
  std::cout << "[ measured ] slowest of 40 lookups during the stall: "
            << slowest_ms << " ms\n";
  // Far below the 3 s a lookup would wait if logins held every thread.
  EXPECT_LT(slowest_ms, 1000);

  int refused = 0;
  for (auto& login : logins) {
    int status = login.get();
    EXPECT_EQ(status, 503) << "a stalled login must fail with 503";
    if (status == 503) ++refused;
  }
  auto metrics = Scrape(port, [](const PromText& text) {
    return text
        .Value("wxsessiond_upstream_rejected_total",
               {{"api", "jscode2session"}, {"platform", "wechat"}})
        .has_value();
  });
  EXPECT_GT(metrics
                .Value("wxsessiond_upstream_rejected_total",
                       {{"api", "jscode2session"}, {"platform", "wechat"}})
                .value_or(0),
            0);
  EXPECT_EQ(refused, 40);
  stalled_mock->Signal(SIGTERM);
}

// --- TLS --------------------------------------------------------------------

TEST(E2ETls, ServesHttpsWithAConfiguredCertificate) {
  TempDir dir;
  auto made = RunCommand(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir.File("key.pem"),
       "-out", dir.File("cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
       "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(made.exit_code, 0)
      << "the openssl CLI (Debian package openssl) is needed: " << made.err;
  std::unique_ptr<Process> mock;
  std::string api_base = StartMock(&mock);
  std::string config =
      WriteConfig(dir, "tls.json", api_base,
                  R"("tls": {"cert": ")" + dir.File("cert.pem") +
                      R"(", "key": ")" + dir.File("key.pem") + "\"}");
  auto server = std::make_unique<Process>(
      std::vector<std::string>{BinaryPath(), "serve", "--config", config});
  auto line = server->WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << server->Stderr();
  EXPECT_NE(line->find("https://"), std::string::npos) << *line;
  int port = PortFromListeningLine(*line);

  httplib::SSLClient tls("127.0.0.1", port);
  tls.set_ca_cert_path(dir.File("cert.pem").c_str());
  tls.enable_server_certificate_verification(true);
  auto login =
      tls.Post("/v1/login", R"({"code":"lena.1"})", "application/json");
  ASSERT_TRUE(login) << httplib::to_string(login.error());
  ASSERT_EQ(login->status, 200) << login->body;
  std::string id = json::parse(login->body)["session_id"];
  auto session = tls.Get("/v1/session", {{"Authorization", "Bearer " + id}});
  ASSERT_TRUE(session);
  EXPECT_EQ(session->status, 200);

  // Plain HTTP on the TLS port gets no HTTP answer.
  auto plain = ClientFor(port).Get("/healthz");
  EXPECT_TRUE(!plain || plain->status != 200);

  // A key that is not a key: start-up fails naming the keys.
  WriteFile(dir.File("bad.pem"), "not a pem file\n");
  std::string bad =
      WriteConfig(dir, "bad.json", api_base,
                  R"("tls": {"cert": ")" + dir.File("bad.pem") +
                      R"(", "key": ")" + dir.File("bad.pem") + "\"}");
  auto refused = RunCommand({BinaryPath(), "serve", "--config", bad});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("tls.cert"), std::string::npos) << refused.err;
}

// --- Backup during writes ---------------------------------------------------

TEST(E2EBackup, ACopyTakenDuringLoginsOpensAndHoldsTheSessions) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  const int port = fixture.port();
  std::vector<std::string> before;
  for (int i = 0; i < 20; ++i) {
    before.push_back(LoginOk(port, "early" + std::to_string(i) + ".1"));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> during{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      auto res = PostLogin(port, "late" + std::to_string(i) + ".1");
      if (res && res->status == 200) during.fetch_add(1);
    }
  });
  // The copy must be taken while logins are being written.
  if (!WaitFor([&] { return during.load() >= 5; })) {
    stop.store(true);
    writer.join();
    FAIL() << "logins never got going: " << during.load() << " answered";
  }
  const std::string out = fixture.dir().File("backup.db");
  auto backup = RunCommand(
      {BinaryPath(), "backup", "--config", fixture.config_path(), out});
  int during_at_end = during.load();
  stop.store(true);
  writer.join();
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  json report = json::parse(backup.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << backup.out;
  EXPECT_EQ(report["backup"], out);
  EXPECT_GT(report["bytes"].get<int64_t>(), 0);
  EXPECT_GE(report["sessions"].get<int64_t>(), 25);
  EXPECT_LE(report["sessions"].get<int64_t>(), 20 + during_at_end + 1);

  // A second server on the copy answers for every session made before it.
  int copy_port = 0;
  auto copy = StartServer(fixture.config_path(), &copy_port, {},
                          {"--database", out, "--listen", "127.0.0.1:0"});
  ASSERT_GT(copy_port, 0);
  for (const std::string& id : before) {
    auto res = GetSession(copy_port, id);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
  copy->Signal(SIGTERM);
  EXPECT_EQ(copy->Wait(5000), 0);

  // Never over an existing file; usage errors are exit 2.
  auto again = RunCommand(
      {BinaryPath(), "backup", "--config", fixture.config_path(), out});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  auto usage =
      RunCommand({BinaryPath(), "backup", "--config", fixture.config_path()});
  EXPECT_EQ(usage.exit_code, 2);

  // With a Redis store there is no SQLite file to copy: refused, clearly.
  TempDir dir;
  std::string redis_config =
      WriteConfig(dir, "redis.json", "http://127.0.0.1:9",
                  R"("store": "redis://127.0.0.1:9")");
  auto redis = RunCommand(
      {BinaryPath(), "backup", "--config", redis_config, dir.File("out.db")});
  EXPECT_EQ(redis.exit_code, 1);
  EXPECT_NE(redis.err.find("Redis"), std::string::npos) << redis.err;
}

// --- SIGTERM during load ----------------------------------------------------

TEST(E2EShutdown, SigtermDuringLoadFinishesInFlightRequestsAndExitsZero) {
  TempDir dir;
  std::unique_ptr<Process> mock;
  // Every login takes 300 ms at WeChat, so some are in flight at the signal.
  std::string api_base = StartMock(&mock, 300);
  std::string config = WriteConfig(dir, "config.json", api_base);
  int port = 0;
  auto server = StartServer(config, &port);
  ASSERT_GT(port, 0);

  struct Outcome {
    int status;
    steady_clock::time_point answered;
    std::string session_id;
  };
  std::mutex mutex;
  std::vector<Outcome> outcomes;  // guarded by mutex
  std::atomic<int> transport_failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0;; ++i) {
        auto res = PostLogin(
            port, "load" + std::to_string(c) + "x" + std::to_string(i) + ".1");
        if (!res) {
          transport_failures.fetch_add(1);
          return;  // the server has stopped accepting
        }
        std::string id;
        if (res->status == 200) id = json::parse(res->body)["session_id"];
        {
          std::lock_guard<std::mutex> lock(mutex);
          outcomes.push_back(Outcome{res->status, steady_clock::now(), id});
        }
        if (id.empty()) continue;
        auto lookup = GetSession(port, id);
        if (!lookup) {
          transport_failures.fetch_add(1);
          return;
        }
        std::lock_guard<std::mutex> lock(mutex);
        outcomes.push_back(
            Outcome{lookup->status, steady_clock::now(), std::string()});
      }
    });
  }
  // Signal only once the load is running: some sessions are acknowledged
  // (the restart below must find them) and logins keep coming.
  const bool loaded = WaitFor([&] {
    std::lock_guard<std::mutex> lock(mutex);
    int acknowledged = 0;
    for (const Outcome& outcome : outcomes) {
      if (!outcome.session_id.empty()) ++acknowledged;
    }
    return acknowledged > 10;
  });
  EXPECT_TRUE(loaded) << "the load never got going";
  const auto signalled = steady_clock::now();
  server->Signal(SIGTERM);
  std::optional<int> code = server->Wait(5000);
  const auto exited = steady_clock::now();
  for (auto& client : clients) client.join();

  ASSERT_TRUE(code.has_value()) << "did not exit within 5 s";
  EXPECT_EQ(*code, 0) << server->Stderr();
  std::cout
      << "[ measured ] SIGTERM to exit under load: "
      << std::chrono::duration<double, std::milli>(exited - signalled).count()
      << " ms\n";
  int answered_after_signal = 0;
  std::vector<std::string> acknowledged;
  for (const Outcome& outcome : outcomes) {
    EXPECT_LT(outcome.status, 500) << "a request was answered 5xx";
    if (outcome.answered > signalled && outcome.status == 200) {
      ++answered_after_signal;
    }
    if (!outcome.session_id.empty()) acknowledged.push_back(outcome.session_id);
  }
  EXPECT_GT(acknowledged.size(), 10u);
  // Logins in flight at the signal were finished and answered, not cut.
  EXPECT_GT(answered_after_signal, 0);
  std::string log = server->Stderr();
  EXPECT_NE(log.find("\"event\":\"checkpoint\",\"result\":\"ok\""),
            std::string::npos)
      << log;

  // Nothing acknowledged was lost: every session answers after a restart.
  auto restarted = StartServer(config, &port);
  ASSERT_GT(port, 0);
  for (const std::string& id : acknowledged) {
    auto res = GetSession(port, id);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
}

TEST(E2EShutdown,
     AStuckRequestOrAnIdleConnectionCannotHoldTheStopPastFiveSeconds) {
  TempDir dir;
  std::unique_ptr<Process> mock;
  // WeChat answers after 20 s and the timeout is 15 s: a login is stuck.
  std::string api_base = StartMock(&mock, 20000);
  std::string config = dir.File("config.json");
  WriteFile(dir.File("secret"), "s\n");
  WriteFile(config, "{\"listen\": \"127.0.0.1:0\", \"database\": \"" +
                        dir.File("sessions.db") +
                        "\", \"apps\": [{\"appid\": "
                        "\"wxa\", \"secret_file\": \"" +
                        dir.File("secret") +
                        "\"}], \"wechat\": {\"api_base\": \"" + api_base +
                        "\", \"timeout\": \"15s\"}}");
  int port = 0;
  auto server = StartServer(config, &port);
  ASSERT_GT(port, 0);
  // An idle kept-alive connection...
  httplib::Client idle("127.0.0.1", port);
  idle.set_keep_alive(true);
  ASSERT_EQ(idle.Get("/healthz")->status, 200);
  // ...and a login stuck at WeChat.
  auto stuck = std::async(std::launch::async, [port] {
    auto res = PostLogin(port, "stuck.1");
    return res ? res->status : -1;
  });
  // Wait until the login is in flight at WeChat.
  Scrape(port, [](const PromText& text) {
    return text.Value("wxsessiond_upstream_in_flight") == 1;
  });
  const auto signalled = steady_clock::now();
  server->Signal(SIGTERM);
  std::optional<int> code = server->Wait(5000);
  const double ms =
      std::chrono::duration<double, std::milli>(steady_clock::now() - signalled)
          .count();
  ASSERT_TRUE(code.has_value()) << "still running 5 s after SIGTERM";
  EXPECT_EQ(*code, 0);
  std::cout << "[ measured ] SIGTERM to exit with a stuck login: " << ms
            << " ms\n";
  std::string log = server->Stderr();
  EXPECT_NE(log.find("\"event\":\"drain_timeout\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"checkpoint\",\"result\":\"ok\""),
            std::string::npos)
      << log;
  // The stuck login got no answer, never a 5xx.
  EXPECT_EQ(stuck.get(), -1);
}

TEST(E2EShutdown, ASigtermRightAfterStartUpIsNotLost) {
  ServerFixture fixture;  // config and mock only; the server is started here
  Process server({BinaryPath(), "serve", "--config", fixture.config_path()});
  ASSERT_TRUE(server.WaitForLine("listening on", 10000)) << server.Stderr();
  server.Signal(SIGTERM);  // likely before the accept loop has started
  std::optional<int> code = server.Wait(2000);
  ASSERT_TRUE(code.has_value()) << server.Stderr();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(server.Stderr().find("drain_timeout"), std::string::npos)
      << server.Stderr();
}

TEST(E2EShutdown, AnIdleKeptAliveConnectionDelaysTheStopByTheIdleTimeoutOnly) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  httplib::Client idle("127.0.0.1", fixture.port());
  idle.set_keep_alive(true);
  ASSERT_EQ(idle.Get("/healthz")->status, 200);
  // Counted means its thread is done with the request and waiting for the
  // next one on the kept-alive connection.
  Scrape(fixture.port(), [](const PromText& text) {
    return text.Value("wxsessiond_http_requests_total",
                      {{"route", "/healthz"}, {"status", "200"}}) == 1;
  });
  const auto signalled = steady_clock::now();
  fixture.StopServer(SIGTERM);
  std::optional<int> code = fixture.WaitServer(5000);
  const double ms =
      std::chrono::duration<double, std::milli>(steady_clock::now() - signalled)
          .count();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  std::cout << "[ measured ] SIGTERM to exit with an idle kept-alive "
               "connection: "
            << ms << " ms\n";
  // The 2 s keep-alive timeout, well before the 4 s drain deadline.
  EXPECT_LT(ms, 3500);
  EXPECT_EQ(fixture.server()->Stderr().find("drain_timeout"),
            std::string::npos);
}

// --- systemd's journal -------------------------------------------------------

// Every stderr line of `stderr_text` that holds `event`.
std::vector<std::string> LinesWith(const std::string& stderr_text,
                                   const std::string& event) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < stderr_text.size()) {
    size_t end = stderr_text.find('\n', start);
    if (end == std::string::npos) end = stderr_text.size();
    std::string line = stderr_text.substr(start, end - start);
    if (line.find(event) != std::string::npos) lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// Starts the server with stderr on a file, JOURNAL_STREAM set by `export`
// (shell text), fails one login, and returns the server's stderr.
std::string StderrOfAFailedLogin(const std::string& journal_stream_export) {
  ServerFixture fixture;  // config and mock only; the server is started here
  Process server({"/bin/sh", "-c",
                  journal_stream_export + "; exec \"$0\" serve --config \"$1\"",
                  BinaryPath(), fixture.config_path()});
  auto line = server.WaitForLine("listening on", 10000);
  EXPECT_TRUE(line) << server.Stderr();
  if (!line) return "";
  auto failed = PostLogin(PortFromListeningLine(*line), "invalid");
  EXPECT_TRUE(failed);
  if (failed) {
    EXPECT_EQ(failed->status, 400);
  }
  // The line is written before the answer is sent, but wait for it rather
  // than rely on that.
  WaitFor([&] { return !LinesWith(server.Stderr(), "login_failed").empty(); });
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(5000), 0);
  return server.Stderr();
}

TEST(E2EJournal, LinesCarryTheirPriorityWhenStderrIsTheJournal) {
  // What systemd does: JOURNAL_STREAM names the device and inode of the
  // stream stderr is (here the file Process sends stderr to).
  const std::string err = StderrOfAFailedLogin(
      "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)");
  std::vector<std::string> failed = LinesWith(err, "\"login_failed\"");
  ASSERT_FALSE(failed.empty()) << err;
  // warning: what `journalctl -p warning` selects.
  EXPECT_EQ(failed[0].rfind("<4>{", 0), 0u) << failed[0];
  std::vector<std::string> listening = LinesWith(err, "\"listening\"");
  ASSERT_FALSE(listening.empty()) << err;
  EXPECT_EQ(listening[0].rfind("<6>{", 0), 0u) << listening[0];
}

TEST(E2EJournal, LinesStayPlainWhenStderrIsAnotherFile) {
  // A JOURNAL_STREAM inherited from a parent whose stderr was the journal:
  // this stderr is another file, so no prefixes.
  const std::string err = StderrOfAFailedLogin("export JOURNAL_STREAM=1:1");
  std::vector<std::string> failed = LinesWith(err, "\"login_failed\"");
  ASSERT_FALSE(failed.empty()) << err;
  EXPECT_EQ(failed[0].rfind("{", 0), 0u) << failed[0];
  EXPECT_EQ(err.find("<6>"), std::string::npos) << err;
}

// --- systemd notification ---------------------------------------------------

// A datagram socket bound to `name`: a path, or "@name" in the abstract
// namespace, as $NOTIFY_SOCKET names them. Closed on destruction.
class NotifyListener {
 public:
  explicit NotifyListener(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (fd_ < 0 || name.size() >= sizeof(address.sun_path)) return;
    std::memcpy(address.sun_path, name.data(), name.size());
    socklen_t length = sizeof(address);
    if (name[0] == '@') {
      address.sun_path[0] = '\0';
      length =
          static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    }
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0;
  }
  ~NotifyListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool bound() const { return bound_; }
  // The next datagram, or "" after `timeout_ms`.
  std::string Receive(int timeout_ms) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return "";
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
};

// READY=1 arrives once the port answers (the port line is printed before
// it), then STOPPING=1 on SIGTERM; the same from every build, since the
// protocol is spoken without libsystemd.
void CheckReadyAndStopping(const std::string& notify_socket,
                           NotifyListener& listener) {
  ServerFixture fixture;  // config and mock only; the server is started here
  Process server({BinaryPath(), "serve", "--config", fixture.config_path()},
                 {{"NOTIFY_SOCKET", notify_socket}});
  std::string ready = listener.Receive(10000);
  EXPECT_NE(ready.find("READY=1"), std::string::npos)
      << ready << server.Stderr();
  EXPECT_NE(ready.find("STATUS=listening on 127.0.0.1:"), std::string::npos)
      << ready;
  auto line = server.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << server.Stderr();
  auto health = ClientFor(PortFromListeningLine(*line)).Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  server.Signal(SIGTERM);
  std::string stopping = listener.Receive(10000);
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
  EXPECT_EQ(server.Wait(5000), 0);
}

TEST(E2ESystemd, NotifiesReadyOnceListeningAndStoppingOnSigterm) {
  TempDir dir;
  const std::string path = dir.File("notify.sock");
  NotifyListener listener(path);
  ASSERT_TRUE(listener.bound());
  CheckReadyAndStopping(path, listener);
}

TEST(E2ESystemd, NotifiesAnAbstractSocket) {
  const std::string name =
      "@wxsessiond-e2e-notify-" + std::to_string(::getpid());
  NotifyListener listener(name);
  ASSERT_TRUE(listener.bound());
  CheckReadyAndStopping(name, listener);
}

TEST(E2ESystemd, PingsTheWatchdogWhenWatchdogSecIsSet) {
  TempDir dir;
  const std::string path = dir.File("notify.sock");
  NotifyListener listener(path);
  ASSERT_TRUE(listener.bound());
  ServerFixture fixture;
  // 400 ms: pings every 200 ms, so a few arrive quickly.
  Process server({BinaryPath(), "serve", "--config", fixture.config_path()},
                 {{"NOTIFY_SOCKET", path}, {"WATCHDOG_USEC", "400000"}});
  EXPECT_NE(listener.Receive(10000).find("READY=1"), std::string::npos)
      << server.Stderr();
  for (int ping = 0; ping < 3; ++ping) {
    EXPECT_EQ(listener.Receive(5000), "WATCHDOG=1") << "ping " << ping;
  }
  server.Signal(SIGTERM);
  // Pings may still be queued before STOPPING=1.
  std::string datagram;
  for (int i = 0; i < 10 && datagram.find("STOPPING=1") == std::string::npos;
       ++i) {
    datagram = listener.Receive(5000);
  }
  EXPECT_NE(datagram.find("STOPPING=1"), std::string::npos) << datagram;
  EXPECT_EQ(server.Wait(5000), 0);
}

}  // namespace
}  // namespace wxsession
