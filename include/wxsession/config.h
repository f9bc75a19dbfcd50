// Config: everything wxsessiond can be told, how it is loaded and validated.
//
// Sources, later ones winning: built-in defaults, the JSON config file
// (comments allowed), the environment (WXSESSIOND_APPID with
// WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE, for a single app), and the
// command-line overrides --listen and --database. Secrets are never accepted
// on the command line.
//
// Thread-safety: a Config is a plain value, constant after loading.
#ifndef WXSESSION_CONFIG_H_
#define WXSESSION_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/platform.h"
#include "wxsession/status.h"

namespace wxsession {

// The log's threshold and line format (log.level, log.format).
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kJson, kText };

struct AppConfig {
  std::string appid;
  std::string secret;            // never printed
  std::string secret_file = {};  // where the secret was read; "" if inline
  // --- Platforms (docs/PLATFORMS.md) ---------------------------------------
  Platform platform = Platform::kWeChat;  // apps[].platform
  // apps[].api_base: where this app's login call goes; "" = the platform's
  // DefaultApiBase (wechat.api_base for WeChat). No trailing '/'.
  std::string api_base = {};
  // Alipay only, in place of the secret: the text of apps[].private_key_file
  // (the app's RSA private key) and of apps[].alipay_public_key_file
  // (Alipay's public key), checked to load at LoadConfig. Never printed.
  std::string private_key = {};
  std::string alipay_public_key = {};
};

enum class Durability { kNormal, kFull };

// The Redis backend's settings, used when `store` names Redis.
struct RedisConfig {
  std::string prefix = "wxs:";  // starts every key, so apps can share a Redis
  int64_t timeout_ms = 1000;    // connect, and each command's reply
  int pool_size = 16;           // connections per process, at most
  // After a login (and a revocation) wait until this many replicas hold the
  // write; if they do not within timeout_ms / 2, answer store_unavailable.
  int min_replicas_ack = 0;
  // From redis.password_file or WXSESSIOND_REDIS_PASSWORD, for a store URL
  // without a password. Never printed.
  std::string password;
};

// tokens: signed JWTs for backends (docs/API.md, "Tokens"). Tokens are on
// when `issuer` is set.
struct TokensConfig {
  std::string issuer;               // the iss claim and the discovery base URL
  std::string audience;             // the aud claim; empty: the session's appid
  int64_t ttl = 600;                // seconds a JWT is valid; at most 3600
  std::string algorithm = "ES256";  // or "EdDSA"
  std::string signing_key_file;     // PEM; empty: a key kept in the store
  std::string introspection_tokens_file;
  // Its lines (trimmed, blank lines and '#' comments skipped). Never printed.
  std::vector<std::string> introspection_tokens;

  bool enabled() const { return !issuer.empty(); }
};

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string database = "./wxsessiond.db";
  // "sqlite" (the file `database`) or a Redis URL; see store_locator.h.
  std::string store = "sqlite";
  RedisConfig redis;
  std::vector<AppConfig> apps;

  int64_t session_ttl = 30 * 86400;      // seconds, absolute lifetime
  int64_t session_idle_ttl = 7 * 86400;  // seconds, 0 = no idle expiry
  int64_t sweep_interval = 60;           // seconds between sweeper runs

  std::string wechat_api_base = "https://api.weixin.qq.com";
  int64_t wechat_timeout_ms = 5000;  // per upstream call, connect + read

  bool expose_openid = false;
  Durability durability = Durability::kNormal;
  int http_threads = 0;  // 0 = choose from the machine

  // storage: secrets at rest and a size cap (docs/SECURITY.md).
  std::string master_key_file;  // empty: session_keys stored as received
  std::vector<std::string> previous_master_key_files;  // open only (rotation)
  int64_t storage_max_pages = 0;  // 0 = no cap; else SQLite max_page_count

  // open_data.max_age, seconds: decrypted open data whose
  // watermark.timestamp is older is refused. 0 = no limit.
  int64_t open_data_max_age = 0;
  // admin.token_file, and the token read from it (surrounding whitespace
  // trimmed). Admin routes exist only when it is set. Never printed.
  std::string admin_token_file;
  std::string admin_token;
  // --- Running in production: logs, abuse limits, TLS ---------------------
  LogFormat log_format = LogFormat::kJson;  // log.format
  LogLevel log_level = LogLevel::kInfo;     // log.level
  // POST /v1/login per client address (rate_limit.login_per_minute; 0 = no
  // limit) and the bucket size (rate_limit.login_burst; 0 = not set, and
  // ResolveDefaults makes it a sixth of the rate: ten seconds' worth).
  int64_t login_rate_per_minute = 600;
  int64_t login_rate_burst = 0;
  // Calls to WeChat made for one session (/v1/phone, /v1/session/check) per
  // minute (rate_limit.wechat_per_session_per_minute; 0 = no limit): each
  // spends the app's daily WeChat quota.
  int64_t wechat_per_session_per_minute = 10;
  // Peers whose X-Forwarded-For / X-Real-IP are believed, as CIDR texts.
  // Loopback by default: a proxy on the same machine is the usual setup.
  std::vector<std::string> trusted_proxies = {"127.0.0.0/8", "::1/128"};
  // Calls to WeChat in flight at once (wechat.max_concurrent), and how many
  // more may wait for a place. ResolveDefaults sets both: max_concurrent
  // defaults to a quarter of the HTTP threads, and together they leave
  // UpstreamReservedThreads() threads that logins can never hold.
  int wechat_max_concurrent = 0;
  int wechat_max_waiting = 0;
  // --- Users, sessions per user and the login hook (issue 15) ------------
  // session.max_per_user: live sessions one (appid, openid) may hold; a
  // login past it ends the oldest. 0 = no limit.
  int64_t session_max_per_user = 0;
  // users.retention, seconds: a user with no live session, no ban and no
  // login for this long is deleted by the sweeper.
  int64_t user_retention = 90 * 86400;
  // hooks.login_url: asked before a session is minted; empty = no hook.
  std::string hook_login_url;
  std::string hook_secret_file;       // hooks.secret_file
  std::string hook_secret;            // its content, trimmed; never printed
  int64_t hook_timeout_ms = 2000;     // hooks.timeout
  bool hook_deny_on_failure = false;  // hooks.on_failure == "deny"

  std::string tls_cert;  // PEM file; with tls_key, serve HTTPS
  std::string tls_key;   // PEM file; its content is never read into logs
  TokensConfig tokens;   // tokens.*
  // The app a request without appid means when several are served; not a
  // config-file key (`wxsessiond dev` sets it). Empty: such a request is
  // refused.
  std::string default_appid;

  // Returns the app with `appid`, or nullptr.
  const AppConfig* FindApp(const std::string& appid) const;
  // The app a request names; an empty `appid` means the only app (or
  // default_appid). Errors: kInvalidRequest (empty, but several apps are
  // served and no default), kUnknownApp.
  Result<const AppConfig*> AppFor(const std::string& appid) const;
};

// Reads an environment variable; injectable for tests.
using GetEnv = std::function<std::optional<std::string>(const std::string&)>;
GetEnv ProcessEnvironment();

struct ConfigOverrides {
  std::optional<std::string> listen;    // HOST:PORT
  std::optional<std::string> database;  // path
  // Admin commands (revoke, stats, backup) need only the database: leave
  // app secret and TLS files unread, so they run without the service's
  // credentials.
  bool without_secrets = false;
};

// Loads `path` (may be empty: defaults and environment only), applies the
// environment and `overrides`, and validates the result. Every failure is
// kInvalidRequest with one line that names the offending key, e.g.
// "config: session.ttl: expected a duration like 30d, 12h, 90s or a number
// of seconds". A config with no app is an error. Every *_file key,
// storage.previous_master_key_files, tls.cert and tls.key may start with
// $CREDENTIALS_DIRECTORY/ (systemd's LoadCredential=), which is replaced by
// that environment variable. Ends with ApplyOverrides and ResolveDefaults.
Result<Config> LoadConfig(const std::string& path, const GetEnv& env,
                          const ConfigOverrides& overrides);

// Applies --listen and --database to `config`. kInvalidRequest
// "config: --listen: expected HOST:PORT ..." for a malformed address and
// "config: --database: expected a non-empty path" for an empty one.
Status ApplyOverrides(const ConfigOverrides& overrides, Config* config);

// Fills in the settings whose defaults follow from other settings, and checks
// them together: login_rate_burst when 0 (a sixth of login_rate_per_minute),
// and wechat_max_concurrent (when 0, a quarter of the HTTP threads) and
// wechat_max_waiting, which leave UpstreamReservedThreads() threads that
// logins never hold. LoadConfig calls it last (`serve`, `check-config`); a
// command that builds a Config itself (`dev`) calls it before using it.
// Calling it again changes nothing. kInvalidRequest
// "config: wechat.max_concurrent: must be at most N with T HTTP worker
// threads, ..." when wechat_max_concurrent leaves lookups too few threads.
Status ResolveDefaults(Config* config);

// The most HTTP worker threads when http.threads is 0. Threads are made on
// demand up to this cap (each open connection holds one while open, and a
// login holds one for its whole upstream call); a thread costs about 64 KiB
// of touched stack, so 1024 stay well inside memory.
constexpr int kDefaultHttpThreads = 1024;

// The cap on HTTP worker threads: http.threads, or kDefaultHttpThreads.
int EffectiveHttpThreads(const Config& config);

// HTTP threads that calls to WeChat (running or waiting) never hold, so a
// stalled WeChat leaves them for session lookups: max(2, threads / 8).
int UpstreamReservedThreads(int http_threads);

// Parses "30d", "12h", "15m", "90s" or a plain non-negative integer string
// (seconds). nullopt on anything else.
std::optional<int64_t> ParseDuration(const std::string& text);

// Splits "host:port" ("[::1]:80" for IPv6). Port 0 means "any free port".
std::optional<std::pair<std::string, int>> ParseHostPort(
    const std::string& text);

}  // namespace wxsession

#endif  // WXSESSION_CONFIG_H_
