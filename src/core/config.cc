// Config loading: file, then environment, then command-line overrides, then
// the derived defaults (ResolveDefaults) checked together.
//
// The file is read one top-level key at a time (TopLevelKeys): each key has
// one function, and each reads its values through a Section
// (core/json_section.h), which owns the range, duration, enumeration and
// unknown-key checks and their messages; apps (and the app the environment
// names) are read in core/app_section.cc. Every error is one line, "config:
// <key path>: <what is wrong>". No message ever quotes a secret value, and
// parse errors drop the JSON token text, which could be part of a secret.
//
// Environment variables honoured (empty counts as unset, since container
// tooling often exports empty variables for unset ones):
//   WXSESSIOND_APPID         with exactly one of
//   WXSESSIOND_SECRET        the app secret, or
//   WXSESSIOND_SECRET_FILE   a file holding it (trailing whitespace trimmed).
//                            If the file already configures WXSESSIOND_APPID,
//                            the environment secret replaces its secret;
//                            otherwise the app is appended.
//   WXSESSIOND_API_BASE      replaces wechat.api_base; meant for local
//                            development against a mock WeChat server.
//   CREDENTIALS_DIRECTORY    set by systemd for LoadCredential=; replaces a
//                            leading $CREDENTIALS_DIRECTORY in every *_file
//                            key, storage.previous_master_key_files, tls.cert
//                            and tls.key (Section::SecretPath).
//   WXSESSIOND_REDIS_PASSWORD the Redis password, when the store URL holds
//                            none (instead of redis.password_file).
//
// Relative paths (database, secret_file, admin.token_file) are relative to the
// process working directory, not to the config file.
#include "wxsession/config.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/app_section.h"
#include "core/ip_network.h"
#include "core/json_section.h"
#include "core/secret_file.h"
#include "core/store_locator.h"

namespace wxsession {
namespace {

using nlohmann::json;

// 1 MiB: far above any sane config, small enough to read at once.
constexpr size_t kMaxConfigFileBytes = size_t{1} << 20;
constexpr int kMaxHttpThreads = 1024;  // more is a typo, not a tuning choice
constexpr int64_t kMaxRate = 1000000;  // per minute; more is a typo
constexpr int64_t kMaxSessionsPerUser = 1000;  // more is a typo
constexpr int64_t kMaxTokenTtlSeconds = 3600;  // the contract: at most 1h
constexpr char kUrlHint[] = "expected a URL starting with http:// or https://";

Status ParseListen(const std::string& text, const std::string& key_path,
                   Config* config) {
  auto host_port = ParseHostPort(text);
  if (!host_port) {
    return ConfigError(key_path,
                       "expected HOST:PORT with a port from 0 to 65535, e.g. "
                       "127.0.0.1:8080 or [::1]:8080");
  }
  config->listen_host = host_port->first;
  config->listen_port = host_port->second;
  return Status::Ok();
}

// --- The other top-level keys, one function each (TopLevelKeys). An
// object key's function gets its object; any other gets the top level.

Status ApplyListen(const Section& root, const SecretSource&, Config* config) {
  const json* listen = root.Find("listen");
  if (listen == nullptr) return Status::Ok();
  if (!listen->is_string()) {
    return root.Error("listen", "expected a string like 127.0.0.1:8080");
  }
  return ParseListen(listen->get<std::string>(), "listen", config);
}

Status ApplyDatabase(const Section& root, const SecretSource&, Config* config) {
  return root.Path("database", &config->database);
}

Status ApplySession(const Section& session, const SecretSource&,
                    Config* config) {
  Status s = session.Duration("ttl", 1, &config->session_ttl);
  if (s.ok()) s = session.Duration("idle_ttl", 0, &config->session_idle_ttl);
  if (!s.ok()) return s;
  return session.Int("max_per_user", 0, kMaxSessionsPerUser,
                     &config->session_max_per_user, "no limit");
}

Status ApplySweepInterval(const Section& root, const SecretSource&,
                          Config* config) {
  return root.Duration("sweep_interval", 1, &config->sweep_interval);
}

Status ApplyWechat(const Section& wechat, const SecretSource&, Config* config) {
  Status s = wechat.BaseUrl("api_base", &config->wechat_api_base);
  if (s.ok()) s = wechat.Timeout("timeout", &config->wechat_timeout_ms);
  if (!s.ok()) return s;
  // Checked against the HTTP threads in ResolveDefaults.
  return wechat.Int("max_concurrent", 1, kMaxHttpThreads,
                    &config->wechat_max_concurrent);
}

Status ApplyExposeOpenid(const Section& root, const SecretSource&,
                         Config* config) {
  return root.Bool("expose_openid", &config->expose_openid);
}

Status ApplyDurability(const Section& root, const SecretSource&,
                       Config* config) {
  return root.Enum(
      "durability",
      {{"normal", Durability::kNormal}, {"full", Durability::kFull}},
      &config->durability);
}

Status ApplyHttp(const Section& http, const SecretSource&, Config* config) {
  return http.Int("threads", 0, kMaxHttpThreads, &config->http_threads,
                  "automatic");
}

// `store`: "sqlite" or a Redis URL (issue 6).
Status ApplyStore(const Section& root, const SecretSource&, Config* config) {
  const json* store = root.Find("store");
  if (store == nullptr) return Status::Ok();
  if (!store->is_string()) {
    return root.Error("store", "expected \"sqlite\" or a Redis URL");
  }
  Result<StoreLocator> locator = ParseStoreLocator(store->get<std::string>());
  // The locator's messages start with "store: " and never quote the URL.
  if (!locator.ok()) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: " + locator.status().operator_text());
  }
  config->store = store->get<std::string>();
  return Status::Ok();
}

Status ApplyRedis(const Section& redis, const SecretSource& secrets,
                  Config* config) {
  RedisConfig& out = config->redis;
  if (const json* prefix = redis.Find("prefix")) {
    // 64 bytes: a namespace, not data; keeps every key short.
    const std::string text =
        prefix->is_string() ? prefix->get<std::string>() : "";
    if (text.empty() || text.size() > 64 ||
        text.find_first_of(" \t\r\n") != std::string::npos) {
      return redis.Error("prefix",
                         "expected a non-empty string without spaces, at "
                         "most 64 characters, e.g. \"wxs:\"");
    }
    out.prefix = text;
  }
  Status s = redis.Timeout("timeout", &out.timeout_ms);
  // 1024 connections and 64 replicas: more is a typo, not a deployment.
  if (s.ok()) s = redis.Int("pool_size", 1, 1024, &out.pool_size);
  if (s.ok()) {
    s = redis.Int("min_replicas_ack", 0, 64, &out.min_replicas_ack, "no wait");
  }
  std::string file;
  if (!s.ok()) return s;
  return redis.SecretFile("password_file", secrets.env, &file, &out.password);
}

// storage: sealing at rest and a size cap. The key files are read by the
// caller (sealed_store.h), so a bad key stops start-up there.
Status ApplyStorage(const Section& storage, const SecretSource& secrets,
                    Config* config) {
  Status s = storage.SecretPath("master_key_file", secrets.env,
                                &config->master_key_file);
  if (s.ok()) {
    s = storage.SecretPaths("previous_master_key_files", secrets.env,
                            &config->previous_master_key_files);
  }
  if (s.ok() && !config->previous_master_key_files.empty() &&
      config->master_key_file.empty()) {
    s = storage.Error("previous_master_key_files",
                      "needs storage.master_key_file as well");
  }
  if (!s.ok()) return s;
  // 2^31 - 2: SQLite's own ceiling for max_page_count.
  return storage.Int("max_pages", 0, 2147483646, &config->storage_max_pages,
                     "no cap");
}

Status ApplyOpenData(const Section& open_data, const SecretSource&,
                     Config* config) {
  return open_data.Duration("max_age", 0, &config->open_data_max_age);
}

// admin.token_file: the token operators send to the admin routes.
Status ApplyAdmin(const Section& admin, const SecretSource& secrets,
                  Config* config) {
  std::string file;
  Status s = admin.SecretPath("token_file", secrets.env, &file);
  if (!s.ok() || file.empty()) return s;
  Result<std::string> token = ReadTokenFile(file, admin.PathOf("token_file"));
  if (!token.ok()) return token.status();
  config->admin_token_file = file;
  config->admin_token = std::move(token).value();
  return Status::Ok();
}

Status ApplyLog(const Section& log, const SecretSource&, Config* config) {
  Status s = log.Enum("format",
                      {{"json", LogFormat::kJson}, {"text", LogFormat::kText}},
                      &config->log_format);
  if (!s.ok()) return s;
  return log.Enum("level",
                  {{"debug", LogLevel::kDebug},
                   {"info", LogLevel::kInfo},
                   {"warn", LogLevel::kWarn},
                   {"error", LogLevel::kError}},
                  &config->log_level);
}

Status ApplyRateLimit(const Section& limits, const SecretSource&,
                      Config* config) {
  Status s = limits.Int("login_per_minute", 0, kMaxRate,
                        &config->login_rate_per_minute, "no limit");
  // Unset, login_burst stays 0 and ResolveDefaults derives it.
  if (s.ok())
    s = limits.Int("login_burst", 1, kMaxRate, &config->login_rate_burst);
  if (!s.ok()) return s;
  return limits.Int("wechat_per_session_per_minute", 0, kMaxRate,
                    &config->wechat_per_session_per_minute, "no limit");
}

Status ApplyTrustedProxies(const Section& root, const SecretSource&,
                           Config* config) {
  const json* proxies = root.Find("trusted_proxies");
  if (proxies == nullptr) return Status::Ok();
  if (!proxies->is_array()) {
    return root.Error("trusted_proxies",
                      "expected an array of CIDR strings such as "
                      "[\"127.0.0.1/32\", \"10.0.0.0/8\"]");
  }
  config->trusted_proxies.clear();
  for (size_t i = 0; i < proxies->size(); ++i) {
    const json& entry = (*proxies)[i];
    if (!entry.is_string() || !IpNetwork::Parse(entry.get<std::string>())) {
      return ConfigError("trusted_proxies[" + std::to_string(i) + "]",
                         "expected an address or CIDR network such as "
                         "10.0.0.0/8 or fd00::/8");
    }
    config->trusted_proxies.push_back(entry.get<std::string>());
  }
  return Status::Ok();
}

// tls.cert or tls.key: read once here so a missing or unreadable file is
// reported by key; the TLS library reads it again when the server starts.
Status TlsPath(const Section& tls, const char* key, const SecretSource& secrets,
               std::string* out) {
  constexpr char kWhat[] = "expected a non-empty path to a PEM file";
  if (secrets.skip) return tls.Path(key, out, kWhat);
  if (Status s = tls.SecretPath(key, secrets.env, out, kWhat); !s.ok())
    return s;
  Result<std::string> content = ReadWholeFile(*out, kMaxConfigFileBytes);
  if (!content.ok()) {
    return tls.Error(key, *out + ": " + content.status().operator_text());
  }
  return Status::Ok();
}

Status ApplyTls(const Section& tls, const SecretSource& secrets,
                Config* config) {
  if (tls.Has("cert") != tls.Has("key")) {
    return ConfigError("tls", "set both cert and key, or neither");
  }
  if (!tls.Has("cert")) return Status::Ok();
  Status s = TlsPath(tls, "cert", secrets, &config->tls_cert);
  if (!s.ok()) return s;
  return TlsPath(tls, "key", secrets, &config->tls_key);
}

// tokens.issuer is a URL (OIDC discovery appends /.well-known/... to it):
// http(s), no query or fragment, no trailing slash. Tokens are on only with
// an issuer, so any other tokens key needs one.
Status CheckIssuer(const Section& tokens, const std::string& issuer) {
  if (issuer.empty()) {
    if (tokens.size() == 0) return Status::Ok();
    return tokens.Error("issuer",
                        "required when any tokens key is set (tokens are on "
                        "only with an issuer)");
  }
  const bool scheme =
      issuer.rfind("https://", 0) == 0 || issuer.rfind("http://", 0) == 0;
  if (!scheme || issuer.find_first_of("?# \t\r\n") != std::string::npos ||
      issuer.back() == '/') {
    return tokens.Error("issuer",
                        "expected the URL wxsessiond is reached at, e.g. "
                        "https://auth.example.com (http or https, no query, "
                        "no trailing slash)");
  }
  return Status::Ok();
}

// tokens: signed JWTs for backends (issue 16).
Status ApplyTokens(const Section& section, const SecretSource& secrets,
                   Config* config) {
  TokensConfig& tokens = config->tokens;
  constexpr char kWhat[] = "expected a non-empty string";
  std::string list_file;
  Status s = section.String("issuer", &tokens.issuer);
  if (s.ok()) s = section.String("audience", &tokens.audience);
  if (s.ok()) {
    s = section.SecretPath("signing_key_file", secrets.env,
                           &tokens.signing_key_file, kWhat);
  }
  if (s.ok()) {
    s = section.SecretPath("introspection_tokens_file", secrets.env, &list_file,
                           kWhat);
  }
  if (s.ok()) {
    s = section.Enum("algorithm", {{"ES256", "ES256"}, {"EdDSA", "EdDSA"}},
                     &tokens.algorithm);
  }
  if (s.ok()) s = section.Duration("ttl", 1, &tokens.ttl);
  if (s.ok() && tokens.ttl > kMaxTokenTtlSeconds) {
    s = section.Error("ttl",
                      "must be at most 1h: a token stays valid for its "
                      "whole ttl after a logout or ban (5m-10m is "
                      "recommended)");
  }
  if (s.ok()) s = CheckIssuer(section, tokens.issuer);
  if (!s.ok() || list_file.empty()) return s;
  Result<std::vector<std::string>> list =
      ReadTokenListFile(list_file, section.PathOf("introspection_tokens_file"));
  if (!list.ok()) return list.status();
  tokens.introspection_tokens = std::move(list).value();
  tokens.introspection_tokens_file = list_file;
  return Status::Ok();
}

Status ApplyUsers(const Section& users, const SecretSource&, Config* config) {
  return users.Duration("retention", 1, &config->user_retention);
}

// hooks: the login hook (issue 15), asked before a session is minted.
Status ApplyHooks(const Section& hooks, const SecretSource& secrets,
                  Config* config) {
  Status s = hooks.Timeout("timeout", &config->hook_timeout_ms);
  if (s.ok()) {
    s = hooks.Enum("on_failure", {{"allow", false}, {"deny", true}},
                   &config->hook_deny_on_failure);
  }
  if (!s.ok()) return s;
  if (!hooks.Has("login_url")) {
    if (!hooks.Has("secret_file")) return Status::Ok();
    return hooks.Error("secret_file", "set hooks.login_url as well");
  }
  const json& url = *hooks.Find("login_url");
  const std::string text = url.is_string() ? url.get<std::string>() : "";
  if (!(text.rfind("http://", 0) == 0 && text.size() > 7) &&
      !(text.rfind("https://", 0) == 0 && text.size() > 8)) {
    return hooks.Error("login_url", kUrlHint);
  }
  config->hook_login_url = text;
  // The signature is what lets the hook trust the call: no secret, no hook.
  constexpr char kWhat[] =
      "expected a non-empty path (the key of the X-WXS-Signature HMAC); "
      "required with hooks.login_url";
  std::string file;
  if (!hooks.Has("secret_file")) return hooks.Error("secret_file", kWhat);
  if (secrets.skip) return hooks.Path("secret_file", &file, kWhat);
  return hooks.SecretFile("secret_file", secrets.env, &config->hook_secret_file,
                          &config->hook_secret, kWhat);
}

// Every top-level key, its members when it is an object, and its function,
// applied in this order.
struct TopLevelKey {
  const char* name;
  std::vector<const char*> members;  // empty: not an object
  Status (*apply)(const Section& section, const SecretSource& secrets,
                  Config* config);
};

const std::vector<TopLevelKey>& TopLevelKeys() {
  static const auto* keys = new std::vector<TopLevelKey>{
      {"listen", {}, ApplyListen},
      {"database", {}, ApplyDatabase},
      {"apps", {}, ApplyApps},
      {"session", {"ttl", "idle_ttl", "max_per_user"}, ApplySession},
      {"sweep_interval", {}, ApplySweepInterval},
      {"wechat", {"api_base", "timeout", "max_concurrent"}, ApplyWechat},
      {"expose_openid", {}, ApplyExposeOpenid},
      {"durability", {}, ApplyDurability},
      {"http", {"threads"}, ApplyHttp},
      {"store", {}, ApplyStore},
      {"redis",
       {"prefix", "timeout", "pool_size", "min_replicas_ack", "password_file"},
       ApplyRedis},
      {"storage",
       {"master_key_file", "previous_master_key_files", "max_pages"},
       ApplyStorage},
      {"open_data", {"max_age"}, ApplyOpenData},
      {"admin", {"token_file"}, ApplyAdmin},
      {"log", {"format", "level"}, ApplyLog},
      {"rate_limit",
       {"login_per_minute", "login_burst", "wechat_per_session_per_minute"},
       ApplyRateLimit},
      {"trusted_proxies", {}, ApplyTrustedProxies},
      {"tls", {"cert", "key"}, ApplyTls},
      {"tokens",
       {"issuer", "audience", "ttl", "algorithm", "signing_key_file",
        "introspection_tokens_file"},
       ApplyTokens},
      {"users", {"retention"}, ApplyUsers},
      {"hooks",
       {"login_url", "secret_file", "timeout", "on_failure"},
       ApplyHooks},
  };
  return *keys;
}

Status ApplyFile(const std::string& path, const SecretSource& secrets,
                 Config* config) {
  Result<std::string> text = ReadWholeFile(path, kMaxConfigFileBytes);
  if (!text.ok()) return ConfigError(path, text.status().operator_text());
  json object;
  Status s = ParseConfigText(path, text.value(), &object);
  const Section root(object, "");
  std::vector<const char*> names;
  for (const TopLevelKey& key : TopLevelKeys()) names.push_back(key.name);
  if (s.ok()) s = root.CheckKnownKeys(names);
  for (auto key = TopLevelKeys().begin(); s.ok() && key != TopLevelKeys().end();
       ++key) {
    std::optional<Section> section;
    if (key->members.empty()) {
      s = key->apply(root, secrets, config);
    } else if (s = root.Object(key->name, key->members, &section);
               s.ok() && section) {
      s = key->apply(*section, secrets, config);
    }
  }
  return s;
}

Status ApplyEnvironment(const GetEnv& env, bool without_secrets,
                        Config* config) {
  if (Status s = ApplyEnvironmentApp(env, without_secrets, config); !s.ok()) {
    return s;
  }
  if (std::optional<std::string> password =
          NonEmptyEnv(env, "WXSESSIOND_REDIS_PASSWORD")) {
    config->redis.password = *password;
  }
  std::optional<std::string> base = NonEmptyEnv(env, "WXSESSIOND_API_BASE");
  if (!base) return Status::Ok();
  return NormalizeBaseUrl(*base, "WXSESSIOND_API_BASE",
                          &config->wechat_api_base);
}

Result<Config> LoadConfigOrThrow(const std::string& path, const GetEnv& env,
                                 const ConfigOverrides& overrides) {
  Config config;
  const SecretSource secrets{env, overrides.without_secrets};
  if (!path.empty()) {
    if (Status s = ApplyFile(path, secrets, &config); !s.ok()) return s;
  }
  if (Status s = ApplyEnvironment(env, overrides.without_secrets, &config);
      !s.ok()) {
    return s;
  }
  if (Status s = ApplyOverrides(overrides, &config); !s.ok()) return s;
  if (Status s = ResolveDefaults(&config); !s.ok()) return s;
  if (config.apps.empty()) {
    return ConfigError("apps",
                       "no app configured (set apps in the config file, or "
                       "WXSESSIOND_APPID and WXSESSIOND_SECRET)");
  }
  return config;
}

}  // namespace

Status ApplyOverrides(const ConfigOverrides& overrides, Config* config) {
  if (overrides.listen) {
    if (Status s = ParseListen(*overrides.listen, "--listen", config);
        !s.ok()) {
      return s;
    }
  }
  if (overrides.database) {
    if (overrides.database->empty()) {
      return ConfigError("--database", "expected a non-empty path");
    }
    config->database = *overrides.database;
  }
  return Status::Ok();
}

Status ResolveDefaults(Config* config) {
  if (config->login_rate_burst == 0) {
    // Ten seconds' worth: absorbs a page of users opening the mini program
    // at once behind one carrier address.
    config->login_rate_burst =
        std::max<int64_t>(1, config->login_rate_per_minute / 6);
  }
  const int threads = EffectiveHttpThreads(*config);
  const int reserved = UpstreamReservedThreads(threads);
  const int available = std::max(1, threads - reserved);
  if (config->wechat_max_concurrent == 0) {
    config->wechat_max_concurrent =
        std::min(available, std::max(1, threads / 4));
  } else if (config->wechat_max_concurrent > available) {
    return ConfigError("wechat.max_concurrent",
                       "must be at most " + std::to_string(available) +
                           " with " + std::to_string(threads) +
                           " HTTP worker threads, so session "
                           "lookups always keep " +
                           std::to_string(reserved) +
                           "; lower it or raise http.threads");
  }
  // Calls waiting for a place hold threads too: they get what is left.
  config->wechat_max_waiting = available - config->wechat_max_concurrent;
  return Status::Ok();
}

int EffectiveHttpThreads(const Config& config) {
  return config.http_threads > 0 ? config.http_threads : kDefaultHttpThreads;
}

int UpstreamReservedThreads(int http_threads) {
  return std::max(2, http_threads / 8);
}

const AppConfig* Config::FindApp(const std::string& appid) const {
  for (const AppConfig& app : apps) {
    if (app.appid == appid) return &app;
  }
  return nullptr;
}

Result<const AppConfig*> Config::AppFor(const std::string& appid) const {
  if (appid.empty()) {
    if (apps.size() == 1) return &apps.front();
    if (const AppConfig* fallback = FindApp(default_appid)) return fallback;
    return Status(ErrorCode::kInvalidRequest,
                  "appid is required: this server serves several apps");
  }
  const AppConfig* app = FindApp(appid);
  if (app == nullptr) {
    return Status(ErrorCode::kUnknownApp,
                  "appid " + appid + " is not configured on this server");
  }
  return app;
}

GetEnv ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<Config> LoadConfig(const std::string& path, const GetEnv& env,
                          const ConfigOverrides& overrides) {
  // nlohmann::json and std::string may throw (type_error on a path we did not
  // foresee, bad_alloc); nothing may cross the module boundary.
  try {
    return LoadConfigOrThrow(path, env, overrides);
  } catch (const std::exception&) {
    // The exception text may quote JSON content, hence a fixed message.
    return Status(
        ErrorCode::kInvalidRequest,
        "config: " + (path.empty() ? std::string("environment") : path) +
            ": unexpected error while loading");
  }
}

}  // namespace wxsession
