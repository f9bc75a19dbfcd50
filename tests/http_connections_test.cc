// GuardedServer in-process (src/http/connections.h): idle connections are
// parked without a thread, the longest-idle ones make room at the cap, and
// a connection with a request in progress is never the one closed.
#include "http/connections.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace wxsession {
namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void Send(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Reads what arrives within `timeout_ms`; "" when nothing does.
std::string Receive(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) <= 0) return "";
  char buffer[4096];
  ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// True once the server has closed `fd` (EOF or reset), within `timeout_ms`.
bool ClosedByServer(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, MSG_PEEK) <= 0;
}

// Waits up to 10 s for `condition`, checking every few milliseconds.
bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

class GuardedServerTest : public ::testing::Test {
 protected:
  void Start(size_t max_parked, int threads) {
    GuardedServer::Limits limits;
    limits.max_parked = max_parked;
    server_ = std::make_unique<GuardedServer>(limits);
    ApplyServerSettings(*server_, threads);
    // Idle connections would close after 2 s; long enough here that only
    // the cap closes them.
    server_->set_keep_alive_timeout(60);
    server_->Get("/healthz",
                 [](const httplib::Request&, httplib::Response& res) {
                   res.set_content("{\"status\":\"ok\"}", "application/json");
                 });
    Result<int> port = server_->BindListener("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = port.value();
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }

  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    if (server_) {
      server_->CloseListener();
      server_->stop();
    }
    if (thread_.joinable()) thread_.join();
  }

  int Open() {
    int fd = Connect(port_);
    EXPECT_GE(fd, 0);
    fds_.push_back(fd);
    return fd;
  }

  std::unique_ptr<GuardedServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::vector<int> fds_;
};

TEST_F(GuardedServerTest, IdleConnectionsAreParkedAndHoldNoThread) {
  Start(/*max_parked=*/1000, /*threads=*/8);
  // 300 idle connections on 8 threads: with a thread each, the 9th would
  // already wait.
  for (int i = 0; i < 300; ++i) Open();
  ASSERT_TRUE(WaitFor([&] { return server_->ParkedConnections() == 300; }))
      << server_->ParkedConnections() << " parked";
  // A new client is served at once, and its connection parks again after.
  int client = Open();
  Send(client, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(Receive(client, 2000).find("200 OK"), std::string::npos);
  // Kept alive: the next request on it is served too.
  Send(client, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(Receive(client, 2000).find("200 OK"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return server_->ParkedConnections() == 301; }));
}

TEST_F(GuardedServerTest, AtTheCapTheLongestIdleCloseAndNotARequestInProgress) {
  Start(/*max_parked=*/50, /*threads=*/8);
  // A request in progress: its head has started, not finished.
  int in_progress = Open();
  Send(in_progress, "GET /healthz HTTP/1.1\r\n");
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(Open());
    ASSERT_TRUE(
        WaitFor([&] { return server_->ParkedConnections() == idle.size(); }));
  }
  // Past the cap each new idle connection makes the longest-idle one close.
  for (int i = 50; i < 100; ++i) {
    idle.push_back(Open());
    EXPECT_TRUE(ClosedByServer(idle[i - 50], 5000)) << "connection " << i - 50;
  }
  EXPECT_TRUE(WaitFor([&] { return server_->ParkedConnections() == 50; }));
  for (int i = 50; i < 100; ++i) {
    EXPECT_FALSE(ClosedByServer(idle[i], 0)) << "connection " << i;
  }
  // The request in progress was never the one closed: it completes.
  Send(in_progress, "Host: x\r\n\r\n");
  EXPECT_NE(Receive(in_progress, 5000).find("200 OK"), std::string::npos);
}

TEST_F(GuardedServerTest, AStopClosesParkedConnectionsAtOnce) {
  Start(/*max_parked=*/1000, /*threads=*/8);
  for (int i = 0; i < 50; ++i) Open();
  ASSERT_TRUE(WaitFor([&] { return server_->ParkedConnections() == 50; }));
  server_->CloseListener();
  thread_.join();  // the accept loop ends, its queue shuts down
  for (int fd : fds_) EXPECT_TRUE(ClosedByServer(fd, 5000));
  EXPECT_EQ(server_->ParkedConnections(), 0u);
}

}  // namespace
}  // namespace wxsession
