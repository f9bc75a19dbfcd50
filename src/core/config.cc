// Config loading: file, then environment, then command-line overrides, then
// one validation pass over the result.
//
// Every error is one line, "config: <key path>: <what is wrong>", so an
// operator can find the offending key at once. No message ever quotes a secret
// value, and parse errors drop the JSON token text, which could be part of a
// secret.
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
//                            leading $CREDENTIALS_DIRECTORY in secret_file,
//                            tls.cert and tls.key.
//   WXSESSIOND_REDIS_PASSWORD the Redis password, when the store URL holds
//                            none (instead of redis.password_file).
//
// Relative paths (database, secret_file, admin.token_file) are relative to the
// process working directory, not to the config file.
//
// wechat.timeout accepts what other durations accept (seconds), plus a
// fractional number of seconds (0.5) or a string in milliseconds ("500ms").
#include "wxsession/config.h"

#include "core/store_locator.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "platforms/alipay_crypto.h"
#include "http/client_ip.h"

namespace wxsession {
namespace {

using nlohmann::json;

// 1 MiB: far above any sane config, small enough to read at once.
constexpr size_t kMaxConfigFileBytes = size_t{1} << 20;
// 64 KiB: a WeChat secret is 32 characters; more is the wrong file.
constexpr size_t kMaxSecretFileBytes = size_t{64} << 10;
// 10 years: keeps now + ttl far from int64 overflow and catches unit typos.
constexpr int64_t kMaxDurationSeconds = int64_t{3650} * 86400;
// An admin token shorter than this is guessable; `openssl rand -hex 32`
// makes 64.
constexpr size_t kMinAdminTokenChars = 16;
constexpr int kMaxHttpThreads = 1024;  // more is a typo, not a tuning choice
constexpr int kMaxPort = 65535;

constexpr char kDurationHint[] =
    "expected a duration like 30d, 12h, 15m, 90s or a number of seconds";

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Status ConfigError(const std::string& key_path, const std::string& what) {
  return Status(ErrorCode::kInvalidRequest,
                "config: " + key_path + ": " + what);
}

// Reads a whole file. On failure returns "cannot read: <reason>".
Result<std::string> ReadWholeFile(const std::string& path, size_t max_bytes) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("cannot read: ") + std::strerror(errno));
  }
  std::string content;
  char buffer[4096];  // one page per read
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
    if (content.size() > max_bytes) {
      std::fclose(file);
      return Status(
          ErrorCode::kInvalidRequest,
          "cannot read: larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  // fread reports errors such as EISDIR (a directory opens fine) only here.
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("cannot read: ") + std::strerror(read_errno));
  }
  return content;
}

// Collects where a JSON text stops being valid. Used only after the
// non-throwing parse failed, because json::parse(..., false) reports no
// position.
class ParseErrorFinder : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    found = true;
    byte = position;
    detail = ex.what();
    return false;
  }

  bool found = false;
  size_t byte = 0;
  std::string detail;
};

Status JsonSyntaxError(const std::string& path, const std::string& text) {
  ParseErrorFinder finder;
  json::sax_parse(text, &finder, json::input_format_t::json, /*strict=*/true,
                  /*ignore_comments=*/true);
  if (!finder.found) return ConfigError(path, "invalid JSON");
  // nlohmann's text is "[json.exception.parse_error.101] parse error at line
  // L, column C: syntax error ... ; last read: '<token>'". Keep the part from
  // "syntax error" and drop the token text: it may be part of a secret.
  std::string detail = finder.detail;
  size_t start = detail.find("syntax error");
  detail = start == std::string::npos ? "syntax error" : detail.substr(start);
  size_t token = detail.find("; last read:");
  if (token != std::string::npos) detail.erase(token);
  size_t line = 1;
  size_t column = 0;
  for (size_t i = 0; i < finder.byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 0;
    } else {
      ++column;
    }
  }
  column = std::max<size_t>(column, 1);  // an empty file fails at column 1
  return ConfigError(path, "invalid JSON at byte " +
                               std::to_string(finder.byte) + " (line " +
                               std::to_string(line) + ", column " +
                               std::to_string(column) + "): " + detail);
}

// Rejects keys of `object` that are not in `allowed`: a misspelt key would
// otherwise be silently ignored and its default used.
Status CheckKnownKeys(const json& object, const std::string& prefix,
                      const std::vector<std::string>& allowed) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = false;
    for (const std::string& name : allowed) known = known || name == it.key();
    if (!known) {
      std::string list;
      for (const std::string& name : allowed) {
        if (!list.empty()) list += ", ";
        list += name;
      }
      return ConfigError(prefix + it.key(),
                         "unknown key (expected one of " + list + ")");
    }
  }
  return Status::Ok();
}

// Seconds from a JSON number or a duration string. nullopt if neither.
std::optional<int64_t> DurationFromJson(const json& value) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {  // signed: only reached when negative
    int64_t v = value.get<int64_t>();
    if (v < 0) return std::nullopt;
    return v;
  }
  if (value.is_number_float()) {
    double v = value.get<double>();
    // 2^62: comfortably inside int64 and far above kMaxDurationSeconds.
    if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 4.6e18) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_string()) return ParseDuration(value.get<std::string>());
  return std::nullopt;
}

Status ParseDurationKey(const json& value, const std::string& key_path,
                        int64_t min_seconds, int64_t* out) {
  std::optional<int64_t> seconds = DurationFromJson(value);
  if (!seconds) return ConfigError(key_path, kDurationHint);
  if (*seconds < min_seconds) {
    return ConfigError(key_path,
                       "must be at least " + std::to_string(min_seconds) + "s");
  }
  if (*seconds > kMaxDurationSeconds) {
    return ConfigError(key_path, "must be at most 3650d");
  }
  *out = *seconds;
  return Status::Ok();
}

// wechat.timeout: a duration (seconds), a fractional number of seconds, or
// "<n>ms". Result in milliseconds, at least 1.
Status ParseTimeoutKey(const json& value, const std::string& key_path,
                       int64_t* out_ms) {
  constexpr int64_t kMaxTimeoutMs = 3600 * 1000;  // an hour: surely a typo
  // Stands for "anything above the limit", so the message says so.
  constexpr int64_t kTooLarge = kMaxTimeoutMs + 1;
  std::optional<int64_t> ms;
  std::string text = value.is_string() ? value.get<std::string>() : "";
  if (value.is_number_float()) {
    double seconds = value.get<double>();
    if (std::isfinite(seconds) && seconds >= 0) {
      ms = seconds * 1000 > kMaxTimeoutMs
               ? kTooLarge
               : static_cast<int64_t>(std::llround(seconds * 1000));
    }
  } else if (text.size() > 2 && text.compare(text.size() - 2, 2, "ms") == 0) {
    std::string_view digits(text.data(), text.size() - 2);
    // At most 7 digits: no overflow, and anything longer is over the limit.
    if (AllDigits(digits)) {
      ms = digits.size() > 7 ? kTooLarge : std::stoll(std::string(digits));
    }
  } else if (std::optional<int64_t> seconds = DurationFromJson(value)) {
    ms = *seconds > kMaxTimeoutMs / 1000 ? kTooLarge : *seconds * 1000;
  }
  if (!ms) {
    return ConfigError(
        key_path, "expected a timeout like 5s, 500ms or a number of seconds");
  }
  if (*ms < 1) return ConfigError(key_path, "must be greater than 0");
  if (*ms > kMaxTimeoutMs) return ConfigError(key_path, "must be at most 1h");
  *out_ms = *ms;
  return Status::Ok();
}

// Checks api_base and drops trailing slashes, so callers can append
// "/sns/jscode2session" without producing "//".
Status NormalizeApiBase(const std::string& text, const std::string& key_path,
                        std::string* out) {
  std::string base = text;
  while (!base.empty() && base.back() == '/') base.pop_back();
  size_t scheme_end = std::string::npos;
  if (base.rfind("http://", 0) == 0) scheme_end = 7;   // strlen("http://")
  if (base.rfind("https://", 0) == 0) scheme_end = 8;  // strlen("https://")
  if (scheme_end == std::string::npos || base.size() <= scheme_end) {
    return ConfigError(key_path,
                       "expected a URL starting with http:// or https://");
  }
  if (base.find_first_of(" \t\r\n") != std::string::npos) {
    return ConfigError(key_path, "must not contain whitespace");
  }
  *out = base;
  return Status::Ok();
}

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

std::string TrimTrailingWhitespace(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' ||
                           text.back() == ' ' || text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

// Reads a secret file. `key_path` names where it was configured.
Result<std::string> ReadSecretFile(const std::string& file,
                                   const std::string& key_path) {
  Result<std::string> content = ReadWholeFile(file, kMaxSecretFileBytes);
  if (!content.ok()) {
    return ConfigError(key_path, file + ": " + content.status().operator_text());
  }
  std::string secret = TrimTrailingWhitespace(std::move(content).value());
  if (secret.empty()) return ConfigError(key_path, file + ": file is empty");
  return secret;
}

// How file paths that hold secrets are resolved and whether they are read.
struct SecretSource {
  const GetEnv& env;
  bool skip;  // ConfigOverrides::without_secrets
};

// Replaces a leading "$CREDENTIALS_DIRECTORY" or "${CREDENTIALS_DIRECTORY}"
// with the environment variable systemd sets for LoadCredential=.
Result<std::string> ExpandCredentialsPath(const std::string& path,
                                          const std::string& key_path,
                                          const GetEnv& env) {
  for (const char* prefix :
       {"$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"}) {
    const std::string text = prefix;
    if (path.compare(0, text.size(), text) != 0) continue;
    std::optional<std::string> directory = env("CREDENTIALS_DIRECTORY");
    if (!directory || directory->empty()) {
      return ConfigError(key_path,
                         "$CREDENTIALS_DIRECTORY is not set (it is set by "
                         "systemd for a unit with LoadCredential=)");
    }
    return *directory + "/" + path.substr(text.size());
  }
  return path;
}

// Reads one of an Alipay app's key files and checks that it holds the key
// `load` expects (never quoting the file's content).
Status ReadAlipayKey(const json& entry, const std::string& prefix,
                     const char* key, const SecretSource& secrets,
                     Result<alipay::RsaKey> (*load)(const std::string&),
                     std::string* out) {
  const std::string key_path = prefix + "." + key;
  auto it = entry.find(key);
  if (it == entry.end()) {
    return ConfigError(key_path, "missing (Alipay apps sign with RSA keys)");
  }
  if (!it->is_string() || it->get<std::string>().empty()) {
    return ConfigError(key_path, "expected a non-empty path");
  }
  if (secrets.skip) return Status::Ok();
  Result<std::string> file =
      ExpandCredentialsPath(it->get<std::string>(), key_path, secrets.env);
  if (!file.ok()) return file.status();
  Result<std::string> text = ReadSecretFile(file.value(), key_path);
  if (!text.ok()) return text.status();
  Result<alipay::RsaKey> loaded = load(text.value());
  if (!loaded.ok()) {
    return ConfigError(key_path, file.value() + ": " +
                                     loaded.status().message());
  }
  *out = std::move(text).value();
  return Status::Ok();
}

// apps[].platform, apps[].api_base and, for Alipay, the two key files.
Status ParsePlatformKeys(const json& entry, const std::string& prefix,
                         const SecretSource& secrets, AppConfig* app) {
  if (auto it = entry.find("platform"); it != entry.end()) {
    std::optional<Platform> platform;
    if (it->is_string()) platform = ParsePlatform(it->get<std::string>());
    if (!platform) {
      return ConfigError(prefix + ".platform",
                         std::string("expected one of ") + PlatformNames());
    }
    app->platform = *platform;
  }
  if (auto it = entry.find("api_base"); it != entry.end()) {
    if (!it->is_string()) {
      return ConfigError(prefix + ".api_base",
                         "expected a URL starting with http:// or https://");
    }
    if (Status s = NormalizeApiBase(it->get<std::string>(),
                                    prefix + ".api_base", &app->api_base);
        !s.ok()) {
      return s;
    }
  }
  const bool alipay = app->platform == Platform::kAlipay;
  for (const char* key : {"private_key_file", "alipay_public_key_file"}) {
    if (!alipay && entry.contains(key)) {
      return ConfigError(prefix + "." + key,
                         "only Alipay apps (platform \"alipay\") take key "
                         "files; this app uses secret or secret_file");
    }
  }
  if (!alipay) return Status::Ok();
  for (const char* key : {"secret", "secret_file"}) {
    if (entry.contains(key)) {
      return ConfigError(prefix + "." + key,
                         "Alipay apps take private_key_file and "
                         "alipay_public_key_file, not a secret");
    }
  }
  if (Status s = ReadAlipayKey(entry, prefix, "private_key_file", secrets,
                               &alipay::RsaKey::PrivateFromText,
                               &app->private_key);
      !s.ok()) {
    return s;
  }
  return ReadAlipayKey(entry, prefix, "alipay_public_key_file", secrets,
                       &alipay::RsaKey::PublicFromText,
                       &app->alipay_public_key);
}

Status ParseApp(const json& entry, const std::string& prefix,
                const SecretSource& secrets, AppConfig* app) {
  if (!entry.is_object()) return ConfigError(prefix, "expected an object");
  if (Status s = CheckKnownKeys(entry, prefix + ".",
                                {"appid", "secret", "secret_file", "platform",
                                 "api_base", "private_key_file",
                                 "alipay_public_key_file"});
      !s.ok()) {
    return s;
  }
  auto appid = entry.find("appid");
  if (appid == entry.end()) return ConfigError(prefix + ".appid", "missing");
  if (!appid->is_string() || appid->get<std::string>().empty()) {
    return ConfigError(prefix + ".appid", "expected a non-empty string");
  }
  app->appid = appid->get<std::string>();
  if (Status s = ParsePlatformKeys(entry, prefix, secrets, app); !s.ok()) {
    return s;
  }
  if (app->platform == Platform::kAlipay) return Status::Ok();

  auto secret = entry.find("secret");
  auto secret_file = entry.find("secret_file");
  bool has_secret = secret != entry.end();
  bool has_secret_file = secret_file != entry.end();
  if (has_secret && has_secret_file) {
    return ConfigError(prefix, "set either secret or secret_file, not both");
  }
  if (!has_secret && !has_secret_file) {
    return ConfigError(prefix, "missing secret or secret_file");
  }
  if (has_secret) {
    // Never quote the value: a secret with the wrong type is still a secret.
    if (!secret->is_string() || secret->get<std::string>().empty()) {
      return ConfigError(prefix + ".secret", "expected a non-empty string");
    }
    app->secret = secret->get<std::string>();
    return Status::Ok();
  }
  if (!secret_file->is_string() || secret_file->get<std::string>().empty()) {
    return ConfigError(prefix + ".secret_file", "expected a non-empty path");
  }
  if (secrets.skip) return Status::Ok();
  Result<std::string> file = ExpandCredentialsPath(
      secret_file->get<std::string>(), prefix + ".secret_file", secrets.env);
  if (!file.ok()) return file.status();
  Result<std::string> read =
      ReadSecretFile(file.value(), prefix + ".secret_file");
  if (!read.ok()) return read.status();
  app->secret = std::move(read).value();
  app->secret_file = file.value();
  return Status::Ok();
}

// admin: {"token_file": path}. The token is trimmed of surrounding
// whitespace and must be at least kMinAdminTokenChars visible ASCII
// characters, since it travels in an Authorization header.
Status ParseAdmin(const json& admin, Config* config) {
  if (!admin.is_object()) return ConfigError("admin", "expected an object");
  if (Status s = CheckKnownKeys(admin, "admin.", {"token_file"}); !s.ok()) {
    return s;
  }
  auto file = admin.find("token_file");
  if (file == admin.end()) return Status::Ok();
  if (!file->is_string() || file->get<std::string>().empty()) {
    return ConfigError("admin.token_file", "expected a non-empty path");
  }
  const std::string path = file->get<std::string>();
  Result<std::string> read = ReadSecretFile(path, "admin.token_file");
  if (!read.ok()) return read.status();
  std::string token = std::move(read).value();
  size_t start = 0;
  while (start < token.size() &&
         (token[start] == ' ' || token[start] == '\t' || token[start] == '\r' ||
          token[start] == '\n')) {
    ++start;
  }
  token.erase(0, start);
  // Never quote the token, not even in part.
  for (char c : token) {
    if (c < 0x21 || c > 0x7E) {
      return ConfigError("admin.token_file",
                         path +
                             ": the token must be one line of visible "
                             "ASCII characters");
    }
  }
  if (token.size() < kMinAdminTokenChars) {
    return ConfigError("admin.token_file",
                       path + ": the token is shorter than " +
                           std::to_string(kMinAdminTokenChars) +
                           " characters (make one with: openssl rand -hex "
                           "32)");
  }
  config->admin_token_file = path;
  config->admin_token = std::move(token);
  return Status::Ok();
}

// `store` and the `redis` object (the Redis backend, issue 6).
Status ApplyStoreKeys(const json& root, Config* config) {
  if (auto it = root.find("store"); it != root.end()) {
    if (!it->is_string()) {
      return ConfigError("store", "expected \"sqlite\" or a Redis URL");
    }
    Result<StoreLocator> locator = ParseStoreLocator(it->get<std::string>());
    // The locator's messages start with "store: " and never quote the URL.
    if (!locator.ok()) return Status(ErrorCode::kInvalidRequest,
                                     "config: " + locator.status().operator_text());
    config->store = it->get<std::string>();
  }
  auto redis = root.find("redis");
  if (redis == root.end()) return Status::Ok();
  if (!redis->is_object()) return ConfigError("redis", "expected an object");
  if (Status s = CheckKnownKeys(*redis, "redis.",
                                {"prefix", "timeout", "pool_size",
                                 "min_replicas_ack", "password_file"});
      !s.ok()) {
    return s;
  }
  RedisConfig& out = config->redis;
  if (auto it = redis->find("prefix"); it != redis->end()) {
    // 64 bytes: a namespace, not data; keeps every key short.
    bool ok = it->is_string() && !it->get<std::string>().empty() &&
              it->get<std::string>().size() <= 64 &&
              it->get<std::string>().find_first_of(" \t\r\n") ==
                  std::string::npos;
    if (!ok) {
      return ConfigError("redis.prefix",
                         "expected a non-empty string without spaces, at "
                         "most 64 characters, e.g. \"wxs:\"");
    }
    out.prefix = it->get<std::string>();
  }
  if (auto it = redis->find("timeout"); it != redis->end()) {
    if (Status s = ParseTimeoutKey(*it, "redis.timeout", &out.timeout_ms);
        !s.ok()) {
      return s;
    }
  }
  if (auto it = redis->find("pool_size"); it != redis->end()) {
    constexpr int64_t kMaxPool = 1024;  // more is a typo, not a tuning choice
    bool ok = it->is_number_integer() && it->get<int64_t>() >= 1 &&
              it->get<int64_t>() <= kMaxPool;
    if (!ok) {
      return ConfigError("redis.pool_size",
                         "expected an integer from 1 to " +
                             std::to_string(kMaxPool));
    }
    out.pool_size = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = redis->find("min_replicas_ack"); it != redis->end()) {
    constexpr int64_t kMaxReplicas = 64;  // far beyond any real deployment
    bool ok = it->is_number_integer() && it->get<int64_t>() >= 0 &&
              it->get<int64_t>() <= kMaxReplicas;
    if (!ok) {
      return ConfigError("redis.min_replicas_ack",
                         "expected an integer from 0 (no wait) to " +
                             std::to_string(kMaxReplicas));
    }
    out.min_replicas_ack = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = redis->find("password_file"); it != redis->end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      return ConfigError("redis.password_file", "expected a non-empty path");
    }
    Result<std::string> read =
        ReadSecretFile(it->get<std::string>(), "redis.password_file");
    if (!read.ok()) return read.status();
    out.password = std::move(read).value();
  }
  return Status::Ok();
}

Status ApplyFile(const json& root, const SecretSource& secrets,
                 Config* config) {
  if (Status s = CheckKnownKeys(
          root, "",
          {"listen", "database", "apps", "session", "sweep_interval", "wechat",
           "expose_openid", "durability", "http", "store", "redis",
           "open_data", "admin", "log", "rate_limit", "trusted_proxies",
           "tls", "storage", "tokens", "users",
           "hooks"});
      !s.ok()) {
    return s;
  }

  if (auto it = root.find("listen"); it != root.end()) {
    if (!it->is_string()) {
      return ConfigError("listen", "expected a string like 127.0.0.1:8080");
    }
    if (Status s = ParseListen(it->get<std::string>(), "listen", config);
        !s.ok()) {
      return s;
    }
  }

  if (auto it = root.find("database"); it != root.end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      return ConfigError("database", "expected a non-empty path");
    }
    config->database = it->get<std::string>();
  }

  if (auto it = root.find("apps"); it != root.end()) {
    if (!it->is_array()) return ConfigError("apps", "expected an array");
    std::set<std::string> seen;
    for (size_t i = 0; i < it->size(); ++i) {
      std::string prefix = "apps[" + std::to_string(i) + "]";
      AppConfig app;
      if (Status s = ParseApp((*it)[i], prefix, secrets, &app); !s.ok()) {
        return s;
      }
      if (!seen.insert(app.appid).second) {
        return ConfigError(prefix + ".appid", "duplicate appid " + app.appid);
      }
      config->apps.push_back(std::move(app));
    }
  }

  if (auto it = root.find("session"); it != root.end()) {
    if (!it->is_object()) return ConfigError("session", "expected an object");
    if (Status s = CheckKnownKeys(*it, "session.",
                                  {"ttl", "idle_ttl", "max_per_user"});
        !s.ok()) {
      return s;
    }
    if (auto ttl = it->find("ttl"); ttl != it->end()) {
      if (Status s =
              ParseDurationKey(*ttl, "session.ttl", 1, &config->session_ttl);
          !s.ok()) {
        return s;
      }
    }
    if (auto idle = it->find("idle_ttl"); idle != it->end()) {
      if (Status s = ParseDurationKey(*idle, "session.idle_ttl", 0,
                                      &config->session_idle_ttl);
          !s.ok()) {
        return s;
      }
    }
  }

  if (auto it = root.find("sweep_interval"); it != root.end()) {
    if (Status s =
            ParseDurationKey(*it, "sweep_interval", 1, &config->sweep_interval);
        !s.ok()) {
      return s;
    }
  }

  if (auto it = root.find("wechat"); it != root.end()) {
    if (!it->is_object()) return ConfigError("wechat", "expected an object");
    if (Status s = CheckKnownKeys(*it, "wechat.",
                                  {"api_base", "timeout", "max_concurrent"});
        !s.ok()) {
      return s;
    }
    if (auto base = it->find("api_base"); base != it->end()) {
      if (!base->is_string()) {
        return ConfigError("wechat.api_base",
                           "expected a URL starting with http:// or https://");
      }
      if (Status s =
              NormalizeApiBase(base->get<std::string>(), "wechat.api_base",
                               &config->wechat_api_base);
          !s.ok()) {
        return s;
      }
    }
    if (auto timeout = it->find("timeout"); timeout != it->end()) {
      if (Status s = ParseTimeoutKey(*timeout, "wechat.timeout",
                                     &config->wechat_timeout_ms);
          !s.ok()) {
        return s;
      }
    }
  }

  if (auto it = root.find("expose_openid"); it != root.end()) {
    if (!it->is_boolean()) {
      return ConfigError("expose_openid", "expected true or false");
    }
    config->expose_openid = it->get<bool>();
  }

  if (auto it = root.find("durability"); it != root.end()) {
    std::string value = it->is_string() ? it->get<std::string>() : "";
    if (value == "normal") {
      config->durability = Durability::kNormal;
    } else if (value == "full") {
      config->durability = Durability::kFull;
    } else {
      return ConfigError("durability", "expected \"normal\" or \"full\"");
    }
  }

  if (auto it = root.find("http"); it != root.end()) {
    if (!it->is_object()) return ConfigError("http", "expected an object");
    if (Status s = CheckKnownKeys(*it, "http.", {"threads"}); !s.ok()) {
      return s;
    }
    if (auto threads = it->find("threads"); threads != it->end()) {
      bool ok = threads->is_number_integer() && threads->get<int64_t>() >= 0 &&
                threads->get<int64_t>() <= kMaxHttpThreads;
      if (!ok) {
        return ConfigError("http.threads",
                           "expected an integer from 0 (automatic) to " +
                               std::to_string(kMaxHttpThreads));
      }
      config->http_threads = static_cast<int>(threads->get<int64_t>());
    }
  }

  // storage: sealing at rest and a size cap. The key files are read by the
  // caller (sealed_store.h), so a bad key stops start-up there.
  if (auto it = root.find("storage"); it != root.end()) {
    if (!it->is_object()) return ConfigError("storage", "expected an object");
    if (Status s = CheckKnownKeys(
            *it, "storage.",
            {"master_key_file", "previous_master_key_files", "max_pages"});
        !s.ok()) {
      return s;
    }
    if (auto file = it->find("master_key_file"); file != it->end()) {
      if (!file->is_string() || file->get<std::string>().empty()) {
        return ConfigError("storage.master_key_file",
                           "expected a non-empty path");
      }
      config->master_key_file = file->get<std::string>();
    }
    if (auto files = it->find("previous_master_key_files");
        files != it->end()) {
      if (!files->is_array()) {
        return ConfigError("storage.previous_master_key_files",
                           "expected an array of paths");
      }
      for (size_t i = 0; i < files->size(); ++i) {
        const json& file = (*files)[i];
        if (!file.is_string() || file.get<std::string>().empty()) {
          return ConfigError("storage.previous_master_key_files[" +
                                 std::to_string(i) + "]",
                             "expected a non-empty path");
        }
        config->previous_master_key_files.push_back(file.get<std::string>());
      }
      if (!files->empty() && config->master_key_file.empty()) {
        return ConfigError("storage.previous_master_key_files",
                           "needs storage.master_key_file as well");
      }
    }
    if (auto pages = it->find("max_pages"); pages != it->end()) {
      // 2^31 - 2: SQLite's own ceiling for max_page_count.
      constexpr int64_t kMaxPages = 2147483646;
      bool ok = pages->is_number_integer() && pages->get<int64_t>() >= 0 &&
                pages->get<int64_t>() <= kMaxPages;
      if (!ok) {
        return ConfigError("storage.max_pages",
                           "expected an integer from 0 (no cap) to " +
                               std::to_string(kMaxPages));
      }
      config->storage_max_pages = pages->get<int64_t>();
    }
  }
  if (Status s = ApplyStoreKeys(root, config); !s.ok()) return s;

  if (auto it = root.find("open_data"); it != root.end()) {
    if (!it->is_object()) return ConfigError("open_data", "expected an object");
    if (Status s = CheckKnownKeys(*it, "open_data.", {"max_age"}); !s.ok()) {
      return s;
    }
    if (auto max_age = it->find("max_age"); max_age != it->end()) {
      if (Status s = ParseDurationKey(*max_age, "open_data.max_age", 0,
                                      &config->open_data_max_age);
          !s.ok()) {
        return s;
      }
    }
  }

  if (auto it = root.find("admin"); it != root.end()) {
    if (Status s = ParseAdmin(*it, config); !s.ok()) return s;
  }
  return Status::Ok();
}

// --- Users and the login hook (issue 15): session.max_per_user,
// --- users.retention, hooks.*.

constexpr int64_t kMaxSessionsPerUser = 1000;  // more is a typo

Status ApplyUserKeys(const json& root, const SecretSource& secrets,
                     Config* config) {
  if (auto it = root.find("session"); it != root.end()) {
    if (auto max = it->find("max_per_user"); max != it->end()) {
      if (!max->is_number_integer() || max->get<int64_t>() < 0 ||
          max->get<int64_t>() > kMaxSessionsPerUser) {
        return ConfigError("session.max_per_user",
                           "expected an integer from 0 (no limit) to " +
                               std::to_string(kMaxSessionsPerUser));
      }
      config->session_max_per_user = max->get<int64_t>();
    }
  }
  if (auto it = root.find("users"); it != root.end()) {
    if (!it->is_object()) return ConfigError("users", "expected an object");
    if (Status s = CheckKnownKeys(*it, "users.", {"retention"}); !s.ok()) {
      return s;
    }
    if (auto retention = it->find("retention"); retention != it->end()) {
      if (Status s = ParseDurationKey(*retention, "users.retention", 1,
                                      &config->user_retention);
          !s.ok()) {
        return s;
      }
    }
  }
  auto hooks = root.find("hooks");
  if (hooks == root.end()) return Status::Ok();
  if (!hooks->is_object()) return ConfigError("hooks", "expected an object");
  if (Status s = CheckKnownKeys(
          *hooks, "hooks.", {"login_url", "secret_file", "timeout", "on_failure"});
      !s.ok()) {
    return s;
  }
  if (auto timeout = hooks->find("timeout"); timeout != hooks->end()) {
    if (Status s = ParseTimeoutKey(*timeout, "hooks.timeout",
                                   &config->hook_timeout_ms);
        !s.ok()) {
      return s;
    }
  }
  if (auto policy = hooks->find("on_failure"); policy != hooks->end()) {
    const std::string value = policy->is_string() ? policy->get<std::string>() : "";
    if (value != "allow" && value != "deny") {
      return ConfigError("hooks.on_failure", "expected \"allow\" or \"deny\"");
    }
    config->hook_deny_on_failure = value == "deny";
  }
  auto url = hooks->find("login_url");
  auto secret_file = hooks->find("secret_file");
  if (url == hooks->end()) {
    if (secret_file != hooks->end()) {
      return ConfigError("hooks.secret_file", "set hooks.login_url as well");
    }
    return Status::Ok();
  }
  const std::string text = url->is_string() ? url->get<std::string>() : "";
  const bool http = text.rfind("http://", 0) == 0 && text.size() > 7;
  const bool https = text.rfind("https://", 0) == 0 && text.size() > 8;
  if (!http && !https) {
    return ConfigError("hooks.login_url",
                       "expected a URL starting with http:// or https://");
  }
  config->hook_login_url = text;
  // The signature is what lets the hook trust the call: no secret, no hook.
  if (secret_file == hooks->end() || !secret_file->is_string() ||
      secret_file->get<std::string>().empty()) {
    return ConfigError("hooks.secret_file",
                       "expected a non-empty path (the key of the "
                       "X-WXS-Signature HMAC); required with hooks.login_url");
  }
  if (secrets.skip) return Status::Ok();
  Result<std::string> path = ExpandCredentialsPath(
      secret_file->get<std::string>(), "hooks.secret_file", secrets.env);
  if (!path.ok()) return path.status();
  Result<std::string> read = ReadSecretFile(path.value(), "hooks.secret_file");
  if (!read.ok()) return read.status();
  config->hook_secret_file = path.value();
  config->hook_secret = std::move(read).value();
  return Status::Ok();
}

// --- Running in production: log, rate_limit, trusted_proxies, tls and
// --- wechat.max_concurrent.

constexpr int64_t kMaxLoginRatePerMinute = 1000000;  // more is a typo

Status ParseTlsPath(const json& value, const std::string& key_path,
                    const SecretSource& secrets, std::string* out) {
  if (!value.is_string() || value.get<std::string>().empty()) {
    return ConfigError(key_path, "expected a non-empty path to a PEM file");
  }
  if (secrets.skip) {
    *out = value.get<std::string>();
    return Status::Ok();
  }
  Result<std::string> path =
      ExpandCredentialsPath(value.get<std::string>(), key_path, secrets.env);
  if (!path.ok()) return path.status();
  // Read once here so a missing or unreadable file is reported by key; the
  // TLS library reads it again when the server starts.
  Result<std::string> content =
      ReadWholeFile(path.value(), kMaxConfigFileBytes);
  if (!content.ok()) {
    return ConfigError(key_path,
                       path.value() + ": " + content.status().operator_text());
  }
  *out = path.value();
  return Status::Ok();
}

Status ApplyOperationsKeys(const json& root, const SecretSource& secrets,
                           Config* config) {
  if (auto it = root.find("log"); it != root.end()) {
    if (!it->is_object()) return ConfigError("log", "expected an object");
    if (Status s = CheckKnownKeys(*it, "log.", {"format", "level"}); !s.ok()) {
      return s;
    }
    if (auto format = it->find("format"); format != it->end()) {
      std::string value = format->is_string() ? format->get<std::string>() : "";
      if (value == "json") {
        config->log_format = LogFormat::kJson;
      } else if (value == "text") {
        config->log_format = LogFormat::kText;
      } else {
        return ConfigError("log.format", "expected \"json\" or \"text\"");
      }
    }
    if (auto level = it->find("level"); level != it->end()) {
      std::string value = level->is_string() ? level->get<std::string>() : "";
      if (value == "debug") {
        config->log_level = LogLevel::kDebug;
      } else if (value == "info") {
        config->log_level = LogLevel::kInfo;
      } else if (value == "warn") {
        config->log_level = LogLevel::kWarn;
      } else if (value == "error") {
        config->log_level = LogLevel::kError;
      } else {
        return ConfigError("log.level",
                           "expected \"debug\", \"info\", \"warn\" or "
                           "\"error\"");
      }
    }
  }

  bool burst_set = false;
  if (auto it = root.find("rate_limit"); it != root.end()) {
    if (!it->is_object()) return ConfigError("rate_limit", "expected an object");
    if (Status s = CheckKnownKeys(*it, "rate_limit.",
                                  {"login_per_minute", "login_burst",
                                   "wechat_per_session_per_minute"});
        !s.ok()) {
      return s;
    }
    if (auto rate = it->find("login_per_minute"); rate != it->end()) {
      if (!rate->is_number_integer() || rate->get<int64_t>() < 0 ||
          rate->get<int64_t>() > kMaxLoginRatePerMinute) {
        return ConfigError("rate_limit.login_per_minute",
                           "expected an integer from 0 (no limit) to " +
                               std::to_string(kMaxLoginRatePerMinute));
      }
      config->login_rate_per_minute = rate->get<int64_t>();
    }
    if (auto burst = it->find("login_burst"); burst != it->end()) {
      if (!burst->is_number_integer() || burst->get<int64_t>() < 1 ||
          burst->get<int64_t>() > kMaxLoginRatePerMinute) {
        return ConfigError("rate_limit.login_burst",
                           "expected an integer from 1 to " +
                               std::to_string(kMaxLoginRatePerMinute));
      }
      config->login_rate_burst = burst->get<int64_t>();
      burst_set = true;
    }
    if (auto per_session = it->find("wechat_per_session_per_minute");
        per_session != it->end()) {
      if (!per_session->is_number_integer() ||
          per_session->get<int64_t>() < 0 ||
          per_session->get<int64_t>() > kMaxLoginRatePerMinute) {
        return ConfigError("rate_limit.wechat_per_session_per_minute",
                           "expected an integer from 0 (no limit) to " +
                               std::to_string(kMaxLoginRatePerMinute));
      }
      config->wechat_per_session_per_minute = per_session->get<int64_t>();
    }
  }
  if (!burst_set) {
    // Ten seconds' worth: absorbs a page of users opening the mini program
    // at once behind one carrier address.
    config->login_rate_burst =
        std::max<int64_t>(1, config->login_rate_per_minute / 6);
  }

  if (auto it = root.find("trusted_proxies"); it != root.end()) {
    if (!it->is_array()) {
      return ConfigError("trusted_proxies",
                         "expected an array of CIDR strings such as "
                         "[\"127.0.0.1/32\", \"10.0.0.0/8\"]");
    }
    config->trusted_proxies.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string key = "trusted_proxies[" + std::to_string(i) + "]";
      const json& entry = (*it)[i];
      if (!entry.is_string() || !IpNetwork::Parse(entry.get<std::string>())) {
        return ConfigError(key,
                           "expected an address or CIDR network such as "
                           "10.0.0.0/8 or fd00::/8");
      }
      config->trusted_proxies.push_back(entry.get<std::string>());
    }
  }

  if (auto it = root.find("tls"); it != root.end()) {
    if (!it->is_object()) return ConfigError("tls", "expected an object");
    if (Status s = CheckKnownKeys(*it, "tls.", {"cert", "key"}); !s.ok()) {
      return s;
    }
    auto cert = it->find("cert");
    auto key = it->find("key");
    if ((cert == it->end()) != (key == it->end())) {
      return ConfigError("tls", "set both cert and key, or neither");
    }
    if (cert != it->end()) {
      if (Status s = ParseTlsPath(*cert, "tls.cert", secrets, &config->tls_cert);
          !s.ok()) {
        return s;
      }
      if (Status s = ParseTlsPath(*key, "tls.key", secrets, &config->tls_key);
          !s.ok()) {
        return s;
      }
    }
  }

  if (auto wechat = root.find("wechat"); wechat != root.end()) {
    if (auto it = wechat->find("max_concurrent"); it != wechat->end()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
          it->get<int64_t>() > kMaxHttpThreads) {
        return ConfigError("wechat.max_concurrent",
                           "expected an integer from 1 to " +
                               std::to_string(kMaxHttpThreads));
      }
      config->wechat_max_concurrent = static_cast<int>(it->get<int64_t>());
    }
  }
  return Status::Ok();
}

// --- tokens: signed JWTs for backends (issue 16).

constexpr int64_t kMaxTokenTtlSeconds = 3600;  // the contract: at most 1h

// Reads tokens.introspection_tokens_file: one token a line, surrounding
// whitespace trimmed, blank lines and lines starting with '#' skipped. Each
// token is visible ASCII and at least kMinAdminTokenChars long; messages
// name the line, never its content.
Status ReadIntrospectionTokens(const std::string& path, TokensConfig* tokens) {
  const std::string key = "tokens.introspection_tokens_file";
  Result<std::string> read = ReadWholeFile(path, kMaxSecretFileBytes);
  if (!read.ok()) return ConfigError(key, path + ": " + read.status().message());
  const std::string& text = read.value();
  size_t start = 0;
  int line_number = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_number;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const size_t last = line.find_last_not_of(" \t\r");
    line = line.substr(first, last - first + 1);
    if (line[0] == '#') continue;
    for (char c : line) {
      if (c < 0x21 || c > 0x7E) {
        return ConfigError(key, path + ": line " +
                                    std::to_string(line_number) +
                                    ": a token must be visible ASCII "
                                    "characters");
      }
    }
    if (line.size() < kMinAdminTokenChars) {
      return ConfigError(key, path + ": line " + std::to_string(line_number) +
                                  ": the token is shorter than " +
                                  std::to_string(kMinAdminTokenChars) +
                                  " characters (make one with: openssl rand "
                                  "-hex 32)");
    }
    tokens->introspection_tokens.push_back(std::move(line));
  }
  tokens->introspection_tokens_file = path;
  return Status::Ok();
}

Status ApplyTokensKeys(const json& root, Config* config) {
  auto it = root.find("tokens");
  if (it == root.end()) return Status::Ok();
  if (!it->is_object()) return ConfigError("tokens", "expected an object");
  if (Status s = CheckKnownKeys(*it, "tokens.",
                                {"issuer", "audience", "ttl", "algorithm",
                                 "signing_key_file",
                                 "introspection_tokens_file"});
      !s.ok()) {
    return s;
  }
  TokensConfig& tokens = config->tokens;
  auto text = [&](const char* name, std::string* out) -> Status {
    auto value = it->find(name);
    if (value == it->end()) return Status::Ok();
    if (!value->is_string() || value->get<std::string>().empty()) {
      return ConfigError(std::string("tokens.") + name,
                         "expected a non-empty string");
    }
    *out = value->get<std::string>();
    return Status::Ok();
  };
  if (Status s = text("issuer", &tokens.issuer); !s.ok()) return s;
  if (Status s = text("audience", &tokens.audience); !s.ok()) return s;
  if (Status s = text("signing_key_file", &tokens.signing_key_file); !s.ok()) {
    return s;
  }
  std::string introspection_file;
  if (Status s = text("introspection_tokens_file", &introspection_file);
      !s.ok()) {
    return s;
  }
  if (auto algorithm = it->find("algorithm"); algorithm != it->end()) {
    if (!algorithm->is_string() || (*algorithm != "ES256" &&
                                    *algorithm != "EdDSA")) {
      return ConfigError("tokens.algorithm", "expected \"ES256\" or \"EdDSA\"");
    }
    tokens.algorithm = algorithm->get<std::string>();
  }
  if (auto ttl = it->find("ttl"); ttl != it->end()) {
    if (Status s = ParseDurationKey(*ttl, "tokens.ttl", 1, &tokens.ttl);
        !s.ok()) {
      return s;
    }
    if (tokens.ttl > kMaxTokenTtlSeconds) {
      return ConfigError("tokens.ttl",
                         "must be at most 1h: a token stays valid for its "
                         "whole ttl after a logout or ban (5m-10m is "
                         "recommended)");
    }
  }
  if (!tokens.issuer.empty()) {
    // The issuer is a URL (OIDC discovery appends /.well-known/... to it):
    // http(s), no query or fragment, no trailing slash.
    const std::string& issuer = tokens.issuer;
    const bool scheme = issuer.rfind("https://", 0) == 0 ||
                        issuer.rfind("http://", 0) == 0;
    if (!scheme || issuer.find_first_of("?# \t\r\n") != std::string::npos ||
        issuer.back() == '/') {
      return ConfigError("tokens.issuer",
                         "expected the URL wxsessiond is reached at, e.g. "
                         "https://auth.example.com (http or https, no query, "
                         "no trailing slash)");
    }
  } else if (it->size() > 0) {
    return ConfigError("tokens.issuer",
                       "required when any tokens key is set (tokens are on "
                       "only with an issuer)");
  }
  if (!introspection_file.empty()) {
    if (Status s = ReadIntrospectionTokens(introspection_file, &tokens);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

// Fills in defaults that depend on other keys, then checks them together.
Status ResolveOperationsDefaults(Config* config) {
  const int threads = EffectiveHttpThreads(*config);
  const int available = std::max(1, threads - UpstreamReservedThreads(threads));
  if (config->wechat_max_concurrent == 0) {
    config->wechat_max_concurrent = std::min(available, std::max(1, threads / 4));
  } else if (config->wechat_max_concurrent > available) {
    return ConfigError(
        "wechat.max_concurrent",
        "must be at most " + std::to_string(available) + " with " +
            std::to_string(threads) + " HTTP worker threads, so session "
            "lookups always keep " +
            std::to_string(UpstreamReservedThreads(threads)) +
            "; lower it or raise http.threads");
  }
  // Calls waiting for a place hold threads too: they get what is left.
  config->wechat_max_waiting = available - config->wechat_max_concurrent;
  return Status::Ok();
}

// Empty counts as unset (see the file comment).
std::optional<std::string> NonEmptyEnv(const GetEnv& env,
                                       const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

Status ApplyEnvironment(const GetEnv& env, bool without_secrets,
                        Config* config) {
  std::optional<std::string> appid = NonEmptyEnv(env, "WXSESSIOND_APPID");
  std::optional<std::string> secret = NonEmptyEnv(env, "WXSESSIOND_SECRET");
  std::optional<std::string> secret_file =
      NonEmptyEnv(env, "WXSESSIOND_SECRET_FILE");

  if (secret && secret_file) {
    return ConfigError(
        "WXSESSIOND_SECRET",
        "set either WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE, "
        "not both");
  }
  if (!appid && (secret || secret_file)) {
    return ConfigError(
        "WXSESSIOND_APPID",
        std::string("missing; required when ") +
            (secret ? "WXSESSIOND_SECRET" : "WXSESSIOND_SECRET_FILE") +
            " is set");
  }
  if (appid) {
    if (!secret && !secret_file) {
      return ConfigError("WXSESSIOND_APPID",
                         "set WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE as "
                         "well");
    }
    std::string value;
    const std::string value_file = secret ? std::string() : *secret_file;
    if (secret) {
      value = *secret;
    } else if (!without_secrets) {
      Result<std::string> read =
          ReadSecretFile(*secret_file, "WXSESSIOND_SECRET_FILE");
      if (!read.ok()) return read.status();
      value = std::move(read).value();
    }
    bool replaced = false;
    for (AppConfig& app : config->apps) {
      if (app.appid == *appid) {
        app.secret = value;
        app.secret_file = value_file;
        replaced = true;
      }
    }
    if (!replaced) config->apps.push_back(AppConfig{*appid, value, value_file});
  }

  if (std::optional<std::string> password =
          NonEmptyEnv(env, "WXSESSIOND_REDIS_PASSWORD")) {
    config->redis.password = *password;
  }

  if (std::optional<std::string> base =
          NonEmptyEnv(env, "WXSESSIOND_API_BASE")) {
    if (Status s = NormalizeApiBase(*base, "WXSESSIOND_API_BASE",
                                    &config->wechat_api_base);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

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

Result<Config> LoadConfigOrThrow(const std::string& path, const GetEnv& env,
                                 const ConfigOverrides& overrides) {
  Config config;
  if (!path.empty()) {
    Result<std::string> text = ReadWholeFile(path, kMaxConfigFileBytes);
    if (!text.ok()) return ConfigError(path, text.status().operator_text());
    json root = json::parse(text.value(), nullptr, /*allow_exceptions=*/false,
                            /*ignore_comments=*/true);
    if (root.is_discarded()) return JsonSyntaxError(path, text.value());
    if (!root.is_object()) {
      return ConfigError(path, "expected a JSON object at the top level");
    }
    const SecretSource secrets{env, overrides.without_secrets};
    if (Status s = ApplyFile(root, secrets, &config); !s.ok()) return s;
    if (Status s = ApplyOperationsKeys(root, secrets, &config); !s.ok()) {
      return s;
    }
    if (Status s = ApplyTokensKeys(root, &config); !s.ok()) return s;
    if (Status s = ApplyUserKeys(root, secrets, &config); !s.ok()) return s;
  }
  if (Status s = ApplyEnvironment(env, overrides.without_secrets, &config);
      !s.ok()) {
    return s;
  }
  if (Status s = ApplyOverrides(overrides, &config); !s.ok()) return s;
  if (Status s = ResolveOperationsDefaults(&config); !s.ok()) return s;
  if (config.apps.empty()) {
    return ConfigError("apps",
                       "no app configured (set apps in the config file, or "
                       "WXSESSIOND_APPID and WXSESSIOND_SECRET)");
  }
  return config;
}

}  // namespace

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

std::optional<int64_t> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  int64_t unit = 1;
  std::string_view digits(text);
  switch (text.back()) {
    case 'd':
      unit = 86400;  // seconds per day
      break;
    case 'h':
      unit = 3600;  // seconds per hour
      break;
    case 'm':
      unit = 60;  // seconds per minute
      break;
    case 's':
      unit = 1;
      break;
    default:
      unit = 0;  // no suffix: plain seconds
  }
  if (unit != 0) {
    digits.remove_suffix(1);
  } else {
    unit = 1;
  }
  if (!AllDigits(digits)) return std::nullopt;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t value = 0;
  for (char c : digits) {
    int digit = c - '0';
    if (value > (kMax - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (value > kMax / unit) return std::nullopt;
  return value * unit;
}

std::optional<std::pair<std::string, int>> ParseHostPort(
    const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    // "[v6addr]:port"; the brackets keep the address's colons apart from the
    // port separator.
    size_t close = text.find(']');
    if (close == std::string::npos || close == 1 || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string::npos ||
        host.find_first_of(" \t\r\n[]/") != std::string::npos) {
      return std::nullopt;
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An unbracketed IPv6 address is ambiguous: is "::1:80" port 80?
    if (host.find(':') != std::string::npos) return std::nullopt;
    if (host.find_first_of(" \t\r\n[]/") != std::string::npos) {
      return std::nullopt;
    }
  }
  // At most 5 digits: 65535 fits, and no overflow while converting.
  if (!AllDigits(port) || port.size() > 5) return std::nullopt;
  int number = std::atoi(port.c_str());
  if (number > kMaxPort) return std::nullopt;
  return std::make_pair(host, number);
}

}  // namespace wxsession
