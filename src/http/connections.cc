// GuardedServer: see http_connections.h for why.
#include "http/connections.h"
#include "wxsession/thread_annotations.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/framing.h"
#include "wxsession/status.h"

namespace wxsession {
namespace {

using Clock = std::chrono::steady_clock;

// Bytes read from the socket (or TLS) at once.
constexpr size_t kReadBufferBytes = 16 * 1024;
// Bytes of response gathered before a send (see Connection::Write): a
// lookup, an error or a metrics page is one send; larger bodies go out in
// pieces of about this size.
constexpr size_t kWriteBufferBytes = 16 * 1024;
// The body a connection buffers when the server sets no payload limit of
// its own (httplib's default is unlimited): every server here takes small
// JSON bodies.
constexpr size_t kDefaultMaxBodyBytes = 1024 * 1024;
// How long a connection with nothing to read keeps its thread before it is
// parked (IdleParker), in milliseconds. A client that sends its next
// request as soon as it has the answer (a pooled HTTP client, a proxy's
// upstream keep-alive under load) is then served without the park and
// resume, which cost two thread handoffs and two epoll_ctl calls per
// request: parking at once halved lookups/s with 32 keep-alive clients
// (43k against 87k). Short enough that a flood of idle connections holds
// few threads: each holds one for at most this long.
constexpr int kParkAfterIdleMs = 5;
// Parked connections at which a later fall to a tenth of them trims malloc
// (IdleParker::Run): a wave this large is a flood, not daily traffic.
constexpr size_t kTrimAfterParked = 1000;
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

int MillisecondsUntil(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - Clock::now())
                  .count();
  return static_cast<int>(std::max<int64_t>(
      0, std::min<int64_t>(left, std::numeric_limits<int>::max())));
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

// --- Transports: the bytes of one connection, plain or TLS ---------------

class Transport {
 public:
  virtual ~Transport() = default;
  // Waits up to `timeout_ms` for something to read (bytes TLS has already
  // decrypted count). >0 ready, 0 timeout, <0 error.
  virtual int WaitReadable(int timeout_ms) = 0;
  // Reads what is there, waiting up to `timeout_ms` for it: >0 bytes, 0
  // when the peer closed, <0 on timeout or error.
  virtual ssize_t Read(char* into, size_t size, int timeout_ms) = 0;
  // Sends all of `data`, each wait for the peer at most `timeout_ms`.
  virtual bool WriteAll(const char* data, size_t size, int timeout_ms) = 0;
};

class PlainTransport : public Transport {
 public:
  explicit PlainTransport(int sock) : sock_(sock) {}

  int WaitReadable(int timeout_ms) override {
    return WaitFor(sock_, POLLIN, timeout_ms);
  }

  ssize_t Read(char* into, size_t size, int timeout_ms) override {
    if (WaitFor(sock_, POLLIN, timeout_ms) <= 0) return -1;
    ssize_t n;
    do {
      n = ::recv(sock_, into, size, 0);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  // Looks at the next byte without taking it; -1 when none comes in time.
  int Peek(int timeout_ms) {
    if (WaitFor(sock_, POLLIN, timeout_ms) <= 0) return -1;
    unsigned char byte = 0;
    ssize_t n;
    do {
      n = ::recv(sock_, &byte, 1, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? byte : -1;
  }

  bool WriteAll(const char* data, size_t size, int timeout_ms) override {
    while (size > 0) {
      if (WaitFor(sock_, POLLOUT, timeout_ms) <= 0) return false;
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

 private:
  const int sock_;
};

// TLS over a non-blocking socket: OpenSSL asks to be called again when it
// wants to read or write, and each such wait is a poll with a timeout.
class TlsTransport : public Transport {
 public:
  TlsTransport(SSL_CTX* ctx, int sock) : sock_(sock), ssl_(SSL_new(ctx)) {
    if (ssl_ != nullptr) {
      SSL_set_fd(ssl_, sock);
      SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
  }
  ~TlsTransport() override {
    if (ssl_ == nullptr) return;
    if (handshaken_) SSL_shutdown(ssl_);  // one close_notify; no wait
    SSL_free(ssl_);
  }

  // The server's side of the handshake, finished by `deadline` or failed.
  bool Handshake(Clock::time_point deadline) {
    if (ssl_ == nullptr) return false;
    while (true) {
      ERR_clear_error();
      const int rc = SSL_accept(ssl_);
      if (rc == 1) {
        handshaken_ = true;
        return true;
      }
      if (!WaitForRetry(SSL_get_error(ssl_, rc), MillisecondsUntil(deadline))) {
        return false;
      }
    }
  }

  int WaitReadable(int timeout_ms) override {
    if (SSL_pending(ssl_) > 0) return 1;
    return WaitFor(sock_, POLLIN, timeout_ms);
  }

  ssize_t Read(char* into, size_t size, int timeout_ms) override {
    const int chunk = static_cast<int>(
        std::min<size_t>(size, std::numeric_limits<int>::max()));
    while (true) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, into, chunk);
      if (n > 0) return n;
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify
      if (!WaitForRetry(error, timeout_ms)) return -1;
    }
  }

  bool WriteAll(const char* data, size_t size, int timeout_ms) override {
    while (size > 0) {
      const int chunk = static_cast<int>(
          std::min<size_t>(size, std::numeric_limits<int>::max()));
      ERR_clear_error();
      const int n = SSL_write(ssl_, data, chunk);
      if (n > 0) {
        data += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      if (!WaitForRetry(SSL_get_error(ssl_, n), timeout_ms)) return false;
    }
    return true;
  }

 private:
  // After a call that could not finish: waits for what OpenSSL wants.
  // False for any other error, or when the wait times out.
  bool WaitForRetry(int error, int timeout_ms) {
    if (error == SSL_ERROR_WANT_READ) {
      return WaitFor(sock_, POLLIN, timeout_ms) > 0;
    }
    if (error == SSL_ERROR_WANT_WRITE) {
      return WaitFor(sock_, POLLOUT, timeout_ms) > 0;
    }
    return false;
  }

  const int sock_;
  SSL* const ssl_;
  bool handshaken_ = false;
};

// --- Connection: buffered reads with a deadline, gathered writes ---------

class Connection {
 public:
  Connection(Transport& transport, int sock, int read_timeout_ms,
             int write_timeout_ms)
      : transport_(transport),
        sock_(sock),
        read_timeout_ms_(read_timeout_ms),
        write_timeout_ms_(write_timeout_ms) {}

  // Bytes already read (or decrypted) and not yet used: a pipelined
  // request, or the start of one.
  bool HasBuffered() const { return offset_ < length_; }

  // Gives back the read buffer and the write buffer's memory while the
  // connection is idle (a parked connection keeps neither).
  void ReleaseIdleMemory() {
    if (offset_ == length_) buffer_.reset();
    std::string().swap(out_);
  }

  // The request's first byte is here: the rest must follow within
  // `seconds`.
  void BeginRequest(int seconds) {
    deadline_ = Clock::now() + std::chrono::seconds(seconds);
  }

  enum class Read { kOk, kTooLarge, kFailed };

  // Reads one request head, through the empty line that ends it, into
  // `*head`. Empty lines before it are skipped (RFC 9112 section 2.2).
  // kTooLarge past kMaxRequestHeadBytes; kFailed when the peer closes or the
  // deadline passes first.
  Read ReadHead(std::string* head) {
    head->clear();
    size_t skipped = 0;
    while (true) {
      if (offset_ == length_ && !Fill()) return Read::kFailed;
      const size_t before = head->size();
      head->append(buffer_.get() + offset_, length_ - offset_);
      size_t drop = 0;  // leading empty lines
      while (head->size() - drop >= 2 && head->compare(drop, 2, "\r\n") == 0) {
        drop += 2;
      }
      if (drop > 0) {
        head->erase(0, drop);
        skipped += drop;
        if (skipped > kMaxRequestHeadBytes) return Read::kTooLarge;
      }
      const size_t search_from = before > drop + 3 ? before - drop - 3 : 0;
      const size_t end = head->find("\r\n\r\n", search_from);
      if (end != std::string::npos) {
        // Give back what follows the head: the body, or the next request.
        const size_t kept = end + 4;
        const size_t taken_here = kept + drop - before;
        offset_ += taken_here;
        head->resize(kept);
        return kept > kMaxRequestHeadBytes ? Read::kTooLarge : Read::kOk;
      }
      offset_ = length_;
      if (head->size() > kMaxRequestHeadBytes) return Read::kTooLarge;
      // A bare LF can never be part of a head that parses: stop waiting for
      // an end that may never come, and let the parser refuse it.
      for (size_t i = search_from; i < head->size(); ++i) {
        if ((*head)[i] == '\n' && (i == 0 || (*head)[i - 1] != '\r')) {
          return Read::kOk;
        }
      }
    }
  }

  // Reads exactly `size` body bytes into `*body`; false when the peer
  // closes or the deadline passes first.
  bool ReadBody(size_t size, std::string* body) {
    body->clear();
    body->reserve(size);
    while (body->size() < size) {
      if (offset_ == length_ && !Fill()) return false;
      const size_t n = std::min(size - body->size(), length_ - offset_);
      body->append(buffer_.get() + offset_, n);
      offset_ += n;
    }
    return true;
  }

  // Feeds `decoder` until the chunked body ends (kDone), is refused
  // (kError), or the peer closes or the deadline passes (kNeedMore).
  ChunkedBodyDecoder::State ReadChunked(ChunkedBodyDecoder& decoder) {
    while (true) {
      if (offset_ == length_ && !Fill()) {
        return ChunkedBodyDecoder::State::kNeedMore;
      }
      size_t consumed = 0;
      const ChunkedBodyDecoder::State state = decoder.Feed(
          std::string_view(buffer_.get() + offset_, length_ - offset_),
          &consumed);
      offset_ += consumed;
      if (state != ChunkedBodyDecoder::State::kNeedMore) return state;
    }
  }

  // Writes are gathered and sent when the response is done (Flush), before
  // any read, or once kWriteBufferBytes have gathered. httplib writes the
  // status line and headers, then the body: sent as they came, that is two
  // TCP segments with TCP_NODELAY and two wakeups of the client for a small
  // answer (a lookup's JSON); gathered, it is one send.
  ssize_t Write(const char* data, size_t size) {
    if (out_.size() + size > kWriteBufferBytes && !Flush()) return -1;
    if (size >= kWriteBufferBytes) {
      if (!transport_.WriteAll(data, size, write_timeout_ms_)) {
        failed_ = true;
        return -1;
      }
      return static_cast<ssize_t>(size);
    }
    out_.append(data, size);
    return static_cast<ssize_t>(size);
  }

  // Sends whatever Write gathered; false when the peer cannot take it in
  // time (the connection is then done).
  bool Flush() {
    if (out_.empty()) return !failed_;
    const bool sent =
        transport_.WriteAll(out_.data(), out_.size(), write_timeout_ms_);
    out_.clear();
    if (!sent) failed_ = true;
    return sent;
  }

  bool Writable() const {
    return !failed_ && WaitFor(sock_, POLLOUT, write_timeout_ms_) > 0;
  }

  bool failed() const { return failed_; }

  // A connection's addresses never change, so each is looked up once (a
  // getpeername/getsockname and a conversion to text) rather than for every
  // request on a kept-alive connection; httplib asks for both each time.
  void RemoteAddress(std::string& ip, int& port) const {
    if (!remote_.known) Lookup(::getpeername, remote_);
    ip = remote_.ip;
    port = remote_.port;
  }
  void LocalAddress(std::string& ip, int& port) const {
    if (!local_.known) Lookup(::getsockname, local_);
    ip = local_.ip;
    port = local_.port;
  }

  int socket() const { return sock_; }

 private:
  // Reads more into the (empty) buffer, waiting no longer than the read
  // timeout and never past the deadline. Whatever was written is sent
  // first: the peer may be waiting for it (an interim 100 Continue).
  bool Fill() {
    if (!Flush()) return false;
    const int wait = std::min(read_timeout_ms_, MillisecondsUntil(deadline_));
    if (!buffer_) buffer_ = std::make_unique<char[]>(kReadBufferBytes);
    const ssize_t n = transport_.Read(buffer_.get(), kReadBufferBytes, wait);
    if (n <= 0) {
      failed_ = true;
      return false;
    }
    offset_ = 0;
    length_ = static_cast<size_t>(n);
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

  Transport& transport_;
  const int sock_;
  const int read_timeout_ms_;
  const int write_timeout_ms_;
  Clock::time_point deadline_ = Clock::now();
  bool failed_ = false;
  // kReadBufferBytes, made by the first read after the connection was idle.
  std::unique_ptr<char[]> buffer_;
  size_t offset_ = 0;  // buffer_[offset_, length_) is read, not yet used
  size_t length_ = 0;
  std::string out_;          // written, not yet sent (see Write)
  mutable Endpoint remote_;  // filled by the first RemoteAddress
  mutable Endpoint local_;   // filled by the first LocalAddress
};

// What httplib reads and writes for one request: the canonical request
// from memory (http_framing.h), and writes gathered on the connection.
// What httplib leaves unread of the request goes away with this object.
class CanonicalRequestStream : public httplib::Stream {
 public:
  CanonicalRequestStream(Connection& connection, std::string request)
      : connection_(connection), request_(std::move(request)) {}

  bool is_readable() const override { return offset_ < request_.size(); }
  bool is_writable() const override { return connection_.Writable(); }

  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, request_.size() - offset_);
    std::memcpy(ptr, request_.data() + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    return connection_.Write(ptr, size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    connection_.RemoteAddress(ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    connection_.LocalAddress(ip, port);
  }
  socket_t socket() const override { return connection_.socket(); }

 private:
  Connection& connection_;
  const std::string request_;
  size_t offset_ = 0;
};

const char* ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

// Appends `text` as a JSON string (the messages here are ASCII sentences of
// our own, but escape anyway).
void AppendJsonString(std::string& out, const std::string& text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  out += '"';
}

}  // namespace

// --- GuardedServer -------------------------------------------------------

struct GuardedServer::TlsContext {
  SSL_CTX* ctx = nullptr;
  ~TlsContext() { SSL_CTX_free(ctx); }
};

// SO_REUSEADDR only (a restart may bind over TIME_WAIT connections), never
// httplib's default SO_REUSEPORT: with it a second server on the same port
// started without error, and the kernel split connections between the two.
void ExclusiveSocketOptions(socket_t sock) {
  int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

GuardedServer::GuardedServer() : GuardedServer(Limits()) {}

GuardedServer::GuardedServer(Limits limits) : limits_(limits) {
  set_socket_options(ExclusiveSocketOptions);
}

Result<int> GuardedServer::BindListener(const std::string& host, int port) {
  errno = 0;
  const int bound = port == 0 ? bind_to_any_port(host)
                              : (bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    const int error = errno;
    const std::string where = host + ":" + std::to_string(port);
    if (error == EADDRINUSE) {
      return Status(ErrorCode::kInternal,
                    "cannot listen on " + where +
                        ": address already in use (is another wxsessiond "
                        "running there?)");
    }
    return Status(ErrorCode::kInternal,
                  "cannot listen on " + where + ": " +
                      (error != 0 ? std::strerror(error)
                                  : "not an address of this machine"));
  }
  DeepenBacklog();
  StartParking();
  return bound;
}

GuardedServer::~GuardedServer() {
  parker_.reset();  // before the members its callback uses
}

void GuardedServer::CloseAfterResponse() { close_after_response = true; }

bool GuardedServer::EnableTls(const std::string& cert_file,
                              const std::string& key_file, std::string* error) {
  auto tls = std::make_unique<TlsContext>();
  tls->ctx = SSL_CTX_new(TLS_server_method());
  const std::string files = cert_file + " and " + key_file;
  if (tls->ctx == nullptr) {
    *error = "OpenSSL cannot make a TLS context";
    return false;
  }
  SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
  // No renegotiation and no session tickets to rotate: each connection
  // does one full handshake, which is what the deadline bounds.
  SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  // An idle TLS connection gives back OpenSSL's read and write buffers
  // (about 34 KiB): thousands of them may be parked.
  SSL_CTX_set_mode(tls->ctx, SSL_MODE_RELEASE_BUFFERS);
  // No server-side session cache: OpenSSL keeps up to 20,480 sessions for
  // resumption by default, and after a flood of 5,000 TLS connections it
  // held 30 MiB for the cache's 5 minutes. A full handshake per connection
  // is what the idle-connection limits are measured with.
  SSL_CTX_set_session_cache_mode(tls->ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(tls->ctx, key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(tls->ctx) != 1) {
    ERR_clear_error();
    *error = "cannot load a certificate and its private key from " + files +
             " (PEM files, the key matching the certificate)";
    return false;
  }
  tls_ = std::move(tls);
  return true;
}

// --- Parking idle connections -------------------------------------------

// One connection, with everything that must outlive the thread serving it
// while it is parked.
struct GuardedServer::LiveConnection {
  LiveConnection(int socket, std::unique_ptr<Transport> transport_in,
                 int read_timeout_ms, int write_timeout_ms, size_t max_requests)
      : sock(socket),
        transport(std::move(transport_in)),
        connection(*transport, socket, read_timeout_ms, write_timeout_ms),
        requests_left(max_requests) {}
  ~LiveConnection() {
    transport.reset();  // TLS: close_notify before the socket goes
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }

  const int sock;
  std::unique_ptr<Transport> transport;
  Connection connection;  // reads and writes through *transport
  size_t requests_left;
  bool tls_handshaken = false;
  bool first_request = true;
  uint64_t park_id = 0;  // which parking this is (see IdleParker)
};

// Waits, on one thread, for any parked connection to become readable, and
// hands it back through `resume`; closes those idle longer than `idle_ms`,
// and the longest-idle one when `max_parked` are parked.
//
// Thread-safety: Park and CloseAll may be called from any thread.
class GuardedServer::IdleParker {
 public:
  using Resume = std::function<void(std::unique_ptr<LiveConnection>)>;

  IdleParker(int idle_ms, size_t max_parked, Resume resume)
      : idle_ms_(idle_ms),
        max_parked_(std::max<size_t>(1, max_parked)),
        resume_(std::move(resume)),
        epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
        wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // the wake-up eventfd
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
    thread_ = std::thread([this] { Run(); });
  }

  ~IdleParker() {
    {
      MutexLock lock(mutex_);
      exiting_ = true;
    }
    Wake();
    thread_.join();
    parked_.clear();  // closes whatever is left
    ::close(epoll_fd_);
    ::close(wake_fd_);
  }

  // Takes `live` until its next request starts. After CloseAll, or when
  // epoll refuses it, the connection closes instead.
  void Park(std::unique_ptr<LiveConnection> live) {
    live->connection.ReleaseIdleMemory();
    MutexLock lock(mutex_);
    if (closed_) return;  // `live` closes on return
    LiveConnection* raw = live.get();
    raw->park_id = ++next_park_id_;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    event.data.ptr = raw;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, raw->sock, &event) != 0) return;
    parked_.emplace(raw, std::move(live));
    expiries_.push_back({Clock::now() + std::chrono::milliseconds(idle_ms_),
                         raw, raw->park_id});
    // Past the cap the longest-idle connection makes room: it has sent
    // nothing for the longest time, and a new one may be a real client.
    while (parked_.size() > max_parked_ && !expiries_.empty()) {
      Expiry oldest = expiries_.front();
      expiries_.pop_front();
      TakeLocked(oldest.connection, oldest.park_id);  // closes on return
    }
  }

  // Closes every parked connection, and every one parked from now on.
  void CloseAll() {
    std::unordered_map<LiveConnection*, std::unique_ptr<LiveConnection>> all;
    {
      MutexLock lock(mutex_);
      closed_ = true;
      all.swap(parked_);
      expiries_.clear();
    }
    for (auto& [raw, live] : all) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, raw->sock, nullptr);
    }
  }

  size_t Parked() const {
    MutexLock lock(mutex_);
    return parked_.size();
  }

 private:
  struct Expiry {
    Clock::time_point at;
    LiveConnection* connection;
    uint64_t park_id;  // the parking this expiry belongs to
  };

  void Wake() {
    const uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }

  // Removes `raw` from the parked set if it is still in the parking
  // `park_id`, and returns it (nullptr otherwise).
  std::unique_ptr<LiveConnection> TakeLocked(LiveConnection* raw,
                                             uint64_t park_id)
      REQUIRES(mutex_) {
    auto found = parked_.find(raw);
    if (found == parked_.end() || found->second->park_id != park_id) {
      return nullptr;
    }
    std::unique_ptr<LiveConnection> live = std::move(found->second);
    parked_.erase(found);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, live->sock, nullptr);
    return live;
  }

  void Run() {
    constexpr int kMaxEvents = 256;
    epoll_event events[kMaxEvents];
    while (true) {
      int wait_ms = -1;
      {
        MutexLock lock(mutex_);
        if (exiting_) return;
        if (!expiries_.empty())
          wait_ms = MillisecondsUntil(expiries_.front().at);
      }
      const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
      std::vector<std::unique_ptr<LiveConnection>> ready;
      std::vector<std::unique_ptr<LiveConnection>> expired;
      {
        MutexLock lock(mutex_);
        for (int i = 0; i < n; ++i) {
          auto* raw = static_cast<LiveConnection*>(events[i].data.ptr);
          if (raw == nullptr) {  // the wake-up: drain it
            uint64_t count = 0;
            ssize_t ignored = ::read(wake_fd_, &count, sizeof(count));
            (void)ignored;
            continue;
          }
          auto found = parked_.find(raw);
          if (found == parked_.end()) continue;
          if (auto live = TakeLocked(raw, found->second->park_id)) {
            ready.push_back(std::move(live));
          }
        }
        const auto now = Clock::now();
        while (!expiries_.empty() && expiries_.front().at <= now) {
          Expiry due = expiries_.front();
          expiries_.pop_front();
          if (auto live = TakeLocked(due.connection, due.park_id)) {
            expired.push_back(std::move(live));
          }
        }
      }
      expired.clear();  // idle past the keep-alive timeout: closed
      for (auto& live : ready) resume_(std::move(live));
      // Once a wave of idle connections has gone (a flood ended), give the
      // memory they held back to the system: freed blocks otherwise stay in
      // malloc's per-thread arenas.
      size_t parked_now;
      {
        MutexLock lock(mutex_);
        parked_now = parked_.size();
      }
      peak_parked_ = std::max(peak_parked_, parked_now);
      if (peak_parked_ >= kTrimAfterParked && parked_now < peak_parked_ / 10) {
        peak_parked_ = parked_now;
        ::malloc_trim(0);
      }
    }
  }

  const int idle_ms_;        // constant after construction
  const size_t max_parked_;  // constant after construction
  const Resume resume_;      // constant after construction
  const int epoll_fd_;       // constant after construction
  const int wake_fd_;        // constant after construction
  std::thread thread_;
  mutable Mutex mutex_;
  // Parked connections, owned here until resumed or closed.
  std::unordered_map<LiveConnection*, std::unique_ptr<LiveConnection>> parked_
      GUARDED_BY(mutex_);
  // One entry per parking, oldest first (every parking lasts idle_ms_, so
  // parking order is expiry order); stale entries are skipped by park_id.
  std::deque<Expiry> expiries_ GUARDED_BY(mutex_);
  uint64_t next_park_id_ GUARDED_BY(mutex_) = 0;
  // The parker thread's own: the most connections parked since malloc was
  // last trimmed.
  size_t peak_parked_ = 0;
  bool closed_ GUARDED_BY(mutex_) = false;
  bool exiting_ GUARDED_BY(mutex_) = false;
};

// The task queue httplib's accept loop runs connections on, wrapped so that
// the parker can hand connections back to it while it runs, and so that
// its shutdown (the end of the accept loop) closes every parked
// connection first.
class GuardedServer::ParkingQueue : public httplib::TaskQueue {
 public:
  ParkingQueue(httplib::TaskQueue* inner, GuardedServer* server)
      : inner_(inner), server_(server) {
    MutexLock lock(server_->queue_mutex_);
    server_->queue_ = this;
  }
  ~ParkingQueue() override = default;

  void enqueue(std::function<void()> job) override {
    inner_->enqueue(std::move(job));
  }

  void shutdown() override {
    server_->StopParking();
    inner_->shutdown();
  }

  void on_idle() override { inner_->on_idle(); }

 private:
  std::unique_ptr<httplib::TaskQueue> inner_;
  GuardedServer* const server_;
};

void GuardedServer::StartParking() {
  if (parker_) return;
  parker_ = std::make_unique<IdleParker>(
      Milliseconds(keep_alive_timeout_sec_, 0), limits_.max_parked,
      [this](std::unique_ptr<LiveConnection> live) {
        Resume(std::move(live));
      });
  // httplib makes the accept loop's task queue when it starts serving;
  // wrapped, the parker can hand connections back to it.
  auto make_inner = new_task_queue;
  new_task_queue = [this, make_inner]() -> httplib::TaskQueue* {
    httplib::TaskQueue* inner =
        make_inner ? make_inner()
                   : new httplib::ThreadPool(CPPHTTPLIB_THREAD_POOL_COUNT);
    return new ParkingQueue(inner, this);
  };
}

size_t GuardedServer::ParkedConnections() const {
  return parker_ ? parker_->Parked() : 0;
}

void GuardedServer::StopParking() {
  {
    MutexLock lock(queue_mutex_);
    queue_ = nullptr;
  }
  if (parker_) parker_->CloseAll();
}

void GuardedServer::Resume(std::unique_ptr<LiveConnection> live) {
  MutexLock lock(queue_mutex_);
  if (queue_ == nullptr) return;  // stopping: `live` closes on return
  // std::function must be copyable: the connection rides in a shared_ptr.
  auto shared =
      std::make_shared<std::unique_ptr<LiveConnection>>(std::move(live));
  queue_->enqueue([this, shared] { Serve(std::move(*shared)); });
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  const int read_timeout_ms =
      Milliseconds(read_timeout_sec_, read_timeout_usec_);
  const int write_timeout_ms =
      Milliseconds(write_timeout_sec_, write_timeout_usec_);
  std::unique_ptr<Transport> transport;
  if (tls_) {
    // OpenSSL's waits are polls; the socket itself must never block.
    ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
    transport = std::make_unique<TlsTransport>(tls_->ctx, sock);
  } else {
    transport = std::make_unique<PlainTransport>(sock);
  }
  Serve(std::make_unique<LiveConnection>(sock, std::move(transport),
                                         read_timeout_ms, write_timeout_ms,
                                         keep_alive_max_count_));
  return true;
}

void GuardedServer::Serve(std::unique_ptr<LiveConnection> live) {
  close_after_response = false;
  Connection& connection = live->connection;
  const size_t max_body =
      payload_max_length_ == std::numeric_limits<size_t>::max()
          ? kDefaultMaxBodyBytes
          : payload_max_length_;
  // Answers a request the connection layer refuses, then the connection
  // closes: after a malformed head nothing that follows can be framed.
  auto refuse = [&](int status, const Status& why) {
    std::string body = "{\"error\":";
    AppendJsonString(body, ErrorCodeName(why.code()));
    body += ",\"message\":";
    AppendJsonString(body, why.message());
    body += '}';
    std::string response = "HTTP/1.1 " + std::to_string(status) + " " +
                           ReasonPhrase(status) +
                           "\r\nContent-Type: application/json"
                           "\r\nConnection: close\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
    connection.Write(response.data(), response.size());
    connection.Flush();
    if (refusal_observer_) {
      std::string ip;
      int port = 0;
      connection.RemoteAddress(ip, port);
      refusal_observer_(status, ErrorCodeName(why.code()), ip);
    }
  };

  std::string head_text;
  std::string body;
  while (live->requests_left > 0) {
    // Nothing to read now: park rather than hold this thread (a stopping
    // server closes instead). A pipelined request already read is served
    // at once.
    if (!connection.HasBuffered() &&
        live->transport->WaitReadable(kParkAfterIdleMs) == 0) {
      if (svr_sock_ == INVALID_SOCKET || !parker_) break;
      parker_->Park(std::move(live));
      return;
    }
    if (tls_ && !live->tls_handshaken) {
      auto* tls = static_cast<TlsTransport*>(live->transport.get());
      if (!tls->Handshake(Clock::now() +
                          std::chrono::seconds(limits_.request_read_seconds))) {
        break;
      }
      live->tls_handshaken = true;
      continue;  // the first request may not have started yet
    }
    // A client speaking HTTPS to the plain port: no HTTP answer can help.
    if (!tls_ && live->first_request &&
        static_cast<PlainTransport*>(live->transport.get())->Peek(0) ==
            kTlsHandshakeRecord) {
      break;
    }
    live->first_request = false;
    const size_t left = live->requests_left--;
    connection.BeginRequest(limits_.request_read_seconds);

    const Connection::Read read = connection.ReadHead(&head_text);
    if (read == Connection::Read::kTooLarge) {
      refuse(431, Status(ErrorCode::kInvalidRequest,
                         "the request line and headers exceed 32 KiB"));
      break;
    }
    if (read != Connection::Read::kOk) break;  // closed or too slow
    Result<RequestHead> head = ParseRequestHead(head_text);
    if (!head.ok()) {
      refuse(400, head.status());
      break;
    }

    if (head->framing == BodyFraming::kContentLength &&
        head->content_length > max_body) {
      refuse(413, Status(ErrorCode::kPayloadTooLarge,
                         "the body is larger than " +
                             std::to_string(max_body / 1024) + " KiB"));
      break;
    }
    if (head->expects_continue) {
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      connection.Write(kContinue, sizeof(kContinue) - 1);
    }
    if (head->framing == BodyFraming::kContentLength) {
      if (!connection.ReadBody(static_cast<size_t>(head->content_length),
                               &body)) {
        break;
      }
    } else if (head->framing == BodyFraming::kChunked) {
      ChunkedBodyDecoder decoder(max_body);
      const ChunkedBodyDecoder::State state = connection.ReadChunked(decoder);
      if (state == ChunkedBodyDecoder::State::kError) {
        refuse(
            decoder.error().code() == ErrorCode::kPayloadTooLarge ? 413 : 400,
            decoder.error());
        break;
      }
      if (state != ChunkedBodyDecoder::State::kDone) break;
      body = decoder.TakeBody();
    } else {
      body.clear();
    }

    CanonicalRequestStream stream(connection,
                                  CanonicalRequest(head.value(), body));
    bool connection_closed = false;
    const bool ok =
        process_request(stream, /*close_connection=*/left == 1,
                        connection_closed, [](httplib::Request&) {});
    if (!connection.Flush() || !ok || connection_closed ||
        close_after_response || connection.failed()) {
      break;
    }
  }
  close_after_response = false;
  // `live` closes here.
}

}  // namespace wxsession
