// GuardedServer: the cpp-httplib server API v1 runs on, hardened against
// idle, slow and too many clients (adapter-internal).
//
// cpp-httplib 0.11 serves each connection on one thread for the connection's
// whole life, reading a request with a timeout per recv() but none on the
// whole: a client that sends half a header and then a byte every few seconds
// (slowloris) holds its thread for as long as it likes, and stop() waits for
// every idle kept-alive connection to time out. Threads are made on demand
// (GrowingThreadPool, thread_pool.h), so stalled clients do not queue real
// ones until the thread cap; GuardedServer bounds how long each can hold its
// thread:
//
//  - Once the first byte of a request arrives, its line, headers and body
//    must arrive within `request_read_seconds`, and the line and headers may
//    take 32 KiB at most; otherwise the connection closes (after httplib's
//    400, when it gets that far).
//  - A connection that sends nothing closes after the keep-alive timeout, as
//    before, but the wait polls for the server stopping every 100 ms, so
//    stop() no longer waits for idle connections.
//  - A connection that opens with a TLS handshake is hung up on at once: no
//    HTTP answer can help a client speaking HTTPS to the plain port.
//
// It does so by serving each accepted socket itself (a Stream over the
// socket handed to httplib's protected process_request), the extension
// point cpp-httplib's own SSLServer uses. It applies to plain HTTP only;
// with tls.cert the SSLServer serves connections itself.
//
// Thread-safety: like httplib::Server. CloseAfterResponse may be called from
// any handler; it affects the connection of the calling thread.
#ifndef WXSESSION_HTTP_CONNECTIONS_H_
#define WXSESSION_HTTP_CONNECTIONS_H_

#include <atomic>
#include <cstddef>

#include "httplib_server.h"

namespace wxsession {

class GuardedServer : public DeepBacklogServer {
 public:
  struct Limits {
    // Seconds from a request's first byte until its line, headers and body
    // must have arrived.
    int request_read_seconds = 10;
  };

  GuardedServer();
  explicit GuardedServer(Limits limits);

  // The connection serving the calling thread's request closes after this
  // response (used when part of a request may be left unread).
  static void CloseAfterResponse();

  // Connections being served right now (for tests and metrics).
  size_t open_connections() const { return open_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;

  const Limits limits_;  // constant after construction
  std::atomic<size_t> open_{0};
};

}  // namespace wxsession

#endif  // WXSESSION_HTTP_CONNECTIONS_H_
