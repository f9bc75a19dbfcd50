// GuardedServer: see http_connections.h for why.
#include "http_connections.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace wxsession {
namespace {

using Clock = std::chrono::steady_clock;

// How often a connection waiting for its next request checks whether the
// server is stopping: stop() then waits at most this long for idle ones.
constexpr int kStopPollMs = 100;
// Bytes read from the socket at once; requests are parsed a line at a time,
// so reads are buffered (as in httplib's own SocketStream).
constexpr size_t kReadBufferBytes = 4096;
// Bytes of response gathered before a send (see DeadlineSocketStream::write):
// a lookup, an error or a metrics page is one send; larger bodies go out in
// pieces of about this size.
constexpr size_t kWriteBufferBytes = 16 * 1024;
// Request line plus headers, in bytes: as nginx's default
// large_client_header_buffers (4 x 8 KiB). httplib 0.11 limits one line but
// not how many there are.
constexpr size_t kMaxHeaderBytes = 32 * 1024;
// The first byte of a TLS record carrying a handshake (ClientHello).
constexpr unsigned char kTlsHandshakeRecord = 0x16;

thread_local bool close_after_response = false;

// Waits up to `timeout_ms` for `events` on `sock`. >0 ready, 0 timeout,
// <0 error.
int WaitFor(int sock, short events, int timeout_ms) {
  pollfd pfd{sock, events, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, std::max(0, timeout_ms));
  } while (rc < 0 && errno == EINTR);
  if (rc > 0 && (pfd.revents & (POLLERR | POLLNVAL)) != 0 &&
      (pfd.revents & events) == 0) {
    return -1;
  }
  return rc;
}

int Milliseconds(time_t sec, time_t usec) {
  return static_cast<int>(sec * 1000 + usec / 1000);
}

void AddressOf(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    port = ntohs(v4->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    port = ntohs(v6->sin6_port);
  }
  ip = text;
}

// A connection's socket as httplib reads and writes it, with a deadline on
// the whole of each request's arrival.
class DeadlineSocketStream : public httplib::Stream {
 public:
  DeadlineSocketStream(int sock, int read_timeout_ms, int write_timeout_ms)
      : sock_(sock),
        read_timeout_ms_(read_timeout_ms),
        write_timeout_ms_(write_timeout_ms) {}

  // Waits up to `idle_ms` for the next request to start; false when none
  // comes, the peer closed, or `server_socket` shows the server stopping.
  bool WaitForRequest(int idle_ms, const std::atomic<socket_t>& server_socket) {
    if (offset_ < length_) return true;  // a pipelined request is buffered
    auto until = Clock::now() + std::chrono::milliseconds(idle_ms);
    while (server_socket != INVALID_SOCKET) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      until - Clock::now())
                      .count();
      if (left <= 0) return false;
      int rc = WaitFor(sock_, POLLIN,
                       static_cast<int>(std::min<int64_t>(left, kStopPollMs)));
      if (rc < 0) return false;
      if (rc > 0) return true;
    }
    return false;
  }

  // The request's first byte is here: the rest must follow within
  // `seconds`, and its headers may take at most kMaxHeaderBytes.
  void BeginRequest(int seconds) {
    deadline_ = Clock::now() + std::chrono::seconds(seconds);
    in_headers_ = true;
    header_bytes_ = 0;
  }

  // The headers are parsed; what is read from here on is the body.
  void EndHeaders() { in_headers_ = false; }

  // True after a read failed (timeout, deadline, header cap): whatever
  // httplib answered, the rest of the connection cannot be trusted.
  bool failed() const { return failed_; }

  // True when the next byte starts a TLS handshake: a client speaking
  // HTTPS to the plain port, which no HTTP parse can help.
  bool StartsWithTls() {
    if (offset_ >= length_) {
      ssize_t n = Receive(buffer_, kReadBufferBytes);
      if (n <= 0) return false;
      offset_ = 0;
      length_ = static_cast<size_t>(n);
    }
    return static_cast<unsigned char>(buffer_[offset_]) == kTlsHandshakeRecord;
  }

  bool is_readable() const override {
    if (offset_ < length_ || WaitFor(sock_, POLLIN, ReadWaitMs()) > 0) {
      return true;
    }
    failed_ = true;
    return false;
  }

  bool is_writable() const override {
    return WaitFor(sock_, POLLOUT, write_timeout_ms_) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    // Whatever was written must reach the peer before we wait on it (an
    // interim "100 Continue" the client waits for before its body).
    if (!Flush()) return -1;
    if (in_headers_) {
      if (header_bytes_ >= kMaxHeaderBytes) {
        failed_ = true;
        return -1;
      }
      size = std::min(size, kMaxHeaderBytes - header_bytes_);
      ssize_t n = ReadBuffered(ptr, size);
      if (n > 0) header_bytes_ += static_cast<size_t>(n);
      return n;
    }
    return ReadBuffered(ptr, size);
  }

  ssize_t ReadBuffered(char* ptr, size_t size) {
    if (offset_ < length_) {
      size_t n = std::min(size, length_ - offset_);
      std::memcpy(ptr, buffer_ + offset_, n);
      offset_ += n;
      return static_cast<ssize_t>(n);
    }
    if (WaitFor(sock_, POLLIN, ReadWaitMs()) <= 0) {
      failed_ = true;
      return -1;
    }
    if (size >= kReadBufferBytes) return Receive(ptr, size);
    ssize_t n = Receive(buffer_, kReadBufferBytes);
    if (n <= 0) return n;
    offset_ = 0;
    length_ = static_cast<size_t>(n);
    return ReadBuffered(ptr, size);
  }

  // Writes are gathered and sent when the request is done (Flush), before
  // any read, or once kWriteBufferBytes have gathered. httplib writes the
  // status line and headers, then the body, as two writes: sent as they
  // came, that is two TCP segments with TCP_NODELAY and two wakeups of the
  // client for a small answer (a lookup's JSON); gathered, it is one send.
  ssize_t write(const char* ptr, size_t size) override {
    if (out_.size() + size > kWriteBufferBytes && !Flush()) return -1;
    if (size >= kWriteBufferBytes) return SendAll(ptr, size) ? size : -1;
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }

  // Sends whatever write() gathered; false when the peer cannot take it
  // within the write timeout (the connection is then done).
  bool Flush() {
    if (out_.empty()) return true;
    const bool sent = SendAll(out_.data(), out_.size());
    out_.clear();
    if (!sent) failed_ = true;
    return sent;
  }

  // A connection's addresses never change, so each is looked up once (a
  // getpeername/getsockname and a conversion to text) rather than for every
  // request on a kept-alive connection; httplib asks for both each time.
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    if (!remote_.known) {
      Lookup(::getpeername, remote_);
    }
    ip = remote_.ip;
    port = remote_.port;
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (!local_.known) {
      Lookup(::getsockname, local_);
    }
    ip = local_.ip;
    port = local_.port;
  }

  socket_t socket() const override { return sock_; }

 private:
  bool SendAll(const char* data, size_t size) {
    while (size > 0) {
      if (!is_writable()) return false;
      ssize_t n;
      do {
        n = ::send(sock_, data, size, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  struct Endpoint {
    bool known = false;
    std::string ip;
    int port = 0;
  };

  template <class Query>
  void Lookup(Query query, Endpoint& endpoint) const {
    sockaddr_storage addr{};
    socklen_t length = sizeof(addr);
    if (query(sock_, reinterpret_cast<sockaddr*>(&addr), &length) == 0) {
      AddressOf(addr, endpoint.ip, endpoint.port);
      endpoint.known = true;
    }
  }

  // A read waits for the per-read timeout, but never past the deadline.
  int ReadWaitMs() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline_ - Clock::now())
                    .count();
    return static_cast<int>(
        std::max<int64_t>(0, std::min<int64_t>(left, read_timeout_ms_)));
  }

  ssize_t Receive(char* into, size_t size) {
    ssize_t n;
    do {
      n = ::recv(sock_, into, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  const int sock_;
  const int read_timeout_ms_;
  const int write_timeout_ms_;
  Clock::time_point deadline_ = Clock::now();
  bool in_headers_ = false;
  mutable bool failed_ = false;  // set by const is_readable() too
  size_t header_bytes_ = 0;
  char buffer_[kReadBufferBytes];
  size_t offset_ = 0;
  size_t length_ = 0;
  std::string out_;  // written, not yet sent (see write)
  mutable Endpoint remote_;  // filled by the first get_remote_ip_and_port
  mutable Endpoint local_;   // filled by the first get_local_ip_and_port
};

}  // namespace

// --- GuardedServer -------------------------------------------------------

GuardedServer::GuardedServer() : limits_() {}

GuardedServer::GuardedServer(Limits limits) : limits_(std::move(limits)) {}

void GuardedServer::CloseAfterResponse() { close_after_response = true; }

bool GuardedServer::process_and_close_socket(socket_t sock) {
  close_after_response = false;
  DeadlineSocketStream stream(sock,
                              Milliseconds(read_timeout_sec_, read_timeout_usec_),
                              Milliseconds(write_timeout_sec_,
                                           write_timeout_usec_));
  const int idle_ms = Milliseconds(keep_alive_timeout_sec_, 0);
  bool ok = false;
  bool first = true;
  for (size_t left = keep_alive_max_count_; left > 0; --left) {
    if (!stream.WaitForRequest(idle_ms, svr_sock_)) break;
    if (first && stream.StartsWithTls()) break;  // nothing to answer in HTTP
    first = false;
    stream.BeginRequest(limits_.request_read_seconds);
    bool connection_closed = false;
    ok = process_request(stream, /*close_connection=*/left == 1,
                         connection_closed,
                         [&stream](httplib::Request&) { stream.EndHeaders(); });
    if (!stream.Flush()) ok = false;
    if (!ok || connection_closed || close_after_response || stream.failed()) {
      break;
    }
  }
  close_after_response = false;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace wxsession
