// Moving live sessions from one backend to another (SQLite -> Redis), so a
// team can change backends without logging everyone out.
//
// A StoreExporter hands out every live session joined with its user's newest
// session_key, in batches, from one consistent snapshot, and the cached
// access tokens. A StoreImporter writes them keeping every field (created_at,
// last_seen_at, expires_at), so a moved session expires exactly when it
// would have. Import is idempotent: running a migration twice (say once
// while the old server still serves, once after it stopped) leaves the same
// result, and an imported key never replaces a newer one the target already
// has.
//
// Users without a live session are not moved: they serve nothing.
//
// Thread-safety: an exporter or importer is used by one thread at a time.
#ifndef WXSESSION_STORE_MIGRATION_H_
#define WXSESSION_STORE_MIGRATION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/status.h"
#include "wxsession/store.h"

namespace wxsession {

// One session with what its user record holds.
struct ExportedSession {
  std::string id_hash;  // SHA-256 of the session id, 32 raw bytes
  std::string appid;
  std::string openid;
  std::optional<std::string> unionid;
  std::string session_key;     // the user's newest key
  int64_t key_updated_at = 0;  // when the user got that key, unix seconds
  int64_t created_at = 0;
  int64_t last_seen_at = 0;
  int64_t expires_at = 0;
};

class StoreExporter {
 public:
  virtual ~StoreExporter() = default;

  using SessionSink =
      std::function<Status(const std::vector<ExportedSession>&)>;

  // Calls `sink` with batches of at most `batch_size` sessions that are live
  // at `now` (expires_at > now), all read from one snapshot. Stops at the
  // first non-OK status from `sink` and returns it.
  virtual Status ExportLiveSessions(int64_t now, size_t batch_size,
                                    const SessionSink& sink) = 0;

  // Every cached access token that has not expired at `now`.
  virtual Result<std::vector<AccessToken>> ExportAccessTokens(int64_t now) = 0;
};

class StoreImporter {
 public:
  virtual ~StoreImporter() = default;

  // Writes the sessions and their users' keys. A user whose key in the
  // target is newer (key_updated_at) keeps it. Sessions already expired are
  // skipped. Returns how many sessions were written.
  virtual Result<int64_t> ImportSessions(
      const std::vector<ExportedSession>& sessions) = 0;

  // Writes the access tokens (a token cached in the target with a later
  // expiry is kept).
  virtual Status ImportAccessTokens(const std::vector<AccessToken>& tokens) = 0;
};

struct MigrationCounts {
  int64_t sessions = 0;       // live sessions written
  int64_t users = 0;          // distinct (appid, openid) among them
  int64_t access_tokens = 0;  // cached tokens written
};

// Copies everything live at `now` from `from` to `to`, in batches of
// `batch_size`. `progress` (may be empty) is called after each batch with
// the running counts. Errors: whatever either side answers; what was
// written before the error stays (a rerun completes it).
Result<MigrationCounts> MigrateStore(
    StoreExporter& from, StoreImporter& to, int64_t now, size_t batch_size,
    const std::function<void(const MigrationCounts&)>& progress);

}  // namespace wxsession

#endif  // WXSESSION_STORE_MIGRATION_H_
