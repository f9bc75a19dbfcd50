// Real redis-server and redis-sentinel processes for tests, each in its own
// temp dir on a free loopback port, with a Unix socket beside it.
//
// A test that needs Redis fails (never skips) when redis-server is missing:
// ./scripts/test installs it, and a silently skipped backend would hide a
// broken one.
#ifndef WXSESSION_TESTS_REDIS_SUPPORT_H_
#define WXSESSION_TESTS_REDIS_SUPPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "test_support.h"

namespace wxsession::testing_support {

// One command to a Redis (or Sentinel) on 127.0.0.1:`port` over a fresh
// connection. The reply as text: strings and statuses as they are,
// integers in decimal, nil as "(nil)", errors as "(error) <text>", arrays
// as their elements joined by '\n'. "(no connection)" when it cannot connect.
std::string RedisCommand(int port, const std::vector<std::string>& args,
                         const std::string& password = "");

class RedisServerProcess {
 public:
  struct Options {
    bool append_only = false;  // appendonly yes, appendfsync everysec
    int replica_of = 0;        // a port on 127.0.0.1 to replicate, or 0
    std::string password;      // requirepass and masterauth, or none
  };

  RedisServerProcess() : RedisServerProcess(Options{}) {}
  explicit RedisServerProcess(Options options);
  ~RedisServerProcess();  // kills it

  // Starts redis-server on a free port, retrying with another port when the
  // chosen one was taken meanwhile. False, with error() set, on failure.
  bool Start();
  // Stops it: SIGTERM (a clean shutdown, AOF flushed) or SIGKILL (a crash).
  void Stop(bool crash = false);
  // Starts it again on the same port and directory, keeping its data files.
  bool Restart();
  bool running() const { return process_ != nullptr; }

  int port() const { return port_; }
  std::string socket_path() const { return dir_.File("redis.sock"); }
  std::string url() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
  }
  const std::string& error() const { return error_; }
  std::string Log() const { return ReadFile(dir_.File("redis.log")); }

  std::string Command(const std::vector<std::string>& args) const {
    return RedisCommand(port_, args, options_.password);
  }

 private:
  bool StartOnPort(int port);

  const Options options_;
  TempDir dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
  std::string error_;
};

// A redis-sentinel watching one master, with a quorum of 1 and short
// timeouts so a failover takes seconds.
class RedisSentinelProcess {
 public:
  RedisSentinelProcess(std::string master_name, int master_port,
                       int down_after_ms, int failover_timeout_ms,
                       std::string password = "");
  ~RedisSentinelProcess();

  bool Start();
  void Stop();
  int port() const { return port_; }
  const std::string& error() const { return error_; }
  std::string Log() const { return ReadFile(dir_.File("sentinel.log")); }
  std::string Command(const std::vector<std::string>& args) const {
    return RedisCommand(port_, args);
  }

 private:
  const std::string master_name_;
  const int master_port_;
  const int down_after_ms_;
  const int failover_timeout_ms_;
  const std::string password_;
  TempDir dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
  std::string error_;
};

// Waits (polling, up to `seconds`) until `replica` receives what `master`
// is written. A replica the master lists as "online" after a diskless sync
// still gets no stream until its next ACK (up to 1 s later), and WAIT cannot
// count it before then.
bool WaitUntilReplicating(const RedisServerProcess& master,
                          const RedisServerProcess& replica, int seconds);

// One redis-server shared by the tests of this process, started on first
// use and killed at exit. nullptr (after recording a test failure that says
// why) when it cannot start.
RedisServerProcess* SharedRedis();

}  // namespace wxsession::testing_support

#endif  // WXSESSION_TESTS_REDIS_SUPPORT_H_
