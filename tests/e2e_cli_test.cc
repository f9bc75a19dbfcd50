// The command line: help, usage errors, exit codes, config errors, admin
// commands, environment-only configuration.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "test_support.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::RunCommand;
using testing_support::TempDir;
using testing_support::WriteFile;

TEST(Cli, VersionAndHelp) {
  auto version = RunCommand({BinaryPath(), "version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("wxsessiond ", 0), 0u) << version.out;
  auto help = RunCommand({BinaryPath(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("serve"), std::string::npos);
  for (const char* command :
       {"serve", "dev", "mock-wechat", "revoke", "stats"}) {
    auto sub = RunCommand({BinaryPath(), command, "--help"});
    EXPECT_EQ(sub.exit_code, 0) << command;
    EXPECT_NE(sub.out.find("usage: wxsessiond"), std::string::npos) << command;
  }
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCommand({BinaryPath()}).exit_code, 2);
  EXPECT_EQ(RunCommand({BinaryPath(), "frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunCommand({BinaryPath(), "serve", "--bogus"}).exit_code, 2);
  // There is no way to pass a secret on the command line.
  auto secret = RunCommand({BinaryPath(), "serve", "--secret", "s3cr3t"});
  EXPECT_EQ(secret.exit_code, 2);
  EXPECT_EQ(secret.err.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(
      RunCommand({BinaryPath(), "revoke", "--config", "x.json"}).exit_code, 2);
  EXPECT_EQ(RunCommand({BinaryPath(), "revoke", "--config", "x.json", "--all",
                        "--openid", "o"})
                .exit_code,
            2);
  EXPECT_EQ(
      RunCommand({BinaryPath(), "mock-wechat", "--delay", "soon"}).exit_code,
      2);
}

TEST(Cli, InvalidConfigStopsStartupWithOneLineNamingTheKey) {
  TempDir dir;
  WriteFile(dir.File("secret"), "very-secret-value\n");
  WriteFile(dir.File("bad.json"),
            R"({"apps": [{"appid": "wx1", "secret_file": ")" +
                dir.File("secret") + R"("}], "session": {"ttl": "forever"}})");
  auto bad =
      RunCommand({BinaryPath(), "serve", "--config", dir.File("bad.json")});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("session.ttl"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("very-secret-value"), std::string::npos);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;

  auto missing =
      RunCommand({BinaryPath(), "serve", "--config", dir.File("nope.json")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope.json"), std::string::npos);

  WriteFile(dir.File("syntax.json"), "{\"apps\": [");
  auto syntax =
      RunCommand({BinaryPath(), "serve", "--config", dir.File("syntax.json")});
  EXPECT_EQ(syntax.exit_code, 1);
}

TEST(Cli, EnvironmentAloneConfiguresOneAppAndListenOverrides) {
  TempDir dir;
  Process mock({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0"});
  auto mock_line = mock.WaitForLine("listening on", 10000);
  ASSERT_TRUE(mock_line);
  WriteFile(dir.File("secret"), "env-secret\n");
  Process server({BinaryPath(), "serve", "--listen", "127.0.0.1:0",
                  "--database", dir.File("env.db")},
                 {{"WXSESSIOND_APPID", "wxenvapp"},
                  {"WXSESSIOND_SECRET_FILE", dir.File("secret")},
                  {"WXSESSIOND_API_BASE",
                   "http://127.0.0.1:" +
                       std::to_string(PortFromListeningLine(*mock_line))}});
  auto line = server.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << server.Stderr();
  httplib::Client client("127.0.0.1", PortFromListeningLine(*line));
  auto res =
      client.Post("/v1/login", R"({"code":"env.1"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  server.Signal(SIGINT);
  auto code = server.Wait(5000);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(server.Stderr().find("env-secret"), std::string::npos);
}

// `dev` resolves its defaults as `serve` does. It once built its Config by
// hand and got a WeChat bulkhead of 0: of 20 logins sent at once, some got
// 503 upstream_unavailable.
TEST(Cli, DevAnswersTwentyParallelLoginsWith200) {
  TempDir dir;
  Process dev({BinaryPath(), "dev", "--listen", "127.0.0.1:0", "--database",
               dir.File("dev.db")});
  auto line = dev.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << dev.Stderr();
  const int port = PortFromListeningLine(*line);
  constexpr int kLogins = 20;
  std::vector<int> statuses(kLogins, 0);
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable go_cv;
  bool go = false;  // guarded by mutex: every thread sends at once
  for (int i = 0; i < kLogins; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(10, 0);
      {
        std::unique_lock<std::mutex> lock(mutex);
        go_cv.wait(lock, [&] { return go; });
      }
      auto res = client.Post(
          "/v1/login", R"({"code":"parallel)" + std::to_string(i) + R"(.1"})",
          "application/json");
      statuses[i] = res ? res->status : -1;
    });
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    go = true;
  }
  go_cv.notify_all();
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kLogins; ++i) {
    EXPECT_EQ(statuses[i], 200) << "login " << i;
  }
  dev.Signal(SIGTERM);
  EXPECT_EQ(dev.Wait(5000), 0);
}

// --- check-config -----------------------------------------------------------

// A config for check-config: one app with its secret in a file, plus
// `extra` top-level keys.
std::string CheckConfigFile(const TempDir& dir, const std::string& extra) {
  WriteFile(dir.File("secret"), "check-config-secret\n");
  const std::string path = dir.File("config.json");
  WriteFile(path, R"({"listen": "127.0.0.1:18080", "database": ")" +
                      dir.File("never.db") +
                      R"(", "apps": [{"appid": "wxcheck0000000001", )"
                      R"("secret_file": ")" +
                      dir.File("secret") + "\"}]" +
                      (extra.empty() ? "" : ", " + extra) + "}");
  return path;
}

TEST(Cli, CheckConfigSaysOkWithASummaryAndTouchesNothing) {
  TempDir dir;
  // The listen port is taken: check-config must not try to bind it.
  int port = 0;
  const int held = testing_support::ListenOnLoopback(1, &port);
  ASSERT_GE(held, 0);
  WriteFile(dir.File("master.key"), std::string(64, 'b'));
  const std::string config = CheckConfigFile(
      dir, R"("listen": "127.0.0.1:)" + std::to_string(port) +
               R"(", "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"],)"
               R"( "storage": {"master_key_file": ")" +
               dir.File("master.key") + "\"}");
  auto checked = RunCommand({BinaryPath(), "check-config", "--config", config});
  ::close(held);
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  EXPECT_EQ(checked.out,
            "ok\napps=wxcheck0000000001 store=sqlite " + dir.File("never.db") +
                " listen=127.0.0.1:" + std::to_string(port) + "\n");
  EXPECT_EQ(checked.err, "");
  // No database was created, and the secret was read but never printed.
  EXPECT_FALSE(std::filesystem::exists(dir.File("never.db")));
  EXPECT_EQ(checked.out.find("check-config-secret"), std::string::npos);

  // A Redis store: the URL is parsed, not connected to (nothing listens on
  // port 1), and its password is masked.
  const std::string redis = CheckConfigFile(
      dir, R"("store": "redis://:hunter2hunter2@127.0.0.1:1/0")");
  checked = RunCommand({BinaryPath(), "check-config", "--config", redis});
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  EXPECT_EQ(checked.out.rfind("ok\napps=wxcheck0000000001 store=redis://", 0),
            0u)
      << checked.out;
  EXPECT_EQ(checked.out.find("hunter2"), std::string::npos) << checked.out;

  // Usage errors exit 2.
  EXPECT_EQ(RunCommand({BinaryPath(), "check-config"}).exit_code, 2);
  EXPECT_EQ(
      RunCommand({BinaryPath(), "check-config", "--config", config, "extra"})
          .exit_code,
      2);
}

TEST(Cli, CheckConfigNamesTheFirstBadKeyAndExitsOne) {
  TempDir dir;
  auto made = RunCommand(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir.File("key.pem"),
       "-out", dir.File("cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1"});
  ASSERT_EQ(made.exit_code, 0)
      << "the openssl CLI (Debian package openssl) is needed: " << made.err;
  made = RunCommand({"/usr/bin/openssl", "genpkey", "-algorithm", "EC",
                     "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out",
                     dir.File("other-key.pem")});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  WriteFile(dir.File("garbage.pem"), "not a certificate\n");
  WriteFile(dir.File("short.key"), "too short");

  const struct {
    std::string extra;
    std::string key;  // the key the one-line error must name
  } cases[] = {
      {R"("trusted_proxies": ["10.0.0.0/33"])", "trusted_proxies[0]"},
      {R"("session": {"ttl": "forever"})", "session.ttl"},
      {R"("apps": [{"appid": "wx1", "secret_file": ")" + dir.File("absent") +
           "\"}]",
       "apps[0].secret_file"},
      {R"("store": "redis://127.0.0.1:notaport")", "store"},
      {R"("storage": {"master_key_file": ")" + dir.File("short.key") + "\"}",
       "storage.master_key_file"},
      {R"("tls": {"cert": ")" + dir.File("garbage.pem") + R"(", "key": ")" +
           dir.File("key.pem") + "\"}",
       "tls.cert"},
      {R"("tls": {"cert": ")" + dir.File("cert.pem") + R"(", "key": ")" +
           dir.File("other-key.pem") + "\"}",
       "tls.key"},
  };
  for (const auto& bad : cases) {
    TempDir case_dir;
    auto checked = RunCommand({BinaryPath(), "check-config", "--config",
                               CheckConfigFile(case_dir, bad.extra)});
    EXPECT_EQ(checked.exit_code, 1) << bad.extra << "\n" << checked.out;
    EXPECT_EQ(checked.out, "") << bad.extra;
    EXPECT_NE(checked.err.find(bad.key + ":"), std::string::npos)
        << bad.extra << "\n"
        << checked.err;
    EXPECT_EQ(std::count(checked.err.begin(), checked.err.end(), '\n'), 1)
        << checked.err;
    EXPECT_EQ(checked.err.find("check-config-secret"), std::string::npos);
  }
  // And the good TLS pair passes.
  TempDir good;
  auto checked = RunCommand(
      {BinaryPath(), "check-config", "--config",
       CheckConfigFile(good, R"("tls": {"cert": ")" + dir.File("cert.pem") +
                                 R"(", "key": ")" + dir.File("key.pem") +
                                 "\"}")});
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
  EXPECT_NE(checked.out.find(" tls=on\n"), std::string::npos) << checked.out;
}

TEST(Cli, StatsOnAnEmptyDatabase) {
  TempDir dir;
  WriteFile(dir.File("c.json"),
            R"({"database": ")" + dir.File("s.db") +
                R"(", "apps": [{"appid": "wx1", "secret": "s"}]})");
  auto stats =
      RunCommand({BinaryPath(), "stats", "--config", dir.File("c.json")});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  json out = json::parse(stats.out);
  EXPECT_EQ(out["sessions"], 0);
  EXPECT_EQ(out["users"], 0);
  EXPECT_GT(out["database_bytes"].get<int64_t>(), 0);
}

// backup and rekey work on the SQLite file itself: with a Redis store they
// refuse with what to use instead, before touching anything. A stray
// argument is a usage error.
TEST(Cli, SqliteOnlyCommandsRefuseARedisStore) {
  TempDir dir;
  WriteFile(dir.File("c.json"),
            R"({"store": "redis://127.0.0.1:1/0", "database": ")" +
                dir.File("s.db") +
                R"(", "apps": [{"appid": "wx1", "secret": "s"}]})");
  auto backup = RunCommand({BinaryPath(), "backup", "--config",
                            dir.File("c.json"), dir.File("out.db")});
  EXPECT_EQ(backup.exit_code, 1);
  EXPECT_NE(backup.err.find("Redis's own persistence"), std::string::npos)
      << backup.err;
  EXPECT_FALSE(std::filesystem::exists(dir.File("out.db")));
  WriteFile(dir.File("key"), std::string(64, 'a'));
  auto rekey =
      RunCommand({BinaryPath(), "rekey", "--config", dir.File("c.json"),
                  "--new-key-file", dir.File("key")});
  EXPECT_EQ(rekey.exit_code, 1);
  EXPECT_NE(rekey.err.find("cannot rewrite a Redis store"), std::string::npos)
      << rekey.err;
  auto extra = RunCommand(
      {BinaryPath(), "backup", "--config", dir.File("c.json"), "a.db", "b.db"});
  EXPECT_EQ(extra.exit_code, 2);
  EXPECT_NE(extra.err.find("unexpected argument b.db"), std::string::npos)
      << extra.err;
}

}  // namespace
}  // namespace wxsession
