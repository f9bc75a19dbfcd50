// Shared test helpers: temp dirs, child processes of the real binary, fakes.
#ifndef WXSESSION_TESTS_TEST_SUPPORT_H_
#define WXSESSION_TESTS_TEST_SUPPORT_H_

#include <httplib.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/store.h"
#include "wxsession/wechat.h"

namespace wxsession::testing_support {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);

// Polls `condition` every few milliseconds until it holds or `timeout`
// passes; true when it held. What a test uses instead of a fixed sleep: it
// waits on the outcome, as long as the outcome takes and no longer.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The first executable `name` on PATH or in the usual bin and sbin
// directories (root's PATH may lack sbin, where nginx lives), or "".
std::string FindProgram(const std::string& name);

// The wxsessiond binary under test (WXSESSIOND_BIN, set by meson).
std::string BinaryPath();

// A child process with stdout readable line by line and stderr sent to a
// file. Killed (SIGKILL) on destruction if still running.
class Process {
 public:
  // Starts `argv` (argv[0] is the program path) with `env_extra` added to
  // this process's environment.
  Process(const std::vector<std::string>& argv,
          const std::map<std::string, std::string>& env_extra = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Next stdout line, or nullopt after `timeout_ms` or at EOF.
  std::optional<std::string> ReadLine(int timeout_ms);
  // Reads lines until one contains `needle`; returns it, or nullopt.
  std::optional<std::string> WaitForLine(const std::string& needle,
                                         int timeout_ms);
  void Signal(int signal);
  // Waits for exit up to `timeout_ms`; the exit code, or -signal when killed
  // by a signal, or nullopt on timeout.
  std::optional<int> Wait(int timeout_ms);
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  std::string stderr_path_;
  std::optional<int> exit_code_;
};

// Runs a command to completion; returns {exit code, stdout, stderr}.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// `timeout_ms` bounds each wait: for a line of output, and for the exit.
CommandResult RunCommand(
    const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env_extra = {},
    int timeout_ms = 30000);

// A loopback TCP port that was free a moment ago: bound on 127.0.0.1:0, read
// back, closed. Callers retry if another process takes it first.
int PickFreePort();

// A socket listening on 127.0.0.1 at a port the kernel picks, stored in
// `*port`; -1 on failure. The caller closes it.
int ListenOnLoopback(int backlog, int* port);

// Opens (creating) a SQLite session store at `path` with default options.
// A failure to open is a test failure, reported with its status; the
// result is then nullptr, so callers ASSERT_NE(store, nullptr).
std::unique_ptr<SessionStore> OpenTestSqliteStore(const std::string& path);

// A SessionStore that passes every call to `inner`: derive from it and
// override the calls a test wants to fail, slow down or watch.
class ForwardingStore : public SessionStore {
 public:
  explicit ForwardingStore(SessionStore& inner) : inner_(inner) {}
  Status CreateSession(const NewSession& s) override {
    return inner_.CreateSession(s);
  }
  Result<LiveSession> FindLive(const std::string& h, int64_t now) override {
    return inner_.FindLive(h, now);
  }
  Status Touch(const std::string& h, int64_t seen, int64_t exp) override {
    return inner_.Touch(h, seen, exp);
  }
  Result<int64_t> Revoke(const std::string& h) override {
    return inner_.Revoke(h);
  }
  Result<int64_t> RevokeUser(const std::string& a,
                             const std::string& o) override {
    return inner_.RevokeUser(a, o);
  }
  Result<int64_t> RevokeAll() override { return inner_.RevokeAll(); }
  Result<int64_t> SweepExpired(int64_t now, int64_t max_rows) override {
    return inner_.SweepExpired(now, max_rows);
  }
  Result<StoreStats> Stats(int64_t now) override { return inner_.Stats(now); }
  Result<AccessToken> GetAccessToken(const std::string& appid) override {
    return inner_.GetAccessToken(appid);
  }
  Status PutAccessToken(const AccessToken& token) override {
    return inner_.PutAccessToken(token);
  }
  Result<bool> TryLockTokenRefresh(const std::string& appid,
                                   const std::string& owner, int64_t now_ms,
                                   int64_t lease_ms) override {
    return inner_.TryLockTokenRefresh(appid, owner, now_ms, lease_ms);
  }
  Status UnlockTokenRefresh(const std::string& appid,
                            const std::string& owner) override {
    return inner_.UnlockTokenRefresh(appid, owner);
  }
  Result<std::vector<StoredSigningKey>> ListSigningKeys(int64_t now) override {
    return inner_.ListSigningKeys(now);
  }
  Result<bool> ReplaceSigningKey(const std::string& expected_kid,
                                 const StoredSigningKey& key,
                                 int64_t previous_verify_until) override {
    return inner_.ReplaceSigningKey(expected_kid, key, previous_verify_until);
  }
  Status Ping() override { return inner_.Ping(); }
  Result<UserRecord> GetUser(const std::string& a, const std::string& o,
                             int64_t now) override {
    return inner_.GetUser(a, o, now);
  }
  Result<std::vector<SessionSummary>> ListSessions(const std::string& a,
                                                   const std::string& o,
                                                   int64_t now) override {
    return inner_.ListSessions(a, o, now);
  }
  Result<int64_t> PutBan(const Ban& ban) override { return inner_.PutBan(ban); }
  Status RemoveBan(const std::string& a, const std::string& o,
                   int64_t now) override {
    return inner_.RemoveBan(a, o, now);
  }
  Result<std::vector<Ban>> ListBans(const std::string& a,
                                    int64_t now) override {
    return inner_.ListBans(a, now);
  }
  Result<int64_t> SweepUsers(int64_t now, int64_t before,
                             int64_t max_rows) override {
    return inner_.SweepUsers(now, before, max_rows);
  }

 private:
  SessionStore& inner_;
};

// Sends `request` bytes as-is to 127.0.0.1:port and returns everything read
// until the peer closes or `timeout_ms` passes without data.
std::string RawHttp(int port, const std::string& request, int timeout_ms);

// Asserts an API error answer: `status`, Content-Type application/json, and
// a {"error": `error`, "message": <non-empty>} body.
void ExpectError(const httplib::Result& res, int status,
                 const std::string& error);

// Parses the port from "... listening on http://host:PORT".
int PortFromListeningLine(const std::string& line);

// mock-wechat and wxsessiond serve, as child processes on free ports, with a
// config file in a temp dir.
class ServerFixture {
 public:
  // `extra_config` is merged (top-level keys) into the generated config:
  // e.g. R"("session": {"ttl": "1h"})".
  // Without a mock, WeChat is `api_base` (default: a port that refuses);
  // with an explicit api_base the WeChat timeout is 1 s instead of 2 s, for
  // slow-upstream tests.
  explicit ServerFixture(const std::string& extra_config = "",
                         bool start_mock = true,
                         const std::string& api_base = "");
  ~ServerFixture();

  bool Start();  // starts the server; false (with stderr printed) on failure
  void StopServer(int signal);  // signals and waits
  std::optional<int> WaitServer(int timeout_ms);

  int port() const { return port_; }
  int mock_port() const { return mock_port_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& database() const { return database_; }
  TempDir& dir() { return dir_; }
  Process* server() { return server_.get(); }

  static constexpr const char* kAppId = "wxtestapp000000001";
  static constexpr const char* kSecret = "test-secret-must-never-leak";

 private:
  TempDir dir_;
  std::string config_path_;
  std::string database_;
  std::unique_ptr<Process> mock_;
  std::unique_ptr<Process> server_;
  int port_ = 0;
  int mock_port_ = 0;
};

// A scripted WeChatClient: answers from a queue (or a default), counts calls.
// It replaces the whole client inside the service's tests; the HTTP client's
// own tests talk to a FakeWeChatServer (wechat_fakes.h) instead.
class ScriptedWeChatClient : public WeChatClient {
 public:
  Result<WeChatSession> Code2Session(const std::string& appid,
                                     const std::string& secret,
                                     const std::string& code) override;
  // Answers from PushToken's queue, else a new token "token-N" (N counts
  // every call from 1) valid 7200 s.
  Result<StableAccessToken> StableToken(const std::string& appid,
                                        const std::string& secret,
                                        bool force_refresh) override;
  // `phone` when set; else takes a token from `tokens` (passing its error
  // on) and answers 13800138000 watermarked for `appid`.
  Result<PhoneNumber> GetPhoneNumber(AccessTokenSource& tokens,
                                     const std::string& appid,
                                     const std::string& code,
                                     const std::string& openid) override;
  // `check_session` when set; else true.
  Result<bool> CheckSessionKey(AccessTokenSource& tokens,
                               const std::string& appid,
                               const std::string& openid,
                               const std::string& session_key) override;

  void PushToken(Result<StableAccessToken> answer);
  // Runs inside every StableToken call before answering (tests block here).
  std::function<void()> on_token_call;
  int token_calls() const { return token_calls_.load(); }
  int forced_token_calls() const { return forced_token_calls_.load(); }
  std::function<Result<PhoneNumber>(AccessTokenSource&, const std::string&,
                                    const std::string&, const std::string&)>
      phone;
  std::function<Result<bool>(AccessTokenSource&, const std::string&,
                             const std::string&, const std::string&)>
      check_session;

  // Answer for the next calls, in order; when empty, a user derived from the
  // code with a fresh key.
  void Push(Result<WeChatSession> answer);
  // Runs inside every call before answering (tests block here).
  std::function<void()> on_call;
  int calls() const { return calls_.load(); }
  std::string last_code() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Result<WeChatSession>> queue_;  // guarded by mutex_
  std::string last_code_;                     // guarded by mutex_
  std::atomic<int> calls_{0};
  std::vector<Result<StableAccessToken>> token_queue_;  // guarded by mutex_
  std::atomic<int> token_calls_{0};
  std::atomic<int> forced_token_calls_{0};
};

}  // namespace wxsession::testing_support

#endif  // WXSESSION_TESTS_TEST_SUPPORT_H_
