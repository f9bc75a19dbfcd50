// `wxsessiond check-config`: validates a config file as `serve` would,
// without opening the database or any socket.
#include <cstdio>
#include <optional>
#include <string>

#include "cmd/commands.h"
#include "core/store_locator.h"
#include "http/tls_check.h"
#include "wxsession/config.h"

namespace wxsession {
namespace cmd {

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
      locator->is_redis() ? locator->Redacted() : "sqlite " + config->database;
  const std::string host = config->listen_host.find(':') == std::string::npos
                               ? config->listen_host
                               : "[" + config->listen_host + "]";
  std::printf("ok\napps=%s store=%s listen=%s:%d%s\n", apps.c_str(),
              store.c_str(), host.c_str(), config->listen_port,
              config->tls_cert.empty() ? "" : " tls=on");
  return kExitOk;
}

}  // namespace cmd
}  // namespace wxsession
