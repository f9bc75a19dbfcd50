// SealedStore and SessionKeyring: see sealed_store.h for the stored form.
#include "store/sealed_store.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "wxsession/crypto.h"

namespace wxsession {
namespace {

constexpr std::string_view kSealedPrefix = "wxs1:";
constexpr size_t kKeyIdBytes = 4;   // names a key; collisions only cost a
                                    // failed open, never a wrong plaintext
constexpr size_t kNonceBytes = 12;  // AES-GCM's standard nonce size
constexpr size_t kTagBytes = 16;    // AES-GCM's full tag
// A key file holds at most a base64 or hex key and a newline or two.
constexpr size_t kMaxKeyFileBytes = 1024;

std::string KeyId(const std::string& key) {
  return crypto::Sha256(std::string("wxsessiond master key id") + '\0' + key)
      .substr(0, kKeyIdBytes);
}

// Associated data: the row's identity, length-prefixed so that no two
// (appid, openid) pairs give the same bytes. `kind` keeps a session_key and
// an access token apart.
std::string RowIdentity(const char* kind, const std::string& appid,
                        const std::string& openid) {
  std::string out = kind;
  uint32_t length = static_cast<uint32_t>(appid.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += static_cast<char>((length >> shift) & 0xff);
  }
  out += appid;
  out += openid;
  return out;
}

Status Unopenable(const std::string& why) {
  return Status::Fault(ErrorCode::kStoreUnavailable,
                       "session store: a sealed session_key " + why);
}

void Wipe(std::string& secret) {
  volatile char* bytes = secret.empty() ? nullptr : &secret[0];
  for (size_t i = 0; i < secret.size(); ++i) bytes[i] = 0;
}

std::optional<std::string> HexDecode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    int high = nibble(text[i]);
    int low = nibble(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
  }
  return out;
}

}  // namespace

SessionKeyring::Key SessionKeyring::MakeKey(std::string bytes) {
  Key key;
  key.id = KeyId(bytes);
  key.bytes = std::move(bytes);
  return key;
}

SessionKeyring::SessionKeyring(std::string primary,
                               std::vector<std::string> previous)
    : primary_(MakeKey(std::move(primary))) {
  for (std::string& key : previous) {
    if (key.size() == kKeyBytes) previous_.push_back(MakeKey(std::move(key)));
  }
}

SessionKeyring::~SessionKeyring() {
  Wipe(primary_.bytes);
  for (Key& key : previous_) Wipe(key.bytes);
}

std::string SessionKeyring::Seal(const std::string& appid,
                                 const std::string& openid,
                                 const std::string& session_key) const {
  return SealWith(RowIdentity("session_key", appid, openid), session_key);
}

Result<std::string> SessionKeyring::Open(const std::string& appid,
                                         const std::string& openid,
                                         const std::string& stored) const {
  return OpenWith(RowIdentity("session_key", appid, openid), stored);
}

std::string SessionKeyring::SealAccessToken(const std::string& appid,
                                            const std::string& token) const {
  return SealWith(RowIdentity("access_token", appid, ""), token);
}

Result<std::string> SessionKeyring::OpenAccessToken(
    const std::string& appid, const std::string& stored) const {
  return OpenWith(RowIdentity("access_token", appid, ""), stored);
}

std::string SessionKeyring::SealSigningKey(const std::string& kid,
                                           const std::string& pem) const {
  return SealWith(RowIdentity("signing_key", kid, ""), pem);
}

Result<std::string> SessionKeyring::OpenSigningKey(
    const std::string& kid, const std::string& stored) const {
  return OpenWith(RowIdentity("signing_key", kid, ""), stored);
}

std::string SessionKeyring::SealWith(const std::string& associated_data,
                                     const std::string& value) const {
  const std::string nonce = crypto::RandomBytes(kNonceBytes);
  std::optional<std::string> sealed =
      crypto::Aes256GcmSeal(primary_.bytes, nonce, value, associated_data);
  if (!sealed) {
    // Only a key of the wrong length gets here, which ParseMasterKey rules
    // out; storing the key in the clear instead would be a silent leak.
    std::fputs("wxsessiond: sealing failed: the master key is not 32 bytes\n",
               stderr);
    std::abort();
  }
  return std::string(kSealedPrefix) +
         crypto::Base64Encode(primary_.id + nonce + *sealed);
}

Result<std::string> SessionKeyring::OpenWith(const std::string& associated_data,
                                             const std::string& stored) const {
  if (!IsSealed(stored)) return stored;  // written before sealing was on
  std::optional<std::string> raw = crypto::Base64Decode(
      std::string_view(stored).substr(kSealedPrefix.size()));
  if (!raw || raw->size() < kKeyIdBytes + kNonceBytes + kTagBytes) {
    return Unopenable("is malformed (corrupt row?)");
  }
  const std::string id = raw->substr(0, kKeyIdBytes);
  const Key* key = nullptr;
  if (id == primary_.id) key = &primary_;
  for (const Key& candidate : previous_) {
    if (key == nullptr && id == candidate.id) key = &candidate;
  }
  if (key == nullptr) {
    return Unopenable("was sealed under master key " + crypto::HexEncode(id) +
                      ", which is not among the configured keys "
                      "(storage.master_key_file, "
                      "storage.previous_master_key_files)");
  }
  std::optional<std::string> opened = crypto::Aes256GcmOpen(
      key->bytes, std::string_view(*raw).substr(kKeyIdBytes, kNonceBytes),
      std::string_view(*raw).substr(kKeyIdBytes + kNonceBytes),
      associated_data);
  if (!opened) {
    return Unopenable(
        "does not authenticate (tampered, corrupt, or moved "
        "from another user's row)");
  }
  return std::move(*opened);
}

bool SessionKeyring::SealedWithPrimary(std::string_view stored) const {
  if (!IsSealed(stored)) return false;
  std::optional<std::string> raw =
      crypto::Base64Decode(stored.substr(kSealedPrefix.size()));
  return raw && raw->size() >= kKeyIdBytes &&
         raw->compare(0, kKeyIdBytes, primary_.id) == 0;
}

std::string SessionKeyring::PrimaryKeyId() const {
  return crypto::HexEncode(primary_.id);
}

bool SessionKeyring::IsSealed(std::string_view stored) {
  return stored.substr(0, kSealedPrefix.size()) == kSealedPrefix;
}

Result<std::string> ParseMasterKey(std::string_view content) {
  if (content.size() == SessionKeyring::kKeyBytes) return std::string(content);
  std::string_view text = content;
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  std::optional<std::string> key;
  if (text.size() == 2 * SessionKeyring::kKeyBytes) {
    key = HexDecode(text);
  } else {
    key = crypto::Base64Decode(text);
  }
  if (!key || key->size() != SessionKeyring::kKeyBytes) {
    if (key) Wipe(*key);
    return Status(ErrorCode::kInvalidRequest,
                  "expected exactly 32 raw bytes, 64 hex digits or base64 of "
                  "32 bytes (e.g. `openssl rand -hex 32`)");
  }
  return std::move(*key);
}

Result<std::string> ReadMasterKeyFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status(ErrorCode::kInvalidRequest,
                  path + ": cannot read: " + std::strerror(errno));
  }
  std::string content;
  char buffer[256];  // key files are tiny
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0 &&
         content.size() <= kMaxKeyFileBytes) {
    content.append(buffer, n);
  }
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  volatile char* scrub = buffer;
  for (size_t i = 0; i < sizeof(buffer); ++i) scrub[i] = 0;
  if (read_errno != 0) {
    Wipe(content);
    return Status(ErrorCode::kInvalidRequest,
                  path + ": cannot read: " + std::strerror(read_errno));
  }
  if (content.size() > kMaxKeyFileBytes) {
    Wipe(content);
    return Status(ErrorCode::kInvalidRequest,
                  path + ": too large for a key file");
  }
  Result<std::string> key = ParseMasterKey(content);
  Wipe(content);
  if (!key.ok()) {
    return Status(ErrorCode::kInvalidRequest,
                  path + ": " + key.status().operator_text());
  }
  return key;
}

SealedStore::SealedStore(std::unique_ptr<SessionStore> inner,
                         const SessionKeyring& keyring)
    : inner_(std::move(inner)), keyring_(keyring) {}

SealedStore::~SealedStore() = default;

Status SealedStore::CreateSession(const NewSession& session) {
  NewSession sealed = session;
  sealed.session_key =
      keyring_.Seal(session.appid, session.openid, session.session_key);
  return inner_->CreateSession(sealed);
}

Result<LiveSession> SealedStore::FindLive(const std::string& id_hash,
                                          int64_t now) {
  Result<LiveSession> live = inner_->FindLive(id_hash, now);
  if (!live.ok()) return live;
  Result<std::string> key =
      keyring_.Open(live->appid, live->openid, live->session_key);
  if (!key.ok()) return key.status();
  live->session_key = std::move(key).value();
  return live;
}

Status SealedStore::Touch(const std::string& id_hash, int64_t last_seen_at,
                          int64_t expires_at) {
  return inner_->Touch(id_hash, last_seen_at, expires_at);
}

Result<int64_t> SealedStore::Revoke(const std::string& id_hash) {
  return inner_->Revoke(id_hash);
}

Result<int64_t> SealedStore::RevokeUser(const std::string& appid,
                                        const std::string& openid) {
  return inner_->RevokeUser(appid, openid);
}

Result<int64_t> SealedStore::RevokeAll() { return inner_->RevokeAll(); }

Result<int64_t> SealedStore::SweepExpired(int64_t now, int64_t max_rows) {
  return inner_->SweepExpired(now, max_rows);
}

Result<StoreStats> SealedStore::Stats(int64_t now) {
  return inner_->Stats(now);
}

Result<AccessToken> SealedStore::GetAccessToken(const std::string& appid) {
  Result<AccessToken> token = inner_->GetAccessToken(appid);
  if (!token.ok()) return token;
  Result<std::string> opened = keyring_.OpenAccessToken(appid, token->token);
  if (!opened.ok()) {
    // A token is cheap to fetch again and lives two hours at most: one
    // sealed under a retired key is simply not cached any more.
    return Status(ErrorCode::kNotFound,
                  "no usable access token cached for " + appid);
  }
  token->token = std::move(opened).value();
  return token;
}

Status SealedStore::PutAccessToken(const AccessToken& token) {
  AccessToken sealed = token;
  sealed.token = keyring_.SealAccessToken(token.appid, token.token);
  return inner_->PutAccessToken(sealed);
}

Result<std::vector<StoredSigningKey>> SealedStore::ListSigningKeys(
    int64_t now) {
  Result<std::vector<StoredSigningKey>> keys = inner_->ListSigningKeys(now);
  if (!keys.ok()) return keys;
  for (StoredSigningKey& key : keys.value()) {
    Result<std::string> opened =
        keyring_.OpenSigningKey(key.kid, key.private_key);
    if (!opened.ok()) {
      return Status(opened.status().code(), "signing key " + key.kid + ": " +
                                                opened.status().message());
    }
    key.private_key = std::move(opened).value();
  }
  return keys;
}

Result<bool> SealedStore::ReplaceSigningKey(const std::string& expected_kid,
                                            const StoredSigningKey& key,
                                            int64_t previous_verify_until) {
  StoredSigningKey sealed = key;
  sealed.private_key = keyring_.SealSigningKey(key.kid, key.private_key);
  return inner_->ReplaceSigningKey(expected_kid, sealed, previous_verify_until);
}

Result<bool> SealedStore::TryLockTokenRefresh(const std::string& appid,
                                              const std::string& owner,
                                              int64_t now_ms,
                                              int64_t lease_ms) {
  return inner_->TryLockTokenRefresh(appid, owner, now_ms, lease_ms);
}

Status SealedStore::UnlockTokenRefresh(const std::string& appid,
                                       const std::string& owner) {
  return inner_->UnlockTokenRefresh(appid, owner);
}

Status SealedStore::Ping() { return inner_->Ping(); }

Result<UserRecord> SealedStore::GetUser(const std::string& appid,
                                        const std::string& openid,
                                        int64_t now) {
  return inner_->GetUser(appid, openid, now);
}

Result<std::vector<SessionSummary>> SealedStore::ListSessions(
    const std::string& appid, const std::string& openid, int64_t now) {
  return inner_->ListSessions(appid, openid, now);
}

Result<int64_t> SealedStore::PutBan(const Ban& ban) {
  return inner_->PutBan(ban);
}

Status SealedStore::RemoveBan(const std::string& appid,
                              const std::string& openid, int64_t now) {
  return inner_->RemoveBan(appid, openid, now);
}

Result<std::vector<Ban>> SealedStore::ListBans(const std::string& appid,
                                               int64_t now) {
  return inner_->ListBans(appid, now);
}

Result<int64_t> SealedStore::SweepUsers(int64_t now, int64_t last_login_before,
                                        int64_t max_rows) {
  return inner_->SweepUsers(now, last_login_before, max_rows);
}

}  // namespace wxsession
