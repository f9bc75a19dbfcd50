// End to end: idle, slow and too many clients against the real binary
// (src/http/connections.h). Bounds are client timeouts, not timing asserts:
// a real client's request must complete within them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::ServerFixture;
using Clock = std::chrono::steady_clock;

// A client connection that connects and then does as little as it likes.
class Stalled {
 public:
  Stalled(int port, const std::string& first_bytes) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (connected_ && !first_bytes.empty()) Send(first_bytes);
  }
  ~Stalled() { ::close(fd_); }
  Stalled(const Stalled&) = delete;
  Stalled& operator=(const Stalled&) = delete;

  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Reads until `needle` has arrived; false after `timeout_ms` without it
  // or when the server closes first. What was read goes to `got`.
  bool ReadUntil(const std::string& needle, int timeout_ms, std::string* got) {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (got->find(needle) == std::string::npos) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                                Clock::now())
              .count());
      pollfd pfd{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&pfd, 1, left) <= 0) return false;
      char chunk[1024];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      got->append(chunk, static_cast<size_t>(n));
    }
    return true;
  }

  // True once the server has closed (or answered and closed) the
  // connection; waits at most `timeout_ms`.
  bool ClosedByServer(int timeout_ms, std::string* answer = nullptr) {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < until) {
      pollfd pfd{fd_, POLLIN, 0};
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                                Clock::now())
              .count());
      if (::poll(&pfd, 1, std::max(left, 0)) <= 0) return false;
      char chunk[1024];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return true;
      if (answer) answer->append(chunk, static_cast<size_t>(n));
    }
    return false;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::vector<std::unique_ptr<Stalled>> Stall(int port, int idle, int partial) {
  std::vector<std::unique_ptr<Stalled>> out;
  for (int i = 0; i < idle; ++i) {
    out.push_back(std::make_unique<Stalled>(port, ""));
  }
  for (int i = 0; i < partial; ++i) {
    out.push_back(std::make_unique<Stalled>(
        port, "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Le"));
  }
  return out;
}

// A client that gives up after one second at every step.
std::unique_ptr<httplib::Client> ImpatientClient(int port) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
  client->set_connection_timeout(1, 0);
  client->set_read_timeout(1, 0);
  client->set_write_timeout(1, 0);
  return client;
}

TEST(E2ESlowClients, TwoHundredStalledConnectionsDoNotDelayARealClient) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  // Accepted in order: by the time the real client's connection is
  // accepted, these 200 are already being served (and stalling).
  auto stalled = Stall(fixture.port(), 100, 100);
  for (const auto& s : stalled) ASSERT_TRUE(s->connected());

  auto started = Clock::now();
  auto client = ImpatientClient(fixture.port());
  auto health = client->Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto login =
      client->Post("/v1/login", R"({"code":"real.1"})", "application/json");
  ASSERT_TRUE(login) << httplib::to_string(login.error());
  EXPECT_EQ(login->status, 200) << login->body;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  Clock::now() - started)
                  .count();
  std::cout << "[ measure  ] /healthz + /v1/login beside 200 stalled "
               "connections: "
            << took << " ms\n";
  RecordProperty("real_client_ms", static_cast<int>(took));
  // A fresh connection for each of 20 more clients, all while stalled.
  for (int i = 0; i < 20; ++i) {
    auto again = ImpatientClient(fixture.port())->Get("/healthz");
    ASSERT_TRUE(again) << "client " << i;
    EXPECT_EQ(again->status, 200);
  }
}

// Responses are gathered and sent in one piece when the request is done;
// an interim "100 Continue" must still go out at once, because the client
// waits for it before it sends the body the server is waiting for.
TEST(E2ESlowClients, AnInterimContinueIsSentBeforeTheBodyIsRead) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  const std::string body = R"({"code":"patient.1"})";
  Stalled client(fixture.port(),
                 "POST /v1/login HTTP/1.1\r\nHost: t\r\n"
                 "Content-Type: application/json\r\n"
                 "Expect: 100-continue\r\n"
                 "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n");
  ASSERT_TRUE(client.connected());
  std::string got;
  // Well inside the 10 s request deadline that would otherwise end it.
  ASSERT_TRUE(client.ReadUntil("HTTP/1.1 100 Continue\r\n\r\n", 5000, &got))
      << got;
  ASSERT_TRUE(client.Send(body));
  ASSERT_TRUE(client.ReadUntil("session_id", 5000, &got)) << got;
  EXPECT_NE(got.find("HTTP/1.1 200 OK"), std::string::npos) << got;
}

TEST(E2ESlowClients, ASlowlorisClientIsCutOffByTheRequestDeadline) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  Stalled slow(fixture.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  ASSERT_TRUE(slow.connected());
  // One byte every 500 ms: each read arrives well inside the 5 s read
  // timeout, so only the whole-request deadline (10 s) ends it.
  auto started = Clock::now();
  bool closed = false;
  std::string answer;
  for (int i = 0; i < 30 && !closed; ++i) {
    slow.Send("a");
    closed = slow.ClosedByServer(500, &answer);
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  Clock::now() - started)
                  .count();
  ASSERT_TRUE(closed) << "still open after 15 s of dribbling";
  EXPECT_TRUE(answer.empty() || answer.rfind("HTTP/1.1 4", 0) == 0) << answer;
  std::cout << "[ measure  ] slowloris connection closed after " << took
            << " ms\n";
  EXPECT_GE(took, 9000) << "cut before the deadline";
  EXPECT_EQ(ImpatientClient(fixture.port())->Get("/healthz")->status, 200);
}

// The threads of process `pid` (from /proc/PID/status), or -1.
int ThreadsOf(pid_t pid) {
  const std::string status =
      testing_support::ReadFile("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("\nThreads:");
  return at == std::string::npos ? -1 : std::atoi(status.c_str() + at + 9);
}

// Issue 20: idle connections are parked without a thread, so hundreds of
// them on a server with 32 threads neither hold threads nor make a new
// client wait, and a connection with a request in progress is never the
// one closed.
TEST(E2ESlowClients, HundredsOfIdleConnectionsHoldNoThreadAndDelayNoClient) {
  ServerFixture fixture(R"("http": {"threads": 32})");
  ASSERT_TRUE(fixture.Start());
  // A request in progress: its head has started.
  Stalled in_progress(fixture.port(), "GET /healthz HTTP/1.1\r\n");
  ASSERT_TRUE(in_progress.connected());
  // 300 connections that never send, and 100 that made one request and
  // stay open (kept alive), all idle now: ten times the thread cap.
  auto idle = Stall(fixture.port(), 300, 0);
  std::vector<std::unique_ptr<Stalled>> kept_alive;
  for (int i = 0; i < 100; ++i) {
    kept_alive.push_back(std::make_unique<Stalled>(
        fixture.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string got;
    ASSERT_TRUE(kept_alive.back()->ReadUntil("\"ok\"}", 5000, &got)) << got;
  }
  for (const auto& s : idle) ASSERT_TRUE(s->connected());

  // A new client is answered within its one-second patience, every time.
  for (int i = 0; i < 20; ++i) {
    auto client = ImpatientClient(fixture.port());
    auto health = client->Get("/healthz");
    ASSERT_TRUE(health) << "client " << i << ": "
                        << httplib::to_string(health.error());
    EXPECT_EQ(health->status, 200);
    auto login = client->Post(
        "/v1/login", json{{"code", "idle" + std::to_string(i) + ".1"}}.dump(),
        "application/json");
    ASSERT_TRUE(login) << httplib::to_string(login.error());
    EXPECT_EQ(login->status, 200) << login->body;
  }
  // 401 open connections, yet threads stay within the cap plus the
  // server's own (main, sweeper, checkpointer, parker, signals...).
  const int threads = ThreadsOf(fixture.server()->pid());
  std::cout << "[ measure  ] threads with 401 open connections (cap 32): "
            << threads << "\n";
  EXPECT_GT(threads, 0);
  EXPECT_LE(threads, 32 + 16);

  // The request in progress completes: it was never the one closed.
  ASSERT_TRUE(in_progress.Send("Host: x\r\n\r\n"));
  std::string got;
  EXPECT_TRUE(in_progress.ReadUntil("\"ok\"}", 5000, &got)) << got;
  // And a kept-alive connection still serves its next request.
  got.clear();
  ASSERT_TRUE(
      kept_alive.front()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(kept_alive.front()->ReadUntil("\"ok\"}", 5000, &got)) << got;
}

TEST(E2ESlowClients, IdleConnectionsDoNotHoldUpAStop) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  auto stalled = Stall(fixture.port(), 50, 0);
  // Make sure they are being served (not just queued) before stopping.
  ASSERT_EQ(ImpatientClient(fixture.port())->Get("/healthz")->status, 200);
  auto started = Clock::now();
  fixture.StopServer(SIGTERM);
  // Well under the 5 s keep-alive timeout the idle connections would take.
  std::optional<int> code = fixture.WaitServer(2000);
  ASSERT_TRUE(code.has_value()) << "still running 2 s after SIGTERM";
  EXPECT_EQ(*code, 0);
  std::cout << "[ measure  ] stop with 50 idle connections: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   Clock::now() - started)
                   .count()
            << " ms\n";
}

}  // namespace
}  // namespace wxsession
