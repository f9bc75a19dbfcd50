// What every cpp-httplib server in wxsessiond shares (adapter-internal).
#ifndef WXSESSION_HTTPLIB_SERVER_H_
#define WXSESSION_HTTPLIB_SERVER_H_

#include <httplib.h>
#include <sys/socket.h>

namespace wxsession {

// Pending connections the kernel may queue. Debian's cpp-httplib 0.11 is
// compiled with a listen backlog of 5, so a burst of new connections (50
// clients logging in at once, a client pool filling up) overflows it; the
// dropped handshakes show up as 1 s stalls and reset connections.
constexpr int kListenBacklog = 1024;

// httplib::Server with a way to deepen the listen backlog after binding.
class DeepBacklogServer : public httplib::Server {
 public:
  // Calling listen() again on a listening socket only changes its backlog
  // (Linux; the kernel caps it at net.core.somaxconn).
  void DeepenBacklog(int backlog = kListenBacklog) {
    ::listen(svr_sock_, backlog);
  }
};

}  // namespace wxsession

#endif  // WXSESSION_HTTPLIB_SERVER_H_
