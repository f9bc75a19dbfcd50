// Tells systemd (Type=notify) how start-up and shutdown are going, by the
// notification protocol itself: one datagram of newline-separated
// "KEY=VALUE" assignments on the AF_UNIX socket named by $NOTIFY_SOCKET.
// No libsystemd: every build notifies the same way.
//
// $NOTIFY_SOCKET is a filesystem path ("/run/systemd/notify") or, starting
// with '@', a name in the abstract namespace. Outside a notify unit
// (NOTIFY_SOCKET unset or empty) every call does nothing, so the calls are
// always safe to make.
//
// Thread-safety: may be called from any thread; each call opens, sends on
// and closes its own socket.
#ifndef WXSESSION_SYSTEMD_NOTIFY_H_
#define WXSESSION_SYSTEMD_NOTIFY_H_

#include <chrono>
#include <optional>
#include <string>

namespace wxsession {

// Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...",
// newline-separated) as one datagram to $NOTIFY_SOCKET. Returns true when it
// was sent, false when NOTIFY_SOCKET is unset or empty, names no usable
// socket (too long, an unsupported scheme such as vsock:), or the send
// failed. A failure is not worth stopping for: systemd times out the start
// by itself and says so in the journal.
bool NotifyServiceManager(const std::string& state);

// How often to send WATCHDOG=1: half of $WATCHDOG_USEC (systemd's
// WatchdogSec=), as sd_watchdog_enabled advises. nullopt when the watchdog
// is off: WATCHDOG_USEC unset, not a positive number, or WATCHDOG_PID set
// to another process than this one.
std::optional<std::chrono::microseconds> WatchdogPingInterval();

}  // namespace wxsession

#endif  // WXSESSION_SYSTEMD_NOTIFY_H_
