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

#include "wxsession/status.h"

namespace wxsession {

struct AppConfig {
  std::string appid;
  std::string secret;  // never printed
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

  // open_data.max_age, seconds: decrypted open data whose
  // watermark.timestamp is older is refused. 0 = no limit.
  int64_t open_data_max_age = 0;
  // admin.token_file, and the token read from it (surrounding whitespace
  // trimmed). Admin routes exist only when it is set. Never printed.
  std::string admin_token_file;
  std::string admin_token;

  // Returns the app with `appid`, or nullptr.
  const AppConfig* FindApp(const std::string& appid) const;
};

// Reads an environment variable; injectable for tests.
using GetEnv = std::function<std::optional<std::string>(const std::string&)>;
GetEnv ProcessEnvironment();

struct ConfigOverrides {
  std::optional<std::string> listen;    // HOST:PORT
  std::optional<std::string> database;  // path
};

// Loads `path` (may be empty: defaults and environment only), applies the
// environment and `overrides`, and validates the result. Every failure is
// kInvalidRequest with one line that names the offending key, e.g.
// "config: session.ttl: expected a duration like 30d, 12h, 90s or a number
// of seconds". A config with no app is an error.
Result<Config> LoadConfig(const std::string& path, const GetEnv& env,
                          const ConfigOverrides& overrides);

// Parses "30d", "12h", "15m", "90s" or a plain non-negative integer string
// (seconds). nullopt on anything else.
std::optional<int64_t> ParseDuration(const std::string& text);

// Splits "host:port" ("[::1]:80" for IPv6). Port 0 means "any free port".
std::optional<std::pair<std::string, int>> ParseHostPort(
    const std::string& text);

}  // namespace wxsession

#endif  // WXSESSION_CONFIG_H_
