// What every cpp-httplib server in wxsessiond shares (adapter-internal).
#ifndef WXSESSION_HTTPLIB_SERVER_H_
#define WXSESSION_HTTPLIB_SERVER_H_

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>

#include "http/thread_pool.h"
#include "wxsession/config.h"

namespace wxsession {

// Pending connections the kernel may queue. Debian's cpp-httplib 0.11 is
// compiled with a listen backlog of 5, so a burst of new connections (50
// clients logging in at once, a client pool filling up) overflows it; the
// dropped handshakes show up as 1 s stalls and reset connections.
constexpr int kListenBacklog = 1024;

// Threads kept even when idle: enough for a steady trickle of requests.
constexpr size_t kMinThreads = 8;
// Open connections served at once when http.threads is 0 (see
// kDefaultHttpThreads in config.h: a thread costs about 64 KiB of touched
// stack; 1024 of them stay well inside memory while covering 2,000
// logins/s against a WeChat 100 ms away).
constexpr size_t kDefaultMaxThreads = kDefaultHttpThreads;

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

// The connection settings wxsessiond serves with. bench/baseline_server.cc
// uses the same function, so the benchmark's ceiling is measured with what
// wxsessiond really runs. `threads` 0 = choose from the machine.
inline void ApplyServerSettings(httplib::Server& server, int threads) {
  // Without TCP_NODELAY small responses wait out Nagle + delayed ACK (40 ms
  // stalls measured with cpp-httplib 0.11).
  server.set_tcp_nodelay(true);
  // Seconds a kept-alive connection may sit idle before the thread serving
  // it is freed. Short, because a stop waits for idle kept-alive
  // connections to time out (cpp-httplib cannot close them early) and must
  // finish within 5 s; proxies in front keep their own idle timeout below
  // this (see scripts/deploy/nginx.conf).
  server.set_keep_alive_timeout(2);
  // Seconds a request may take to arrive, or an answer to be sent.
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_keep_alive_max_count(1000);  // requests per connection
  // Each open connection holds a thread (cpp-httplib's model), and a login
  // holds one for the whole upstream call, so threads are made on demand up
  // to a cap rather than fixed (see thread_pool.h). `threads` sets the cap.
  const size_t cap =
      threads > 0 ? static_cast<size_t>(threads) : kDefaultMaxThreads;
  server.new_task_queue = [cap] {
    return new GrowingThreadPool(kMinThreads, cap);
  };
}

}  // namespace wxsession

#endif  // WXSESSION_HTTPLIB_SERVER_H_
