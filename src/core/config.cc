// Config loading: file, then environment, then command-line overrides, then
// the derived defaults (ResolveDefaults) checked together.
//
// The file is read one top-level key at a time (kTopLevelKeys): each key has
// one function, and each reads its values through a Section
// (core/json_section.h), which owns the range, duration, enumeration and
// unknown-key checks and their messages. Every error is one line, "config:
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
#include <set>

#include "core/ip_network.h"
#include "core/json_section.h"
#include "core/secret_file.h"
#include "core/store_locator.h"
#include "wxsession/crypto.h"

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

// How file paths that hold secrets are resolved, and whether the secrets
// that only `serve` needs are read (ConfigOverrides::without_secrets).
struct SecretSource {
  const GetEnv& env;
  bool skip;
};

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

// --- apps: one object per app.

// Reads one of an Alipay app's key files and checks that it holds the key
// `check` expects (never quoting the file's content).
Status ReadAlipayKey(const Section& app, const char* key,
                     const SecretSource& secrets,
                     Status (*check)(const std::string&), std::string* out) {
  if (!app.Has(key)) {
    return app.Error(key, "missing (Alipay apps sign with RSA keys)");
  }
  std::string file;
  if (secrets.skip) return app.Path(key, &file);
  std::string text;
  if (Status s = app.SecretFile(key, secrets.env, &file, &text); !s.ok()) {
    return s;
  }
  Status s = check(text);
  if (!s.ok()) return app.Error(key, file + ": " + s.message());
  *out = std::move(text);
  return Status::Ok();
}

// apps[].platform, apps[].api_base and, for Alipay, the two key files.
Status ParsePlatformKeys(const Section& app, const SecretSource& secrets,
                         AppConfig* out) {
  if (const json* platform = app.Find("platform")) {
    std::optional<Platform> parsed;
    if (platform->is_string()) parsed = ParsePlatform(platform->get<std::string>());
    if (!parsed) {
      return app.Error("platform",
                       std::string("expected one of ") + PlatformNames());
    }
    out->platform = *parsed;
  }
  if (Status s = app.BaseUrl("api_base", &out->api_base); !s.ok()) return s;
  const bool alipay = out->platform == Platform::kAlipay;
  for (const char* key : {"private_key_file", "alipay_public_key_file"}) {
    if (!alipay && app.Has(key)) {
      return app.Error(key,
                       "only Alipay apps (platform \"alipay\") take key "
                       "files; this app uses secret or secret_file");
    }
  }
  if (!alipay) return Status::Ok();
  for (const char* key : {"secret", "secret_file"}) {
    if (app.Has(key)) {
      return app.Error(key,
                       "Alipay apps take private_key_file and "
                       "alipay_public_key_file, not a secret");
    }
  }
  Status s = ReadAlipayKey(app, "private_key_file", secrets,
                           &crypto::CheckRsaPrivateKey, &out->private_key);
  if (!s.ok()) return s;
  return ReadAlipayKey(app, "alipay_public_key_file", secrets,
                       &crypto::CheckRsaPublicKey, &out->alipay_public_key);
}

// apps[].secret or apps[].secret_file (never quoting the value: a secret
// with the wrong type is still a secret).
Status ParseAppSecret(const Section& app, const SecretSource& secrets,
                      AppConfig* out) {
  const bool has_secret = app.Has("secret");
  if (has_secret && app.Has("secret_file")) {
    return ConfigError(app.path(), "set either secret or secret_file, not both");
  }
  if (!has_secret && !app.Has("secret_file")) {
    return ConfigError(app.path(), "missing secret or secret_file");
  }
  if (has_secret) return app.String("secret", &out->secret);
  std::string file;
  if (secrets.skip) return app.Path("secret_file", &file);
  return app.SecretFile("secret_file", secrets.env, &out->secret_file,
                        &out->secret);
}

Status ParseApp(const json& entry, const std::string& path,
                const SecretSource& secrets, AppConfig* out) {
  if (!entry.is_object()) return ConfigError(path, "expected an object");
  const Section app(entry, path);
  Status s = app.CheckKnownKeys({"appid", "secret", "secret_file", "platform",
                                 "api_base", "private_key_file",
                                 "alipay_public_key_file"});
  if (s.ok() && !app.Has("appid")) s = app.Error("appid", "missing");
  if (s.ok()) s = app.String("appid", &out->appid);
  if (s.ok()) s = ParsePlatformKeys(app, secrets, out);
  if (!s.ok() || out->platform == Platform::kAlipay) return s;
  return ParseAppSecret(app, secrets, out);
}

Status ApplyApps(const Section& root, const SecretSource& secrets,
                 Config* config) {
  const json* apps = root.Find("apps");
  if (apps == nullptr) return Status::Ok();
  if (!apps->is_array()) return root.Error("apps", "expected an array");
  std::set<std::string> seen;
  for (size_t i = 0; i < apps->size(); ++i) {
    const std::string path = "apps[" + std::to_string(i) + "]";
    AppConfig app;
    if (Status s = ParseApp((*apps)[i], path, secrets, &app); !s.ok()) return s;
    if (!seen.insert(app.appid).second) {
      return ConfigError(path + ".appid", "duplicate appid " + app.appid);
    }
    config->apps.push_back(std::move(app));
  }
  return Status::Ok();
}

// --- The other top-level keys, one function each, in kTopLevelKeys.

Status ApplyListen(const Section& root, const SecretSource&, Config* config) {
  const json* listen = root.Find("listen");
  if (listen == nullptr) return Status::Ok();
  if (!listen->is_string()) {
    return root.Error("listen", "expected a string like 127.0.0.1:8080");
  }
  return ParseListen(listen->get<std::string>(), "listen", config);
}

Status ApplyDatabase(const Section& root, const SecretSource&,
                     Config* config) {
  return root.Path("database", &config->database);
}

Status ApplySession(const Section& root, const SecretSource&, Config* config) {
  std::optional<Section> session;
  Status s = root.Object("session", {"ttl", "idle_ttl", "max_per_user"},
                         &session);
  if (!s.ok() || !session) return s;
  s = session->Duration("ttl", 1, &config->session_ttl);
  if (s.ok()) s = session->Duration("idle_ttl", 0, &config->session_idle_ttl);
  if (!s.ok()) return s;
  return session->Int("max_per_user", 0, kMaxSessionsPerUser,
                      &config->session_max_per_user, "no limit");
}

Status ApplySweepInterval(const Section& root, const SecretSource&,
                          Config* config) {
  return root.Duration("sweep_interval", 1, &config->sweep_interval);
}

Status ApplyWechat(const Section& root, const SecretSource&, Config* config) {
  std::optional<Section> wechat;
  Status s = root.Object("wechat", {"api_base", "timeout", "max_concurrent"},
                         &wechat);
  if (!s.ok() || !wechat) return s;
  s = wechat->BaseUrl("api_base", &config->wechat_api_base);
  if (s.ok()) s = wechat->Timeout("timeout", &config->wechat_timeout_ms);
  if (!s.ok()) return s;
  // Checked against the HTTP threads in ResolveDefaults.
  return wechat->Int("max_concurrent", 1, kMaxHttpThreads,
                     &config->wechat_max_concurrent);
}

Status ApplyExposeOpenid(const Section& root, const SecretSource&,
                         Config* config) {
  return root.Bool("expose_openid", &config->expose_openid);
}

Status ApplyDurability(const Section& root, const SecretSource&,
                       Config* config) {
  return root.Enum("durability",
                   {{"normal", Durability::kNormal}, {"full", Durability::kFull}},
                   &config->durability);
}

Status ApplyHttp(const Section& root, const SecretSource&, Config* config) {
  std::optional<Section> http;
  Status s = root.Object("http", {"threads"}, &http);
  if (!s.ok() || !http) return s;
  return http->Int("threads", 0, kMaxHttpThreads, &config->http_threads,
                   "automatic");
}

// storage: sealing at rest and a size cap. The key files are read by the
// caller (sealed_store.h), so a bad key stops start-up there.
Status ApplyStorage(const Section& root, const SecretSource& secrets,
                    Config* config) {
  std::optional<Section> storage;
  Status s = root.Object(
      "storage", {"master_key_file", "previous_master_key_files", "max_pages"},
      &storage);
  if (!s.ok() || !storage) return s;
  s = storage->SecretPath("master_key_file", secrets.env,
                          &config->master_key_file);
  if (s.ok()) {
    s = storage->SecretPaths("previous_master_key_files", secrets.env,
                             &config->previous_master_key_files);
  }
  if (s.ok() && !config->previous_master_key_files.empty() &&
      config->master_key_file.empty()) {
    s = storage->Error("previous_master_key_files",
                       "needs storage.master_key_file as well");
  }
  if (!s.ok()) return s;
  // 2^31 - 2: SQLite's own ceiling for max_page_count.
  return storage->Int("max_pages", 0, 2147483646, &config->storage_max_pages,
                      "no cap");
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

Status ApplyRedis(const Section& root, const SecretSource& secrets,
                  Config* config) {
  std::optional<Section> redis;
  Status s = root.Object("redis",
                         {"prefix", "timeout", "pool_size", "min_replicas_ack",
                          "password_file"},
                         &redis);
  if (!s.ok() || !redis) return s;
  RedisConfig& out = config->redis;
  if (const json* prefix = redis->Find("prefix")) {
    // 64 bytes: a namespace, not data; keeps every key short.
    const std::string text = prefix->is_string() ? prefix->get<std::string>() : "";
    if (text.empty() || text.size() > 64 ||
        text.find_first_of(" \t\r\n") != std::string::npos) {
      return redis->Error("prefix",
                          "expected a non-empty string without spaces, at "
                          "most 64 characters, e.g. \"wxs:\"");
    }
    out.prefix = text;
  }
  s = redis->Timeout("timeout", &out.timeout_ms);
  // 1024 connections and 64 replicas: more is a typo, not a deployment.
  if (s.ok()) s = redis->Int("pool_size", 1, 1024, &out.pool_size);
  if (s.ok()) {
    s = redis->Int("min_replicas_ack", 0, 64, &out.min_replicas_ack, "no wait");
  }
  std::string file;
  if (!s.ok()) return s;
  return redis->SecretFile("password_file", secrets.env, &file, &out.password);
}

Status ApplyOpenData(const Section& root, const SecretSource&,
                     Config* config) {
  std::optional<Section> open_data;
  Status s = root.Object("open_data", {"max_age"}, &open_data);
  if (!s.ok() || !open_data) return s;
  return open_data->Duration("max_age", 0, &config->open_data_max_age);
}

// admin.token_file: the token operators send to the admin routes.
Status ApplyAdmin(const Section& root, const SecretSource& secrets,
                  Config* config) {
  std::optional<Section> admin;
  std::string file;
  Status s = root.Object("admin", {"token_file"}, &admin);
  if (s.ok() && admin) s = admin->SecretPath("token_file", secrets.env, &file);
  if (!s.ok() || file.empty()) return s;
  Result<std::string> token = ReadTokenFile(file, admin->PathOf("token_file"));
  if (!token.ok()) return token.status();
  config->admin_token_file = file;
  config->admin_token = std::move(token).value();
  return Status::Ok();
}

Status ApplyLog(const Section& root, const SecretSource&, Config* config) {
  std::optional<Section> log;
  Status s = root.Object("log", {"format", "level"}, &log);
  if (!s.ok() || !log) return s;
  s = log->Enum("format",
                {{"json", LogFormat::kJson}, {"text", LogFormat::kText}},
                &config->log_format);
  if (!s.ok()) return s;
  return log->Enum("level",
                   {{"debug", LogLevel::kDebug},
                    {"info", LogLevel::kInfo},
                    {"warn", LogLevel::kWarn},
                    {"error", LogLevel::kError}},
                   &config->log_level);
}

Status ApplyRateLimit(const Section& root, const SecretSource&,
                      Config* config) {
  std::optional<Section> limits;
  Status s = root.Object("rate_limit",
                         {"login_per_minute", "login_burst",
                          "wechat_per_session_per_minute"},
                         &limits);
  if (!s.ok() || !limits) return s;
  s = limits->Int("login_per_minute", 0, kMaxRate,
                  &config->login_rate_per_minute, "no limit");
  // Unset, login_burst stays 0 and ResolveDefaults derives it.
  if (s.ok()) s = limits->Int("login_burst", 1, kMaxRate, &config->login_rate_burst);
  if (!s.ok()) return s;
  return limits->Int("wechat_per_session_per_minute", 0, kMaxRate,
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
  if (Status s = tls.SecretPath(key, secrets.env, out, kWhat); !s.ok()) return s;
  Result<std::string> content = ReadWholeFile(*out, kMaxConfigFileBytes);
  if (!content.ok()) {
    return tls.Error(key, *out + ": " + content.status().operator_text());
  }
  return Status::Ok();
}

Status ApplyTls(const Section& root, const SecretSource& secrets,
                Config* config) {
  std::optional<Section> tls;
  Status s = root.Object("tls", {"cert", "key"}, &tls);
  if (!s.ok() || !tls || (!tls->Has("cert") && !tls->Has("key"))) return s;
  if (tls->Has("cert") != tls->Has("key")) {
    return ConfigError("tls", "set both cert and key, or neither");
  }
  s = TlsPath(*tls, "cert", secrets, &config->tls_cert);
  if (!s.ok()) return s;
  return TlsPath(*tls, "key", secrets, &config->tls_key);
}

// tokens.issuer is a URL (OIDC discovery appends /.well-known/... to it):
// http(s), no query or fragment, no trailing slash. Tokens are on only with
// an issuer, so any other tokens key needs one.
Status CheckIssuer(const Section& section, const std::string& issuer) {
  if (issuer.empty()) {
    if (section.size() == 0) return Status::Ok();
    return section.Error("issuer",
                         "required when any tokens key is set (tokens are on "
                         "only with an issuer)");
  }
  const bool scheme =
      issuer.rfind("https://", 0) == 0 || issuer.rfind("http://", 0) == 0;
  if (!scheme || issuer.find_first_of("?# \t\r\n") != std::string::npos ||
      issuer.back() == '/') {
    return section.Error("issuer",
                         "expected the URL wxsessiond is reached at, e.g. "
                         "https://auth.example.com (http or https, no query, "
                         "no trailing slash)");
  }
  return Status::Ok();
}

// tokens: signed JWTs for backends (issue 16).
Status ApplyTokens(const Section& root, const SecretSource& secrets,
                   Config* config) {
  std::optional<Section> section;
  Status s = root.Object("tokens",
                         {"issuer", "audience", "ttl", "algorithm",
                          "signing_key_file", "introspection_tokens_file"},
                         &section);
  if (!s.ok() || !section) return s;
  TokensConfig& tokens = config->tokens;
  constexpr char kWhat[] = "expected a non-empty string";
  std::string list_file;
  s = section->String("issuer", &tokens.issuer);
  if (s.ok()) s = section->String("audience", &tokens.audience);
  if (s.ok()) {
    s = section->SecretPath("signing_key_file", secrets.env,
                            &tokens.signing_key_file, kWhat);
  }
  if (s.ok()) {
    s = section->SecretPath("introspection_tokens_file", secrets.env,
                            &list_file, kWhat);
  }
  if (s.ok()) {
    s = section->Enum("algorithm", {{"ES256", "ES256"}, {"EdDSA", "EdDSA"}},
                      &tokens.algorithm);
  }
  if (s.ok()) s = section->Duration("ttl", 1, &tokens.ttl);
  if (s.ok() && tokens.ttl > kMaxTokenTtlSeconds) {
    s = section->Error("ttl",
                       "must be at most 1h: a token stays valid for its "
                       "whole ttl after a logout or ban (5m-10m is "
                       "recommended)");
  }
  if (s.ok()) s = CheckIssuer(*section, tokens.issuer);
  if (!s.ok() || list_file.empty()) return s;
  Result<std::vector<std::string>> list = ReadTokenListFile(
      list_file, section->PathOf("introspection_tokens_file"));
  if (!list.ok()) return list.status();
  tokens.introspection_tokens = std::move(list).value();
  tokens.introspection_tokens_file = list_file;
  return Status::Ok();
}

Status ApplyUsers(const Section& root, const SecretSource&, Config* config) {
  std::optional<Section> users;
  Status s = root.Object("users", {"retention"}, &users);
  if (!s.ok() || !users) return s;
  return users->Duration("retention", 1, &config->user_retention);
}

// hooks: the login hook (issue 15), asked before a session is minted.
Status ApplyHooks(const Section& root, const SecretSource& secrets,
                  Config* config) {
  std::optional<Section> hooks;
  Status s = root.Object(
      "hooks", {"login_url", "secret_file", "timeout", "on_failure"}, &hooks);
  if (!s.ok() || !hooks) return s;
  s = hooks->Timeout("timeout", &config->hook_timeout_ms);
  if (s.ok()) {
    s = hooks->Enum("on_failure", {{"allow", false}, {"deny", true}},
                    &config->hook_deny_on_failure);
  }
  if (!s.ok()) return s;
  if (!hooks->Has("login_url")) {
    if (!hooks->Has("secret_file")) return Status::Ok();
    return hooks->Error("secret_file", "set hooks.login_url as well");
  }
  const json& url = *hooks->Find("login_url");
  const std::string text = url.is_string() ? url.get<std::string>() : "";
  if (!(text.rfind("http://", 0) == 0 && text.size() > 7) &&
      !(text.rfind("https://", 0) == 0 && text.size() > 8)) {
    return hooks->Error("login_url", kUrlHint);
  }
  config->hook_login_url = text;
  // The signature is what lets the hook trust the call: no secret, no hook.
  constexpr char kWhat[] =
      "expected a non-empty path (the key of the X-WXS-Signature HMAC); "
      "required with hooks.login_url";
  std::string file;
  if (!hooks->Has("secret_file")) return hooks->Error("secret_file", kWhat);
  if (secrets.skip) return hooks->Path("secret_file", &file, kWhat);
  return hooks->SecretFile("secret_file", secrets.env,
                           &config->hook_secret_file, &config->hook_secret,
                           kWhat);
}

// Every top-level key and its one function, applied in this order.
struct TopLevelKey {
  const char* name;
  Status (*apply)(const Section& root, const SecretSource& secrets,
                  Config* config);
};
const TopLevelKey kTopLevelKeys[] = {
    {"listen", ApplyListen},
    {"database", ApplyDatabase},
    {"apps", ApplyApps},
    {"session", ApplySession},
    {"sweep_interval", ApplySweepInterval},
    {"wechat", ApplyWechat},
    {"expose_openid", ApplyExposeOpenid},
    {"durability", ApplyDurability},
    {"http", ApplyHttp},
    {"store", ApplyStore},
    {"redis", ApplyRedis},
    {"storage", ApplyStorage},
    {"open_data", ApplyOpenData},
    {"admin", ApplyAdmin},
    {"log", ApplyLog},
    {"rate_limit", ApplyRateLimit},
    {"trusted_proxies", ApplyTrustedProxies},
    {"tls", ApplyTls},
    {"tokens", ApplyTokens},
    {"users", ApplyUsers},
    {"hooks", ApplyHooks},
};

Status ApplyFile(const std::string& path, const SecretSource& secrets,
                 Config* config) {
  Result<std::string> text = ReadWholeFile(path, kMaxConfigFileBytes);
  if (!text.ok()) return ConfigError(path, text.status().operator_text());
  json object;
  if (Status s = ParseConfigText(path, text.value(), &object); !s.ok()) {
    return s;
  }
  const Section root(object, "");
  std::vector<const char*> names;
  for (const TopLevelKey& key : kTopLevelKeys) names.push_back(key.name);
  if (Status s = root.CheckKnownKeys(names); !s.ok()) return s;
  for (const TopLevelKey& key : kTopLevelKeys) {
    if (Status s = key.apply(root, secrets, config); !s.ok()) return s;
  }
  return Status::Ok();
}

// Empty counts as unset (see the file comment).
std::optional<std::string> NonEmptyEnv(const GetEnv& env,
                                       const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

// WXSESSIOND_APPID with WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE.
Status ApplyEnvironmentApp(const GetEnv& env, bool without_secrets,
                           Config* config) {
  std::optional<std::string> appid = NonEmptyEnv(env, "WXSESSIOND_APPID");
  std::optional<std::string> secret = NonEmptyEnv(env, "WXSESSIOND_SECRET");
  std::optional<std::string> file = NonEmptyEnv(env, "WXSESSIOND_SECRET_FILE");
  if (secret && file) {
    return ConfigError("WXSESSIOND_SECRET",
                       "set either WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE, "
                       "not both");
  }
  if (!appid && (secret || file)) {
    return ConfigError(
        "WXSESSIOND_APPID",
        std::string("missing; required when ") +
            (secret ? "WXSESSIOND_SECRET" : "WXSESSIOND_SECRET_FILE") +
            " is set");
  }
  if (!appid) return Status::Ok();
  if (!secret && !file) {
    return ConfigError("WXSESSIOND_APPID",
                       "set WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE as "
                       "well");
  }
  std::string value = secret ? *secret : std::string();
  const std::string value_file = secret ? std::string() : *file;
  if (!secret && !without_secrets) {
    Result<std::string> read = ReadSecretFile(*file, "WXSESSIOND_SECRET_FILE");
    if (!read.ok()) return read.status();
    value = std::move(read).value();
  }
  bool replaced = false;
  for (AppConfig& app : config->apps) {
    if (app.appid != *appid) continue;
    app.secret = value;
    app.secret_file = value_file;
    replaced = true;
  }
  if (!replaced) config->apps.push_back(AppConfig{*appid, value, value_file});
  return Status::Ok();
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
    config->wechat_max_concurrent = std::min(available, std::max(1, threads / 4));
  } else if (config->wechat_max_concurrent > available) {
    return ConfigError(
        "wechat.max_concurrent",
        "must be at most " + std::to_string(available) + " with " +
            std::to_string(threads) + " HTTP worker threads, so session "
            "lookups always keep " + std::to_string(reserved) +
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
