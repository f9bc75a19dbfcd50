#include "store/redis/redis_connection.h"

#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "wxsession/thread_annotations.h"

namespace wxsession {
namespace {

// An error text is the server's or hiredis's words, never ours with data in
// it; 200 characters keep a message on one readable line.
constexpr size_t kMaxErrorText = 200;

// Prefixes of error replies that mean the server cannot serve right now:
// an operator (or a failover) fixes them, no code change does.
constexpr const char* kUnavailablePrefixes[] = {
    "READONLY",     // a replica now: failover happened
    "LOADING",      // loading its data set after a restart
    "MASTERDOWN",   // a replica that lost its master
    "NOREPLICAS",   // min-replicas-to-write not met
    "BUSY",         // a long script is running
    "NOAUTH",       // a password is required
    "WRONGPASS",    // the password is wrong
    "NOPERM",       // the ACL user may not run this
    "OOM",          // maxmemory reached under noeviction
    "MISCONF",      // snapshots failing; writes refused
    "TRYAGAIN",     // cluster resharding
    "CLUSTERDOWN",  // cluster not serving
};

timeval ToTimeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

bool IsError(const redisReply* reply) {
  return reply != nullptr && reply->type == REDIS_REPLY_ERROR;
}

bool StartsWith(const redisReply& reply, const char* prefix) {
  size_t length = std::strlen(prefix);
  return reply.str != nullptr && reply.len >= length &&
         std::strncmp(reply.str, prefix, length) == 0;
}

std::string HostPortText(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// hiredis reports a socket timeout as the errno text of EAGAIN.
std::string ContextErrorText(const redisContext& context, int64_t timeout_ms) {
  std::string text = context.errstr;
  if (context.err == REDIS_ERR_IO &&
      (text == std::strerror(EAGAIN) || text == std::strerror(EWOULDBLOCK))) {
    return "no reply within " + std::to_string(timeout_ms) + " ms";
  }
  if (context.err == REDIS_ERR_EOF) return "the server closed the connection";
  return text.empty() ? "connection failed" : text;
}

// The commands that open a connection: AUTH and SELECT as configured, a
// client name, and with Sentinel a ROLE check.
std::vector<RedisArgs> HandshakeCommands(const StoreLocator& locator,
                                         bool sentinel) {
  std::vector<RedisArgs> handshake;
  if (!locator.password.empty()) {
    handshake.push_back(
        locator.user.empty()
            ? RedisArgs{"AUTH", locator.password}
            : RedisArgs{"AUTH", locator.user, locator.password});
  }
  if (locator.db != 0) {
    handshake.push_back({"SELECT", std::to_string(locator.db)});
  }
  // Lets an operator tell our connections apart in CLIENT LIST.
  handshake.push_back({"CLIENT", "SETNAME", "wxsessiond"});
  if (sentinel) handshake.push_back({"ROLE"});
  return handshake;
}

}  // namespace

bool IsUnavailableErrorReply(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ERROR) return false;
  for (const char* prefix : kUnavailablePrefixes) {
    if (StartsWith(reply, prefix)) return true;
  }
  return false;
}

std::string ErrorReplyText(const redisReply& reply) {
  if (reply.str == nullptr) return "error";
  std::string text(reply.str, std::min(reply.len, kMaxErrorText));
  for (char& c : text) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return text;
}

std::string RedisConnectionPool::Endpoint::Text() const {
  return unix_path.empty() ? HostPortText(host, port) : "unix:" + unix_path;
}

RedisConnectionPool::RedisConnectionPool(RedisPoolOptions options)
    : options_(std::move(options)) {}

RedisConnectionPool::~RedisConnectionPool() = default;

std::string RedisConnectionPool::Describe() const {
  const StoreLocator& locator = options_.locator;
  switch (locator.kind) {
    case StoreKind::kRedisTcp:
      return "redis " + HostPortText(locator.hosts.front().host,
                                     locator.hosts.front().port);
    case StoreKind::kRedisUnix:
      return "redis unix:" + locator.unix_path;
    case StoreKind::kRedisSentinel:
      return "redis master " + locator.master_name + " (via sentinel)";
    case StoreKind::kSqlite:
      break;
  }
  return "redis";
}

int RedisConnectionPool::OpenConnections() const {
  MutexLock lock(mutex_);
  return open_;
}

std::string RedisConnectionPool::At(const Endpoint& endpoint) const {
  if (options_.locator.kind != StoreKind::kRedisSentinel) return "";
  return " at " + endpoint.Text();
}

Status RedisConnectionPool::Unavailable(const std::string& what) const {
  return Status::Fault(ErrorCode::kStoreUnavailable,
                       "session store: " + Describe() + ": " + what);
}

Result<std::vector<RedisReplyPtr>> RedisConnectionPool::Pipeline(
    const std::vector<RedisArgs>& commands) {
  for (int attempt = 0;; ++attempt) {
    Result<Lease> lease = Borrow();
    if (!lease.ok()) return lease.status();
    const bool reused = lease->reused;
    const uint64_t generation = lease->connection->generation;
    Result<std::vector<RedisReplyPtr>> replies =
        Exchange(*lease->connection, commands);
    bool demoted = false;
    if (replies.ok()) {
      for (const RedisReplyPtr& reply : replies.value()) {
        demoted =
            demoted || (IsError(reply.get()) && StartsWith(*reply, "READONLY"));
      }
    }
    if (replies.ok() && !demoted) {
      GiveBack(std::move(lease->connection), /*healthy=*/true);
      return replies;
    }
    GiveBack(std::move(lease->connection), /*healthy=*/false);
    Invalidate(generation);
    // A stale idle connection, or a master that has become a replica: one
    // more try on a fresh connection to the (possibly new) master.
    if (attempt == 0 && (reused || demoted)) continue;
    return replies;
  }
}

Result<RedisConnectionPool::Lease> RedisConnectionPool::Borrow() {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(options_.timeout_ms);
  MutexLock lock(mutex_);
  while (true) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      if (connection->generation == generation_) {
        return Lease{std::move(connection), /*reused=*/true};
      }
      --open_;  // from before a failure: closed as it goes out of scope
    }
    if (open_ < options_.pool_size) {
      ++open_;
      const uint64_t generation = generation_;
      lock.Unlock();
      Result<std::unique_ptr<Connection>> made = Connect(generation);
      if (!made.ok()) {
        lock.Lock();
        --open_;
        released_.notify_one();
        return made.status();
      }
      return Lease{std::move(made).value(), /*reused=*/false};
    }
    if (lock.WaitUntil(released_, deadline) == std::cv_status::timeout &&
        idle_.empty() && open_ >= options_.pool_size) {
      return Unavailable("all " + std::to_string(options_.pool_size) +
                         " connections stayed busy for " +
                         std::to_string(options_.timeout_ms) + " ms");
    }
  }
}

void RedisConnectionPool::GiveBack(std::unique_ptr<Connection> connection,
                                   bool healthy) {
  std::unique_ptr<Connection> to_close;
  {
    MutexLock lock(mutex_);
    if (healthy && connection->generation == generation_) {
      idle_.push_back(std::move(connection));
    } else {
      --open_;
      to_close = std::move(connection);
    }
  }
  released_.notify_one();
}

void RedisConnectionPool::Invalidate(uint64_t generation) {
  std::vector<std::unique_ptr<Connection>> to_close;
  {
    MutexLock lock(mutex_);
    if (generation != generation_) return;  // someone already did
    ++generation_;
    open_ -= static_cast<int>(idle_.size());
    to_close.swap(idle_);
  }
  released_.notify_all();
  if (options_.locator.kind == StoreKind::kRedisSentinel) {
    ForgetMaster(Status::Ok());
  }
}

void RedisConnectionPool::ForgetMaster(const Status& why) {
  MutexLock lock(master_mutex_);
  master_.reset();
  if (!why.ok()) {
    failed_at_ = std::chrono::steady_clock::now();
    last_lookup_error_ = why;
  }
}

Result<RedisConnectionPool::Endpoint> RedisConnectionPool::CurrentMaster() {
  const StoreLocator& locator = options_.locator;
  if (locator.kind == StoreKind::kRedisUnix) {
    Endpoint endpoint;
    endpoint.unix_path = locator.unix_path;
    return endpoint;
  }
  if (locator.kind != StoreKind::kRedisSentinel) {
    Endpoint endpoint;
    endpoint.host = locator.hosts.front().host;
    endpoint.port = locator.hosts.front().port;
    return endpoint;
  }
  MutexLock lock(master_mutex_);
  if (master_) return *master_;
  const auto now = std::chrono::steady_clock::now();
  if (last_lookup_error_ &&
      now - failed_at_ < std::chrono::milliseconds(kLookupBackoffMs)) {
    return *last_lookup_error_;
  }
  Result<Endpoint> found = AskSentinels();
  if (!found.ok()) {
    failed_at_ = now;
    last_lookup_error_ = found.status();
    return found.status();
  }
  last_lookup_error_.reset();
  master_ = found.value();
  return found;
}

Result<RedisConnectionPool::Endpoint> RedisConnectionPool::AskSentinels() {
  const StoreLocator& locator = options_.locator;
  const timeval timeout = ToTimeval(options_.timeout_ms);
  std::string failures;
  for (size_t i = 0; i < locator.hosts.size(); ++i) {
    const size_t index = (preferred_sentinel_ + i) % locator.hosts.size();
    const StoreHost& sentinel = locator.hosts[index];
    const std::string name = HostPortText(sentinel.host, sentinel.port);
    std::string failure;
    redisContext* context =
        redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, timeout);
    if (context == nullptr || context->err) {
      failure = context ? ContextErrorText(*context, options_.timeout_ms)
                        : "out of memory";
    } else {
      redisSetTimeout(context, timeout);
      const char* argv[] = {"SENTINEL", "get-master-addr-by-name",
                            locator.master_name.c_str()};
      size_t lengths[] = {8, 23, locator.master_name.size()};
      RedisReplyPtr reply(static_cast<redisReply*>(
          redisCommandArgv(context, 3, argv, lengths)));
      if (!reply) {
        failure = ContextErrorText(*context, options_.timeout_ms);
      } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                 reply->element[0]->type == REDIS_REPLY_STRING &&
                 reply->element[1]->type == REDIS_REPLY_STRING) {
        Endpoint endpoint;
        endpoint.host.assign(reply->element[0]->str, reply->element[0]->len);
        endpoint.port = std::atoi(reply->element[1]->str);
        redisFree(context);
        preferred_sentinel_ = index;
        return endpoint;
      } else if (reply->type == REDIS_REPLY_NIL) {
        failure = "does not know master " + locator.master_name;
      } else if (reply->type == REDIS_REPLY_ERROR) {
        failure = ErrorReplyText(*reply);
      } else {
        failure = "unexpected reply";
      }
    }
    if (context) redisFree(context);
    if (!failures.empty()) failures += "; ";
    failures += name;
    failures += ": ";
    failures += failure;
  }
  return Unavailable("no sentinel named the master (" + failures + ")");
}

Result<std::unique_ptr<RedisConnectionPool::Connection>>
RedisConnectionPool::Connect(uint64_t generation) {
  Result<Endpoint> endpoint = CurrentMaster();
  if (!endpoint.ok()) return endpoint.status();
  const bool sentinel = options_.locator.kind == StoreKind::kRedisSentinel;
  const timeval timeout = ToTimeval(options_.timeout_ms);
  auto connection = std::make_unique<Connection>();
  connection->generation = generation;
  connection->endpoint = endpoint.value();
  connection->context =
      endpoint->unix_path.empty()
          ? redisConnectWithTimeout(endpoint->host.c_str(), endpoint->port,
                                    timeout)
          : redisConnectUnixWithTimeout(endpoint->unix_path.c_str(), timeout);
  redisContext* context = connection->context;
  if (context == nullptr || context->err) {
    Status failed =
        Unavailable("cannot connect" + At(endpoint.value()) + ": " +
                    (context ? ContextErrorText(*context, options_.timeout_ms)
                             : std::string("out of memory")));
    if (sentinel) ForgetMaster(failed);
    return failed;
  }
  redisSetTimeout(context, timeout);
  // Notices a peer that vanished (a host down) on an idle connection.
  if (endpoint->unix_path.empty()) redisEnableKeepAlive(context);

  Status greeted = Handshake(*connection, sentinel);
  if (!greeted.ok()) return greeted;
  return connection;
}

Status RedisConnectionPool::Handshake(Connection& connection, bool sentinel) {
  const StoreLocator& locator = options_.locator;
  Result<std::vector<RedisReplyPtr>> replies =
      Exchange(connection, HandshakeCommands(locator, sentinel));
  if (!replies.ok()) {
    if (sentinel) ForgetMaster(replies.status());
    return replies.status();
  }
  size_t next = 0;
  if (!locator.password.empty()) {
    const redisReply& auth = *replies.value()[next++];
    if (auth.type == REDIS_REPLY_ERROR) {
      return Unavailable("authentication failed" + At(connection.endpoint) +
                         " (" + ErrorReplyText(auth) + ")");
    }
  }
  if (locator.db != 0) {
    const redisReply& select = *replies.value()[next++];
    if (select.type == REDIS_REPLY_ERROR) {
      return Unavailable("cannot select database " +
                         std::to_string(locator.db) + " (" +
                         ErrorReplyText(select) + ")");
    }
  }
  ++next;  // CLIENT SETNAME: a nicety; an ACL may forbid it
  if (sentinel) {
    const redisReply& role = *replies.value()[next++];
    std::string name = "unknown";
    if (role.type == REDIS_REPLY_ARRAY && role.elements > 0 &&
        role.element[0]->type == REDIS_REPLY_STRING) {
      name.assign(role.element[0]->str, role.element[0]->len);
    }
    if (name != "master") {
      // Sentinel named a server that is not (or no longer) the master: it
      // is mid-failover. Ask again on a later connect.
      Status refused =
          Unavailable(connection.endpoint.Text() + " is a " + name +
                      ", not the master; waiting for Sentinel");
      ForgetMaster(refused);
      return refused;
    }
  }
  return Status::Ok();
}

Result<std::vector<RedisReplyPtr>> RedisConnectionPool::Exchange(
    Connection& connection, const std::vector<RedisArgs>& commands) {
  redisContext* context = connection.context;
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const RedisArgs& command : commands) {
    argv.clear();
    lengths.clear();
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context, static_cast<int>(argv.size()),
                               argv.data(), lengths.data()) != REDIS_OK) {
      return Unavailable(ContextErrorText(*context, options_.timeout_ms) +
                         At(connection.endpoint));
    }
  }
  std::vector<RedisReplyPtr> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* reply = nullptr;
    if (redisGetReply(context, &reply) != REDIS_OK || reply == nullptr) {
      return Unavailable(ContextErrorText(*context, options_.timeout_ms) +
                         At(connection.endpoint));
    }
    replies.emplace_back(static_cast<redisReply*>(reply));
  }
  return replies;
}

}  // namespace wxsession
