// TokenService: see token_service.h.
#include "wxsession/token_service.h"
#include "wxsession/thread_annotations.h"

#include "ops/metrics.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "core/secret_file.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

constexpr size_t kJtiBytes = 16;     // 128 random bits
constexpr size_t kSidHexChars = 64;  // hex SHA-256
// Attempts at making the store's first key when other instances race us.
constexpr int kKeyCreationAttempts = 5;
// After a failed read of the store's keys, the keys already read serve this
// many seconds more before the next attempt, so an outage costs one store
// call per few seconds, not one per request.
constexpr int64_t kRetryAfterFailedReadSeconds = 5;

Status InvalidToken(const std::string& why) {
  return Status(ErrorCode::kInvalidSession,
                "the token is invalid or expired (" + why +
                    "); get a new one from POST /v1/token");
}

std::optional<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case is not how we write sids
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int high = nibble(hex[i]);
    int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high << 4 | low);
  }
  return out;
}

// A string claim, or "" when absent or not a string.
std::string StringClaim(const json& claims, const char* name) {
  auto it = claims.find(name);
  return it != claims.end() && it->is_string() ? it->get<std::string>() : "";
}

std::optional<int64_t> TimeClaim(const json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

}  // namespace

TokenService::TokenService(const Config& config, SessionStore& store,
                           SessionService& sessions, const Clock& clock,
                           Metrics* metrics)
    : config_(config),
      store_(store),
      sessions_(sessions),
      clock_(clock),
      metrics_(metrics) {}

TokenService::~TokenService() = default;

Result<std::unique_ptr<TokenService>> TokenService::Open(
    const Config& config, SessionStore& store, SessionService& sessions,
    const Clock& clock, Metrics* metrics) {
  const TokensConfig& tokens = config.tokens;
  if (!tokens.enabled()) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: tokens.issuer: not set, so tokens are off");
  }
  std::unique_ptr<TokenService> service(
      new TokenService(config, store, sessions, clock, metrics));
  if (!tokens.signing_key_file.empty()) {
    Result<std::string> pem =
        ReadSecretFile(tokens.signing_key_file, "tokens.signing_key_file");
    if (!pem.ok()) return pem.status();
    Result<jwt::KeyPair> pair = jwt::KeyPair::FromPem(pem.value());
    if (!pair.ok()) {
      return Status(
          ErrorCode::kInvalidRequest,
          "config: tokens.signing_key_file: " + tokens.signing_key_file + ": " +
              pair.status().message());
    }
    if (jwt::AlgorithmName(pair->algorithm()) != tokens.algorithm) {
      return Status(
          ErrorCode::kInvalidRequest,
          "config: tokens.signing_key_file: " + tokens.signing_key_file +
              " holds a key for " + jwt::AlgorithmName(pair->algorithm()) +
              " but tokens.algorithm is " + tokens.algorithm);
    }
    auto set = std::make_shared<KeySet>();
    set->keys.push_back(Key{std::move(pair).value(), 0, 0});
    service->keys_from_file_ = true;
    MutexLock lock(service->mutex_);  // not shared yet; for the analysis
    service->keys_ = std::move(set);
    return service;
  }
  if (Status made = service->EnsureStoreKey(); !made.ok()) return made;
  return service;
}

// The first start on a store makes its key; a start with another
// tokens.algorithm than the current key's makes a new one (the old one is
// retired as by a rotation). Two instances starting at once race through
// ReplaceSigningKey, which lets exactly one of them win; the other reads
// the winner's key.
Status TokenService::EnsureStoreKey() {
  for (int attempt = 0; attempt < kKeyCreationAttempts; ++attempt) {
    Result<std::shared_ptr<const KeySet>> read = ReadStoreKeys();
    if (!read.ok()) return read.status();
    const KeySet& set = *read.value();
    const bool has_current =
        !set.keys.empty() && set.keys.front().retired_at == 0;
    if (has_current && jwt::AlgorithmName(set.keys.front().pair.algorithm()) ==
                           config_.tokens.algorithm) {
      MutexLock lock(mutex_);
      keys_ = read.value();
      keys_read_at_ = clock_.Now();
      return Status::Ok();
    }
    Result<std::string> made = RotateSigningKey(config_, store_, clock_);
    if (!made.ok()) return made.status();
  }
  return Status::Fault(ErrorCode::kStoreUnavailable,
                       "tokens: the store's current signing key keeps changing "
                       "(instances with different tokens.algorithm?)");
}

Result<std::shared_ptr<const TokenService::KeySet>>
TokenService::ReadStoreKeys() {
  Result<std::vector<StoredSigningKey>> stored =
      store_.ListSigningKeys(clock_.Now());
  if (!stored.ok()) return stored.status();
  auto set = std::make_shared<KeySet>();
  for (const StoredSigningKey& key : stored.value()) {
    Result<jwt::KeyPair> pair = jwt::KeyPair::FromPem(key.private_key);
    if (!pair.ok() || pair->kid() != key.kid ||
        jwt::AlgorithmName(pair->algorithm()) != key.algorithm) {
      return Status::Fault(ErrorCode::kStoreUnavailable,
                           "tokens: signing key " + key.kid +
                               " in the store is unusable (corrupt row?)");
    }
    set->keys.push_back(
        Key{std::move(pair).value(), key.retired_at, key.verify_until});
  }
  return std::shared_ptr<const KeySet>(std::move(set));
}

std::shared_ptr<const TokenService::KeySet> TokenService::Keys(bool force) {
  const int64_t now = clock_.Now();
  {
    MutexLock lock(mutex_);
    const bool stale = now - keys_read_at_ >= kKeyRefreshSeconds;
    const bool forced = force && now > forced_read_at_;
    if (keys_from_file_ || (!stale && !forced)) return keys_;
    if (forced) forced_read_at_ = now;
    // Claim this refresh, so concurrent requests keep using the current
    // keys instead of all reading the store at once.
    keys_read_at_ =
        stale ? now - kKeyRefreshSeconds + kRetryAfterFailedReadSeconds
              : keys_read_at_;
  }
  Result<std::shared_ptr<const KeySet>> read = ReadStoreKeys();
  MutexLock lock(mutex_);
  // An empty list (the store was emptied) keeps the keys we have: signing
  // must not stop; the next start makes a new key.
  if (read.ok() && !read.value()->keys.empty() &&
      read.value()->keys.front().retired_at == 0) {
    keys_ = read.value();
    keys_read_at_ = now;
  }
  return keys_;
}

Status TokenService::Reload() {
  if (keys_from_file_) return Status::Ok();
  Result<std::shared_ptr<const KeySet>> read = ReadStoreKeys();
  if (!read.ok()) return read.status();
  if (read.value()->keys.empty() ||
      read.value()->keys.front().retired_at != 0) {
    return Status::Fault(ErrorCode::kStoreUnavailable,
                         "tokens: the store holds no current signing key");
  }
  MutexLock lock(mutex_);
  keys_ = read.value();
  keys_read_at_ = clock_.Now();
  return Status::Ok();
}

Result<IssuedToken> TokenService::Issue(const std::string& session_id) {
  Result<SessionInfo> session = sessions_.Lookup(session_id);
  if (!session.ok()) return session.status();
  std::shared_ptr<const KeySet> keys = Keys();
  const jwt::KeyPair& key = keys->keys.front().pair;
  const TokensConfig& tokens = config_.tokens;
  const int64_t now = clock_.Now();
  json claims = {
      {"iss", tokens.issuer},
      {"sub", session->openid},
      {"aud", tokens.audience.empty() ? session->appid : tokens.audience},
      {"appid", session->appid},
      {"sid", crypto::HexEncode(crypto::Sha256(session_id))},
      {"iat", now},
      {"nbf", now},
      {"exp", now + tokens.ttl},
      {"jti", crypto::Base64UrlEncode(crypto::RandomBytes(kJtiBytes))},
  };
  if (session->unionid) claims["unionid"] = *session->unionid;
  IssuedToken issued;
  issued.access_token = jwt::Encode(
      key, claims.dump(-1, ' ', false, json::error_handler_t::replace));
  issued.expires_in = tokens.ttl;
  issued.algorithm = jwt::AlgorithmName(key.algorithm());
  if (metrics_) metrics_->CountTokenIssued(issued.algorithm);
  return issued;
}

namespace {

// Whether the token's "aud" (a string, or an array of them) names
// `expected`.
bool AudienceNames(const json& claims, const std::string& expected) {
  auto aud = claims.find("aud");
  bool aud_ok = false;
  if (aud != claims.end() && aud->is_string()) {
    aud_ok = *aud == expected;
  } else if (aud != claims.end() && aud->is_array()) {
    for (const json& entry : *aud) aud_ok = aud_ok || entry == expected;
  }
  return aud_ok;
}

// The claims of a token whose signature checked out, when they make it
// valid at `now` for this server's issuer, apps and audience.
Result<TokenClaims> CheckClaims(const json& claims, const Config& config,
                                int64_t now) {
  TokenClaims out;
  out.iss = StringClaim(claims, "iss");
  out.sub = StringClaim(claims, "sub");
  out.appid = StringClaim(claims, "appid");
  out.sid = StringClaim(claims, "sid");
  out.jti = StringClaim(claims, "jti");
  if (claims.contains("unionid")) {
    out.unionid = StringClaim(claims, "unionid");
  }
  std::optional<int64_t> iat = TimeClaim(claims, "iat");
  std::optional<int64_t> nbf = TimeClaim(claims, "nbf");
  std::optional<int64_t> exp = TimeClaim(claims, "exp");
  if (!iat || !nbf || !exp || out.sub.empty() || out.appid.empty() ||
      out.sid.size() != kSidHexChars) {
    return InvalidToken("missing claims");
  }
  out.iat = *iat;
  out.nbf = *nbf;
  out.exp = *exp;
  if (out.iss != config.tokens.issuer) return InvalidToken("another issuer");
  const std::string expected_aud =
      config.tokens.audience.empty() ? out.appid : config.tokens.audience;
  if (config.FindApp(out.appid) == nullptr) {
    return InvalidToken("an app this server does not serve");
  }
  if (!AudienceNames(claims, expected_aud)) {
    return InvalidToken("another audience");
  }
  out.aud = expected_aud;
  const int64_t skew = TokenService::kClockSkewSeconds;
  if (out.exp <= now) return InvalidToken("expired");
  if (out.nbf > now + skew || out.iat > now + skew) {
    return InvalidToken("not yet valid");
  }
  return out;
}

}  // namespace

Result<TokenClaims> TokenService::Verify(const std::string& token) {
  const int64_t now = clock_.Now();
  std::shared_ptr<const KeySet> keys = Keys();
  auto find_in = [now](const KeySet& set, const std::string& kid) {
    const jwt::KeyPair* found = nullptr;
    for (const Key& key : set.keys) {
      // A retired key past verify_until can no longer have a live token.
      const bool usable = key.retired_at == 0 || now < key.verify_until;
      if (usable && key.pair.kid() == kid) found = &key.pair;
    }
    return found;
  };
  bool unknown_kid = false;
  Result<std::string> text = jwt::DecodeVerified(
      token, [&](const std::string& kid) -> const jwt::KeyPair* {
        const jwt::KeyPair* found = find_in(*keys, kid);
        unknown_kid = found == nullptr;
        return found;
      });
  if (!text.ok() && unknown_kid && !keys_from_file_) {
    // Perhaps a key another instance made since our last read.
    keys = Keys(/*force=*/true);
    text = jwt::DecodeVerified(
        token, [&](const std::string& kid) { return find_in(*keys, kid); });
  }
  if (!text.ok()) return text.status();
  return CheckClaims(json::parse(text.value(), nullptr, false), config_, now);
}

Result<SessionInfo> TokenService::Authenticate(const std::string& token) {
  Result<TokenClaims> claims = Verify(token);
  if (!claims.ok()) return claims.status();
  std::optional<std::string> id_hash = HexDecode(claims->sid);
  if (!id_hash) return InvalidToken("malformed sid");
  Result<LiveSession> live = store_.FindLive(*id_hash, clock_.Now());
  if (!live.ok()) return live.status();
  // The session the token was issued for, never another user's.
  if (live->appid != claims->appid || live->openid != claims->sub) {
    return InvalidToken("sid names another session");
  }
  return SessionInfoFrom(live.value(), config_);
}

Result<std::string> TokenService::Introspect(const std::string& token) {
  auto inactive = []() -> Result<std::string> {
    return std::string("{\"active\":false}");
  };
  auto failed = [](const Status& status) {
    return status.code() == ErrorCode::kStoreUnavailable ||
           status.code() == ErrorCode::kInternal;
  };
  json out = {{"active", true},
              {"iss", config_.tokens.issuer},
              {"token_type", "Bearer"}};
  if (crypto::LooksLikeSessionId(token)) {
    Result<SessionInfo> session = sessions_.Lookup(token);
    if (!session.ok()) {
      return failed(session.status()) ? Result<std::string>(session.status())
                                      : inactive();
    }
    out["sub"] = session->openid;
    out["appid"] = session->appid;
    out["aud"] = config_.tokens.audience.empty() ? session->appid
                                                 : config_.tokens.audience;
    if (session->unionid) out["unionid"] = *session->unionid;
    out["sid"] = crypto::HexEncode(crypto::Sha256(token));
    out["iat"] = session->created_at;
    out["exp"] = session->expires_at;
  } else {
    Result<TokenClaims> claims = Verify(token);
    if (!claims.ok()) {
      return failed(claims.status()) ? Result<std::string>(claims.status())
                                     : inactive();
    }
    Result<SessionInfo> session = Authenticate(token);
    if (!session.ok()) {
      return failed(session.status()) ? Result<std::string>(session.status())
                                      : inactive();
    }
    out["sub"] = claims->sub;
    out["appid"] = claims->appid;
    out["aud"] = claims->aud;
    if (claims->unionid) out["unionid"] = *claims->unionid;
    out["sid"] = claims->sid;
    out["iat"] = claims->iat;
    out["exp"] = claims->exp;
    out["jti"] = claims->jti;
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string TokenService::JwksJson() {
  const int64_t now = clock_.Now();
  std::shared_ptr<const KeySet> keys = Keys();
  json list = json::array();
  for (const Key& key : keys->keys) {
    if (key.retired_at != 0 && now >= key.verify_until) continue;
    list.push_back(json::parse(key.pair.PublicJwkJson()));
  }
  json out = json::object();
  out["keys"] = std::move(list);
  return out.dump();
}

std::string TokenService::DiscoveryJson() {
  const std::string& issuer = config_.tokens.issuer;
  std::set<std::string> algorithms = {config_.tokens.algorithm};
  for (const Key& key : Keys()->keys) {
    algorithms.insert(jwt::AlgorithmName(key.pair.algorithm()));
  }
  json out = {
      {"issuer", issuer},
      {"jwks_uri", issuer + "/.well-known/jwks.json"},
      {"token_endpoint", issuer + "/v1/token"},
      {"introspection_endpoint", issuer + "/v1/introspect"},
      {"id_token_signing_alg_values_supported",
       std::vector<std::string>(algorithms.begin(), algorithms.end())},
      {"token_endpoint_auth_methods_supported", {"none"}},
      {"introspection_endpoint_auth_methods_supported", {"bearer"}},
      {"subject_types_supported", {"public"}},
      {"response_types_supported", {"token"}},
      {"claims_supported",
       {"iss", "sub", "aud", "appid", "unionid", "sid", "iat", "nbf", "exp",
        "jti"}},
  };
  return out.dump();
}

Result<std::string> RotateSigningKey(const Config& config, SessionStore& store,
                                     const Clock& clock) {
  const TokensConfig& tokens = config.tokens;
  if (!tokens.enabled()) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: tokens.issuer: not set, so tokens are off and "
                  "there is no signing key to rotate");
  }
  if (!tokens.signing_key_file.empty()) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: tokens.signing_key_file is set: the key comes from "
                  "that file, not the store (replace the file instead)");
  }
  std::optional<jwt::Algorithm> algorithm =
      jwt::AlgorithmFromName(tokens.algorithm);
  if (!algorithm) {
    return Status(ErrorCode::kInvalidRequest,
                  "config: tokens.algorithm: expected ES256 or EdDSA");
  }
  const jwt::KeyPair pair = jwt::KeyPair::Generate(*algorithm);
  for (int attempt = 0; attempt < kKeyCreationAttempts; ++attempt) {
    const int64_t now = clock.Now();
    Result<std::vector<StoredSigningKey>> keys = store.ListSigningKeys(now);
    if (!keys.ok()) return keys.status();
    std::string current;
    if (!keys->empty() && keys->front().retired_at == 0) {
      current = keys->front().kid;
    }
    // A resent store write may already have made our key current.
    if (current == pair.kid()) return pair.kid();
    StoredSigningKey key;
    key.kid = pair.kid();
    key.algorithm = jwt::AlgorithmName(pair.algorithm());
    key.private_key = pair.PrivatePem();
    key.created_at = now;
    // An instance that has not re-read the keys yet signs with the old one
    // for up to kKeyRefreshSeconds, and each of those tokens lives ttl.
    const int64_t previous_verify_until =
        now + TokenService::kKeyRefreshSeconds + tokens.ttl;
    Result<bool> replaced =
        store.ReplaceSigningKey(current, key, previous_verify_until);
    if (!replaced.ok()) return replaced.status();
    if (replaced.value()) return pair.kid();
  }
  return Status::Fault(
      ErrorCode::kStoreUnavailable,
      "tokens: the current signing key kept changing during the "
      "rotation; run it again");
}

}  // namespace wxsession
