// End to end, request framing against the real binary over raw sockets
// (issue 12): a body is always consumed, whatever the method and the route's
// answer, so a request hidden in it is never answered; Range is ignored;
// control characters and a missing Host are refused; a port in use is not
// shared; hostile bodies on every POST route get 400. Each case names the
// report it answers (docs/SECURITY.md lists them).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::Process;
using testing_support::RawHttp;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kAdminToken[] = "admin-framing-0123456789abcdef";

const std::vector<std::string> kRoutes = {"/healthz",
                                          "/metrics",
                                          "/v1/login",
                                          "/v1/session",
                                          "/v1/logout",
                                          "/v1/auth",
                                          "/v1/decrypt",
                                          "/v1/verify",
                                          "/v1/phone",
                                          "/v1/session/check",
                                          "/v1/admin/access-token",
                                          "/no/such/route"};
const std::vector<std::string> kMethods = {"GET", "HEAD",   "OPTIONS", "POST",
                                           "PUT", "DELETE", "PATCH"};
const std::vector<std::string> kPostRoutes = {
    "/v1/login", "/v1/decrypt",       "/v1/verify",
    "/v1/phone", "/v1/session/check", "/v1/logout"};

// A whole request that must never be answered: its X-Request-Id would be
// echoed in the answer.
const std::string kSmuggled =
    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled\r\n\r\n";
// The request pipelined after the one carrying the body: it must be answered
// (unless the first answer closed the connection).
const std::string kPipelined =
    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipelined\r\n"
    "Connection: close\r\n\r\n";

std::string Chunked(const std::string& body) {
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", body.size());
  return std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

class E2EFraming : public ::testing::Test {
 protected:
  E2EFraming()
      : fixture_(R"("admin": {"token_file": ")" + AdminTokenFile() +
                 R"("}, "rate_limit": {"wechat_per_session_per_minute": 3})") {}

  std::string AdminTokenFile() {
    WriteFile(admin_dir_.File("admin_token"), kAdminToken);
    return admin_dir_.File("admin_token");
  }

  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", fixture_.port());
    client.set_read_timeout(10, 0);
    return client;
  }

  std::string Login(const std::string& code) {
    auto res = Client().Post("/v1/login", json{{"code", code}}.dump(),
                             "application/json");
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no reply");
    return res ? json::parse(res->body, nullptr, false).value("session_id", "")
               : "";
  }

  int LookupStatus(const std::string& id) {
    auto res = Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
    return res ? res->status : -1;
  }

  json MockStats() {
    httplib::Client mock("127.0.0.1", fixture_.mock_port());
    auto res = mock.Get("/mock/stats");
    EXPECT_TRUE(res && res->status == 200);
    return res ? json::parse(res->body, nullptr, false) : json();
  }

  // Sends `request` and returns everything the server answered until it
  // closed (each exchange below ends with a Connection: close request, or
  // is refused with a close).
  std::string Exchange(const std::string& request) {
    return RawHttp(fixture_.port(), request, 5000);
  }

  // The verdict for a request carrying a smuggled request in its body, with
  // kPipelined behind it: the smuggled one is never answered, and the
  // pipelined one is, unless the first answer closed the connection.
  void ExpectFramed(const std::string& what, const std::string& request) {
    const std::string got = Exchange(request + kPipelined);
    EXPECT_EQ(got.find("X-Request-Id: smuggled"), std::string::npos)
        << what << ": the request in the body was answered:\n"
        << got.substr(0, 600);
    const size_t second_answer = got.find("HTTP/1.1 ", 1);
    const std::string first_answer = got.substr(0, second_answer);
    const bool closed_first =
        first_answer.find("Connection: close") != std::string::npos;
    if (got.find("X-Request-Id: pipelined") == std::string::npos) {
      EXPECT_TRUE(closed_first)
          << what << ": the pipelined request was lost on an open "
          << "connection:\n"
          << got.substr(0, 600);
    } else {
      EXPECT_FALSE(closed_first) << what;
    }
    EXPECT_GE(Count(got, "HTTP/1.1 "), 1u) << what << ": no answer at all";
    EXPECT_LE(Count(got, "HTTP/1.1 "), 2u) << what << ":\n" << got;
  }

  TempDir admin_dir_;
  ServerFixture fixture_;
};

// Report 1: the body of a GET (HEAD, OPTIONS, a 404...) was parsed as the
// next request. Every method, every route, Content-Length and chunked.
TEST_F(E2EFraming, EveryBodyIsConsumedOnEveryRouteWithEveryMethod) {
  const std::string id = Login("framing.1");
  for (const std::string& route : kRoutes) {
    for (const std::string& method : kMethods) {
      const std::string what = method + " " + route;
      // Logout with the session would end it, as it should: it goes
      // without, so that the check below sees no body taken for one.
      const std::string head =
          method + " " + route + " HTTP/1.1\r\nHost: x\r\n" +
          (route == "/v1/logout" ? "" : "Authorization: Bearer " + id + "\r\n");
      ExpectFramed(what + " (Content-Length)",
                   head +
                       "Content-Length: " + std::to_string(kSmuggled.size()) +
                       "\r\n\r\n" + kSmuggled);
      ExpectFramed(
          what + " (chunked)",
          head + "Transfer-Encoding: chunked\r\n\r\n" + Chunked(kSmuggled));
    }
  }
  // The session was used by every request above and is still live: none
  // of the bodies was taken for a logout.
  EXPECT_EQ(LookupStatus(id), 200);
}

TEST_F(E2EFraming, PipelinedRequestsBehindBodiesAreAnsweredInOrder) {
  const std::string login_body = R"({"code":"pipeline.1"})";
  const std::string got = Exchange(
      "POST /v1/login HTTP/1.1\r\nHost: x\r\nX-Request-Id: first\r\n"
      "Content-Length: " +
      std::to_string(login_body.size()) + "\r\n\r\n" + login_body +
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n"
      "Content-Length: 5\r\n\r\nhello" +
      "POST /v1/login HTTP/1.1\r\nHost: x\r\nX-Request-Id: third\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      Chunked(login_body) + kPipelined);
  const size_t first = got.find("X-Request-Id: first");
  const size_t second = got.find("X-Request-Id: second");
  const size_t third = got.find("X-Request-Id: third");
  const size_t last = got.find("X-Request-Id: pipelined");
  ASSERT_NE(last, std::string::npos) << got;
  EXPECT_TRUE(first < second && second < third && third < last) << got;
  EXPECT_EQ(Count(got, "HTTP/1.1 200 OK"), 4u) << got;
}

// Report 3: thousands of ranges made a 67 MB answer from /metrics.
TEST_F(E2EFraming, RangeIsIgnoredOnEveryRoute) {
  std::string ranges = "bytes=0-";
  for (int i = 0; i < 2600; ++i) ranges += ",0-";
  const std::string id = Login("range.1");
  for (const std::string& route : kRoutes) {
    const std::string got = Exchange(
        "GET " + route + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + id +
        "\r\nRange: " + ranges + "\r\nConnection: close\r\n\r\n");
    ASSERT_FALSE(got.empty()) << route;
    EXPECT_EQ(got.find("HTTP/1.1 206"), std::string::npos) << route;
    EXPECT_EQ(got.find("multipart/byteranges"), std::string::npos) << route;
    EXPECT_EQ(got.find("Content-Range"), std::string::npos) << route;
    // At most the plain body once: every answer here is well under 64 KiB.
    EXPECT_LT(got.size(), 64u * 1024) << route;
  }
}

// Report 5: a NUL cut header values short; any control character but tab
// is now a 400 that closes the connection.
TEST_F(E2EFraming, ControlCharactersInHeadersAreRefusedAndClose) {
  const std::string id = Login("nul.1");
  const std::string nul("\0", 1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"X-WX-Session with NUL", "X-WX-Session: " + id + nul + "junk"},
      {"Authorization with NUL", "Authorization: Bearer " + id + nul + "junk"},
      {"admin token with NUL",
       std::string("Authorization: Bearer ") + kAdminToken + nul + "junk"},
      {"X-Request-Id with NUL", "X-Request-Id: abc" + nul + "def"},
      {"SOH in a value",
       "X-Request-Id: abc\x01"
       "def"},
      {"ESC in a value", "X-WX-Session: " + id + "\x1b"},
      {"DEL in a value", "X-WX-Session: " + id + "\x7f"},
      {"NUL in a name", "X-" + nul + "WX-Session: " + id},
  };
  for (const auto& [what, field] : cases) {
    for (const std::string& route :
         {std::string("/v1/session"), std::string("/v1/auth"),
          std::string("/v1/admin/access-token"), std::string("/healthz")}) {
      const std::string got =
          Exchange("GET " + route + " HTTP/1.1\r\nHost: x\r\n" + field +
                   "\r\n\r\n" + kPipelined);
      EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0u)
          << what << " on " << route << ":\n"
          << got.substr(0, 300);
      EXPECT_NE(got.find("\"error\":\"invalid_request\""), std::string::npos)
          << what;
      EXPECT_EQ(Count(got, "HTTP/1.1 "), 1u)
          << what << ": the connection stayed open after a 400";
      EXPECT_EQ(got.find("X-Request-Id: abc"), std::string::npos) << what;
    }
  }
  // A tab inside a value is fine, and the session still works.
  const std::string ok = Exchange(
      "GET /v1/session HTTP/1.1\r\nHost: x\r\nX-Note: a\tb\r\n"
      "X-WX-Session: " +
      id + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 ", 0), 0u) << ok;
}

// Report 6: HTTP/1.1 without Host answered 200.
TEST_F(E2EFraming, Http11WithoutHostIs400) {
  const std::string got =
      Exchange("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0u) << got;
  EXPECT_NE(got.find("Host"), std::string::npos) << "names the rule: " << got;
  const std::string two =
      Exchange("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  EXPECT_EQ(two.rfind("HTTP/1.1 400 ", 0), 0u) << two;
  // HTTP/1.0 has no Host requirement.
  const std::string old = Exchange("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_NE(old.find(" 200 OK"), std::string::npos) << old;
}

// Report 4: multipart/form-data on a POST route answered 500.
TEST_F(E2EFraming, MultipartBodiesAre400OnEveryPostRoute) {
  const std::string id = Login("multipart.1");
  const std::string boundary = "XyZ";
  const std::string multipart =
      "--XyZ\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n"
      "alice.1\r\n--XyZ--\r\n";
  for (const std::string& route : kPostRoutes) {
    for (const std::string& content_type :
         {"multipart/form-data; boundary=" + boundary,
          std::string("multipart/form-data")}) {
      httplib::Client client = Client();
      auto res = client.Post(route, {{"Authorization", "Bearer " + id}},
                             multipart, content_type.c_str());
      ASSERT_TRUE(res) << route;
      if (route == "/v1/logout" || route == "/v1/session/check") {
        // These take no body: they ignore one, whatever its type.
        EXPECT_NE(res->status, 500) << route;
        continue;
      }
      testing_support::ExpectError(res, 400, "invalid_request");
    }
  }
}

// Report 8: {"code":"a","code":"b"} silently took the last.
TEST_F(E2EFraming, DuplicateJsonKeysAre400OnEveryRoute) {
  const std::string id = Login("dupes.1");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/v1/login", R"({"code":"dupes.2","code":"dupes.3"})"},
      {"/v1/login", R"({"code":"dupes.4","appid":"a","appid":"b"})"},
      {"/v1/decrypt", R"({"encryptedData":"a","iv":"b","iv":"c"})"},
      {"/v1/verify", R"({"rawData":"{}","signature":"a","signature":"b"})"},
      {"/v1/phone", R"({"code":"p1","code":"p2"})"},
      {"/v1/login", R"({"code":"dupes.5","x":{"k":1,"k":2}})"},
  };
  const json before = MockStats();
  for (const auto& [route, body] : cases) {
    auto res = Client().Post(route, {{"Authorization", "Bearer " + id}}, body,
                             "application/json");
    testing_support::ExpectError(res, 400, "invalid_request");
  }
  // Nothing reached WeChat.
  const json after = MockStats();
  EXPECT_EQ(after["jscode2session"], before["jscode2session"]);
  EXPECT_EQ(after["getuserphonenumber"], before["getuserphonenumber"]);
  // The same key in two different objects is not a duplicate.
  auto ok = Client().Post("/v1/login", R"({"code":"dupes.6","x":{"code":1}})",
                          "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

// Report 7: phone codes with NUL, control or non-ASCII characters reached
// WeChat.
TEST_F(E2EFraming, PhoneCodesFollowTheLoginCodeRule) {
  const std::string id = Login("phonecode.1");
  const json before = MockStats();
  for (const std::string& code :
       {std::string("ab\u0000cd", 5), std::string("ab\ncd"),
        std::string("ab cd"), std::string("\xe4\xbd\xa0\xe5\xa5\xbd"),
        std::string(129, 'a'), std::string("")}) {
    auto res = Client().Post("/v1/phone", {{"Authorization", "Bearer " + id}},
                             json{{"code", code}}.dump(), "application/json");
    testing_support::ExpectError(res, 400, "invalid_request");
  }
  EXPECT_EQ(MockStats()["getuserphonenumber"], before["getuserphonenumber"]);
  auto good = Client().Post("/v1/phone", {{"Authorization", "Bearer " + id}},
                            R"({"code":"phone-ok.1"})", "application/json");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 200) << good->body;
}

// Report 9: 300 /v1/phone and /v1/session/check calls from one session all
// reached WeChat. Here the limit is 3 a minute (the fixture's config).
TEST_F(E2EFraming, WeChatCallsPerSessionAreLimited) {
  const std::string id = Login("quota.1");
  const std::string other = Login("quota2.1");
  const json before = MockStats();
  auto phone = [&](const std::string& session, int n) {
    return Client().Post(
        "/v1/phone", {{"Authorization", "Bearer " + session}},
        json{{"code", "quota-phone." + std::to_string(n)}}.dump(),
        "application/json");
  };
  auto check = [&](const std::string& session) {
    return Client().Post("/v1/session/check",
                         {{"Authorization", "Bearer " + session}}, "", "");
  };
  auto first = phone(id, 1);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200) << first->body;
  auto second = check(id);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200) << second->body;
  auto third = phone(id, 2);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 200) << third->body;
  // The session's three calls are spent, on either route.
  for (int i = 0; i < 20; ++i) {
    auto refused = i % 2 == 0 ? phone(id, 100 + i) : check(id);
    testing_support::ExpectError(refused, 429, "rate_limited");
    ASSERT_TRUE(refused);
    EXPECT_GE(std::stoi(refused->get_header_value("Retry-After", 0).empty()
                            ? "0"
                            : refused->get_header_value("Retry-After")),
              1);
  }
  const json after = MockStats();
  EXPECT_EQ(after["getuserphonenumber"].get<int>() -
                before["getuserphonenumber"].get<int>(),
            2);
  EXPECT_EQ(
      after["checksession"].get<int>() - before["checksession"].get<int>(), 1);
  // Another session has its own calls.
  auto theirs = phone(other, 200);
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->status, 200) << theirs->body;
}

// Report 2: a second server on the same address started and split the
// connections with the first.
TEST_F(E2EFraming, ASecondServerOnAnAddressInUseExits1) {
  const std::string listen = "127.0.0.1:" + std::to_string(fixture_.port());
  TempDir dir;
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{testing_support::BinaryPath(), "serve",
                                 "--config", fixture_.config_path(), "--listen",
                                 listen, "--database", dir.File("second.db")},
        std::vector<std::string>{testing_support::BinaryPath(), "mock-wechat",
                                 "--listen", listen},
        std::vector<std::string>{
            testing_support::BinaryPath(), "mock-wechat", "--listen",
            "127.0.0.1:" + std::to_string(fixture_.mock_port())}}) {
    Process second(argv);
    EXPECT_EQ(second.Wait(10000), std::optional<int>(1)) << argv[1];
    EXPECT_NE(second.Stderr().find("address already in use"), std::string::npos)
        << argv[1] << ": " << second.Stderr();
    EXPECT_FALSE(second.WaitForLine("listening", 0)) << argv[1];
  }
  // The first server still answers everything.
  const std::string id = Login("shared.1");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(LookupStatus(id), 200);
}

// Sends `request` over TLS (no certificate check: the test made it) and
// reads until the server closes or 5 s pass without data.
std::string TlsExchange(int port, const std::string& request) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1 &&
        SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
      while (true) {
        pollfd pfd{fd, POLLIN, 0};
        if (SSL_pending(ssl) == 0 && ::poll(&pfd, 1, 5000) <= 0) break;
        char chunk[4096];
        int n = SSL_read(ssl, chunk, sizeof(chunk));
        if (n <= 0) break;
        response.append(chunk, static_cast<size_t>(n));
      }
    }
    SSL_free(ssl);
  }
  ::close(fd);
  SSL_CTX_free(ctx);
  return response;
}

// The same connection layer serves TLS: what holds over plain HTTP above
// holds over HTTPS.
TEST(E2EFramingTls, TheSameFramingRulesHoldOverTls) {
  TempDir dir;
  auto made = testing_support::RunCommand(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir.File("key.pem"),
       "-out", dir.File("cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1"});
  ASSERT_EQ(made.exit_code, 0)
      << "the openssl CLI (Debian package openssl) is needed: " << made.err;
  ServerFixture fixture(R"("tls": {"cert": ")" + dir.File("cert.pem") +
                        R"(", "key": ")" + dir.File("key.pem") + "\"}");
  ASSERT_TRUE(fixture.Start());

  const std::string smuggling =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " +
      std::to_string(kSmuggled.size()) + "\r\n\r\n" + kSmuggled + kPipelined;
  std::string got = TlsExchange(fixture.port(), smuggling);
  EXPECT_EQ(got.find("X-Request-Id: smuggled"), std::string::npos) << got;
  EXPECT_NE(got.find("X-Request-Id: pipelined"), std::string::npos) << got;

  std::string ranges = "bytes=0-";
  for (int i = 0; i < 2600; ++i) ranges += ",0-";
  got = TlsExchange(fixture.port(),
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nRange: " + ranges +
                        "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200 ", 0), 0u) << got.substr(0, 300);
  EXPECT_LT(got.size(), 1024u);

  got = TlsExchange(fixture.port(), std::string("GET /healthz HTTP/1.1\r\n"
                                                "Host: x\r\nX-A: a\0b\r\n\r\n",
                                                44) +
                                        kPipelined);
  EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0u) << got;
  EXPECT_EQ(Count(got, "HTTP/1.1 "), 1u) << got;

  got = TlsExchange(fixture.port(), "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0u) << got;
}

}  // namespace
}  // namespace wxsession
