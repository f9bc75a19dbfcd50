// wxsessiond: the one place that names concrete types and wires them.
//
// Commands: serve, check-config, dev, mock-wechat, revoke, sessions, ban,
// unban, stats, backup, migrate-store, rekey, rotate-signing-key, version.
// Exit codes: 0 ok, 1 failure, 2 usage. This file only dispatches; each
// command lives in its own file of src/cmd/ (commands.h lists them).
#include <cstdio>
#include <string>

#include "cmd/commands.h"
#include "cmd/stop_coordinator.h"

namespace wxsession {
namespace cmd {
namespace {

const char* kMainUsage =
    "usage: wxsessiond <command> [options]\n"
    "\n"
    "WeChat mini-program login and session server.\n"
    "\n"
    "commands:\n"
    "  serve        run the server (--config FILE)\n"
    "  check-config validate a config file without starting the server\n"
    "  dev          run the server on 127.0.0.1:8080 against a built-in mock\n"
    "               WeChat, data in ./dev; prints a curl walk-through\n"
    "  mock-wechat  run a stand-in for WeChat's server API on loopback\n"
    "  revoke       end sessions while the server runs\n"
    "  sessions     list a user's live sessions (devices)\n"
    "  ban, unban   suspend a user (ending every session) or lift it\n"
    "  stats        print session and database counts as JSON\n"
    "  backup       copy the database to a file while the server runs\n"
    "  migrate-store\n"
    "               copy live sessions from the SQLite file to Redis\n"
    "  rekey        re-seal every stored session_key under a new master key\n"
    "  rotate-signing-key\n"
    "               make a new current key for signing tokens (tokens.*)\n"
    "  version      print the version\n"
    "\n"
    "Run 'wxsessiond <command> --help' for a command's options.\n";

int Main(int argc, char** argv) {
  // Before any thread starts, so every thread inherits the mask and only
  // the sigwait threads ever see SIGINT/SIGTERM.
  BlockStopSignals();
  if (argc < 2) return Usage(kMainUsage, "no command given");
  std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    return Usage(kMainUsage, "");
  }
  if (command == "version" || command == "--version") {
    std::printf("wxsessiond %s\n", WXSESSIOND_VERSION);
    return kExitOk;
  }
  if (command == "serve") return CmdServe(argc, argv);
  if (command == "dev") return CmdDev(argc, argv);
  if (command == "check-config") return CmdCheckConfig(argc, argv);
  if (command == "mock-wechat") return CmdMockWeChat(argc, argv);
  if (command == "revoke") return CmdRevoke(argc, argv);
  if (command == "stats") return CmdStats(argc, argv);
  if (command == "sessions") return CmdSessions(argc, argv);
  if (command == "ban") return CmdBan(argc, argv);
  if (command == "unban") return CmdUnban(argc, argv);
  if (command == "backup") return CmdBackup(argc, argv);
  if (command == "migrate-store") return CmdMigrateStore(argc, argv);
  if (command == "rekey") return CmdRekey(argc, argv);
  if (command == "rotate-signing-key") return CmdRotateSigningKey(argc, argv);
  return Usage(kMainUsage, "unknown command '" + command + "'");
}

}  // namespace
}  // namespace cmd
}  // namespace wxsession

int main(int argc, char** argv) { return wxsession::cmd::Main(argc, argv); }
