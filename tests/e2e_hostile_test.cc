// End to end: hostile HTTP against the real binary. Every request below
// must get a 4xx or a closed connection (never a 2xx, a 5xx or a hang), and
// the server must keep serving afterwards (GET /healthz after each).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::ServerFixture;

struct Exchange {
  std::string response;
  bool closed_by_server = false;
  int64_t elapsed_ms = 0;
};

// True once `response` holds a whole response (headers and, with a
// Content-Length, the body): a server that keeps the connection open after
// answering need not be waited for.
bool Complete(const std::string& response) {
  size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string headers = response.substr(0, end);
  for (char& c : headers) c = static_cast<char>(std::tolower(c));
  size_t at = headers.find("\r\ncontent-length:");
  if (at == std::string::npos) return true;
  size_t length = std::strtoul(headers.c_str() + at + 17, nullptr, 10);
  return response.size() >= end + 4 + length;
}

// Sends `request` as-is; with `half_close` the client then shuts its write
// side (the "lying Content-Length, then hang up" client). Reads until a
// whole response is in, the server closes, or `timeout_ms` passes without
// data.
Exchange RawExchange(int port, const std::string& request, int timeout_ms,
                     bool half_close = false) {
  Exchange out;
  auto started = std::chrono::steady_clock::now();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = ::send(fd, request.data() + sent, request.size() - sent,
                         MSG_NOSIGNAL);
      if (n <= 0) break;  // the server may close before reading it all
      sent += static_cast<size_t>(n);
    }
    if (half_close) ::shutdown(fd, SHUT_WR);
    while (true) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) break;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        out.closed_by_server = true;  // EOF or reset: the server hung up
        break;
      }
      out.response.append(chunk, static_cast<size_t>(n));
      if (Complete(out.response)) break;
    }
  }
  ::close(fd);
  out.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
  return out;
}

class E2EHostile : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  // The verdict every hostile request must get: a 4xx status line, or the
  // connection closed with no answer at all. Then the server still serves.
  void ExpectRefused(const std::string& what, const std::string& request,
                     bool half_close = false, int timeout_ms = 3000) {
    Exchange got =
        RawExchange(fixture_.port(), request, timeout_ms, half_close);
    bool is_4xx = got.response.rfind("HTTP/1.1 4", 0) == 0;
    bool closed_silently = got.response.empty() && got.closed_by_server;
    EXPECT_TRUE(is_4xx || closed_silently)
        << what << ": got " << got.response.substr(0, 300)
        << (got.closed_by_server ? " (closed)" : " (still open)");
    if (is_4xx) {
      // An error body, when there is one, has the JSON error shape.
      size_t body = got.response.find("\r\n\r\n");
      std::string text =
          body == std::string::npos ? "" : got.response.substr(body + 4);
      if (!text.empty() && text.front() == '{') {
        json parsed =
            json::parse(text.substr(0, text.find('}') + 1), nullptr, false);
        EXPECT_TRUE(parsed.is_object() && parsed.contains("error"))
            << what << ": " << text;
      }
    }
    ExpectStillServing(what);
  }

  void ExpectStillServing(const std::string& after) {
    httplib::Client client("127.0.0.1", fixture_.port());
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(2, 0);
    auto health = client.Get("/healthz");
    ASSERT_TRUE(health) << "no answer to /healthz after " << after;
    EXPECT_EQ(health->status, 200) << "after " << after;
  }

  std::string Post(const std::string& path, const std::string& headers,
                   const std::string& body) {
    return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) +
           "\r\nContent-Type: application/json\r\n\r\n" + body;
  }

  std::string Get(const std::string& path, const std::string& headers) {
    return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n";
  }

  ServerFixture fixture_;
};

TEST_F(E2EHostile, HugeHeaders) {
  ExpectRefused("one 100 KB header line",
                Get("/healthz", "X-Big: " + std::string(100000, 'a') + "\r\n"));
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  ExpectRefused("5000 headers", Get("/healthz", many));
  ExpectRefused("a 100 KB request line", "GET /" + std::string(100000, 'a') +
                                             " HTTP/1.1\r\nHost: x\r\n\r\n");
  ExpectRefused("a 100 KB token",
                Get("/v1/session", "Authorization: Bearer " +
                                       std::string(100000, 'A') + "\r\n"));
}

TEST_F(E2EHostile, NegativeOrLyingContentLength) {
  std::string body = R"({"code":"liar.1"})";
  auto with_length = [&](const std::string& length, const std::string& sent) {
    return "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
           "application/json\r\nContent-Length: " +
           length + "\r\n\r\n" + sent;
  };
  ExpectRefused("Content-Length: -1", with_length("-1", body));
  ExpectRefused("Content-Length: +17", with_length("+17", body));
  ExpectRefused("Content-Length: 0x11", with_length("0x11", body));
  ExpectRefused("a 25-digit Content-Length",
                with_length("9999999999999999999999999", body));
  ExpectRefused("Content-Length larger than the limit",
                with_length("1000000", body), /*half_close=*/true);
  // Claims more than it sends, then hangs up.
  ExpectRefused("Content-Length 1000, 17 bytes sent", with_length("1000", body),
                /*half_close=*/true);
  // Claims less: the body is cut, the rest is garbage for the next request.
  ExpectRefused("Content-Length 5", with_length("5", body));
  // Two different lengths: request smuggling's classic. Either reading
  // alone would make a valid login; a proxy may take the other one.
  ASSERT_EQ(body.size(), 17u);
  ExpectRefused("two Content-Length headers",
                "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n"
                "Content-Length: 5\r\n\r\n" +
                    body);
  ExpectRefused("Content-Length and Transfer-Encoding",
                "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                "Transfer-Encoding: chunked\r\n\r\n11\r\n" +
                    body + "\r\n0\r\n\r\n");
  ExpectRefused("Transfer-Encoding: gzip, chunked",
                "POST /v1/login HTTP/1.1\r\nHost: x\r\n"
                "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  ExpectRefused("a chunk size that lies",
                "POST /v1/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                "chunked\r\n\r\nfffffff\r\n" +
                    body,
                /*half_close=*/true);
}

TEST_F(E2EHostile, DeeplyNestedJson) {
  ExpectRefused(
      "30000 nested arrays",
      Post("/v1/login", "", std::string(30000, '[') + std::string(30000, ']')));
  std::string objects;
  for (int i = 0; i < 10000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(10000, '}');
  ExpectRefused("10000 nested objects", Post("/v1/login", "", objects));
  ExpectRefused("nested arrays, never closed",
                Post("/v1/login", "", std::string(60000, '[')));
}

TEST_F(E2EHostile, InvalidUtf8AndNulBytesInFieldsAndTokens) {
  ExpectRefused("invalid UTF-8 in code",
                Post("/v1/login", "", "{\"code\":\"\xff\xfe\xfd\"}"));
  ExpectRefused(
      "an overlong UTF-8 slash in appid",
      Post("/v1/login", "", "{\"code\":\"x.1\",\"appid\":\"\xc0\xaf\"}"));
  ExpectRefused("an escaped NUL in code",
                Post("/v1/login", "", R"({"code":"nul\u0000.1"})"));
  ExpectRefused("a raw NUL inside a JSON string",
                Post("/v1/login", "", std::string("{\"code\":\"a\0b\"}", 14)));
  ExpectRefused("a NUL before the JSON",
                Post("/v1/login", "", std::string("\0{\"code\":\"x.1\"}", 15)));
  ExpectRefused(
      "a NUL in the token",
      Get("/v1/session",
          std::string("Authorization: Bearer abc\0def", 29) + "\r\n"));
  ExpectRefused("invalid UTF-8 in the token",
                Get("/v1/session", "Authorization: Bearer \xff\xfe\xfd\r\n"));
  ExpectRefused(
      "a NUL in X-WX-Session",
      Get("/v1/session", std::string("X-WX-Session: \0", 15) + "\r\n"));
  ExpectRefused(
      "a NUL in the path",
      std::string("GET /healthz\0/x HTTP/1.1\r\nHost: x\r\n\r\n", 37));
  // A valid-looking id with one byte swapped for a NUL.
  std::string id(43, 'A');
  id[20] = '\0';
  ExpectRefused("a NUL inside a 43-byte token",
                Get("/v1/session", "Authorization: Bearer " + id + "\r\n"));
}

TEST_F(E2EHostile, TlsBytesOnThePlainPortAreCutAtOnce) {
  // A TLS 1.2 ClientHello record: handshake (0x16), version 3.1, length,
  // then a ClientHello body with no newline in sight.
  std::string hello =
      std::string("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11) +
      std::string(32, '\x42') +
      std::string("\x00\x00\x04\x13\x01\x13\x02\x01\x00", 9) +
      std::string(150, '\x00');
  Exchange got = RawExchange(fixture_.port(), hello, 5000);
  EXPECT_TRUE(got.closed_by_server);
  EXPECT_TRUE(got.response.empty() || got.response.rfind("HTTP/1.1 4", 0) == 0)
      << got.response;
  EXPECT_LT(got.elapsed_ms, 1000) << "waited instead of hanging up";
  ExpectStillServing("a TLS ClientHello");
}

TEST_F(E2EHostile, NullAndEmptyBodies) {
  ExpectRefused("a null body", Post("/v1/login", "", "null"));
  ExpectRefused("an empty body", Post("/v1/login", "", ""));
  ExpectRefused("a string body", Post("/v1/login", "", "\"code\""));
  ExpectRefused("a null code", Post("/v1/login", "", R"({"code":null})"));
  ExpectRefused("an object code", Post("/v1/login", "", R"({"code":{}})"));
}

TEST_F(E2EHostile, RepeatedHeaders) {
  httplib::Client client("127.0.0.1", fixture_.port());
  auto login =
      client.Post("/v1/login", R"({"code":"twice.1"})", "application/json");
  ASSERT_TRUE(login && login->status == 200);
  std::string id = json::parse(login->body)["session_id"];
  // Each header alone is a valid session; which of two counts is exactly
  // what a proxy and this server could disagree on.
  ExpectRefused("two Authorization headers",
                Get("/v1/session", "Authorization: Bearer " + id +
                                       "\r\nAuthorization: Bearer " +
                                       std::string(43, 'B') + "\r\n"));
  ExpectRefused("two X-WX-Session headers",
                Get("/v1/session", "X-WX-Session: " + id +
                                       "\r\nX-WX-Session: " + id + "\r\n"));
  ExpectRefused("two Host headers", Get("/healthz", "Host: y\r\n"));
  ExpectRefused(
      "two Content-Type headers",
      Post("/v1/login", "Content-Type: text/plain\r\n", R"({"code":"x.1"})"));
}

TEST_F(E2EHostile, GarbageRequestLines) {
  ExpectRefused("an unknown method",
                "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ExpectRefused("no version", "GET /healthz\r\n\r\n");
  ExpectRefused("HTTP/9", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n");
  ExpectRefused("binary noise", std::string(2000, '\x01') + "\r\n\r\n");
  ExpectRefused("only newlines", std::string(20000, '\n'));
}

}  // namespace
}  // namespace wxsession
