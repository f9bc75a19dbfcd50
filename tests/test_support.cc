#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "store/sqlite/sqlite_store.h"
#include "wxsession/crypto.h"

extern char** environ;

namespace wxsession::testing_support {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/wxs-test-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string FindProgram(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string candidate = path.substr(start, colon - start) + "/" + name;
    if (colon > start && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = colon + 1;
  }
  return "";
}

std::string BinaryPath() {
  const char* bin = std::getenv("WXSESSIOND_BIN");
  return bin ? bin : "./wxsessiond";
}

Process::Process(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env_extra) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TMPDIR");
  stderr_path_ = std::string(base ? base : "/tmp") + "/wxs-proc-" +
                 std::to_string(::getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)) + ".err";
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) std::abort();

  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (env_extra.count(key) == 0) env_strings.push_back(entry);
  }
  for (const auto& [key, value] : env_extra) {
    env_strings.push_back(key + "=" + value);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (auto& s : args) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                   stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  // The child must not inherit a blocked signal mask from a test thread.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  int rc =
      posix_spawn(&pid_, argvp[0], &actions, &attr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  if (rc != 0) {
    std::cerr << "posix_spawn " << argv[0] << ": " << std::strerror(rc) << "\n";
    pid_ = -1;
  }
}

Process::~Process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  ::unlink(stderr_path_.c_str());
}

std::optional<std::string> Process::ReadLine(int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return std::nullopt;
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left));
    if (ready <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) return std::nullopt;  // EOF: the process closed stdout
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<std::string> Process::WaitForLine(const std::string& needle,
                                                int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return std::nullopt;
    auto line = ReadLine(static_cast<int>(left));
    if (!line) return std::nullopt;
    if (line->find(needle) != std::string::npos) return line;
  }
}

void Process::Signal(int signal) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, signal);
}

std::optional<int> Process::Wait(int timeout_ms) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return std::nullopt;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    // Polling a child's exit: there is no fd to wait on without a pidfd.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string Process::Stderr() const { return ReadFile(stderr_path_); }

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env_extra,
                         int timeout_ms) {
  Process process(argv, env_extra);
  CommandResult result;
  while (auto line = process.ReadLine(timeout_ms)) result.out += *line + "\n";
  auto code = process.Wait(timeout_ms);
  result.exit_code = code ? *code : -1;
  result.err = process.Stderr();
  return result;
}

namespace {

// A TCP socket bound to 127.0.0.1 at a port the kernel picks, stored in
// `*port`; -1 on failure.
int BindLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

}  // namespace

int PickFreePort() {
  int port = 0;
  int fd = BindLoopback(&port);
  if (fd < 0) return 0;
  ::close(fd);
  return port;
}

int ListenOnLoopback(int backlog, int* port) {
  int fd = BindLoopback(port);
  if (fd >= 0 && ::listen(fd, backlog) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<SessionStore> OpenTestSqliteStore(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  auto store = OpenSqliteStore(options);
  EXPECT_TRUE(store.ok()) << path << ": " << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

std::string RawHttp(int port, const std::string& request, int timeout_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = ::send(fd, request.data() + sent, request.size() - sent,
                         MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    while (true) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) break;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      response.append(chunk, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return response;
}

void ExpectError(const httplib::Result& res, int status,
                 const std::string& error) {
  ASSERT_TRUE(res) << "no response";
  EXPECT_EQ(res->status, status) << res->body;
  nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << res->body;
  EXPECT_EQ(body.value("error", ""), error) << res->body;
  EXPECT_FALSE(body.value("message", "").empty()) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
}

int PortFromListeningLine(const std::string& line) {
  size_t colon = line.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(line.c_str() + colon + 1);
}

ServerFixture::ServerFixture(const std::string& extra_config, bool start_mock,
                             const std::string& api_base_override) {
  database_ = dir_.File("sessions.db");
  config_path_ = dir_.File("config.json");
  // Port 9 (discard) has no listener on a test machine: connection refused.
  std::string api_base =
      api_base_override.empty() ? "http://127.0.0.1:9" : api_base_override;
  if (start_mock) {
    mock_ = std::make_unique<Process>(std::vector<std::string>{
        BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0"});
    auto line = mock_->WaitForLine("listening on", 10000);
    if (line) mock_port_ = PortFromListeningLine(*line);
    api_base = "http://127.0.0.1:" + std::to_string(mock_port_);
  }
  WriteFile(dir_.File("secret"), std::string(kSecret) + "\n");
  // As an operator should keep it; the server warns about looser modes.
  ::chmod(dir_.File("secret").c_str(), 0600);
  std::string config =
      "{\n"
      "  // generated by the test fixture\n"
      "  \"listen\": \"127.0.0.1:0\",\n"
      "  \"database\": \"" +
      database_ +
      "\",\n"
      "  \"apps\": [{\"appid\": \"" +
      kAppId + "\", \"secret_file\": \"" + dir_.File("secret") +
      "\"}],\n"
      "  \"wechat\": {\"api_base\": \"" +
      api_base + "\", \"timeout\": " + (api_base_override.empty() ? "2" : "1") +
      "}" + (extra_config.empty() ? "" : ",\n  " + extra_config) + "\n}\n";
  WriteFile(config_path_, config);
}

ServerFixture::~ServerFixture() {
  if (server_) {
    server_->Signal(SIGTERM);
    server_->Wait(5000);
  }
}

bool ServerFixture::Start() {
  server_ = std::make_unique<Process>(std::vector<std::string>{
      BinaryPath(), "serve", "--config", config_path_});
  auto line = server_->WaitForLine("listening on", 10000);
  if (!line) {
    std::cerr << "server did not start; stderr:\n" << server_->Stderr();
    return false;
  }
  port_ = PortFromListeningLine(*line);
  return port_ > 0;
}

void ServerFixture::StopServer(int signal) {
  if (server_) server_->Signal(signal);
}

std::optional<int> ServerFixture::WaitServer(int timeout_ms) {
  return server_ ? server_->Wait(timeout_ms) : std::nullopt;
}

Result<WeChatSession> ScriptedWeChatClient::Code2Session(
    const std::string&, const std::string&, const std::string& code) {
  calls_.fetch_add(1);
  if (on_call) on_call();
  std::lock_guard<std::mutex> lock(mutex_);
  last_code_ = code;
  if (!queue_.empty()) {
    Result<WeChatSession> answer = queue_.front();
    queue_.erase(queue_.begin());
    return answer;
  }
  WeChatSession session;
  session.openid = "o-" + code.substr(0, code.find('.'));
  session.session_key = crypto::Base64Encode(crypto::RandomBytes(16));
  return session;
}

void ScriptedWeChatClient::Push(Result<WeChatSession> answer) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.push_back(std::move(answer));
}

Result<StableAccessToken> ScriptedWeChatClient::StableToken(
    const std::string&, const std::string&, bool force_refresh) {
  const int call = token_calls_.fetch_add(1) + 1;
  if (force_refresh) forced_token_calls_.fetch_add(1);
  if (on_token_call) on_token_call();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!token_queue_.empty()) {
    Result<StableAccessToken> answer = token_queue_.front();
    token_queue_.erase(token_queue_.begin());
    return answer;
  }
  return StableAccessToken{"token-" + std::to_string(call), 7200};
}

void ScriptedWeChatClient::PushToken(Result<StableAccessToken> answer) {
  std::lock_guard<std::mutex> lock(mutex_);
  token_queue_.push_back(std::move(answer));
}

Result<PhoneNumber> ScriptedWeChatClient::GetPhoneNumber(
    AccessTokenSource& tokens, const std::string& appid,
    const std::string& code, const std::string& openid) {
  if (phone) return phone(tokens, appid, code, openid);
  Result<std::string> token = tokens.AccessTokenFor(appid);
  if (!token.ok()) return token.status();
  PhoneNumber number;
  number.phone_number = "13800138000";
  number.pure_phone_number = "13800138000";
  number.country_code = "86";
  number.watermark_appid = appid;
  return number;
}

Result<bool> ScriptedWeChatClient::CheckSessionKey(
    AccessTokenSource& tokens, const std::string& appid,
    const std::string& openid, const std::string& session_key) {
  if (check_session) return check_session(tokens, appid, openid, session_key);
  return true;
}

std::string ScriptedWeChatClient::last_code() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_code_;
}

}  // namespace wxsession::testing_support
