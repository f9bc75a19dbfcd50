// GuardedServer: the cpp-httplib server API v1 runs on, hardened against
// idle, slow and too many clients (adapter-internal).
//
// cpp-httplib 0.11 serves each connection on one thread for the connection's
// whole life, and its ThreadPool has a fixed size and a FIFO queue. So 200
// connections that open and send nothing (or half a header) hold every
// worker, and a real client queues behind them until they time out: 60 s
// and more with 16 workers (docs/SECURITY.md has the numbers). GuardedServer
// changes three things:
//
//  1. Threads grow on demand. ElasticThreadPool keeps `min_threads` ready and
//     starts another whenever a connection arrives and none is idle, up to
//     `max_connections`. Threads stay once started: each holds its own
//     SQLite connection (sqlite_store.cc), so letting them come and go would
//     leak connections.
//  2. Past `max_connections` open connections, a new one is answered at once
//     with `overload_response` (built by http_api.cc: 429 rate_limited) and
//     closed, by one dedicated thread, instead of waiting in a queue.
//  3. Reads are bounded in total, not only per recv(): once the first byte
//     of a request arrives, its headers and body must arrive within
//     `request_read_seconds`, so a client dribbling a byte every few seconds
//     (slowloris) frees its thread after that long. A connection that sends
//     nothing is closed after the keep-alive timeout, as before; the wait
//     polls for the server stopping every 100 ms, so stop() does not wait
//     for idle connections.
//
// It does so by serving each accepted socket itself (a Stream over the
// socket handed to httplib's protected process_request), the extension
// point cpp-httplib's own SSLServer uses.
//
// Thread-safety: like httplib::Server. CloseAfterResponse may be called from
// any handler; it affects the connection of the calling thread.
#ifndef WXSESSION_HTTP_CONNECTIONS_H_
#define WXSESSION_HTTP_CONNECTIONS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "httplib_server.h"

namespace wxsession {

// An httplib::TaskQueue that starts threads on demand (see above). Jobs
// beyond `max_threads` busy threads go to `overflow`, which runs them on its
// own single thread with IsOverflowThread() true.
class ElasticThreadPool : public httplib::TaskQueue {
 public:
  ElasticThreadPool(size_t min_threads, size_t max_threads);
  ~ElasticThreadPool() override;

  void enqueue(std::function<void()> job) override;
  // Lets running jobs finish, then joins every thread. Idempotent.
  void shutdown() override;

  // True on the thread that runs jobs past the limit.
  static bool IsOverflowThread();

  size_t threads() const;  // started so far
  size_t busy() const;     // running a job now

 private:
  void Work();
  void WorkOverflow();

  const size_t max_threads_;  // constant after construction
  mutable std::mutex mutex_;
  std::condition_variable wake_;           // with mutex_: jobs_ or stopping_
  std::condition_variable overflow_wake_;  // with mutex_: overflow_ or stopping_
  std::deque<std::function<void()>> jobs_;      // guarded by mutex_
  std::deque<std::function<void()>> overflow_;  // guarded by mutex_
  std::vector<std::thread> threads_;            // guarded by mutex_
  std::thread overflow_thread_;                 // started in the constructor
  size_t idle_ = 0;                             // guarded by mutex_
  bool stopping_ = false;                       // guarded by mutex_
};

class GuardedServer : public DeepBacklogServer {
 public:
  struct Limits {
    size_t min_threads = 16;
    size_t max_connections = 512;
    // Seconds from a request's first byte until its headers and body must
    // have arrived.
    int request_read_seconds = 10;
    // Raw HTTP response written to a connection past max_connections.
    std::string overload_response;
    // Called from the overflow thread after each refused connection with
    // the running count (the caller rate-limits its logging).
    std::function<void(uint64_t refused)> on_overload;
  };

  explicit GuardedServer(Limits limits);

  // The connection serving the calling thread's request closes after this
  // response (used when part of a request may be left unread).
  static void CloseAfterResponse();

  // Connections being served right now (for tests and metrics).
  size_t open_connections() const { return open_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;
  void Refuse(socket_t sock);

  const Limits limits_;  // constant after construction
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace wxsession

#endif  // WXSESSION_HTTP_CONNECTIONS_H_
