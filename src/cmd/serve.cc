// `wxsessiond serve`: builds the server's objects from the Config, wires
// them and runs until a stop signal (StopCoordinator).
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "cmd/commands.h"
#include "cmd/stop_coordinator.h"
#include "http/api.h"
#include "ops/file_check.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/systemd_notify.h"
#include "platforms/platform_client.h"
#include "store/factory.h"
#include "wechat/guard.h"
#include "wxsession/access_token.h"
#include "wxsession/admin_service.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/login_hook.h"
#include "wxsession/open_data.h"
#include "wxsession/service.h"
#include "wxsession/sweeper.h"
#include "wxsession/thread_annotations.h"
#include "wxsession/token_service.h"
#include "wxsession/wechat.h"

namespace wxsession {
namespace cmd {
namespace {

// How long a login waits for a free place in the upstream bulkhead before
// answering 503: past a second WeChat is slow enough that a Retry-After
// serves the client better than a longer wait.
constexpr int64_t kUpstreamSlotWaitMs = 1000;

// Warns about secret-holding files that group or others can read or write.
void WarnAboutLooseFiles(const Config& config, const std::string& config_path,
                         Logger& logger) {
  for (const LooseFile& file :
       FindLooseFiles(SensitiveFiles(config, config_path))) {
    logger.Warn("loose_file_permissions",
                {{"path", file.path},
                 {"mode", FormatMode(file.mode)},
                 {"detail",
                  "readable or writable by group or others; it "
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

// The configured store, sealed when storage.master_key_file is set, after
// the file-permission check. A Redis that is down at start-up is not fatal:
// requests answer 503 store_unavailable until it is back.
Result<OpenedStore> OpenServerStore(const Config& config, const Clock& clock,
                                    const std::string& config_path,
                                    Logger& logger) {
  Result<OpenedStore> opened = OpenConfiguredStore(config, clock);
  if (!opened.ok()) return opened.status();
  if (Status sealed = SealIfConfigured(config, logger, &opened->store);
      !sealed.ok()) {
    return sealed;
  }
  WarnAboutLooseFiles(config, config_path, logger);
  if (Status ping = opened->store->Ping(); !ping.ok()) {
    logger.Error("store_unavailable", {{"detail", ping.operator_text()}});
  }
  return opened;
}

// The clients of WeChat and the other platforms, and the guard (bulkhead,
// metrics) every call goes through; `guarded` uses `platforms`.
struct Upstream {
  std::unique_ptr<WeChatClient> platforms;
  std::unique_ptr<WeChatClient> guarded;
};

Upstream ConnectUpstream(const Config& config, Metrics* metrics) {
  WeChatHttpOptions wechat_options;
  wechat_options.api_base = config.wechat_api_base;
  wechat_options.timeout_ms = config.wechat_timeout_ms;
  Upstream upstream;
  // Every app's login on its own platform (docs/PLATFORMS.md).
  upstream.platforms = NewPlatformClient(
      config, NewHttpWeChatClient(wechat_options), config.wechat_timeout_ms);
  UpstreamGuardOptions guard_options;
  guard_options.platform_of = [&config](const std::string& appid) {
    return PlatformOf(config, appid);
  };
  guard_options.max_concurrent = config.wechat_max_concurrent;
  guard_options.max_waiting = config.wechat_max_waiting;
  guard_options.max_wait_ms = kUpstreamSlotWaitMs;
  upstream.guarded =
      NewGuardedWeChatClient(*upstream.platforms, guard_options, metrics);
  return upstream;
}

// The sweeper of expired sessions (and, with users.retention, old users),
// reporting each batch to the log and the metrics.
std::unique_ptr<Sweeper> MakeSweeper(const Config& config, SessionStore& store,
                                     const Clock& clock, Logger& logger,
                                     Metrics& metrics) {
  auto sweeper = std::make_unique<Sweeper>(
      store, clock, config.sweep_interval, Sweeper::kDefaultBatchRows,
      [&logger, &metrics](const Result<int64_t>& deleted) {
        metrics.ObserveSweep(deleted.ok(), deleted.ok() ? deleted.value() : 0);
        if (!deleted.ok()) {
          logger.Error("sweep_failed",
                       {{"detail", deleted.status().operator_text()}});
        } else if (deleted.value() > 0) {
          logger.Info("sweep", {{"deleted", deleted.value()}});
        }
      });
  sweeper->SweepUsersAfter(config.user_retention);
  return sweeper;
}

// The live-sessions gauge asks the store at each scrape.
void ReportLiveSessions(Metrics& metrics, SessionStore& store,
                        const Clock& clock) {
  metrics.SetLiveSessionsSource([&store, &clock]() -> std::optional<int64_t> {
    Result<StoreStats> stats = store.Stats(clock.Now());
    if (!stats.ok()) return std::nullopt;
    return stats->live_sessions;
  });
}

// Signed tokens for backends (tokens.*), on when tokens.issuer is set:
// the TokenService, enabled on `server`, or nullptr when off.
Result<std::unique_ptr<TokenService>> EnableTokens(
    const Config& config, SessionStore& store, SessionService& service,
    const Clock& clock, Metrics& metrics, HttpServer& server) {
  if (!config.tokens.enabled()) return std::unique_ptr<TokenService>();
  Result<std::unique_ptr<TokenService>> opened =
      TokenService::Open(config, store, service, clock, &metrics);
  if (!opened.ok()) return opened.status();
  server.EnableTokens(*opened.value());
  return opened;
}

// The "listening" log line, the line on stdout that tests and scripts read
// to learn the bound port, and READY=1 for systemd. The socket is bound and
// listening, so connections made from here on queue until Serve takes them.
void AnnounceListening(const Config& config, int port,
                       const std::string& store_description, bool tokens_on,
                       Logger& logger) {
  const char* scheme = config.tls_cert.empty() ? "http" : "https";
  logger.Info("listening",
              {{"address", config.listen_host + ":" + std::to_string(port)},
               {"tls", config.tls_cert.empty() ? "off" : "on"},
               {"store", store_description},
               {"apps", static_cast<int>(config.apps.size())},
               {"admin_routes", config.admin_token.empty() ? "off" : "on"},
               {"tokens", tokens_on ? "on" : "off"},
               {"version", WXSESSIOND_VERSION}});
  std::printf("wxsessiond listening on %s://%s:%d\n", scheme,
              config.listen_host.c_str(), port);
  std::fflush(stdout);
  NotifyServiceManager("READY=1\nSTATUS=listening on " + config.listen_host +
                       ":" + std::to_string(port));
}

// WatchdogSec= in the unit: WATCHDOG=1 every half interval while serving,
// so systemd restarts a process that stopped running at all. Does nothing
// when the watchdog is off.
class WatchdogPinger {
 public:
  WatchdogPinger() {
    std::optional<std::chrono::microseconds> every = WatchdogPingInterval();
    if (!every) return;
    thread_ = std::thread([this, every = *every] {
      MutexLock lock(mutex_);
      while (!lock.WaitFor(cv_, every,
                           [this]() REQUIRES(mutex_) { return done_; })) {
        NotifyServiceManager("WATCHDOG=1");
      }
    });
  }
  ~WatchdogPinger() { Stop(); }
  WatchdogPinger(const WatchdogPinger&) = delete;
  WatchdogPinger& operator=(const WatchdogPinger&) = delete;

  void Stop() {
    if (!thread_.joinable()) return;
    {
      MutexLock lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  Mutex mutex_;
  std::condition_variable cv_;  // with mutex_
  bool done_ GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace

int RunServer(const Config& config,
              const std::function<void(int port)>& on_ready,
              const std::string& config_path) {
  Logger logger(stderr, config.log_format, config.log_level, StderrSink());
  RaiseOpenFileLimit(config, logger);
  Metrics metrics(WXSESSIOND_VERSION);
  SystemClock clock;
  Result<OpenedStore> opened =
      OpenServerStore(config, clock, config_path, logger);
  if (!opened.ok()) return Fail(opened.status());
  SessionStore& store = *opened->store;
  Upstream upstream = ConnectUpstream(config, &metrics);
  WeChatClient& wechat = *upstream.guarded;

  SessionService service(config, store, wechat, clock);
  std::unique_ptr<LoginHook> login_hook =
      NewHttpLoginHook(config, clock, &logger);
  service.SetLoginHook(login_hook.get());
  AdminService admin(config, store, clock, &logger, &metrics);
  ReportLiveSessions(metrics, store, clock);
  std::unique_ptr<Sweeper> sweeper =
      MakeSweeper(config, store, clock, logger, metrics);
  AccessTokenCentre tokens(
      config, store, wechat, clock,
      AccessTokenCentre::OptionsFor(config.wechat_timeout_ms));
  OpenDataService open_data(config, service, wechat, tokens, clock);
  HttpServer server(config, service, open_data, tokens, clock, logger,
                    &metrics);
  Result<std::unique_ptr<TokenService>> token_service =
      EnableTokens(config, store, service, clock, metrics, server);
  if (!token_service.ok()) return Fail(token_service.status());
  server.EnableAdmin(admin);
  Result<int> port = server.Bind(config.listen_host, config.listen_port);
  if (!port.ok()) return Fail(port.status());

  BlockedSignalSource signals;
  StopCoordinator stop(
      signals, logger,
      StopCoordinator::ProcessSteps([&server] { server.Stop(); },
                                    [&store] { return store.Checkpoint(); }),
      clock);
  stop.Start();
  // Redis deletes expired sessions by itself: no sweeper against it.
  if (!opened->expires_by_itself) sweeper->Start();
  AnnounceListening(config, port.value(), opened->description,
                    token_service.value() != nullptr, logger);
  if (on_ready) on_ready(port.value());

  WatchdogPinger watchdog;
  bool served = server.Serve();
  watchdog.Stop();
  sweeper->Stop();
  return stop.Finish(served);
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

}  // namespace cmd
}  // namespace wxsession
