// What every cpp-httplib server in wxsessiond shares (adapter-internal).
#ifndef WXSESSION_HTTPLIB_SERVER_H_
#define WXSESSION_HTTPLIB_SERVER_H_

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wxsession {

// Pending connections the kernel may queue. Debian's cpp-httplib 0.11 is
// compiled with a listen backlog of 5, so a burst of new connections (50
// clients logging in at once, a client pool filling up) overflows it; the
// dropped handshakes show up as 1 s stalls and reset connections.
constexpr int kListenBacklog = 1024;

// An httplib server (Server or SSLServer) with a way to deepen the listen
// backlog after binding.
template <class Base>
class DeepBacklog : public Base {
 public:
  using Base::Base;
  // Calling listen() again on a listening socket only changes its backlog
  // (Linux; the kernel caps it at net.core.somaxconn).
  void DeepenBacklog(int backlog = kListenBacklog) {
    ::listen(this->svr_sock_, backlog);
  }

  // Stops accepting whether or not listen_after_bind has started.
  // httplib's stop() does nothing until the accept loop has set its running
  // flag, so a stop that races the start (a SIGTERM just after "listening")
  // would be lost; with the socket gone the accept loop ends at once, or
  // never starts, and in-flight requests still finish.
  void CloseListener() {
    const int sock = this->svr_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) {
      ::shutdown(sock, SHUT_RDWR);
      ::close(sock);
    }
  }
};

using DeepBacklogServer = DeepBacklog<httplib::Server>;

}  // namespace wxsession

#endif  // WXSESSION_HTTPLIB_SERVER_H_
