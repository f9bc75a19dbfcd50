// RedisConnectionPool: a bounded pool of blocking hiredis connections to the
// current Redis master, reached directly (redis://, redis+unix://) or found
// through Redis Sentinel (redis-sentinel://).
//
// A hiredis context is not thread-safe, so a caller borrows one connection
// for one pipeline of commands and gives it back. At most `pool_size`
// connections exist; a caller that finds them all busy waits up to
// `timeout_ms`. Connecting and every reply are bounded by `timeout_ms`.
//
// Failure handling: a connection that fails (refused, reset, timed out, or
// answered READONLY because its server is now a replica) is closed, every
// idle connection of the same generation is dropped with it (a restart or a
// failover kills them all), and with Sentinel the master is looked up again
// on the next connect. A new connection asks Sentinel for the master
// (SENTINEL get-master-addr-by-name), then confirms with ROLE that the server
// really is the master before using it. So a failover costs the requests
// made during it, and service resumes as soon as Sentinel names the new
// master; no restart is needed after Redis returns.
//
// Secrets: the password is sent only in AUTH; no message or log line holds
// it.
//
// Thread-safety: every public method may be called from any thread.
#ifndef WXSESSION_REDIS_REDIS_CONNECTION_H_
#define WXSESSION_REDIS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/store_locator.h"
#include "wxsession/status.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {

struct RedisReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// One command: its name and arguments, binary-safe.
using RedisArgs = std::vector<std::string>;

struct RedisPoolOptions {
  StoreLocator locator;       // a Redis kind; carries the password
  int64_t timeout_ms = 1000;  // connect, and each reply
  int pool_size = 16;         // connections, at most
};

class RedisConnectionPool {
 public:
  // Minimum time after a failed Sentinel lookup (or an unusable master)
  // before the next one, in ms: a dead sentinel set is not asked by every
  // request, yet a failover is seen a fraction of a second after Sentinel
  // announces it.
  static constexpr int64_t kLookupBackoffMs = 100;

  explicit RedisConnectionPool(RedisPoolOptions options);
  ~RedisConnectionPool();
  RedisConnectionPool(const RedisConnectionPool&) = delete;
  RedisConnectionPool& operator=(const RedisConnectionPool&) = delete;

  // Sends `commands` as one pipeline on one connection and returns one reply
  // per command, in order. Error replies are returned as replies; the caller
  // judges them (IsUnavailableErrorReply). Errors: kStoreUnavailable when no
  // connection can be had (refused, timed out, authentication failed, no
  // master known, pool busy for timeout_ms) or the connection fails before
  // every reply arrived.
  //
  // A pipeline may reach Redis twice: when it fails on a connection that sat
  // idle in the pool (most likely closed by a restart or a failover), it is
  // sent once more on a fresh connection. Send only idempotent commands.
  Result<std::vector<RedisReplyPtr>> Pipeline(
      const std::vector<RedisArgs>& commands);

  // Where connections go now, e.g. "redis 127.0.0.1:6379" or "redis master
  // mymaster (via sentinel)". Never holds the password.
  std::string Describe() const;

  // Connections open now (idle and borrowed), for tests.
  int OpenConnections() const;

 private:
  struct Endpoint {
    std::string host;       // TCP
    int port = 0;           // TCP
    std::string unix_path;  // Unix socket
    std::string Text() const;
  };

  struct Connection {
    redisContext* context = nullptr;
    uint64_t generation = 0;
    Endpoint endpoint;
    ~Connection() {
      if (context) redisFree(context);
    }
  };

  struct Lease {
    std::unique_ptr<Connection> connection;
    bool reused = false;  // came from the idle list, not freshly made
  };

  Result<Lease> Borrow();
  void GiveBack(std::unique_ptr<Connection> connection, bool healthy);
  // Drops every connection of `generation` (and, with Sentinel, the known
  // master) unless a newer generation already replaced it.
  void Invalidate(uint64_t generation);

  Result<std::unique_ptr<Connection>> Connect(uint64_t generation);
  // Authenticates, selects the database and names the fresh `connection`;
  // with Sentinel, also checks that it reached the master.
  Status Handshake(Connection& connection, bool sentinel);
  Result<Endpoint> CurrentMaster();
  Result<Endpoint> AskSentinels() REQUIRES(master_mutex_);
  // Makes the next connect ask Sentinel again. With a non-OK `why` (the
  // master Sentinel named could not be used), connects fail fast with `why`
  // for kLookupBackoffMs first, so a failover in progress costs Sentinel a
  // handful of queries per second, not one per request.
  void ForgetMaster(const Status& why);

  // Writes `commands` and reads their replies on `connection`. Errors:
  // kStoreUnavailable naming the endpoint when the connection fails.
  Result<std::vector<RedisReplyPtr>> Exchange(
      Connection& connection, const std::vector<RedisArgs>& commands);

  // " at HOST:PORT" with Sentinel (where the master is changes), else ""
  // (Describe() already names the one server).
  std::string At(const Endpoint& endpoint) const;
  Status Unavailable(const std::string& what) const;

  const RedisPoolOptions options_;  // constant after construction

  mutable Mutex mutex_;
  std::condition_variable released_;  // with mutex_
  std::vector<std::unique_ptr<Connection>> idle_ GUARDED_BY(mutex_);
  int open_ GUARDED_BY(mutex_) = 0;  // idle + borrowed
  uint64_t generation_ GUARDED_BY(mutex_) = 1;

  // Sentinel only. Held while asking the sentinels, so concurrent connects
  // share one lookup.
  Mutex master_mutex_;
  std::optional<Endpoint> master_ GUARDED_BY(master_mutex_);
  size_t preferred_sentinel_ GUARDED_BY(master_mutex_) = 0;
  std::chrono::steady_clock::time_point failed_at_ GUARDED_BY(master_mutex_);
  std::optional<Status> last_lookup_error_ GUARDED_BY(master_mutex_);
};

// Whether an error reply means "this server cannot serve right now"
// (READONLY, LOADING, MASTERDOWN, OOM, MISCONF, auth...) rather than a bug.
bool IsUnavailableErrorReply(const redisReply& reply);

// The error text of an error reply, cut to a length fit for a message.
std::string ErrorReplyText(const redisReply& reply);

}  // namespace wxsession

#endif  // WXSESSION_REDIS_REDIS_CONNECTION_H_
