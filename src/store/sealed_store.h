// SealedStore: a SessionStore decorator that keeps every user's session_key
// sealed at rest, so a stolen database file (or backup, or Redis dump) does
// not hand out the keys that decrypt users' open data.
//
// With `storage.master_key_file` configured, main wraps whatever backend it
// opened (SQLite, Redis) in a SealedStore. CreateSession seals the
// session_key with AES-256-GCM under the primary master key: a fresh random
// 12-byte nonce per write, and the row's identity (appid, openid) as
// associated data, so a sealed key copied onto another user's row does not
// open. FindLive opens it again. Cached WeChat access tokens are sealed the
// same way (the appid as associated data): PutAccessToken seals,
// GetAccessToken opens, and a token that no configured key opens counts as
// not cached, so the caller simply fetches a new one. Token-signing keys
// (tokens.*) are sealed too, bound to their kid. Every other method passes
// straight through.
//
// Stored form (fits the TEXT column; never a valid WeChat session_key, which
// is base64 and has no ':'):
//   "wxs1:" base64(key_id[4] || nonce[12] || ciphertext || tag[16])
// key_id is the first 4 bytes of SHA-256("wxsessiond master key id" NUL key):
// it names the key without revealing it, so a keyring of several keys
// (rotation, see `wxsessiond rekey`) knows which one to try.
//
// A row written before sealing was turned on holds the plain session_key;
// it is still served as is, and `wxsessiond rekey` seals it.
//
// Thread-safety: as the wrapped store; the keyring is constant after
// construction.
#ifndef WXSESSION_SEALED_STORE_H_
#define WXSESSION_SEALED_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wxsession/status.h"
#include "wxsession/store.h"

namespace wxsession {

// The master keys of a deployment: one that seals, any number that still
// open (the previous keys during a rotation).
class SessionKeyring {
 public:
  static constexpr size_t kKeyBytes = 32;  // AES-256

  // `primary` and every entry of `previous` must be kKeyBytes long (checked
  // by ParseMasterKey; a wrong length here is a programming error and the
  // key is ignored for opening, and Seal aborts).
  explicit SessionKeyring(std::string primary,
                          std::vector<std::string> previous = {});
  ~SessionKeyring();
  SessionKeyring(const SessionKeyring&) = default;

  // Seals `session_key` for the user (appid, openid) under the primary key.
  std::string Seal(const std::string& appid, const std::string& openid,
                   const std::string& session_key) const;

  // The session_key behind a stored value: a sealed one is opened with the
  // key its key id names; anything else is a row from before sealing and is
  // returned as is. Errors: kStoreUnavailable when the value was sealed
  // under a key this keyring does not hold (wrong or missing
  // storage.master_key_file) or does not authenticate (tampered, corrupt, or
  // moved to another user's row). Messages never quote the value or a key.
  Result<std::string> Open(const std::string& appid, const std::string& openid,
                           const std::string& stored) const;

  // The same for a cached access token of `appid`.
  std::string SealAccessToken(const std::string& appid,
                              const std::string& token) const;
  Result<std::string> OpenAccessToken(const std::string& appid,
                                      const std::string& stored) const;

  // The same for a token-signing key (its PEM), bound to its kid.
  std::string SealSigningKey(const std::string& kid,
                             const std::string& pem) const;
  Result<std::string> OpenSigningKey(const std::string& kid,
                                     const std::string& stored) const;

  // True when `stored` is sealed under the primary key (rekey skips those).
  bool SealedWithPrimary(std::string_view stored) const;

  // Hex key id of the primary key, for logs ("sealing with key 1a2b3c4d").
  std::string PrimaryKeyId() const;

  // True when `stored` has the sealed form's prefix.
  static bool IsSealed(std::string_view stored);

 private:
  struct Key {
    std::string id;     // 4 bytes
    std::string bytes;  // kKeyBytes
  };
  static Key MakeKey(std::string bytes);
  std::string SealWith(const std::string& associated_data,
                       const std::string& value) const;
  Result<std::string> OpenWith(const std::string& associated_data,
                               const std::string& stored) const;
  Key primary_;
  std::vector<Key> previous_;
};

// Parses the content of a master key file: exactly 32 raw bytes, or (after
// trimming surrounding whitespace) 64 hex digits or standard base64 of 32
// bytes. Errors: kInvalidRequest saying which forms are accepted; the
// message never quotes the content.
Result<std::string> ParseMasterKey(std::string_view content);

// Reads and parses a master key file. Errors: kInvalidRequest "<path>:
// <what is wrong>".
Result<std::string> ReadMasterKeyFile(const std::string& path);

class SealedStore : public SessionStore {
 public:
  // SessionKeyring has no move (its destructor wipes the keys), so it is
  // copied either way.
  SealedStore(std::unique_ptr<SessionStore> inner,
              const SessionKeyring& keyring);
  ~SealedStore() override;

  // Seals session.session_key, then as the wrapped store.
  Status CreateSession(const NewSession& session) override;
  // As the wrapped store, with session_key opened; plus the errors of
  // SessionKeyring::Open.
  Result<LiveSession> FindLive(const std::string& id_hash,
                               int64_t now) override;
  // Seal and open the token; an unopenable token is kNotFound.
  Result<AccessToken> GetAccessToken(const std::string& appid) override;
  Status PutAccessToken(const AccessToken& token) override;
  // Seal and open signing keys' private_key; a key that no configured
  // master key opens is an error (kStoreUnavailable): tokens cannot be
  // signed or verified without it.
  Result<std::vector<StoredSigningKey>> ListSigningKeys(int64_t now) override;
  Result<bool> ReplaceSigningKey(const std::string& expected_kid,
                                 const StoredSigningKey& key,
                                 int64_t previous_verify_until) override;

  // The rest pass through unchanged.
  Status Touch(const std::string& id_hash, int64_t last_seen_at,
               int64_t expires_at) override;
  Result<int64_t> Revoke(const std::string& id_hash) override;
  Result<int64_t> RevokeUser(const std::string& appid,
                             const std::string& openid) override;
  Result<int64_t> RevokeAll() override;
  Result<int64_t> SweepExpired(int64_t now, int64_t max_rows) override;
  Result<StoreStats> Stats(int64_t now) override;
  Result<bool> TryLockTokenRefresh(const std::string& appid,
                                   const std::string& owner, int64_t now_ms,
                                   int64_t lease_ms) override;
  Status UnlockTokenRefresh(const std::string& appid,
                            const std::string& owner) override;
  Status Ping() override;
  Result<UserRecord> GetUser(const std::string& appid,
                             const std::string& openid, int64_t now) override;
  Result<std::vector<SessionSummary>> ListSessions(const std::string& appid,
                                                   const std::string& openid,
                                                   int64_t now) override;
  Result<int64_t> PutBan(const Ban& ban) override;
  Status RemoveBan(const std::string& appid, const std::string& openid,
                   int64_t now) override;
  Result<std::vector<Ban>> ListBans(const std::string& appid,
                                    int64_t now) override;
  Result<int64_t> SweepUsers(int64_t now, int64_t last_login_before,
                             int64_t max_rows) override;

 private:
  const std::unique_ptr<SessionStore> inner_;  // constant after construction
  const SessionKeyring keyring_;               // constant after construction
};

}  // namespace wxsession

#endif  // WXSESSION_SEALED_STORE_H_
