// wxsessiond: the one place that names concrete types and wires them.
//
// Commands: serve, check-config, dev, mock-wechat, revoke, stats, backup,
// migrate-store, rekey, rotate-signing-key, version. Exit codes: 0 ok, 1
// failure, 2 usage.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "mock/wechat.h"
#include "platforms/alipay_crypto.h"
#include "platforms/platform_client.h"
#include "store/sqlite/sqlite_backup.h"
#include "store/sqlite/sqlite_store.h"
#include "store/factory.h"
#include "wxsession/access_token.h"
#include "wxsession/admin_service.h"
#include "wxsession/login_hook.h"
#include "ops/systemd_notify.h"
#include "http/tls_check.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/crypto.h"
#include "ops/file_check.h"
#include "http/api.h"
#include "ops/log.h"
#include "store/sealed_store.h"
#include "wxsession/open_data.h"
#include "ops/metrics.h"
#include "wxsession/service.h"
#include "core/store_locator.h"
#include "store/migration.h"
#include "wxsession/sweeper.h"
#include "wxsession/token_service.h"
#include "wxsession/wechat.h"
#include "wechat/guard.h"

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
    "  check-config validate a config file without starting the server\n"
    "  dev          run the server on 127.0.0.1:8080 against a built-in mock\n"
    "               WeChat, data in ./dev; prints a curl walk-through\n"
    "  mock-wechat  run a stand-in for WeChat's server API on loopback\n"
    "  revoke       end sessions while the server runs\n"
    "  sessions     list a user's live sessions (devices)\n"
    "  ban, unban   suspend a user (ending every session) or lift it\n"
    "  stats        print session and database counts as JSON\n"
    "  backup       copy the database to a file while the server runs\n"
    "  migrate-store\n"
    "               copy live sessions from the SQLite file to Redis\n"
    "  rekey        re-seal every stored session_key under a new master key\n"
    "  rotate-signing-key\n"
    "               make a new current key for signing tokens (tokens.*)\n"
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

// No limit on arguments that are not options (ParseArgs).
constexpr size_t kAnyPositional = static_cast<size_t>(-1);

// `with_value` lists options that take a value; `flags` those that do not.
// More than `max_positional` other arguments is an error naming the first
// extra one.
Args ParseArgs(int argc, char** argv, int first,
               const std::vector<std::string>& with_value,
               const std::vector<std::string>& flags,
               size_t max_positional = kAnyPositional) {
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
  // After the loop: --help anywhere still shows the usage, not this error.
  if (!args.help && args.positional.size() > max_positional) {
    args.error = "unexpected argument " + args.positional[max_positional];
  }
  return args;
}

// Prints a failure's message (never a secret: Status messages are client-
// and operator-safe) and gives the failure exit code.
int Fail(const Status& status) {
  std::fprintf(stderr, "wxsessiond: %s\n", status.operator_text().c_str());
  return kExitFailure;
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

// `for_admin`: an admin command, which needs the database but no secrets.
Result<Config> LoadFromArgs(const Args& args, bool for_admin = false) {
  ConfigOverrides overrides;
  if (args.Has("listen")) overrides.listen = args.Get("listen");
  if (args.Has("database")) overrides.database = args.Get("database");
  overrides.without_secrets = for_admin;
  return LoadConfig(args.Get("config"), ProcessEnvironment(), overrides);
}

// How long a stop waits for in-flight requests before exiting without
// them: the budget is 5 s, and the last second is for the WAL
// checkpoint and the exit itself. Idle kept-alive connections close within
// the HTTP keep-alive timeout (2 s), well inside this.
constexpr std::chrono::milliseconds kDrainDeadline{4000};

// How long a login waits for a free place in the upstream bulkhead before
// answering 503: past a second WeChat is slow enough that a Retry-After
// serves the client better than a longer wait.
constexpr int64_t kUpstreamSlotWaitMs = 1000;

// --- Secrets at rest and file checks (docs/SECURITY.md) ---------------------

// The keyring of storage.master_key_file (+ previous_master_key_files), or
// nullopt when sealing is off. Errors name the config key.
Result<std::optional<SessionKeyring>> KeyringFromConfig(const Config& config) {
  if (config.master_key_file.empty()) return std::optional<SessionKeyring>();
  Result<std::string> primary = ReadMasterKeyFile(config.master_key_file);
  if (!primary.ok()) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: storage.master_key_file: " +
                      primary.status().operator_text());
  }
  std::vector<std::string> previous;
  for (size_t i = 0; i < config.previous_master_key_files.size(); ++i) {
    Result<std::string> key =
        ReadMasterKeyFile(config.previous_master_key_files[i]);
    if (!key.ok()) {
      return Status(ErrorCode::kInvalidRequest,
                    "config: storage.previous_master_key_files[" +
                        std::to_string(i) + "]: " + key.status().operator_text());
    }
    previous.push_back(std::move(key).value());
  }
  return std::optional<SessionKeyring>(
      SessionKeyring(std::move(primary).value(), std::move(previous)));
}

// Wraps `store` in a SealedStore when storage.master_key_file is set.
Status SealIfConfigured(const Config& config, Logger& logger,
                        std::unique_ptr<SessionStore>* store) {
  Result<std::optional<SessionKeyring>> keyring = KeyringFromConfig(config);
  if (!keyring.ok()) return keyring.status();
  if (!keyring.value()) return Status::Ok();
  logger.Info("sealing", {{"key_id", keyring.value()->PrimaryKeyId()},
                          {"previous_keys",
                           static_cast<int>(
                               config.previous_master_key_files.size())}});
  *store = std::make_unique<SealedStore>(std::move(*store),
                                         std::move(*keyring.value()));
  return Status::Ok();
}

// Warns about secret-holding files that group or others can read or write.
void WarnAboutLooseFiles(const Config& config, const std::string& config_path,
                         Logger& logger) {
  for (const LooseFile& file :
       FindLooseFiles(SensitiveFiles(config, config_path))) {
    logger.Warn("loose_file_permissions",
                {{"path", file.path},
                 {"mode", FormatMode(file.mode)},
                 {"detail", "readable or writable by group or others; it "
                            "holds secrets or sessions: chmod 600 it"}});
  }
}

// Each open connection holds a socket: lift the soft limit on descriptors to
// the hard limit, as servers commonly do, and say so if even that is short.
void RaiseOpenFileLimit(const Config& config, Logger& logger) {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  // A socket per connection (one per HTTP thread), and 128 spare for the
  // listener, the SQLite pool, logs and upstream connections.
  rlim_t needed = static_cast<rlim_t>(EffectiveHttpThreads(config)) + 128;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    logger.Warn("open_file_limit",
                {{"limit", static_cast<long long>(limit.rlim_cur)},
                 {"needed", static_cast<long long>(needed)},
                 {"detail", "raise LimitNOFILE or lower http.threads"}});
  }
}

// Runs the server with `config` until SIGINT/SIGTERM. `on_ready` runs once
// the port is bound (dev prints its walk-through there). `config_path` is
// only for the file-permission check.
int RunServer(const Config& config,
              const std::function<void(int port)>& on_ready = {},
              const std::string& config_path = "") {
  Logger logger(stderr, config.log_format, config.log_level, StderrSink());
  RaiseOpenFileLimit(config, logger);
  Metrics metrics(WXSESSIOND_VERSION);
  SystemClock clock;
  Result<OpenedStore> opened = OpenConfiguredStore(config, clock);
  if (!opened.ok()) {
    return Fail(opened.status());
  }
  std::unique_ptr<SessionStore> session_store = std::move(opened->store);
  if (Status sealed = SealIfConfigured(config, logger, &session_store);
      !sealed.ok()) {
    return Fail(sealed);
  }
  WarnAboutLooseFiles(config, config_path, logger);
  // A Redis that is down at start-up is not fatal: requests answer 503
  // store_unavailable until it is back.
  if (Status ping = session_store->Ping(); !ping.ok()) {
    logger.Error("store_unavailable", {{"detail", ping.operator_text()}});
  }

  WeChatHttpOptions wechat_options;
  wechat_options.api_base = config.wechat_api_base;
  wechat_options.timeout_ms = config.wechat_timeout_ms;
  // Every app's login on its own platform (docs/PLATFORMS.md).
  std::unique_ptr<WeChatClient> wechat_http = NewPlatformClient(
      config, NewHttpWeChatClient(wechat_options), config.wechat_timeout_ms);
  UpstreamGuardOptions guard_options;
  guard_options.platform_of = [&config](const std::string& appid) {
    return PlatformOf(config, appid);
  };
  guard_options.max_concurrent = config.wechat_max_concurrent;
  guard_options.max_waiting = config.wechat_max_waiting;
  guard_options.max_wait_ms = kUpstreamSlotWaitMs;
  std::unique_ptr<WeChatClient> wechat =
      NewGuardedWeChatClient(*wechat_http, guard_options, &metrics);

  SessionService service(config, *session_store, *wechat, clock);
  std::unique_ptr<LoginHook> login_hook =
      NewHttpLoginHook(config, clock, &logger);
  service.SetLoginHook(login_hook.get());
  AdminService admin(config, *session_store, clock, &logger, &metrics);
  metrics.SetLiveSessionsSource([&]() -> std::optional<int64_t> {
    Result<StoreStats> stats = session_store->Stats(clock.Now());
    if (!stats.ok()) return std::nullopt;
    return stats->live_sessions;
  });
  Sweeper sweeper(*session_store, clock, config.sweep_interval,
                  Sweeper::kDefaultBatchRows,
                  [&logger, &metrics](const Result<int64_t>& deleted) {
                    metrics.ObserveSweep(deleted.ok(),
                                         deleted.ok() ? deleted.value() : 0);
                    if (!deleted.ok()) {
                      logger.Error("sweep_failed",
                                   {{"detail", deleted.status().operator_text()}});
                    } else if (deleted.value() > 0) {
                      logger.Info("sweep", {{"deleted", deleted.value()}});
                    }
                  });
  sweeper.SweepUsersAfter(config.user_retention);
  AccessTokenCentre tokens(
      config, *session_store, *wechat, clock,
      AccessTokenCentre::OptionsFor(config.wechat_timeout_ms));
  OpenDataService open_data(config, service, *wechat, tokens, clock);
  HttpServer server(config, service, open_data, tokens, logger, &metrics);
  // Signed tokens for backends (tokens.*), on when tokens.issuer is set.
  std::unique_ptr<TokenService> token_service;
  if (config.tokens.enabled()) {
    Result<std::unique_ptr<TokenService>> opened_tokens = TokenService::Open(
        config, *session_store, service, clock, &metrics);
    if (!opened_tokens.ok()) return Fail(opened_tokens.status());
    token_service = std::move(opened_tokens).value();
    server.EnableTokens(*token_service);
  }
  server.EnableAdmin(admin);
  Result<int> port = server.Bind(config.listen_host, config.listen_port);
  if (!port.ok()) {
    return Fail(port.status());
  }

  // The stop sequence: stop accepting and let in-flight requests finish
  // (server.Stop, then Serve returns), stop the sweeper, checkpoint the WAL.
  // If requests are still running at kDrainDeadline the signal thread
  // checkpoints and exits by itself: committed writes are durable in the
  // WAL whatever happens to the threads still running.
  std::mutex stop_mutex;
  std::condition_variable stop_cv;  // with stop_mutex
  bool serve_returned = false;      // guarded by stop_mutex
  auto checkpoint = [&] {
    Status checkpointed = session_store->Checkpoint();
    if (checkpointed.ok()) {
      logger.Info("checkpoint", {{"result", "ok"}});
    } else {
      logger.Warn("checkpoint", {{"result", "failed"},
                                 {"detail", checkpointed.operator_text()}});
    }
  };
  sigset_t signals = BlockStopSignals();
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    std::unique_lock<std::mutex> lock(stop_mutex);
    if (serve_returned) return;  // woken by the main thread, not a signal
    lock.unlock();
    logger.Info("stopping", {{"signal", received == SIGTERM ? "SIGTERM"
                                                            : "SIGINT"}});
    NotifyServiceManager("STOPPING=1");
    server.Stop();
    lock.lock();
    if (!stop_cv.wait_for(lock, kDrainDeadline,
                          [&] { return serve_returned; })) {
      logger.Error("drain_timeout",
                   {{"detail", "requests still running at the stop deadline; "
                               "exiting without them"}});
      checkpoint();
      std::fflush(nullptr);
      _exit(kExitOk);
    }
  });

  // Redis deletes expired sessions by itself: no sweeper against it.
  if (!opened->expires_by_itself) sweeper.Start();
  const char* scheme = config.tls_cert.empty() ? "http" : "https";
  logger.Info("listening", {{"address", config.listen_host + ":" +
                                            std::to_string(port.value())},
                            {"tls", config.tls_cert.empty() ? "off" : "on"},
                            {"store", opened->description},
                            {"apps", static_cast<int>(config.apps.size())},
                            {"admin_routes",
                             config.admin_token.empty() ? "off" : "on"},
                            {"tokens", token_service ? "on" : "off"},
                            {"version", WXSESSIOND_VERSION}});
  // Tests and scripts read this line to learn the bound port.
  std::printf("wxsessiond listening on %s://%s:%d\n", scheme,
              config.listen_host.c_str(), port.value());
  std::fflush(stdout);
  // The socket is bound and listening, so connections made from here on
  // queue until Serve takes them.
  const std::string ready = "READY=1\nSTATUS=listening on " +
                            config.listen_host + ":" +
                            std::to_string(port.value());
  NotifyServiceManager(ready);
  if (on_ready) on_ready(port.value());

  // WatchdogSec= in the unit: WATCHDOG=1 every half interval while serving,
  // so systemd restarts a process that stopped running at all.
  std::mutex watchdog_mutex;
  std::condition_variable watchdog_cv;  // with watchdog_mutex
  bool watchdog_done = false;           // guarded by watchdog_mutex
  std::thread watchdog;
  if (std::optional<std::chrono::microseconds> every = WatchdogPingInterval()) {
    watchdog = std::thread([&, every = *every] {
      std::unique_lock<std::mutex> lock(watchdog_mutex);
      while (!watchdog_cv.wait_for(lock, every, [&] { return watchdog_done; })) {
        NotifyServiceManager("WATCHDOG=1");
      }
    });
  }

  bool served = server.Serve();
  if (watchdog.joinable()) {
    {
      std::lock_guard<std::mutex> lock(watchdog_mutex);
      watchdog_done = true;
    }
    watchdog_cv.notify_all();
    watchdog.join();
  }
  sweeper.Stop();
  checkpoint();
  {
    std::lock_guard<std::mutex> lock(stop_mutex);
    serve_returned = true;
  }
  stop_cv.notify_all();
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
  Args args = ParseArgs(argc, argv, 2, {"config", "listen", "database"}, {},
                        /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) {
    return Fail(config.status());
  }
  return RunServer(config.value(), {}, args.Get("config"));
}

int CmdCheckConfig(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond check-config --config FILE\n"
      "\n"
      "Validates FILE as `serve` would (every key, the secret, admin token,\n"
      "master key and TLS files readable and well-formed, the store URL),\n"
      "without opening the database or any socket. Prints \"ok\" and a\n"
      "summary line and exits 0, or prints the first error, naming its key,\n"
      "and exits 1. The environment counts as for `serve`\n"
      "(WXSESSIOND_APPID..., CREDENTIALS_DIRECTORY).\n";
  Args args = ParseArgs(argc, argv, 2, {"config"}, {}, /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("config")) return Usage(usage, "--config is required");
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) return Fail(config.status());
  // What serve checks after loading, short of opening anything.
  Result<std::optional<SessionKeyring>> keyring =
      KeyringFromConfig(config.value());
  if (!keyring.ok()) return Fail(keyring.status());
  if (!config->tls_cert.empty()) {
    if (Status tls = CheckTlsFiles(config->tls_cert, config->tls_key);
        !tls.ok()) {
      return Fail(tls);
    }
  }
  Result<StoreLocator> locator = ParseStoreLocator(config->store);
  if (!locator.ok()) {
    return Fail(Status(ErrorCode::kInvalidRequest,
                       "config: " + locator.status().operator_text()));
  }
  std::string apps;
  for (const AppConfig& app : config->apps) {
    apps += (apps.empty() ? "" : ",") + app.appid;
  }
  const std::string store =
      locator->is_redis() ? locator->Redacted()
                          : "sqlite " + config->database;
  const std::string host = config->listen_host.find(':') == std::string::npos
                               ? config->listen_host
                               : "[" + config->listen_host + "]";
  std::printf("ok\napps=%s store=%s listen=%s:%d%s\n", apps.c_str(),
              store.c_str(), host.c_str(), config->listen_port,
              config->tls_cert.empty() ? "" : " tls=on");
  return kExitOk;
}

int CmdDev(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond dev [--listen HOST:PORT] [--database PATH]\n"
      "\n"
      "Runs the server against a built-in mock WeChat with one app\n"
      "(appid wxdev000000000000), data in ./dev. For trying the API locally;\n"
      "never for production. One app per other platform is configured too\n"
      "(qqdev..., ttdev..., ksdev..., bddev..., 2021dev...; see\n"
      "docs/PLATFORMS.md), against the same mock.\n";
  Args args = ParseArgs(argc, argv, 2, {"listen", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);

  // The Alipay app's key pair, made afresh: the mock checks requests with
  // its public half.
  Result<alipay::RsaKey> dev_app_key = alipay::GenerateRsaKey();
  if (!dev_app_key.ok()) return Fail(dev_app_key.status());
  MockWeChatOptions mock_options;
  mock_options.alipay_app_public_key = dev_app_key->PublicPem();
  MockWeChatServer mock(mock_options);
  Result<int> mock_port = mock.Bind("127.0.0.1", 0);
  if (!mock_port.ok()) {
    return Fail(mock_port.status());
  }
  std::thread mock_thread([&mock] { mock.Serve(); });

  // A Config of dev's own, given the same derived defaults as `serve`
  // (ResolveDefaults: bulkhead sizes, rate-limit burst): a Config built by
  // hand here once left the WeChat bulkhead at 0.
  Config config;
  ConfigOverrides overrides;
  overrides.database = args.Has("database") ? args.Get("database")
                                            : std::string("./dev/wxsessiond.db");
  if (args.Has("listen")) overrides.listen = args.Get("listen");
  Status built = ApplyOverrides(overrides, &config);
  if (built.ok()) built = ResolveDefaults(&config);
  if (!built.ok()) {
    mock.Stop();
    mock_thread.join();
    return Usage(usage, built.operator_text());
  }
  config.wechat_api_base =
      "http://127.0.0.1:" + std::to_string(mock_port.value());
  // One app per platform, all against the mock.
  for (const auto& [appid, platform] :
       std::vector<std::pair<std::string, Platform>>{
           {"wxdev000000000000", Platform::kWeChat},
           {"qqdev000000000000", Platform::kQQ},
           {"ttdev000000000000", Platform::kDouyin},
           {"ksdev000000000000", Platform::kKuaishou},
           {"bddev000000000000", Platform::kBaidu},
           {"2021dev000000000", Platform::kAlipay}}) {
    AppConfig app{appid, platform == Platform::kAlipay ? "" : "dev-secret"};
    app.platform = platform;
    app.api_base = config.wechat_api_base;
    if (platform == Platform::kAlipay) {
      app.private_key = dev_app_key->PrivatePem();
      app.alipay_public_key = mock.AlipayPublicKeyPem();
    }
    config.apps.push_back(std::move(app));
  }
  config.expose_openid = true;
  // A request that names no app means the WeChat one, as with one app (the
  // README's walk-through sends no appid).
  config.default_appid = "wxdev000000000000";
  if (!args.Has("database")) ::mkdir("./dev", 0700);

  int code = RunServer(config, [&config](int port) {
    std::string base =
        "http://" + config.listen_host + ":" + std::to_string(port);
    std::printf(
        "\nwxsessiond dev: a local server against a mock WeChat.\n"
        "Any code logs in (\"alice.1\" and \"alice.2\" are one user); the codes\n"
        "invalid, blocked, busy and limit show WeChat's errors.\n"
        "Apps: wxdev000000000000 (wechat), qqdev000000000000 (qq),\n"
        "ttdev000000000000 (douyin), ksdev000000000000 (kuaishou),\n"
        "bddev000000000000 (baidu), 2021dev000000000 (alipay).\n\n"
        "  curl -s -X POST %s/v1/login -H 'Content-Type: application/json' \\\n"
        "       -d '{\"appid\":\"wxdev000000000000\",\"code\":\"alice.1\"}'\n"
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
      "--delay applies to every WeChat route, not to the /mock/ routes.\n"
      "\n"
      "The other platforms' logins are served too (docs/PLATFORMS.md).\n"
      "Alipay: answers are signed with --alipay-key FILE (an RSA private key,\n"
      "PEM or bare base64), or a key pair made at start; its public half is\n"
      "printed before the listening line. Requests must be signed for\n"
      "--alipay-app-public-key FILE (the app's public key).\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"listen", "delay", "alipay-key",
                         "alipay-app-public-key"},
                        {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  MockWeChatOptions options;
  for (const auto& [flag, out, load] :
       std::vector<std::tuple<const char*, std::string*,
                              Result<alipay::RsaKey> (*)(const std::string&)>>{
           {"alipay-key", &options.alipay_key,
            &alipay::RsaKey::PrivateFromText},
           {"alipay-app-public-key", &options.alipay_app_public_key,
            &alipay::RsaKey::PublicFromText}}) {
    if (!args.Has(flag)) continue;
    std::ifstream file(args.Get(flag));
    std::stringstream text;
    text << file.rdbuf();
    if (!file || !load(text.str()).ok()) {
      return Usage(usage, std::string("--") + flag +
                              ": expected a readable file with an RSA key");
    }
    *out = text.str();
  }
  if (args.Has("delay")) {
    // A named copy: `end` points into it, so it must outlive the check.
    const std::string text = args.Get("delay");
    char* end = nullptr;
    long long delay = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || delay < 0) {
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
    return Fail(port.status());
  }
  sigset_t signals = BlockStopSignals();
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    mock.Stop();
  });
  std::printf("mock-wechat alipay public key:\n%s",
              mock.AlipayPublicKeyPem().c_str());
  std::printf("mock-wechat listening on http://%s:%d\n",
              host_port->first.c_str(), port.value());
  std::fflush(stdout);
  bool served = mock.Serve();
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return served ? kExitOk : kExitFailure;
}

// Opens the store named by --config / --database for an admin command.
// The config of an admin command that works on the SQLite file itself
// (backup, rekey). With a Redis `store` the error is `refusal`: what the
// command cannot do there and what to use instead.
Result<Config> LoadSqliteAdminConfig(const Args& args, const char* refusal) {
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return config;
  Result<StoreLocator> locator = ParseStoreLocator(config->store);
  if (locator.ok() && locator->is_redis()) {
    return Status(ErrorCode::kInvalidRequest, refusal);
  }
  return config;
}

Result<std::unique_ptr<SessionStore>> OpenStoreForAdmin(const Args& args) {
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
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
    return Fail(store.status());
  }
  Result<int64_t> revoked =
      all ? store.value()->RevokeAll()
          : store.value()->RevokeUser(args.Get("appid"), args.Get("openid"));
  if (!revoked.ok()) {
    return Fail(revoked.status());
  }
  std::printf("%s\n", nlohmann::json({{"revoked", revoked.value()}}).dump().c_str());
  return kExitOk;
}

// --- Users, sessions and bans (issue 15): the CLI face of AdminService,
// --- working on the store the config names while the server runs.

// The config (without secrets) and its store, for sessions/ban/unban.
struct AdminContext {
  Config config;
  std::unique_ptr<SessionStore> store;
};

Result<AdminContext> OpenAdminContext(const Args& args) {
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return config.status();
  static SystemClock clock;  // outlives every store this process opens
  Result<OpenedStore> opened = OpenConfiguredStore(config.value(), clock);
  if (!opened.ok()) return opened.status();
  return AdminContext{std::move(config).value(), std::move(opened->store)};
}

// "2024-05-01 12:00:00Z" for the table.
std::string UtcTime(int64_t unix_seconds) {
  std::time_t time = static_cast<std::time_t>(unix_seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%SZ", &parts);
  return text;
}

int CmdSessions(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond sessions --config FILE --openid OPENID "
      "[--appid APPID] [--json]\n"
      "\n"
      "Lists the user's live sessions (one per device), newest first: a\n"
      "table, or with --json {\"sessions\": [{\"handle\", \"created_at\",\n"
      "\"last_seen_at\", \"expires_at\"}]} as GET\n"
      "/v1/admin/users/{appid}/{openid}/sessions answers. A handle ends one\n"
      "session: DELETE /v1/admin/sessions/{handle}.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid"}, {"json"},
                        0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("openid")) return Usage(usage, "--openid is required");
  Result<AdminContext> context = OpenAdminContext(args);
  if (!context.ok()) return Fail(context.status());
  SystemClock clock;
  // The admin_action line goes to stderr, as the server's would to its log.
  Logger logger(stderr, context->config.log_format, context->config.log_level,
                StderrSink());
  AdminService admin(context->config, *context->store, clock, &logger,
                     nullptr);
  auto sessions = admin.ListSessions(args.Get("appid"), args.Get("openid"));
  if (!sessions.ok()) return Fail(sessions.status());
  if (args.Has("json")) {
    std::printf("%s\n", SessionsJson(sessions.value()).c_str());
    return kExitOk;
  }
  std::printf("%-64s  %-20s  %-20s  %-20s\n", "HANDLE", "CREATED",
              "LAST SEEN", "EXPIRES");
  for (const SessionSummary& s : sessions.value()) {
    std::printf("%-64s  %-20s  %-20s  %-20s\n",
                crypto::HexEncode(s.id_hash).c_str(),
                UtcTime(s.created_at).c_str(), UtcTime(s.last_seen_at).c_str(),
                UtcTime(s.expires_at).c_str());
  }
  std::printf("%zu live session(s)\n", sessions->size());
  return kExitOk;
}

int CmdBan(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond ban --config FILE --openid OPENID [--appid APPID] "
      "--reason TEXT [--until UNIXTIME]\n"
      "\n"
      "Suspends the user at once: every session ends, and logins answer 403\n"
      "user_banned until `wxsessiond unban` or UNIXTIME. The reason is for\n"
      "operators only. Prints the user as GET /v1/admin/users/... does.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid", "reason",
                         "until"},
                        {}, 0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("openid")) return Usage(usage, "--openid is required");
  if (!args.Has("reason")) return Usage(usage, "--reason is required");
  std::optional<int64_t> until;
  if (args.Has("until")) {
    const std::string text = args.Get("until");
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return Usage(usage, "--until takes a unix time in seconds");
    }
    until = std::stoll(text);
  }
  Result<AdminContext> context = OpenAdminContext(args);
  if (!context.ok()) return Fail(context.status());
  SystemClock clock;
  // The admin_action line goes to stderr, as the server's would to its log.
  Logger logger(stderr, context->config.log_format, context->config.log_level,
                StderrSink());
  AdminService admin(context->config, *context->store, clock, &logger,
                     nullptr);
  Result<UserRecord> user = admin.BanUser(args.Get("appid"), args.Get("openid"),
                                      args.Get("reason"), until);
  if (!user.ok()) return Fail(user.status());
  std::printf("%s\n", UserJson(user.value(), context->config).c_str());
  return kExitOk;
}

int CmdUnban(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond unban --config FILE --openid OPENID [--appid APPID]\n"
      "\n"
      "Lifts the user's ban: logins work again. Fails (exit 1) when the user\n"
      "is not banned.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid"}, {}, 0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("openid")) return Usage(usage, "--openid is required");
  Result<AdminContext> context = OpenAdminContext(args);
  if (!context.ok()) return Fail(context.status());
  SystemClock clock;
  // The admin_action line goes to stderr, as the server's would to its log.
  Logger logger(stderr, context->config.log_format, context->config.log_level,
                StderrSink());
  AdminService admin(context->config, *context->store, clock, &logger,
                     nullptr);
  Status lifted = admin.UnbanUser(args.Get("appid"), args.Get("openid"));
  if (!lifted.ok()) return Fail(lifted);
  std::printf("%s\n", nlohmann::json({{"unbanned", true}}).dump().c_str());
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
    return Fail(store.status());
  }
  SystemClock clock;
  Result<StoreStats> stats = store.value()->Stats(clock.Now());
  if (!stats.ok()) {
    return Fail(stats.status());
  }
  nlohmann::json out = {{"sessions", stats->sessions},
                        {"live_sessions", stats->live_sessions},
                        {"users", stats->users},
                        {"database_bytes", stats->database_bytes}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int CmdBackup(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond backup --config FILE [--database PATH] OUT.db\n"
      "\n"
      "Copies the database to OUT.db while the server runs: one consistent\n"
      "snapshot, checked, in a single file readable by its owner only. OUT.db\n"
      "must not exist. Prints {\"backup\", \"bytes\", \"sessions\"}.\n"
      "Restore: see docs/OPERATIONS.md.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {},
                        /*max_positional=*/1);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (args.positional.empty()) {
    return Usage(usage, "give the file to write, e.g. backup.db");
  }
  Result<Config> config = LoadSqliteAdminConfig(
      args,
      "backup copies the SQLite database; with a Redis store use Redis's own "
      "persistence (RDB/AOF, BGSAVE)");
  if (!config.ok()) {
    return Fail(config.status());
  }
  const std::string& out = args.positional.front();
  Result<BackupReport> report = BackupSqliteDatabase(config->database, out);
  if (!report.ok()) {
    return Fail(report.status());
  }
  nlohmann::json answer = {{"backup", out},
                           {"bytes", report->bytes},
                           {"sessions", report->sessions}};
  std::printf("%s\n",
              answer.dump(-1, ' ', false,
                          nlohmann::json::error_handler_t::replace)
                  .c_str());
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
  Args args = ParseArgs(argc, argv, 2, {"config", "database", "to"}, {},
                        /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) {
    return Fail(config.status());
  }
  std::string target = args.Has("to") ? args.Get("to") : config->store;
  SystemClock clock;
  Result<std::unique_ptr<RedisStore>> redis =
      OpenRedisStoreAt(config.value(), target, clock);
  if (!redis.ok()) {
    std::fprintf(stderr, "wxsessiond: --to: %s\n",
                 redis.status().operator_text().c_str());
    return args.Has("to") ? kExitUsage : kExitFailure;
  }
  if (Status ping = redis.value()->Ping(); !ping.ok()) {
    return Fail(ping);
  }
  SqliteOptions sqlite_options;
  sqlite_options.path = config->database;
  sqlite_options.durability = config->durability;
  Result<std::unique_ptr<StoreExporter>> sqlite =
      OpenSqliteExporter(sqlite_options);
  if (!sqlite.ok()) {
    return Fail(sqlite.status());
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
                 counts.status().operator_text().c_str());
    return kExitFailure;
  }
  nlohmann::json out = {{"sessions", counts->sessions},
                        {"users", counts->users},
                        {"access_tokens", counts->access_tokens}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int CmdRekey(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond rekey --config FILE --new-key-file KEYFILE\n"
      "\n"
      "Re-seals every user's stored session_key under the master key in\n"
      "KEYFILE (32 raw bytes, 64 hex digits or base64). Rows are opened with\n"
      "storage.master_key_file, storage.previous_master_key_files or KEYFILE;\n"
      "rows stored before sealing was on are sealed. Safe while the server\n"
      "runs if the server can open both keys (see docs/SECURITY.md,\n"
      "\"Rotating the master key\"). SQLite only.\n"
      "Prints {\"users\": N, \"resealed\": M}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database", "new-key-file"},
                        {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("new-key-file")) return Usage(usage, "--new-key-file is required");
  Result<Config> config = LoadSqliteAdminConfig(
      args,
      "rekey re-seals the SQLite database; it cannot rewrite a Redis store "
      "(see docs/SECURITY.md)");
  if (!config.ok()) {
    return Fail(config.status());
  }
  Result<std::string> new_key = ReadMasterKeyFile(args.Get("new-key-file"));
  if (!new_key.ok()) {
    std::fprintf(stderr, "wxsessiond: --new-key-file: %s\n",
                 new_key.status().operator_text().c_str());
    return kExitFailure;
  }
  Result<std::optional<SessionKeyring>> current = KeyringFromConfig(config.value());
  if (!current.ok()) {
    return Fail(current.status());
  }
  // Opens whatever the server could open, and rows already under the new key.
  std::vector<std::string> openers;
  if (current.value()) {
    Result<std::string> primary = ReadMasterKeyFile(config->master_key_file);
    if (primary.ok()) openers.push_back(std::move(primary).value());
    for (const std::string& file : config->previous_master_key_files) {
      Result<std::string> key = ReadMasterKeyFile(file);
      if (key.ok()) openers.push_back(std::move(key).value());
    }
  }
  const SessionKeyring target(new_key.value(), openers);

  SqliteOptions options;
  options.path = config->database;
  options.durability = config->durability;
  Result<RewriteCounts> counts = RewriteUserSessionKeys(
      options, [&target](const std::string& appid, const std::string& openid,
                         const std::string& stored) -> Result<std::string> {
        if (target.SealedWithPrimary(stored)) return stored;
        Result<std::string> plain = target.Open(appid, openid, stored);
        if (!plain.ok()) return plain.status();
        return target.Seal(appid, openid, plain.value());
      });
  if (!counts.ok()) {
    std::fprintf(stderr, "wxsessiond: rekey stopped: %s\n",
                 counts.status().operator_text().c_str());
    return kExitFailure;
  }
  if (!current.value() ||
      current.value()->PrimaryKeyId() != target.PrimaryKeyId()) {
    // A server started with the old configuration cannot open these rows.
    std::fprintf(stderr,
                 "wxsessiond: note: storage.master_key_file is not this key; "
                 "point it at %s before the server next starts\n",
                 args.Get("new-key-file").c_str());
  }
  std::printf("%s\n", nlohmann::json({{"users", counts->users},
                                      {"resealed", counts->rewritten},
                                      {"key_id", target.PrimaryKeyId()}})
                          .dump()
                          .c_str());
  return kExitOk;
}

int CmdRotateSigningKey(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond rotate-signing-key --config FILE\n"
      "\n"
      "Makes a new current key for signing tokens (tokens.algorithm), kept\n"
      "in the store. Every instance on the store signs with it within 60 s;\n"
      "the previous key stays in the JWKS until every token it signed has\n"
      "expired (60 s + tokens.ttl). Not with tokens.signing_key_file.\n"
      "Prints {\"kid\": NEW_KID}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {},
                        /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return Fail(config.status());
  static SystemClock clock;  // outlives the store
  Result<OpenedStore> opened = OpenConfiguredStore(config.value(), clock);
  if (!opened.ok()) return Fail(opened.status());
  std::unique_ptr<SessionStore> store = std::move(opened->store);
  Logger logger(stderr, config->log_format, LogLevel::kWarn);
  if (Status sealed = SealIfConfigured(config.value(), logger, &store);
      !sealed.ok()) {
    return Fail(sealed);
  }
  Result<std::string> kid = RotateSigningKey(config.value(), *store, clock);
  if (!kid.ok()) return Fail(kid.status());
  std::printf("%s\n", nlohmann::json({{"kid", kid.value()}}).dump().c_str());
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
  if (command == "check-config") return CmdCheckConfig(argc, argv);
  if (command == "mock-wechat") return CmdMockWeChat(argc, argv);
  if (command == "revoke") return CmdRevoke(argc, argv);
  if (command == "stats") return CmdStats(argc, argv);
  if (command == "sessions") return CmdSessions(argc, argv);
  if (command == "ban") return CmdBan(argc, argv);
  if (command == "unban") return CmdUnban(argc, argv);
  if (command == "backup") return CmdBackup(argc, argv);
  if (command == "migrate-store") return CmdMigrateStore(argc, argv);
  if (command == "rekey") return CmdRekey(argc, argv);
  if (command == "rotate-signing-key") return CmdRotateSigningKey(argc, argv);
  return Usage(kMainUsage, "unknown command '" + command + "'");
}

}  // namespace
}  // namespace wxsession

int main(int argc, char** argv) { return wxsession::Main(argc, argv); }
