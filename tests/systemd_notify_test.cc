// The sd_notify protocol without libsystemd: one datagram per call to the
// socket in $NOTIFY_SOCKET, a path or an abstract '@' name; and the watchdog
// interval read from WATCHDOG_USEC / WATCHDOG_PID.
#include "ops/systemd_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::TempDir;

// A datagram socket bound to `name` ("/path" or "@abstract"); -1 on failure.
int BindDatagram(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (name.size() >= sizeof(address.sun_path)) return -1;
  std::memcpy(address.sun_path, name.data(), name.size());
  socklen_t length;
  if (name[0] == '@') {
    address.sun_path[0] = '\0';
    length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  } else {
    length = sizeof(address);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One datagram, or "" after `timeout_ms`.
std::string Receive(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) <= 0) return "";
  char buffer[4096];
  ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_.empty()) {
      ::unsetenv(name_);
    } else {
      ::setenv(name_, old_.c_str(), 1);
    }
  }

 private:
  const char* name_;
  std::string old_;
};

TEST(SystemdNotify, SendsOneDatagramToAPathSocket) {
  TempDir dir;
  const std::string path = dir.File("notify");
  int fd = BindDatagram(path);
  ASSERT_GE(fd, 0);
  ScopedEnv socket("NOTIFY_SOCKET", path.c_str());
  EXPECT_TRUE(NotifyServiceManager("READY=1\nSTATUS=listening"));
  EXPECT_EQ(Receive(fd, 5000), "READY=1\nSTATUS=listening");
  EXPECT_TRUE(NotifyServiceManager("STOPPING=1"));
  EXPECT_EQ(Receive(fd, 5000), "STOPPING=1");
  ::close(fd);
}

TEST(SystemdNotify, SendsToAnAbstractNameStartingWithAt) {
  const std::string name =
      "@wxsessiond-notify-test-" + std::to_string(::getpid());
  int fd = BindDatagram(name);
  ASSERT_GE(fd, 0);
  ScopedEnv socket("NOTIFY_SOCKET", name.c_str());
  EXPECT_TRUE(NotifyServiceManager("READY=1"));
  EXPECT_EQ(Receive(fd, 5000), "READY=1");
  ::close(fd);
}

TEST(SystemdNotify, DoesNothingWithoutAUsableSocket) {
  {
    ScopedEnv socket("NOTIFY_SOCKET", nullptr);
    EXPECT_FALSE(NotifyServiceManager("READY=1"));
  }
  {
    ScopedEnv socket("NOTIFY_SOCKET", "");
    EXPECT_FALSE(NotifyServiceManager("READY=1"));
  }
  {
    ScopedEnv socket("NOTIFY_SOCKET", "vsock:2:1234");
    EXPECT_FALSE(NotifyServiceManager("READY=1"));
  }
  {
    ScopedEnv socket("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str());
    EXPECT_FALSE(NotifyServiceManager("READY=1"));
  }
  {
    TempDir dir;  // nobody listens there
    ScopedEnv socket("NOTIFY_SOCKET", dir.File("absent").c_str());
    EXPECT_FALSE(NotifyServiceManager("READY=1"));
  }
}

TEST(SystemdNotify, WatchdogIntervalIsHalfOfWatchdogUsecForThisProcess) {
  {
    ScopedEnv usec("WATCHDOG_USEC", nullptr);
    EXPECT_FALSE(WatchdogPingInterval());
  }
  ScopedEnv usec("WATCHDOG_USEC", "3000000");
  {
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    ASSERT_TRUE(WatchdogPingInterval());
    EXPECT_EQ(WatchdogPingInterval()->count(), 1500000);
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
    EXPECT_TRUE(WatchdogPingInterval());
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str());
    EXPECT_FALSE(WatchdogPingInterval());
  }
  for (const char* bad : {"0", "-5", "soon", "99999999999999999999999"}) {
    ScopedEnv garbage("WATCHDOG_USEC", bad);
    EXPECT_FALSE(WatchdogPingInterval()) << bad;
  }
}

}  // namespace
}  // namespace wxsession
