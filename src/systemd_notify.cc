#include "systemd_notify.h"

#ifdef WXSESSIOND_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace wxsession {

void NotifyServiceManager(const char* state) {
#ifdef WXSESSIOND_HAVE_SYSTEMD
  // unset_environment = 0: the variable stays for later calls (STOPPING=1).
  // A failure to notify is not worth stopping for: systemd will time out
  // the start on its own and say so in the journal.
  sd_notify(0, state);
#else
  (void)state;
#endif
}

bool ServiceManagerNotifySupported() {
#ifdef WXSESSIOND_HAVE_SYSTEMD
  return true;
#else
  return false;
#endif
}

}  // namespace wxsession
