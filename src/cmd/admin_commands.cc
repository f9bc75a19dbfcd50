// The operators' commands, working on the store the config names while the
// server runs: revoke, sessions, ban, unban, stats, backup, migrate-store,
// rekey, rotate-signing-key.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cmd/commands.h"
#include "core/store_locator.h"
#include "ops/log.h"
#include "store/factory.h"
#include "store/migration.h"
#include "store/sealed_store.h"
#include "store/sqlite/sqlite_backup.h"
#include "store/sqlite/sqlite_store.h"
#include "wxsession/admin_service.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/crypto.h"
#include "wxsession/store.h"
#include "wxsession/token_service.h"

namespace wxsession {
namespace cmd {
namespace {

// The config of an admin command that works on the SQLite file itself
// (backup, rekey). With a Redis `store` the error is `refusal`: what the
// command cannot do there and what to use instead.
Result<Config> LoadSqliteAdminConfig(const Args& args, const char* refusal) {
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return config;
  Result<StoreLocator> locator = ParseStoreLocator(config->store);
  if (locator.ok() && locator->is_redis()) {
    return Status(ErrorCode::kInvalidRequest, refusal);
  }
  return config;
}

// The config (without secrets) and its store, for sessions/ban/unban.
struct AdminContext {
  Config config;
  std::unique_ptr<SessionStore> store;
};

Result<AdminContext> OpenAdminContext(const Args& args) {
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return config.status();
  static SystemClock clock;  // outlives every store this process opens
  Result<OpenedStore> opened = OpenConfiguredStore(config.value(), clock);
  if (!opened.ok()) return opened.status();
  return AdminContext{std::move(config).value(), std::move(opened->store)};
}

// Opens the store named by --config / --database for an admin command.
Result<std::unique_ptr<SessionStore>> OpenStoreForAdmin(const Args& args) {
  Result<AdminContext> context = OpenAdminContext(args);
  if (!context.ok()) return context.status();
  return std::move(context->store);
}

// What sessions/ban/unban work through: the config, its store, and an
// AdminService whose admin_action lines go to stderr, as the server's would
// go to its log.
struct AdminCli {
  explicit AdminCli(AdminContext opened)
      : context(std::move(opened)),
        logger(stderr, context.config.log_format, context.config.log_level,
               StderrSink()),
        admin(context.config, *context.store, clock, &logger, nullptr) {}

  AdminContext context;
  SystemClock clock;
  Logger logger;
  AdminService admin;
};

Result<std::unique_ptr<AdminCli>> OpenAdminCli(const Args& args) {
  Result<AdminContext> context = OpenAdminContext(args);
  if (!context.ok()) return context.status();
  return std::make_unique<AdminCli>(std::move(context).value());
}

// The exit code of a call to sessions/ban/unban that cannot go on (help, a
// wrong option, no --openid), or nullopt.
std::optional<int> UserArgsExit(const Args& args, const char* usage) {
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("openid")) return Usage(usage, "--openid is required");
  return std::nullopt;
}

// "2024-05-01 12:00:00Z" for the table.
std::string UtcTime(int64_t unix_seconds) {
  std::time_t time = static_cast<std::time_t>(unix_seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%SZ", &parts);
  return text;
}

// The SQLite file of `config`, opened as the server would.
SqliteOptions SqliteOptionsFor(const Config& config) {
  SqliteOptions options;
  options.path = config.database;
  options.durability = config.durability;
  return options;
}

// The keyring rekey seals with: `new_key` first, then whatever the server
// could open (the config's keys), for rows not yet under the new key.
SessionKeyring RekeyTarget(const std::string& new_key,
                           const std::optional<MasterKeys>& current) {
  std::vector<std::string> openers;
  if (current) {
    openers.push_back(current->primary);
    openers.insert(openers.end(), current->previous.begin(),
                   current->previous.end());
  }
  return SessionKeyring(new_key, std::move(openers));
}

// Re-seals every users row under `target`'s primary key; rows already
// under it stay as they are.
Result<RewriteCounts> ResealUserKeys(const Config& config,
                                     const SessionKeyring& target) {
  return RewriteUserSessionKeys(
      SqliteOptionsFor(config),
      [&target](const std::string& appid, const std::string& openid,
                const std::string& stored) -> Result<std::string> {
        if (target.SealedWithPrimary(stored)) return stored;
        Result<std::string> plain = target.Open(appid, openid, stored);
        if (!plain.ok()) return plain.status();
        return target.Seal(appid, openid, plain.value());
      });
}

}  // namespace

int CmdRevoke(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond revoke --config FILE (--openid OPENID [--appid APPID]"
      " | --all)\n"
      "\n"
      "Ends sessions at once, while the server runs. Prints {\"revoked\": "
      "N}.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid"}, {"all"});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  bool all = args.Has("all");
  if (all == args.Has("openid")) {
    return Usage(usage, "give exactly one of --openid or --all");
  }
  if (all && args.Has("appid")) {
    return Usage(usage, "--appid goes with --openid, not --all");
  }
  auto store = OpenStoreForAdmin(args);
  if (!store.ok()) {
    return Fail(store.status());
  }
  Result<int64_t> revoked =
      all ? store.value()->RevokeAll()
          : store.value()->RevokeUser(args.Get("appid"), args.Get("openid"));
  if (!revoked.ok()) {
    return Fail(revoked.status());
  }
  std::printf("%s\n",
              nlohmann::json({{"revoked", revoked.value()}}).dump().c_str());
  return kExitOk;
}

// --- Users, sessions and bans (issue 15): the CLI face of AdminService,
// --- working on the store the config names while the server runs.

int CmdSessions(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond sessions --config FILE --openid OPENID "
      "[--appid APPID] [--json]\n"
      "\n"
      "Lists the user's live sessions (one per device), newest first: a\n"
      "table, or with --json {\"sessions\": [{\"handle\", \"created_at\",\n"
      "\"last_seen_at\", \"expires_at\"}]} as GET\n"
      "/v1/admin/users/{appid}/{openid}/sessions answers. A handle ends one\n"
      "session: DELETE /v1/admin/sessions/{handle}.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid"}, {"json"}, 0);
  if (std::optional<int> exit = UserArgsExit(args, usage)) return *exit;
  Result<std::unique_ptr<AdminCli>> cli = OpenAdminCli(args);
  if (!cli.ok()) return Fail(cli.status());
  AdminService& admin = cli.value()->admin;
  auto sessions = admin.ListSessions(args.Get("appid"), args.Get("openid"));
  if (!sessions.ok()) return Fail(sessions.status());
  if (args.Has("json")) {
    std::printf("%s\n", SessionsJson(sessions.value()).c_str());
    return kExitOk;
  }
  std::printf("%-64s  %-20s  %-20s  %-20s\n", "HANDLE", "CREATED", "LAST SEEN",
              "EXPIRES");
  for (const SessionSummary& s : sessions.value()) {
    std::printf("%-64s  %-20s  %-20s  %-20s\n",
                crypto::HexEncode(s.id_hash).c_str(),
                UtcTime(s.created_at).c_str(), UtcTime(s.last_seen_at).c_str(),
                UtcTime(s.expires_at).c_str());
  }
  std::printf("%zu live session(s)\n", sessions->size());
  return kExitOk;
}

int CmdBan(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond ban --config FILE --openid OPENID [--appid APPID] "
      "--reason TEXT [--until UNIXTIME]\n"
      "\n"
      "Suspends the user at once: every session ends, and logins answer 403\n"
      "user_banned until `wxsessiond unban` or UNIXTIME. The reason is for\n"
      "operators only. Prints the user as GET /v1/admin/users/... does.\n";
  Args args = ParseArgs(
      argc, argv, 2,
      {"config", "database", "openid", "appid", "reason", "until"}, {}, 0);
  if (std::optional<int> exit = UserArgsExit(args, usage)) return *exit;
  if (!args.Has("reason")) return Usage(usage, "--reason is required");
  std::optional<int64_t> until;
  if (args.Has("until")) {
    const std::string text = args.Get("until");
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return Usage(usage, "--until takes a unix time in seconds");
    }
    until = std::stoll(text);
  }
  Result<std::unique_ptr<AdminCli>> cli = OpenAdminCli(args);
  if (!cli.ok()) return Fail(cli.status());
  AdminService& admin = cli.value()->admin;
  Result<UserRecord> user = admin.BanUser(args.Get("appid"), args.Get("openid"),
                                          args.Get("reason"), until);
  if (!user.ok()) return Fail(user.status());
  std::printf("%s\n",
              UserJson(user.value(), cli.value()->context.config).c_str());
  return kExitOk;
}

int CmdUnban(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond unban --config FILE --openid OPENID [--appid APPID]\n"
      "\n"
      "Lifts the user's ban: logins work again. Fails (exit 1) when the user\n"
      "is not banned.\n";
  Args args = ParseArgs(argc, argv, 2,
                        {"config", "database", "openid", "appid"}, {}, 0);
  if (std::optional<int> exit = UserArgsExit(args, usage)) return *exit;
  Result<std::unique_ptr<AdminCli>> cli = OpenAdminCli(args);
  if (!cli.ok()) return Fail(cli.status());
  AdminService& admin = cli.value()->admin;
  Status lifted = admin.UnbanUser(args.Get("appid"), args.Get("openid"));
  if (!lifted.ok()) return Fail(lifted);
  std::printf("%s\n", nlohmann::json({{"unbanned", true}}).dump().c_str());
  return kExitOk;
}

int CmdStats(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond stats --config FILE\n"
      "\n"
      "Prints {\"sessions\", \"live_sessions\", \"users\", "
      "\"database_bytes\"}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  auto store = OpenStoreForAdmin(args);
  if (!store.ok()) {
    return Fail(store.status());
  }
  SystemClock clock;
  Result<StoreStats> stats = store.value()->Stats(clock.Now());
  if (!stats.ok()) {
    return Fail(stats.status());
  }
  nlohmann::json out = {{"sessions", stats->sessions},
                        {"live_sessions", stats->live_sessions},
                        {"users", stats->users},
                        {"database_bytes", stats->database_bytes}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int CmdBackup(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond backup --config FILE [--database PATH] OUT.db\n"
      "\n"
      "Copies the database to OUT.db while the server runs: one consistent\n"
      "snapshot, checked, in a single file readable by its owner only. OUT.db\n"
      "must not exist. Prints {\"backup\", \"bytes\", \"sessions\"}.\n"
      "Restore: see docs/OPERATIONS.md.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {},
                        /*max_positional=*/1);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (args.positional.empty()) {
    return Usage(usage, "give the file to write, e.g. backup.db");
  }
  Result<Config> config = LoadSqliteAdminConfig(
      args,
      "backup copies the SQLite database; with a Redis store use Redis's own "
      "persistence (RDB/AOF, BGSAVE)");
  if (!config.ok()) {
    return Fail(config.status());
  }
  const std::string& out = args.positional.front();
  Result<BackupReport> report = BackupSqliteDatabase(config->database, out);
  if (!report.ok()) {
    return Fail(report.status());
  }
  nlohmann::json answer = {{"backup", out},
                           {"bytes", report->bytes},
                           {"sessions", report->sessions}};
  std::printf(
      "%s\n",
      answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          .c_str());
  return kExitOk;
}

int CmdMigrateStore(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond migrate-store --config FILE [--to REDIS_URL] "
      "[--database PATH]\n"
      "\n"
      "Copies every live session, its user's newest session_key and the\n"
      "cached access tokens from the SQLite file (`database`) to Redis, so\n"
      "nobody is logged out by the move. --to defaults to the config's\n"
      "`store`; keep the password out of the command line with\n"
      "redis.password_file or WXSESSIOND_REDIS_PASSWORD. Safe to run again:\n"
      "copies are idempotent and never replace a newer key. Progress goes\n"
      "to stderr; the counts, as JSON, to stdout.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database", "to"}, {},
                        /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  Result<Config> config = LoadFromArgs(args);
  if (!config.ok()) {
    return Fail(config.status());
  }
  std::string target = args.Has("to") ? args.Get("to") : config->store;
  SystemClock clock;
  Result<std::unique_ptr<RedisStore>> redis =
      OpenRedisStoreAt(config.value(), target, clock);
  if (!redis.ok()) {
    std::fprintf(stderr, "wxsessiond: --to: %s\n",
                 redis.status().operator_text().c_str());
    return args.Has("to") ? kExitUsage : kExitFailure;
  }
  if (Status ping = redis.value()->Ping(); !ping.ok()) {
    return Fail(ping);
  }
  Result<std::unique_ptr<StoreExporter>> sqlite =
      OpenSqliteExporter(SqliteOptionsFor(config.value()));
  if (!sqlite.ok()) {
    return Fail(sqlite.status());
  }
  std::string where = ParseStoreLocator(target)->Redacted();
  std::fprintf(stderr, "migrating live sessions from %s to %s\n",
               config->database.c_str(), where.c_str());
  constexpr size_t kBatch = 500;  // sessions per Redis pipeline
  Result<MigrationCounts> counts = MigrateStore(
      *sqlite.value(), *redis.value(), clock.Now(), kBatch,
      [](const MigrationCounts& so_far) {
        std::fprintf(stderr, "  %lld sessions, %lld users copied\n",
                     static_cast<long long>(so_far.sessions),
                     static_cast<long long>(so_far.users));
      });
  if (!counts.ok()) {
    std::fprintf(stderr,
                 "wxsessiond: migration stopped: %s (run it again to "
                 "finish; copies are idempotent)\n",
                 counts.status().operator_text().c_str());
    return kExitFailure;
  }
  nlohmann::json out = {{"sessions", counts->sessions},
                        {"users", counts->users},
                        {"access_tokens", counts->access_tokens}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

int CmdRekey(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond rekey --config FILE --new-key-file KEYFILE\n"
      "\n"
      "Re-seals every user's stored session_key under the master key in\n"
      "KEYFILE (32 raw bytes, 64 hex digits or base64). Rows are opened with\n"
      "storage.master_key_file, storage.previous_master_key_files or KEYFILE;\n"
      "rows stored before sealing was on are sealed. Safe while the server\n"
      "runs if the server can open both keys (see docs/SECURITY.md,\n"
      "\"Rotating the master key\"). SQLite only.\n"
      "Prints {\"users\": N, \"resealed\": M}.\n";
  Args args =
      ParseArgs(argc, argv, 2, {"config", "database", "new-key-file"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  if (!args.Has("new-key-file"))
    return Usage(usage, "--new-key-file is required");
  Result<Config> config = LoadSqliteAdminConfig(
      args,
      "rekey re-seals the SQLite database; it cannot rewrite a Redis store "
      "(see docs/SECURITY.md)");
  if (!config.ok()) {
    return Fail(config.status());
  }
  Result<std::string> new_key = ReadMasterKeyFile(args.Get("new-key-file"));
  if (!new_key.ok()) {
    std::fprintf(stderr, "wxsessiond: --new-key-file: %s\n",
                 new_key.status().operator_text().c_str());
    return kExitFailure;
  }
  // The keys the config names, read once: they open the rows (with the
  // new key) and tell whether the config already points at the new key.
  Result<std::optional<MasterKeys>> current = ReadMasterKeys(config.value());
  if (!current.ok()) {
    return Fail(current.status());
  }
  const SessionKeyring target = RekeyTarget(new_key.value(), current.value());
  Result<RewriteCounts> counts = ResealUserKeys(config.value(), target);
  if (!counts.ok()) {
    std::fprintf(stderr, "wxsessiond: rekey stopped: %s\n",
                 counts.status().operator_text().c_str());
    return kExitFailure;
  }
  if (!current.value() ||
      SessionKeyring(current.value()->primary).PrimaryKeyId() !=
          target.PrimaryKeyId()) {
    // A server started with the old configuration cannot open these rows.
    std::fprintf(stderr,
                 "wxsessiond: note: storage.master_key_file is not this key; "
                 "point it at %s before the server next starts\n",
                 args.Get("new-key-file").c_str());
  }
  std::printf("%s\n", nlohmann::json({{"users", counts->users},
                                      {"resealed", counts->rewritten},
                                      {"key_id", target.PrimaryKeyId()}})
                          .dump()
                          .c_str());
  return kExitOk;
}

int CmdRotateSigningKey(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond rotate-signing-key --config FILE\n"
      "\n"
      "Makes a new current key for signing tokens (tokens.algorithm), kept\n"
      "in the store. Every instance on the store signs with it within 60 s;\n"
      "the previous key stays in the JWKS until every token it signed has\n"
      "expired (60 s + tokens.ttl). Not with tokens.signing_key_file.\n"
      "Prints {\"kid\": NEW_KID}.\n";
  Args args = ParseArgs(argc, argv, 2, {"config", "database"}, {},
                        /*max_positional=*/0);
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  Result<Config> config = LoadFromArgs(args, /*for_admin=*/true);
  if (!config.ok()) return Fail(config.status());
  static SystemClock clock;  // outlives the store
  Result<OpenedStore> opened = OpenConfiguredStore(config.value(), clock);
  if (!opened.ok()) return Fail(opened.status());
  std::unique_ptr<SessionStore> store = std::move(opened->store);
  Logger logger(stderr, config->log_format, LogLevel::kWarn);
  if (Status sealed = SealIfConfigured(config.value(), logger, &store);
      !sealed.ok()) {
    return Fail(sealed);
  }
  Result<std::string> kid = RotateSigningKey(config.value(), *store, clock);
  if (!kid.ok()) return Fail(kid.status());
  std::printf("%s\n", nlohmann::json({{"kid", kid.value()}}).dump().c_str());
  return kExitOk;
}

}  // namespace cmd
}  // namespace wxsession
