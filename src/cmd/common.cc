// What the commands share: argument parsing, failure and usage output,
// loading the Config and reading the master keys once.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cmd/commands.h"

namespace wxsession {
namespace cmd {

Args ParseArgs(int argc, char** argv, int first,
               const std::vector<std::string>& with_value,
               const std::vector<std::string>& flags, size_t max_positional) {
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

int Fail(const Status& status) {
  std::fprintf(stderr, "wxsessiond: %s\n", status.operator_text().c_str());
  return kExitFailure;
}

int Usage(const char* usage, const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "wxsessiond: %s\n\n", error.c_str());
  std::fputs(usage, error.empty() ? stdout : stderr);
  return error.empty() ? kExitOk : kExitUsage;
}

Result<Config> LoadFromArgs(const Args& args, bool for_admin) {
  ConfigOverrides overrides;
  if (args.Has("listen")) overrides.listen = args.Get("listen");
  if (args.Has("database")) overrides.database = args.Get("database");
  overrides.without_secrets = for_admin;
  return LoadConfig(args.Get("config"), ProcessEnvironment(), overrides);
}

// --- Secrets at rest (docs/SECURITY.md)
// ---------------------------------------

namespace {

// Through a volatile pointer, so the compiler keeps the stores although
// the string is about to be freed.
void Wipe(std::string& secret) {
  volatile char* bytes = secret.empty() ? nullptr : &secret[0];
  for (size_t i = 0; i < secret.size(); ++i) bytes[i] = 0;
}

}  // namespace

MasterKeys::~MasterKeys() {
  Wipe(primary);
  for (std::string& key : previous) Wipe(key);
}

Result<std::optional<MasterKeys>> ReadMasterKeys(const Config& config) {
  if (config.master_key_file.empty()) return std::optional<MasterKeys>();
  MasterKeys keys;
  Result<std::string> primary = ReadMasterKeyFile(config.master_key_file);
  if (!primary.ok()) {
    return Status(
        ErrorCode::kInvalidRequest,
        "config: storage.master_key_file: " + primary.status().operator_text());
  }
  keys.primary = std::move(primary).value();
  for (size_t i = 0; i < config.previous_master_key_files.size(); ++i) {
    Result<std::string> key =
        ReadMasterKeyFile(config.previous_master_key_files[i]);
    if (!key.ok()) {
      return Status(ErrorCode::kInvalidRequest,
                    "config: storage.previous_master_key_files[" +
                        std::to_string(i) +
                        "]: " + key.status().operator_text());
    }
    keys.previous.push_back(std::move(key).value());
  }
  return std::optional<MasterKeys>(std::move(keys));
}

Result<std::optional<SessionKeyring>> KeyringFromConfig(const Config& config) {
  Result<std::optional<MasterKeys>> keys = ReadMasterKeys(config);
  if (!keys.ok()) return keys.status();
  if (!keys.value()) return std::optional<SessionKeyring>();
  return std::optional<SessionKeyring>(
      SessionKeyring(keys.value()->primary, keys.value()->previous));
}

Status SealIfConfigured(const Config& config, Logger& logger,
                        std::unique_ptr<SessionStore>* store) {
  Result<std::optional<SessionKeyring>> keyring = KeyringFromConfig(config);
  if (!keyring.ok()) return keyring.status();
  if (!keyring.value()) return Status::Ok();
  logger.Info("sealing",
              {{"key_id", keyring.value()->PrimaryKeyId()},
               {"previous_keys",
                static_cast<int>(config.previous_master_key_files.size())}});
  *store = std::make_unique<SealedStore>(std::move(*store),
                                         std::move(*keyring.value()));
  return Status::Ok();
}

}  // namespace cmd
}  // namespace wxsession
