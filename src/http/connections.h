// GuardedServer: the connection layer every wxsessiond server runs on
// (the API, mock-wechat, the benchmark baseline), over plain HTTP or TLS
// (adapter-internal).
//
// cpp-httplib 0.11 serves each connection on one thread for the
// connection's whole life and parses requests straight off the socket.
// GuardedServer keeps httplib's routing and handlers but owns the
// connection itself (the extension point cpp-httplib's own SSLServer uses:
// a Stream handed to the protected process_request):
//
//  - Framing (http_framing.h). Each request's head and whole body are read
//    here, checked, and handed to httplib as one canonical request from
//    memory, so a body no route reads (a GET's, a 404's) can never be
//    parsed as the next request, whatever the method or the answer. Heads
//    with control characters, ambiguous lengths or no Host are answered
//    400 and the connection closes; Range is dropped.
//  - Deadlines. Once the first byte of a request arrives, its head and body
//    must arrive within `request_read_seconds`; the head may take
//    kMaxRequestHeadBytes (else 431) and the body the server's payload
//    limit (else 413).
//  - Idle connections hold no thread. A connection with nothing to read
//    (just accepted, or between two requests) is parked: one thread waits
//    on all of them with epoll and hands a connection back to the worker
//    threads when its next request starts. 3,000 idle connections used to
//    hold 1,027 threads and make a new client wait 3.9 s; parked, they hold
//    a file descriptor and about a kilobyte each. A parked connection closes
//    after the keep-alive timeout; past `max_parked` the longest-idle one
//    closes to admit the next; a stop closes them all at once. A connection
//    with a request in progress is never closed for another.
//  - TLS. With EnableTls the same layer speaks TLS (OpenSSL): the handshake
//    must finish within `request_read_seconds`. Without it, a connection
//    that opens with a TLS handshake is hung up on at once.
//  - Writes are gathered and sent once per response.
//
// Thread-safety: like httplib::Server. CloseAfterResponse may be called from
// any handler; it affects the connection of the calling thread.
#ifndef WXSESSION_HTTP_CONNECTIONS_H_
#define WXSESSION_HTTP_CONNECTIONS_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "http/httplib_server.h"
#include "wxsession/status.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {

class GuardedServer : public DeepBacklogServer {
 public:
  struct Limits {
    // Seconds from a request's first byte (or a TLS connection's start)
    // until its head and body, or the handshake, must have arrived.
    int request_read_seconds = 10;
    // Idle connections kept at most; past it the longest-idle one closes.
    // Each costs a file descriptor and about 1 KiB (TLS: a few KiB), so
    // 20,000 stay well inside memory and the open-file limit wxsessiond
    // raises at start-up.
    size_t max_parked = 20000;
  };

  // Told of every request the connection layer answers itself (a head or
  // body refused before httplib saw it): the status sent, the error code's
  // name, and the peer's address. Called on the connection's thread.
  using RefusalObserver = std::function<void(
      int status, const std::string& error, const std::string& remote_ip)>;

  GuardedServer();
  explicit GuardedServer(Limits limits);
  ~GuardedServer() override;

  // Connections parked now (idle, holding no thread); for tests and
  // metrics.
  size_t ParkedConnections() const;

  // Serves TLS with the PEM certificate (chain) and private key in these
  // files. False, with a reason in `*error` naming the files but nothing
  // of their content, when OpenSSL cannot load them or they do not match.
  // Call before serving.
  bool EnableTls(const std::string& cert_file, const std::string& key_file,
                 std::string* error);

  // Binds and listens on host:port (port 0: one the kernel picks), with a
  // deep backlog; the port bound. Never shares a port: without
  // SO_REUSEPORT a second server on an address in use fails here, rather
  // than the kernel splitting connections between two servers. Errors
  // (kInternal): "<host>:<port>: address already in use", or cannot listen.
  Result<int> BindListener(const std::string& host, int port);

  void set_refusal_observer(RefusalObserver observer) {
    refusal_observer_ = std::move(observer);
  }

  // The connection serving the calling thread's request closes after this
  // response. Does nothing on a thread that is not serving a GuardedServer
  // connection.
  static void CloseAfterResponse();

 private:
  struct TlsContext;
  struct LiveConnection;
  class IdleParker;
  class ParkingQueue;

  bool process_and_close_socket(socket_t sock) override;
  // Serves `live` until it closes, or parks it when it goes idle.
  void Serve(std::unique_ptr<LiveConnection> live);
  // Hands `live` to a worker thread (its next request has started).
  void Resume(std::unique_ptr<LiveConnection> live);
  // Makes the parker and wraps the task queue httplib will make (once,
  // from BindListener).
  void StartParking();
  // The accept loop is ending: parked connections close, and no more park.
  void StopParking();

  const Limits limits_;                 // constant after construction
  std::unique_ptr<TlsContext> tls_;     // set by EnableTls before serving
  RefusalObserver refusal_observer_;    // set before serving
  std::unique_ptr<IdleParker> parker_;  // made by BindListener
  // The task queue httplib's accept loop runs, while it runs; null before
  // and after. Resume enqueues on it.
  Mutex queue_mutex_;
  httplib::TaskQueue* queue_ GUARDED_BY(queue_mutex_) = nullptr;
};

}  // namespace wxsession

#endif  // WXSESSION_HTTP_CONNECTIONS_H_
