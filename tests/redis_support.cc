#include "redis_support.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace wxsession::testing_support {
namespace {

constexpr int kStartAttempts = 5;       // fresh ports tried before giving up
constexpr int kReadyTimeoutMs = 10000;  // redis starts in ~50 ms; CI is slow
constexpr int kStopTimeoutMs = 10000;   // a clean shutdown flushes the AOF

// Polls `path` until it contains `needle` or `process` exits; a bounded wait
// on a condition, not a sleep hoping for timing.
bool WaitForLogLine(const std::string& path, const std::string& needle,
                    Process& process, int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ReadFile(path).find(needle) != std::string::npos) return true;
    if (process.Wait(0)) return false;  // exited
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string ReplyText(const redisReply* reply) {
  if (reply == nullptr) return "(no reply)";
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_ERROR:
      return "(error) " + std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (size_t i = 0; i < reply->elements; ++i) {
        if (i > 0) out += "\n";
        out += ReplyText(reply->element[i]);
      }
      return out;
    }
  }
  return "(unknown)";
}

}  // namespace

std::string RedisCommand(int port, const std::vector<std::string>& args,
                         const std::string& password) {
  timeval timeout{5, 0};  // seconds: generous for a loopback test server
  redisContext* context = redisConnectWithTimeout("127.0.0.1", port, timeout);
  if (context == nullptr || context->err) {
    if (context) redisFree(context);
    return "(no connection)";
  }
  redisSetTimeout(context, timeout);
  auto run = [context](const std::vector<std::string>& command) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    redisReply* reply = static_cast<redisReply*>(redisCommandArgv(
        context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    std::string text = ReplyText(reply);
    if (reply) freeReplyObject(reply);
    return text;
  };
  if (!password.empty()) run({"AUTH", password});
  std::string text = run(args);
  redisFree(context);
  return text;
}

RedisServerProcess::RedisServerProcess(Options options)
    : options_(std::move(options)) {}

RedisServerProcess::~RedisServerProcess() { Stop(/*crash=*/true); }

bool RedisServerProcess::Start() {
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    int port = PickFreePort();
    if (port > 0 && StartOnPort(port)) return true;
    if (error_.find("redis-server is not installed") != std::string::npos) {
      return false;
    }
  }
  return false;
}

bool RedisServerProcess::Restart() {
  Stop();
  return StartOnPort(port_);
}

bool RedisServerProcess::StartOnPort(int port) {
  std::string program = FindProgram("redis-server");
  if (program.empty()) {
    error_ =
        "redis-server is not installed (apt-get install redis-server; "
        "./scripts/test installs it)";
    return false;
  }
  std::string config = "port " + std::to_string(port) +
                       "\n"
                       "bind 127.0.0.1\n"
                       "unixsocket " +
                       socket_path() +
                       "\n"
                       "unixsocketperm 700\n"
                       "dir " +
                       dir_.path() +
                       "\n"
                       "logfile " +
                       dir_.File("redis.log") +
                       "\n"
                       "daemonize no\n"
                       "save \"\"\n"
                       "appendonly " +
                       (options_.append_only ? "yes" : "no") +
                       "\n"
                       "appendfsync everysec\n"
                       // A master waits 5 s by default for more replicas before
                       // a full sync; tests have one and no time to spare.
                       "repl-diskless-sync-delay 0\n";
  if (!options_.password.empty()) {
    config += "requirepass " + options_.password + "\n";
    config += "masterauth " + options_.password + "\n";
  }
  if (options_.replica_of > 0) {
    config +=
        "replicaof 127.0.0.1 " + std::to_string(options_.replica_of) + "\n";
  }
  WriteFile(dir_.File("redis.conf"), config);
  // A fresh log per start, so the ready line found is this start's.
  WriteFile(dir_.File("redis.log"), "");
  process_ = std::make_unique<Process>(
      std::vector<std::string>{program, dir_.File("redis.conf")});
  if (!WaitForLogLine(dir_.File("redis.log"), "Ready to accept connections",
                      *process_, kReadyTimeoutMs)) {
    error_ = "redis-server did not start on port " + std::to_string(port) +
             "; log:\n" + Log();
    process_.reset();
    return false;
  }
  port_ = port;
  return true;
}

void RedisServerProcess::Stop(bool crash) {
  if (!process_) return;
  process_->Signal(crash ? SIGKILL : SIGTERM);
  if (!process_->Wait(kStopTimeoutMs)) process_->Signal(SIGKILL);
  process_->Wait(kStopTimeoutMs);
  process_.reset();
}

RedisSentinelProcess::RedisSentinelProcess(std::string master_name,
                                           int master_port, int down_after_ms,
                                           int failover_timeout_ms,
                                           std::string password)
    : master_name_(std::move(master_name)),
      master_port_(master_port),
      down_after_ms_(down_after_ms),
      failover_timeout_ms_(failover_timeout_ms),
      password_(std::move(password)) {}

RedisSentinelProcess::~RedisSentinelProcess() { Stop(); }

bool RedisSentinelProcess::Start() {
  std::string program = FindProgram("redis-sentinel");
  if (program.empty()) {
    error_ =
        "redis-sentinel is not installed (apt-get install redis-sentinel; "
        "./scripts/test installs it)";
    return false;
  }
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    int port = PickFreePort();
    if (port <= 0) continue;
    std::string config =
        "port " + std::to_string(port) +
        "\n"
        "bind 127.0.0.1\n"
        "daemonize no\n"
        "dir " +
        dir_.path() +
        "\n"
        "logfile " +
        dir_.File("sentinel.log") +
        "\n"
        "sentinel monitor " +
        master_name_ + " 127.0.0.1 " + std::to_string(master_port_) +
        " 1\n"
        "sentinel down-after-milliseconds " +
        master_name_ + " " + std::to_string(down_after_ms_) +
        "\n"
        "sentinel failover-timeout " +
        master_name_ + " " + std::to_string(failover_timeout_ms_) +
        "\n"
        "sentinel parallel-syncs " +
        master_name_ + " 1\n";
    if (!password_.empty()) {
      config += "sentinel auth-pass " + master_name_ + " " + password_ + "\n";
    }
    // Sentinel rewrites its config file, so it must be writable.
    WriteFile(dir_.File("sentinel.conf"), config);
    WriteFile(dir_.File("sentinel.log"), "");
    process_ = std::make_unique<Process>(
        std::vector<std::string>{program, dir_.File("sentinel.conf")});
    if (WaitForLogLine(dir_.File("sentinel.log"), "+monitor master", *process_,
                       kReadyTimeoutMs)) {
      port_ = port;
      return true;
    }
    error_ = "redis-sentinel did not start; log:\n" + Log();
    process_.reset();
  }
  return false;
}

void RedisSentinelProcess::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  if (!process_->Wait(kStopTimeoutMs)) process_->Signal(SIGKILL);
  process_->Wait(kStopTimeoutMs);
  process_.reset();
}

bool WaitUntilReplicating(const RedisServerProcess& master,
                          const RedisServerProcess& replica, int seconds) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (int probe = 1; std::chrono::steady_clock::now() < deadline; ++probe) {
    const std::string value = std::to_string(probe);
    master.Command({"SET", "test:replication-probe", value});
    if (replica.Command({"GET", "test:replication-probe"}) == value) {
      master.Command({"DEL", "test:replication-probe"});
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

RedisServerProcess* SharedRedis() {
  // Destroyed at exit, which kills the server.
  static std::unique_ptr<RedisServerProcess> shared;
  static bool tried = false;
  static std::string failure;
  if (!tried) {
    tried = true;
    auto server = std::make_unique<RedisServerProcess>();
    if (server->Start()) {
      shared = std::move(server);
    } else {
      failure = server->error();
    }
  }
  if (!shared) ADD_FAILURE() << "no Redis for this test: " << failure;
  return shared.get();
}

}  // namespace wxsession::testing_support
