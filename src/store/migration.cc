#include "store/migration.h"

#include <set>
#include <utility>

namespace wxsession {

Result<MigrationCounts> MigrateStore(
    StoreExporter& from, StoreImporter& to, int64_t now, size_t batch_size,
    const std::function<void(const MigrationCounts&)>& progress) {
  MigrationCounts counts;
  // Distinct (appid, openid) pairs: a few million short pairs are fine in
  // memory for a one-off command.
  std::set<std::pair<std::string, std::string>> users;
  Status exported = from.ExportLiveSessions(
      now, batch_size,
      [&](const std::vector<ExportedSession>& batch) -> Status {
        Result<int64_t> written = to.ImportSessions(batch);
        if (!written.ok()) return written.status();
        counts.sessions += written.value();
        for (const ExportedSession& session : batch) {
          if (session.expires_at > now) {
            users.emplace(session.appid, session.openid);
          }
        }
        counts.users = static_cast<int64_t>(users.size());
        if (progress) progress(counts);
        return Status::Ok();
      });
  if (!exported.ok()) return exported;

  Result<std::vector<AccessToken>> tokens = from.ExportAccessTokens(now);
  if (!tokens.ok()) return tokens.status();
  if (!tokens->empty()) {
    Status imported = to.ImportAccessTokens(tokens.value());
    if (!imported.ok()) return imported;
  }
  counts.access_tokens = static_cast<int64_t>(tokens->size());
  if (progress) progress(counts);
  return counts;
}

}  // namespace wxsession
