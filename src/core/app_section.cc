// The apps[] entries of the configuration: see app_section.h.
#include "core/app_section.h"

#include <optional>
#include <set>
#include <string>
#include <utility>

#include "wxsession/crypto.h"
#include "wxsession/platform.h"

namespace wxsession {
namespace {

using nlohmann::json;

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
    if (platform->is_string())
      parsed = ParsePlatform(platform->get<std::string>());
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
    return ConfigError(app.path(),
                       "set either secret or secret_file, not both");
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

}  // namespace

std::optional<std::string> NonEmptyEnv(const GetEnv& env,
                                       const std::string& name) {
  std::optional<std::string> value = env(name);
  if (value && value->empty()) return std::nullopt;
  return value;
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

// WXSESSIOND_APPID with WXSESSIOND_SECRET or WXSESSIOND_SECRET_FILE.
Status ApplyEnvironmentApp(const GetEnv& env, bool without_secrets,
                           Config* config) {
  std::optional<std::string> appid = NonEmptyEnv(env, "WXSESSIOND_APPID");
  std::optional<std::string> secret = NonEmptyEnv(env, "WXSESSIOND_SECRET");
  std::optional<std::string> file = NonEmptyEnv(env, "WXSESSIOND_SECRET_FILE");
  if (secret && file) {
    return ConfigError(
        "WXSESSIOND_SECRET",
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

}  // namespace wxsession
