// wxsessiond: the one place that names concrete types and wires them.
//
// Commands: serve, dev, mock-wechat, revoke, stats, migrate-store, version.
// Exit codes: 0 ok, 1 failure, 2 usage.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mock_wechat.h"
#include "sqlite/sqlite_store.h"
#include "store_factory.h"
#include "wxsession/access_token.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/http_api.h"
#include "wxsession/log.h"
#include "wxsession/open_data.h"
#include "wxsession/service.h"
#include "wxsession/store_locator.h"
#include "wxsession/store_migration.h"
#include "wxsession/sweeper.h"
#include "wxsession/wechat.h"

#ifndef WXSESSIOND_VERSION
#define WXSESSIOND_VERSION "dev"
#endif

namespace wxsession {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kMainUsage =
    "usage: wxsessiond <command> [options]\n"
    "\n"
    "WeChat mini-program login and session server.\n"
    "\n"
    "commands:\n"
    "  serve        run the server (--config FILE)\n"
    "  dev          run the server on 127.0.0.1:8080 against a built-in mock\n"
    "               WeChat, data in ./dev; prints a curl walk-through\n"
    "  mock-wechat  run a stand-in for WeChat's server API on loopback\n"
    "  revoke       end sessions while the server runs\n"
    "  stats        print session and database counts as JSON\n"
    "  migrate-store\n"
    "               copy live sessions from the SQLite file to Redis\n"
    "  version      print the version\n"
    "\n"
    "Run 'wxsessiond <command> --help' for a command's options.\n";

// Parsed "--name value" and "--flag" arguments of one command.
struct Args {
  std::map<std::string, std::string> values;
  std::vector<std::string> positional;
  bool help = false;
  std::string error;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name) const {
    auto found = values.find(name);
    return found == values.end() ? std::string() : found->second;
  }
};

// `with_value` lists options that take a value; `flags` those that do not.
Args ParseArgs(int argc, char** argv, int first,
               const std::vector<std::string>& with_value,
               const std::vector<std::string>& flags) {
  Args args;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      args.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool inline_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    bool takes_value = std::find(with_value.begin(), with_value.end(), name) !=
                       with_value.end();
    bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (!takes_value && !is_flag) {
      args.error = "unknown option --" + name;
      return args;
    }
    if (is_flag) {
      args.values[name] = "true";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        args.error = "option --" + name + " needs a value";
        return args;
      }
      value = argv[++i];
    }
    args.values[name] = value;
  }
  return args;
}

int Usage(const char* usage, const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "wxsessiond: %s\n\n", error.c_str());
  std::fputs(usage, error.empty() ? stdout : stderr);
  return error.empty() ? kExitOk : kExitUsage;
}

// Blocks SIGINT and SIGTERM in every thread; a dedicated thread takes them
// with sigwait, so no work happens in a signal handler.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

Result<Config> LoadFromArgs(const Args& args) {
  ConfigOverrides overrides;
  if (args.Has("listen")) overrides.listen = args.Get("listen");
  if (args.Has("database")) overrides.database = args.Get("database");
  return LoadConfig(args.Get("config"), ProcessEnvironment(), overrides);
}

// Runs the server with `config` until SIGINT/SIGTERM. `on_ready` runs once
// the port is bound (dev prints its walk-through there).
int RunServer(const Config& config,
              const std::function<void(int port)>& on_ready = {}) {
  Logger logger(stderr);
  SystemClock clock;
  Result<OpenedStore> opened = OpenConfiguredStore(config, clock);
  if (!opened.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", opened.status().message().c_str());
    return kExitFailure;
  }
  std::unique_ptr<SessionStore> session_store = std::move(opened->store);
  // A Redis that is down at start-up is not fatal: requests answer 503
  // store_unavailable until it is back.
  if (Status ping = session_store->Ping(); !ping.ok()) {
    logger.Error("store_unavailable", {{"detail", ping.message()}});
  }

  WeChatHttpOptions wechat_options;
  wechat_options.api_base = config.wechat_api_base;
  wechat_options.timeout_ms = config.wechat_timeout_ms;
  std::unique_ptr<WeChatClient> wechat = NewHttpWeChatClient(wechat_options);

  SessionService service(config, *session_store, *wechat, clock);
  Sweeper sweeper(*session_store, clock, config.sweep_interval,
                  Sweeper::kDefaultBatchRows,
                  [&logger](const Result<int64_t>& deleted) {
                    if (!deleted.ok()) {
                      logger.Error("sweep_failed",
                                   {{"detail", deleted.status().message()}});
                    } else if (deleted.value() > 0) {
                      logger.Info("sweep", {{"deleted", deleted.value()}});
                    }
                  });
  AccessTokenCentre tokens(
      config, *session_store, *wechat, clock,
      AccessTokenCentre::OptionsFor(config.wechat_timeout_ms));
  OpenDataService open_data(config, service, *wechat, tokens, clock);
  HttpServer server(config, service, open_data, tokens, logger);
  Result<int> port = server.Bind(config.listen_host, config.listen_port);
  if (!port.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", port.status().message().c_str());
    return kExitFailure;
  }

  sigset_t signals = BlockStopSignals();
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    logger.Info("stopping", {{"signal", received == SIGTERM ? "SIGTERM"
                                                            : "SIGINT"}});
    server.Stop();
  });

  // Redis deletes expired sessions by itself: no sweeper against it.
  if (!opened->expires_by_itself) sweeper.Start();
  logger.Info("listening", {{"address", config.listen_host + ":" +
                                            std::to_string(port.value())},
                            {"store", opened->description},
                            {"apps", static_cast<int>(config.apps.size())},
                            {"admin_routes",
                             config.admin_token.empty() ? "off" : "on"},
                            {"version", WXSESSIOND_VERSION}});
  // Tests and scripts read this line to learn the bound port.
  std::printf("wxsessiond listening on http://%s:%d\n",
              config.listen_host.c_str(), port.value());
  std::fflush(stdout);
  if (on_ready) on_ready(port.value());

  bool served = server.Serve();
  sweeper.Stop();
  // If Serve returned for another reason than a signal, wake the signal
  // thread so it can be joined.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  logger.Info("stopped");
  return served ? kExitOk : kExitFailure;
}

int CmdServe(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond serve [--config FILE] [--listen HOST:PORT] "
      "[--database PATH]\n"
      "\n"
      "Runs the server. Without --config, WXSESSIOND_APPID and\n"
      "WXSESSIOND_SECRET (or WXSESSIOND_SECRET_FILE) configure one app.\n"
      "Port 0 picks a free port; the bound address is printed on stdout.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "listen", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.positional.empty()) {
    return Usage(usage, "unexpected argument " + args.positional.front());
  }
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", config.status().message().c_str());
    return kExitFailure;
  }
  return RunServer(config.value());
}

int CmdDev(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond dev [--listen HOST:PORT] [--database PATH]\n"
      "\n"
      "Runs the server against a built-in mock WeChat with one app\n"
      "(appid wxdev000000000000), data in ./dev. For trying the API locally;\n"
      "never for production.\n";
  Args args = ParseArgs(argc, argv, 2, {"listen", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);

  MockWeChatServer mock;
  Result<int> mock_port = mock.Bind("127.0.0.1", 0);
  if (!mock_port.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n",
                 mock_port.status().message().c_str());
    return kExitFailure;
  }
  std::thread mock_thread([&mock] { mock.Serve(); });

  Config config;
  config.apps.push_back({"wxdev000000000000", "dev-secret"});
  config.wechat_api_base =
      "http://127.0.0.1:" + std::to_string(mock_port.value());
  config.expose_openid = true;
  config.database = "./dev/wxsessiond.db";
  ::mkdir("./dev", 0700);
  if (args.Has("database")) config.database = args.Get("database");
  if (args.Has("listen")) {
    auto host_port = ParseHostPort(args.Get("listen"));
    if (!host_port) return Usage(usage, "--listen: expected HOST:PORT");
    config.listen_host = host_port->first;
    config.listen_port = host_port->second;
  }

  int code = RunServer(config, [&config](int port) {
    std::string base =
        "http://" + config.listen_host + ":" + std::to_string(port);
    std::printf(
        "\nwxsessiond dev: a local server against a mock WeChat.\n"
        "Any code logs in (\"alice.1\" and \"alice.2\" are one user); the codes\n"
        "invalid, blocked, busy and limit show WeChat's errors.\n\n"
        "  curl -s -X POST %s/v1/login -H 'Content-Type: application/json' \\\n"
        "       -d '{\"code\":\"alice.1\"}'\n"
        "  curl -s %s/v1/session -H 'Authorization: Bearer <session_id>'\n"
        "  curl -s -X POST %s/v1/phone -H 'Authorization: Bearer "
        "<session_id>' \\\n"
        "       -H 'Content-Type: application/json' -d '{\"code\":\"p1\"}'\n"
        "  curl -s -X POST %s/v1/session/check -H 'Authorization: Bearer "
        "<session_id>'\n"
        "  curl -s -X POST %s/v1/logout -H 'Authorization: Bearer "
        "<session_id>' -i\n\n"
        "Ctrl-C stops it.\n",
        base.c_str(), base.c_str(), base.c_str(), base.c_str(),
        base.c_str());
    std::fflush(stdout);
  });
  mock.Stop();
  mock_thread.join();
  return code;
}

int CmdMockWeChat(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond mock-wechat [--listen HOST:PORT] [--delay MS]\n"
      "\n"
      "Serves a stand-in for WeChat's server API (default 127.0.0.1:0):\n"
      "jscode2session, stable_token, getuserphonenumber, checksession.\n"
      "Codes: invalid -> 40029, blocked -> 40226, busy -> -1, limit -> 45011,\n"
      "errcode:N -> N, a code used twice -> 40163 (40029 for phone codes);\n"
      "any other login code logs in the user named by the part before the\n"
      "first '.', any other phone code answers +86 13800138000.\n"
      "--delay applies to every WeChat route, not to the /mock/ routes.\n";
  Args args = ParseArgs(argc, argv, 2, {"listen", "delay"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  MockWeChatOptions options;
  if (args.Has("delay")) {
    char* end = nullptr;
    long long delay = std::strtoll(args.Get("delay").c_str(), &end, 10);
    if (*end != '\0' || delay < 0) {
      return Usage(usage, "--delay: expected milliseconds, e.g. 100");
    }
    options.delay_ms = delay;
  }
  auto host_port = ParseHostPort(
      args.Has("listen") ? args.Get("listen") : std::string("127.0.0.1:0"));
  if (!host_port) return Usage(usage, "--listen: expected HOST:PORT");
  MockWeChatServer mock(options);
  Result<int> port = mock.Bind(host_port->first, host_port->second);
  if (!port.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", port.status().message().c_str());
    return kExitFailure;
  }
  sigset_t signals = BlockStopSignals();
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    mock.Stop();
  });
  std::printf("mock-wechat listening on http://%s:%d\n",
              host_port->first.c_str(), port.value());
  std::fflush(stdout);
  bool served = mock.Serve();
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return served ? kExitOk : kExitFailure;
}

// Opens the store named by --config / --database for an admin command.
Result<std::unique_ptr<SessionStore>> OpenStoreForAdmin(const Args& args) {
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) return config.status();
  static SystemClock clock;  // outlives every store this process opens
  Result<OpenedStore> opened = OpenConfiguredStore(config.value(), clock);
  if (!opened.ok()) return opened.status();
  return std::move(opened->store);
}

int CmdRevoke(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond revoke --config FILE (--openid OPENID [--appid APPID]"
      " | --all)\n"
      "\n"
      "Ends sessions at once, while the server runs. Prints {\"revoked\": N}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database", "openid", "appid"},
                        {"all"});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  bool all = args.Has("all");
  if (all == args.Has("openid")) {
    return Usage(usage, "give exactly one of --openid or --all");
  }
  if (all && args.Has("appid")) {
    return Usage(usage, "--appid goes with --openid, not --all");
  }
  auto store = OpenStoreForAdmin(args);
  if (!store.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", store.status().message().c_str());
    return kExitFailure;
  }
  Result<int64_t> revoked =
      all ? store.value()->RevokeAll()
          : store.value()->RevokeUser(args.Get("appid"), args.Get("openid"));
  if (!revoked.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n",
                 revoked.status().message().c_str());
    return kExitFailure;
  }
  std::printf("%s\n", nlohmann::json({{"revoked", revoked.value()}}).dump().c_str());
  return kExitOk;
}

int CmdStats(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond stats --config FILE\n"
      "\n"
      "Prints {\"sessions\", \"live_sessions\", \"users\", \"database_bytes\"}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  auto store = OpenStoreForAdmin(args);
  if (!store.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", store.status().message().c_str());
    return kExitFailure;
  }
  SystemClock clock;
  Result<StoreStats> stats = store.value()->Stats(clock.Now());
  if (!stats.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", stats.status().message().c_str());
    return kExitFailure;
  }
  nlohmann::json out = {{"sessions", stats->sessions},
                        {"live_sessions", stats->live_sessions},
                        {"users", stats->users},
                        {"database_bytes", stats->database_bytes}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int CmdMigrateStore(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond migrate-store --config FILE [--to REDIS_URL] "
      "[--database PATH]\n"
      "\n"
      "Copies every live session, its user's newest session_key and the\n"
      "cached access tokens from the SQLite file (`database`) to Redis, so\n"
      "nobody is logged out by the move. --to defaults to the config's\n"
      "`store`; keep the password out of the command line with\n"
      "redis.password_file or WXSESSIOND_REDIS_PASSWORD. Safe to run again:\n"
      "copies are idempotent and never replace a newer key. Progress goes\n"
      "to stderr; the counts, as JSON, to stdout.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database", "to"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.positional.empty()) {
    return Usage(usage, "unexpected argument " + args.positional.front());
  }
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", config.status().message().c_str());
    return kExitFailure;
  }
  std::string target = args.Has("to") ? args.Get("to") : config->store;
  SystemClock clock;
  Result<std::unique_ptr<RedisStore>> redis =
      OpenRedisStoreAt(config.value(), target, clock);
  if (!redis.ok()) {
    std::fprintf(stderr, "wxsessiond: --to: %s\n",
                 redis.status().message().c_str());
    return args.Has("to") ? kExitUsage : kExitFailure;
  }
  if (Status ping = redis.value()->Ping(); !ping.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", ping.message().c_str());
    return kExitFailure;
  }
  SqliteOptions sqlite_options;
  sqlite_options.path = config->database;
  sqlite_options.durability = config->durability;
  Result<std::unique_ptr<StoreExporter>> sqlite =
      OpenSqliteExporter(sqlite_options);
  if (!sqlite.ok()) {
    std::fprintf(stderr, "wxsessiond: %s\n", sqlite.status().message().c_str());
    return kExitFailure;
  }
  std::string where = ParseStoreLocator(target)->Redacted();
  std::fprintf(stderr, "migrating live sessions from %s to %s\n",
               config->database.c_str(), where.c_str());
  constexpr size_t kBatch = 500;  // sessions per Redis pipeline
  Result<MigrationCounts> counts = MigrateStore(
      *sqlite.value(), *redis.value(), clock.Now(), kBatch,
      [](const MigrationCounts& so_far) {
        std::fprintf(stderr, "  %lld sessions, %lld users copied\n",
                     static_cast<long long>(so_far.sessions),
                     static_cast<long long>(so_far.users));
      });
  if (!counts.ok()) {
    std::fprintf(stderr, "wxsessiond: migration stopped: %s (run it again to "
                 "finish; copies are idempotent)\n",
                 counts.status().message().c_str());
    return kExitFailure;
  }
  nlohmann::json out = {{"sessions", counts->sessions},
                        {"users", counts->users},
                        {"access_tokens", counts->access_tokens}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int Main(int argc, char** argv) {
  // Before any thread starts, so every thread inherits the mask and only
  // the sigwait threads ever see SIGINT/SIGTERM.
  BlockStopSignals();
  if (argc < 2) return Usage(kMainUsage, "no command given");
  std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    return Usage(kMainUsage, "");
  }
  if (command == "version" || command == "--version") {
    std::printf("wxsessiond %s\n", WXSESSIOND_VERSION);
    return kExitOk;
  }
  if (command == "serve") return CmdServe(argc, argv);
  if (command == "dev") return CmdDev(argc, argv);
  if (command == "mock-wechat") return CmdMockWeChat(argc, argv);
  if (command == "revoke") return CmdRevoke(argc, argv);
  if (command == "stats") return CmdStats(argc, argv);
  if (command == "migrate-store") return CmdMigrateStore(argc, argv);
  return Usage(kMainUsage, "unknown command '" + command + "'");
}

}  // namespace
}  // namespace wxsession

int main(int argc, char** argv) { return wxsession::Main(argc, argv); }
