// The command layer's own declarations: each `wxsessiond <command>` and the
// helpers the commands share (argument parsing, loading the Config, the
// master keys). Internal to src/cmd/; nothing outside includes it.
//
// Every Cmd* takes main's argc/argv (the command is argv[1], its options
// start at argv[2]) and returns the process's exit code: kExitOk,
// kExitFailure or kExitUsage.
#ifndef WXSESSION_CMD_COMMANDS_H_
#define WXSESSION_CMD_COMMANDS_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/log.h"
#include "store/sealed_store.h"
#include "wxsession/config.h"
#include "wxsession/status.h"
#include "wxsession/store.h"

#ifndef WXSESSIOND_VERSION
#define WXSESSIOND_VERSION "dev"
#endif

namespace wxsession {
namespace cmd {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// --- The commands ------------------------------------------------------------

int CmdServe(int argc, char** argv);             // serve.cc
int CmdCheckConfig(int argc, char** argv);       // check_config.cc
int CmdDev(int argc, char** argv);               // dev.cc
int CmdMockWeChat(int argc, char** argv);        // mock_wechat.cc
int CmdRevoke(int argc, char** argv);            // admin_commands.cc
int CmdSessions(int argc, char** argv);          // admin_commands.cc
int CmdBan(int argc, char** argv);               // admin_commands.cc
int CmdUnban(int argc, char** argv);             // admin_commands.cc
int CmdStats(int argc, char** argv);             // admin_commands.cc
int CmdBackup(int argc, char** argv);            // admin_commands.cc
int CmdMigrateStore(int argc, char** argv);      // admin_commands.cc
int CmdRekey(int argc, char** argv);             // admin_commands.cc
int CmdRotateSigningKey(int argc, char** argv);  // admin_commands.cc

// Runs the server with `config` until SIGINT/SIGTERM (serve.cc). `on_ready`
// runs once the port is bound (dev prints its walk-through there).
// `config_path` is only for the file-permission check.
int RunServer(const Config& config,
              const std::function<void(int port)>& on_ready = {},
              const std::string& config_path = "");

// --- Arguments (common.cc) ---------------------------------------------------

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
               size_t max_positional = kAnyPositional);

// Prints a failure's message (never a secret: Status messages are client-
// and operator-safe) and gives the failure exit code.
int Fail(const Status& status);

// Prints `usage` to stdout and gives kExitOk when `error` is empty (--help);
// otherwise prints the error and the usage to stderr and gives kExitUsage.
int Usage(const char* usage, const std::string& error);

// --- The Config and the master keys (common.cc) -----------------------------

// The Config named by --config, with --listen and --database applied.
// `for_admin`: an admin command, which needs the database but no secrets.
Result<Config> LoadFromArgs(const Args& args, bool for_admin = false);

// The bytes of storage.master_key_file and of each
// storage.previous_master_key_files entry, read once. Wiped on destruction.
struct MasterKeys {
  MasterKeys() = default;
  MasterKeys(MasterKeys&&) = default;
  MasterKeys& operator=(MasterKeys&&) = default;
  ~MasterKeys();

  std::string primary;
  std::vector<std::string> previous;
};

// The master keys of `config`, or nullopt when sealing is off. Errors
// (kInvalidRequest) name the config key and the file's problem, never its
// content.
Result<std::optional<MasterKeys>> ReadMasterKeys(const Config& config);

// The keyring of storage.master_key_file (+ previous_master_key_files), or
// nullopt when sealing is off. Errors as ReadMasterKeys.
Result<std::optional<SessionKeyring>> KeyringFromConfig(const Config& config);

// Wraps `store` in a SealedStore when storage.master_key_file is set, and
// logs "sealing" with the key id. Errors as ReadMasterKeys.
Status SealIfConfigured(const Config& config, Logger& logger,
                        std::unique_ptr<SessionStore>* store);

}  // namespace cmd
}  // namespace wxsession

#endif  // WXSESSION_CMD_COMMANDS_H_
