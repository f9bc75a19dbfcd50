#include "ops/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace wxsession {
namespace {

// A positive decimal number that fits in 63 bits, or nullopt.
std::optional<unsigned long long> ParsePositive(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  unsigned long long value = 0;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9') return std::nullopt;
    if (value >
        (static_cast<unsigned long long>(INT64_MAX) - (*c - '0')) / 10) {
      return std::nullopt;
    }
    value = value * 10 + static_cast<unsigned long long>(*c - '0');
  }
  if (value == 0) return std::nullopt;
  return value;
}

}  // namespace

bool NotifyServiceManager(const std::string& state) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr || name[0] == '\0') return false;
  // Only "/path" and "@abstract"; "vsock:..." (systemd in a VM) is not
  // supported here.
  if (name[0] != '/' && name[0] != '@') return false;
  const size_t length = std::strlen(name);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (length > sizeof(address.sun_path)) return false;
  std::memcpy(address.sun_path, name, length);
  socklen_t address_length;
  if (name[0] == '@') {
    // Abstract: a leading NUL, and the length counts exactly the name's
    // bytes (no terminator), as systemd binds it.
    address.sun_path[0] = '\0';
    address_length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  } else {
    if (length == sizeof(address.sun_path)) return false;  // no room for NUL
    address_length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length + 1);
  }

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t sent;
  do {
    // MSG_NOSIGNAL: a vanished receiver must not raise SIGPIPE.
    sent =
        ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&address), address_length);
  } while (sent < 0 && errno == EINTR);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::microseconds> WatchdogPingInterval() {
  std::optional<unsigned long long> usec =
      ParsePositive(std::getenv("WATCHDOG_USEC"));
  if (!usec) return std::nullopt;
  // WATCHDOG_PID, when set, names the process the watchdog is for (a child
  // that inherited the variable must not ping on the parent's behalf).
  if (const char* pid_text = std::getenv("WATCHDOG_PID");
      pid_text != nullptr && *pid_text != '\0') {
    std::optional<unsigned long long> pid = ParsePositive(pid_text);
    if (!pid || *pid != static_cast<unsigned long long>(::getpid())) {
      return std::nullopt;
    }
  }
  // Half the timeout, and never more often than every millisecond.
  return std::chrono::microseconds(
      std::max<unsigned long long>(1000, *usec / 2));
}

}  // namespace wxsession
