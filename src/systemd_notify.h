// Tells systemd (Type=notify) how start-up and shutdown are going.
//
// Built on libsystemd's sd_notify when Meson found libsystemd (the
// 'systemd' feature option); otherwise every call does nothing. Outside a
// notify unit (NOTIFY_SOCKET unset) sd_notify itself does nothing, so the
// calls are always safe to make.
//
// Thread-safety: may be called from any thread.
#ifndef WXSESSION_SYSTEMD_NOTIFY_H_
#define WXSESSION_SYSTEMD_NOTIFY_H_

namespace wxsession {

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...", newline-separated).
void NotifyServiceManager(const char* state);

// Whether this build can notify systemd at all.
bool ServiceManagerNotifySupported();

}  // namespace wxsession

#endif  // WXSESSION_SYSTEMD_NOTIFY_H_
