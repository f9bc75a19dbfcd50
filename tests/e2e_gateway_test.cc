// End to end, the auth gateway: a real proxy runs the shipped config
// (scripts/deploy/nginx.conf, scripts/deploy/Caddyfile) in front of the real
// wxsessiond and a tiny test backend that echoes the identity headers it
// receives. Checks: a session gets through and the backend sees its openid;
// no session -> 401 and the backend is never called; a client-forged
// X-WX-OpenID / X-WX-UnionID never reaches the backend; the session id
// never reaches the backend.
//
// And the mini-program SDK itself (client/wxsession.js in Node, through
// tests/client/through_proxy.js) reaches every route it calls through each
// proxy, and behind each proxy every client address has its own login
// bucket, whatever X-Forwarded-For it sends.
//
// nginx (Debian's nginx-light) and Caddy (Debian's caddy), both installed
// by scripts/test, are required: the tests fail, loudly, without them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::FindProgram;
using testing_support::Process;
using testing_support::ReadFile;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

// Replaces the one occurrence of `from` (failing the test if there is not
// exactly `expected` of them: the shipped file changed shape).
std::string ReplaceExactly(std::string text, const std::string& from,
                           const std::string& to, int expected = 1) {
  int found = 0;
  size_t at = 0;
  while ((at = text.find(from, at)) != std::string::npos) {
    text.replace(at, from.size(), to);
    at += to.size();
    ++found;
  }
  EXPECT_EQ(found, expected) << "\"" << from << "\" in the shipped config";
  return text;
}

// The team's backend: echoes, as JSON, the identity headers it received.
class EchoBackend {
 public:
  EchoBackend() {
    auto echo = [this](const httplib::Request& req, httplib::Response& res) {
      hits_.fetch_add(1);
      if (req.get_header_value("X-WX-OpenID").empty()) {
        anonymous_hits_.fetch_add(1);
      }
      json body = {{"path", req.path}};
      for (const char* name :
           {"X-WX-AppID", "X-WX-OpenID", "X-WX-UnionID", "Authorization",
            "X-WX-Session", "X-WX-Platform"}) {
        size_t count = req.get_header_value_count(name);
        body[name] =
            count == 0 ? json(nullptr) : json(req.get_header_value(name));
        body[std::string(name) + "#"] = count;
      }
      res.set_content(body.dump(), "application/json");
    };
    server_.Get(".*", echo);
    server_.Post(".*", echo);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~EchoBackend() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  int hits() const { return hits_.load(); }
  // Requests that reached the backend without an X-WX-OpenID: through the
  // gateway, there must never be one.
  int anonymous_hits() const { return anonymous_hits_.load(); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::atomic<int> hits_{0};
  std::atomic<int> anonymous_hits_{0};
  std::thread thread_;
};

bool WaitForPort(int port, Process& process, int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (process.Wait(0)) return false;  // exited: the config was refused
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&address),
                        sizeof(address)) == 0;
    ::close(fd);
    if (up) return true;
    // Polling the proxy's start-up: it has no readiness signal to wait on.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Starts a proxy on a free loopback port: `launch(port)` writes its config
// and starts it; `said(process)` is everything it logged. Another process
// may take the port between PickFreePort and the proxy's bind, so a start
// that failed with "address already in use" is retried on a new port (three
// tries). Any other failure fails the test with what the proxy said. On
// success `*port` is the proxy's port.
std::unique_ptr<Process> StartOnFreePort(
    const std::string& name,
    const std::function<std::unique_ptr<Process>(int port)>& launch,
    const std::function<std::string(const Process&)>& said, int* port) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    *port = testing_support::PickFreePort();
    std::unique_ptr<Process> started = launch(*port);
    if (WaitForPort(*port, *started, 10000)) return started;
    std::string log = said(*started);
    std::string lower = log;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (lower.find("address already in use") == std::string::npos) {
      ADD_FAILURE() << name << " did not start:\n" << log;
      return nullptr;
    }
  }
  ADD_FAILURE() << name << " could not bind a free port";
  return nullptr;
}

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  return client;
}

json Echo(const httplib::Result& res) {
  EXPECT_TRUE(res);
  if (!res) return json();
  EXPECT_EQ(res->status, 200) << res->body;
  json body = json::parse(res->body, nullptr, false);
  EXPECT_TRUE(body.is_object()) << res->body;
  return body;
}

// Everything the gateway must guarantee, through the proxy on `proxy_port`.
void CheckGateway(int proxy_port, const EchoBackend& backend) {
  auto proxy = [&] { return ClientFor(proxy_port); };

  // wxsessiond's own routes go through the proxy.
  auto login = proxy().Post("/v1/login", R"({"code":"union_zoe.1"})",
                            "application/json");
  ASSERT_TRUE(login);
  ASSERT_EQ(login->status, 200) << login->body;
  std::string zoe = json::parse(login->body)["session_id"];
  login = proxy().Post("/v1/login", R"({"code":"yuri.1"})", "application/json");
  ASSERT_TRUE(login);
  ASSERT_EQ(login->status, 200) << login->body;
  std::string yuri = json::parse(login->body)["session_id"];
  auto session =
      proxy().Get("/v1/session", {{"Authorization", "Bearer " + zoe}});
  ASSERT_TRUE(session);
  ASSERT_EQ(session->status, 200) << session->body;
  json zoe_info = json::parse(session->body);
  json yuri_info =
      json::parse(proxy().Get("/v1/session", {{"X-WX-Session", yuri}})->body);
  ASSERT_TRUE(zoe_info["unionid"].is_string());
  ASSERT_TRUE(yuri_info["unionid"].is_null());

  // A live session gets through; the backend sees the session's identity
  // and not the session id.
  json seen =
      Echo(proxy().Get("/api/profile", {{"Authorization", "Bearer " + zoe}}));
  EXPECT_EQ(seen["path"], "/api/profile");
  EXPECT_EQ(seen["X-WX-OpenID"], zoe_info["openid"]);
  EXPECT_EQ(seen["X-WX-AppID"], ServerFixture::kAppId);
  EXPECT_EQ(seen["X-WX-UnionID"], zoe_info["unionid"]);
  EXPECT_EQ(seen["X-WX-Platform"], "wechat");
  EXPECT_TRUE(seen["Authorization"].is_null()) << seen.dump();
  seen = Echo(proxy().Get("/api/profile", {{"X-WX-Session", yuri}}));
  EXPECT_EQ(seen["X-WX-OpenID"], yuri_info["openid"]);
  EXPECT_TRUE(seen["X-WX-Session"].is_null()) << seen.dump();
  EXPECT_EQ(seen.dump().find(yuri), std::string::npos);
  // POST bodies reach the backend too.
  auto posted =
      proxy().Post("/api/orders", {{"Authorization", "Bearer " + zoe}},
                   R"({"item": 1})", "application/json");
  EXPECT_EQ(Echo(posted)["X-WX-OpenID"], zoe_info["openid"]);

  // A client-forged identity never reaches the backend: overwritten for a
  // live session...
  seen =
      Echo(proxy().Get("/api/profile", {{"Authorization", "Bearer " + zoe},
                                        {"X-WX-OpenID", "forged-openid"},
                                        {"X-WX-AppID", "forged-app"},
                                        {"X-WX-Platform", "forged-platform"}}));
  EXPECT_EQ(seen["X-WX-OpenID"], zoe_info["openid"]);
  EXPECT_EQ(seen["X-WX-Platform"], "wechat");
  EXPECT_EQ(seen["X-WX-Platform#"], 1);
  EXPECT_EQ(seen["X-WX-OpenID#"], 1);
  EXPECT_EQ(seen["X-WX-AppID"], ServerFixture::kAppId);
  // ...removed where the user has no such value...
  seen = Echo(proxy().Get("/api/profile", {{"X-WX-Session", yuri},
                                           {"X-WX-UnionID", "forged-union"}}));
  EXPECT_TRUE(seen["X-WX-UnionID"].is_null()) << seen.dump();
  EXPECT_EQ(seen["X-WX-UnionID#"], 0);

  // ...and without a session the backend is never called at all.
  const int hits_before = backend.hits();
  for (const httplib::Headers& headers :
       {httplib::Headers{{"X-WX-OpenID", "forged-openid"}},
        httplib::Headers{{"Authorization", "Bearer not-a-session"},
                         {"X-WX-OpenID", "forged-openid"}},
        httplib::Headers{{"X-WX-Session", std::string(43, 'A')}}}) {
    auto denied = proxy().Get("/api/profile", headers);
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->status, 401);
    json body = json::parse(denied->body, nullptr, false);
    EXPECT_EQ(body.value("error", ""), "invalid_session") << denied->body;
  }
  EXPECT_EQ(backend.hits(), hits_before);

  // After logout the session no longer gets through.
  auto logout =
      proxy().Post("/v1/logout", {{"Authorization", "Bearer " + zoe}}, "", "");
  ASSERT_TRUE(logout);
  EXPECT_EQ(logout->status, 204);
  auto after =
      proxy().Get("/api/profile", {{"Authorization", "Bearer " + zoe}});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);
  EXPECT_EQ(backend.hits(), hits_before);
}

std::string ShippedFile(const std::string& name) {
  const char* root = std::getenv("WXSESSIOND_SOURCE_ROOT");
  EXPECT_NE(root, nullptr) << "WXSESSIOND_SOURCE_ROOT is set by meson";
  return ReadFile(std::string(root ? root : ".") + "/scripts/deploy/" + name);
}

// A proxy started with a shipped config, only its addresses and ports
// substituted.
struct RunningProxy {
  std::unique_ptr<TempDir> dir;  // the config and everything it writes
  std::unique_ptr<Process> process;
  int port = 0;

  ~RunningProxy() {
    if (process) {
      process->Signal(SIGTERM);
      process->Wait(5000);
    }
  }
};

// nginx (Debian's nginx-light) with the shipped nginx.conf in front of
// wxsessiond on `wxsessiond_port` and the backend on `backend_port`.
// Fails the test (process null) when nginx is missing or does not start.
std::unique_ptr<RunningProxy> StartShippedNginx(int wxsessiond_port,
                                                int backend_port) {
  auto proxy = std::make_unique<RunningProxy>();
  const std::string nginx = FindProgram("nginx");
  if (nginx.empty()) {
    ADD_FAILURE() << "nginx not found: the gateway tests need a real nginx. "
                     "Install Debian's nginx-light (./scripts/test installs "
                     "it).";
    return proxy;
  }
  const std::string shipped = ShippedFile("nginx.conf");
  if (shipped.empty()) return proxy;
  proxy->dir = std::make_unique<TempDir>();
  const TempDir& dir = *proxy->dir;
  proxy->process = StartOnFreePort(
      "nginx",
      [&](int port) {
        std::string site = shipped;
        site = ReplaceExactly(
            site, "server 127.0.0.1:8080;",
            "server 127.0.0.1:" + std::to_string(wxsessiond_port) + ";");
        site = ReplaceExactly(
            site, "server 127.0.0.1:3000;",
            "server 127.0.0.1:" + std::to_string(backend_port) + ";");
        site = ReplaceExactly(site, "listen 80;",
                              "listen 127.0.0.1:" + std::to_string(port) + ";");
        // Everything nginx writes stays in the temp dir; one process, so a
        // test that dies leaves no worker behind.
        const std::string& d = dir.path();
        WriteFile(dir.File("nginx.conf"),
                  "master_process off;\n"
                  "pid " +
                      d +
                      "/nginx.pid;\n"
                      "error_log " +
                      d +
                      "/error.log info;\n"
                      "events { worker_connections 64; }\n"
                      "http {\n"
                      "  access_log " +
                      d +
                      "/access.log;\n"
                      "  client_body_temp_path " +
                      d +
                      "/client_body;\n"
                      "  proxy_temp_path " +
                      d +
                      "/proxy;\n"
                      "  fastcgi_temp_path " +
                      d +
                      "/fastcgi;\n"
                      "  uwsgi_temp_path " +
                      d +
                      "/uwsgi;\n"
                      "  scgi_temp_path " +
                      d + "/scgi;\n" + site + "\n}\n");
        return std::make_unique<Process>(std::vector<std::string>{
            nginx, "-p", d, "-c", dir.File("nginx.conf"), "-e",
            dir.File("error.log"), "-g", "daemon off;"});
      },
      [&](const Process& started) {
        return started.Stderr() + ReadFile(dir.File("error.log"));
      },
      &proxy->port);
  return proxy;
}

// Caddy (Debian's caddy) with the shipped Caddyfile, as StartShippedNginx.
// TLS off and the site address made http://127.0.0.1:PORT: the only change
// besides the upstream ports.
std::unique_ptr<RunningProxy> StartShippedCaddy(int wxsessiond_port,
                                                int backend_port) {
  auto proxy = std::make_unique<RunningProxy>();
  const std::string caddy = FindProgram("caddy");
  if (caddy.empty()) {
    ADD_FAILURE() << "caddy not found: the gateway tests need a real Caddy. "
                     "Install Debian's caddy (./scripts/test installs it).";
    return proxy;
  }
  const std::string shipped = ShippedFile("Caddyfile");
  if (shipped.empty()) return proxy;
  proxy->dir = std::make_unique<TempDir>();
  const TempDir& dir = *proxy->dir;
  proxy->process = StartOnFreePort(
      "caddy",
      [&](int port) {
        std::string site = shipped;
        site =
            ReplaceExactly(site, "127.0.0.1:8080",
                           "127.0.0.1:" + std::to_string(wxsessiond_port), 2);
        site = ReplaceExactly(site, "127.0.0.1:3000",
                              "127.0.0.1:" + std::to_string(backend_port));
        site =
            ReplaceExactly(site, "example.com {",
                           "http://127.0.0.1:" + std::to_string(port) + " {");
        WriteFile(dir.File("Caddyfile"),
                  "{\n\tadmin off\n\tauto_https off\n}\n" + site);
        return std::make_unique<Process>(
            std::vector<std::string>{caddy, "run", "--config",
                                     dir.File("Caddyfile"), "--adapter",
                                     "caddyfile"},
            std::map<std::string, std::string>{
                {"HOME", dir.path()},
                {"XDG_DATA_HOME", dir.path()},
                {"XDG_CONFIG_HOME", dir.path()}});
      },
      [](const Process& started) { return started.Stderr(); }, &proxy->port);
  return proxy;
}

using StartProxy = std::unique_ptr<RunningProxy> (*)(int, int);

// Runs tests/client/through_proxy.js `mode` (see there) against the proxy
// on `proxy_port`; the test fails with its output unless it exits 0.
void RunSdkThroughProxy(const std::string& mode, int proxy_port,
                        const ServerFixture& fixture) {
  std::string node = FindProgram("node");
  if (node.empty()) node = FindProgram("nodejs");
  ASSERT_FALSE(node.empty()) << "node not found (Debian's nodejs)";
  const char* root = std::getenv("WXSESSIOND_SOURCE_ROOT");
  ASSERT_NE(root, nullptr) << "WXSESSIOND_SOURCE_ROOT is set by meson";
  auto ran = testing_support::RunCommand(
      {node, std::string(root) + "/tests/client/through_proxy.js", mode},
      {{"PROXY_URL", "http://127.0.0.1:" + std::to_string(proxy_port)},
       {"MOCK_URL", "http://127.0.0.1:" + std::to_string(fixture.mock_port())},
       {"APPID", ServerFixture::kAppId}});
  EXPECT_EQ(ran.exit_code, 0) << ran.out << ran.err;
}

// The proxy's address is its only trusted one, as config.example.json has
// it: with all of 127.0.0.0/8 trusted, the test clients on 127.0.0.2 and
// 127.0.0.3 would be proxies too.
constexpr const char* kTrustOnlyTheProxy =
    R"("trusted_proxies": ["127.0.0.1/32"])";

void CheckSdkThroughProxy(StartProxy start) {
  ServerFixture fixture(kTrustOnlyTheProxy);
  ASSERT_TRUE(fixture.Start());
  EchoBackend backend;
  ASSERT_GT(backend.port(), 0);
  std::unique_ptr<RunningProxy> proxy = start(fixture.port(), backend.port());
  ASSERT_TRUE(proxy->process);
  RunSdkThroughProxy("sdk", proxy->port, fixture);
}

void CheckLoginBucketsThroughProxy(StartProxy start) {
  ServerFixture fixture(std::string(kTrustOnlyTheProxy) +
                        R"(, "rate_limit": {"login_per_minute": 6})");
  ASSERT_TRUE(fixture.Start());
  EchoBackend backend;
  std::unique_ptr<RunningProxy> proxy = start(fixture.port(), backend.port());
  ASSERT_TRUE(proxy->process);
  RunSdkThroughProxy("buckets", proxy->port, fixture);
}

void CheckGatewayThroughProxy(StartProxy start) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  EchoBackend backend;
  ASSERT_GT(backend.port(), 0);
  std::unique_ptr<RunningProxy> proxy = start(fixture.port(), backend.port());
  ASSERT_TRUE(proxy->process);
  CheckGateway(proxy->port, backend);
}

TEST(NginxGateway, ShippedConfigPassesSessionsAndStopsForgery) {
  CheckGatewayThroughProxy(&StartShippedNginx);
  // The internal subrequest location is not reachable from outside.
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  EchoBackend backend;
  std::unique_ptr<RunningProxy> proxy =
      StartShippedNginx(fixture.port(), backend.port());
  ASSERT_TRUE(proxy->process);
  auto internal = ClientFor(proxy->port).Get("/_wxsessiond_auth");
  ASSERT_TRUE(internal);
  EXPECT_EQ(internal->status, 404);
}

TEST(NginxGateway, TheSdkReachesEveryRouteItCalls) {
  CheckSdkThroughProxy(&StartShippedNginx);
}

TEST(NginxGateway, EachClientAddressHasItsOwnLoginBucket) {
  CheckLoginBucketsThroughProxy(&StartShippedNginx);
}

std::string Chunked(const std::string& body) {
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
}

// Issue 12, report 1: through nginx's kept-alive upstream connections, a
// request hidden in the body of a GET (HEAD, OPTIONS) to one of
// wxsessiond's routes desynchronised the connection: the next auth_request
// read the smuggled answer and let a client without a session through to
// the backend, and a smuggled POST /v1/logout ended the next user's
// session. wxsessiond now consumes every body, so neither can happen.
TEST(NginxGateway, BodiesCannotSmuggleRequestsPastAuthRequest) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  EchoBackend backend;
  ASSERT_GT(backend.port(), 0);
  std::unique_ptr<RunningProxy> proxy =
      StartShippedNginx(fixture.port(), backend.port());
  ASSERT_TRUE(proxy->process);
  const int port = proxy->port;

  // Requests that take the head of whatever the upstream connection
  // carries next: its request line becomes their X-Ignore value, and its
  // headers (Host, the victim's Authorization) become theirs.
  const std::string smuggled_get = "GET /healthz HTTP/1.1\r\nX-Ignore: ";
  const std::string smuggled_logout =
      "POST /v1/logout HTTP/1.1\r\nContent-Length: 0\r\nX-Ignore: ";
  // Sends `method` to a wxsessiond route with `body` in the given framing,
  // as `curl -X GET --data-binary ...` does, and reads the answer.
  auto attack = [&](const std::string& method, const std::string& route,
                    const std::string& body, bool chunked) {
    const std::string head =
        method + " " + route + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    return testing_support::RawHttp(
        port,
        chunked ? head + "Transfer-Encoding: chunked\r\n\r\n" + Chunked(body)
                : head + "Content-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body,
        5000);
  };

  // A client without a session, then a plain request to the backend.
  for (int round = 0; round < 10; ++round) {
    for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
      for (bool chunked : {false, true}) {
        for (const char* route : {"/v1/session", "/v1/login"}) {
          const std::string what = std::string(method) + " " + route +
                                   (chunked ? " chunked" : " Content-Length");
          attack(method, route, smuggled_get, chunked);
          auto after = ClientFor(port).Get("/api/private");
          ASSERT_TRUE(after) << what;
          EXPECT_EQ(after->status, 401) << what << ": " << after->body;
        }
      }
    }
  }
  EXPECT_EQ(backend.anonymous_hits(), 0)
      << "the backend saw requests without an X-WX-OpenID";

  // A smuggled logout, followed by another user's requests: the user keeps
  // the session.
  auto login = ClientFor(port).Post("/v1/login", R"({"code":"victim.1"})",
                                    "application/json");
  ASSERT_TRUE(login);
  ASSERT_EQ(login->status, 200) << login->body;
  const std::string victim = json::parse(login->body)["session_id"];
  for (int round = 0; round < 10; ++round) {
    for (bool chunked : {false, true}) {
      attack("GET", "/v1/session", smuggled_logout, chunked);
      auto theirs = ClientFor(port).Get(
          "/api/profile", {{"Authorization", "Bearer " + victim}});
      ASSERT_TRUE(theirs);
      EXPECT_EQ(theirs->status, 200) << theirs->body;
      auto session = ClientFor(port).Get(
          "/v1/session", {{"Authorization", "Bearer " + victim}});
      ASSERT_TRUE(session);
      ASSERT_EQ(session->status, 200)
          << "round " << round << ": the victim was logged out";
    }
  }
  EXPECT_EQ(backend.anonymous_hits(), 0);
}

TEST(CaddyGateway, ShippedCaddyfilePassesSessionsAndStopsForgery) {
  CheckGatewayThroughProxy(&StartShippedCaddy);
}

TEST(CaddyGateway, TheSdkReachesEveryRouteItCalls) {
  CheckSdkThroughProxy(&StartShippedCaddy);
}

TEST(CaddyGateway, EachClientAddressHasItsOwnLoginBucket) {
  CheckLoginBucketsThroughProxy(&StartShippedCaddy);
}

}  // namespace
}  // namespace wxsession
