// TokenService: short-lived signed JWTs for backends that verify requests
// themselves (tokens.*; docs/API.md, "Tokens"), free of any HTTP type.
//
// A live session buys a JWT (Issue): claims iss, sub (openid), aud, appid,
// unionid (when known), sid (hex SHA-256 of the session id: the handle the
// store keys the session by), iat, nbf, exp (iat + tokens.ttl) and a random
// 128-bit jti. Backends verify it locally against the JWKS; that cannot see
// a logout or ban before exp. Authenticate (for /v1/auth) and Introspect
// (RFC 7662) verify the JWT and then check its sid live in the store, so
// they see a logout or a ban (which ends every session of the user) at once.
//
// Keys: tokens.signing_key_file, or keys kept in the store and shared by
// every instance on it. The store holds one current key and the retired keys
// that may still verify a token they signed. Each instance re-reads them at
// most kKeyRefreshSeconds after its last read (so a rotation reaches every
// instance within that time), and at once, at most once a second, when a
// token names a kid it does not know (a key another instance just made).
//
// Thread-safety: every method may be called concurrently; the key set is
// swapped whole under a mutex.
#ifndef WXSESSION_TOKEN_SERVICE_H_
#define WXSESSION_TOKEN_SERVICE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/jwt.h"
#include "wxsession/service.h"
#include "wxsession/status.h"
#include "wxsession/store.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {

class Metrics;  // ops/metrics.h

struct IssuedToken {
  std::string access_token;  // the compact JWS
  int64_t expires_in = 0;    // seconds: tokens.ttl
  std::string algorithm;     // "ES256" or "EdDSA"
};

// The claims of a JWT that verified (signature, iss, aud, nbf, exp).
struct TokenClaims {
  std::string iss, sub, aud, appid, sid, jti;
  std::optional<std::string> unionid;
  int64_t iat = 0, nbf = 0, exp = 0;
};

class TokenService {
 public:
  // How long an instance uses the keys it read before reading them again.
  static constexpr int64_t kKeyRefreshSeconds = 60;
  // Instances' clocks may differ by this much: a token whose nbf/iat is up
  // to this far in the future is accepted (exp is never stretched).
  static constexpr int64_t kClockSkewSeconds = 60;

  // Loads the keys: the PEM of tokens.signing_key_file (its type must match
  // tokens.algorithm), or the store's current key, making one when the store
  // has none or the current one is of another algorithm than
  // tokens.algorithm. Everything passed in must outlive the service;
  // `metrics` may be null. Errors: kInvalidRequest naming the config key
  // (tokens off, unreadable or wrong key file), the store's errors.
  static Result<std::unique_ptr<TokenService>> Open(const Config& config,
                                                    SessionStore& store,
                                                    SessionService& sessions,
                                                    const Clock& clock,
                                                    Metrics* metrics);
  ~TokenService();

  // A JWT for the live session `session_id` (whose use this records, as
  // SessionService::Lookup does). Errors: as SessionService::Lookup.
  Result<IssuedToken> Issue(const std::string& session_id);

  // The claims of `token` when it is one of ours (known key, valid
  // signature, our iss, an accepted aud, nbf reached, exp not reached).
  // Errors: kInvalidSession; the store's errors while re-reading keys are
  // not errors here (the keys already read are used).
  Result<TokenClaims> Verify(const std::string& token);

  // Verify, then the session behind sid must be live (not logged out,
  // revoked, banned or expired); it is not touched. Errors: kInvalidSession,
  // kStoreUnavailable.
  Result<SessionInfo> Authenticate(const std::string& token);

  // RFC 7662's answer for `token` (a JWT, or a session id), as a JSON object
  // text: {"active":true,...} or {"active":false}. Errors only when the
  // store cannot answer (kStoreUnavailable, kInternal), never for a bad
  // token.
  Result<std::string> Introspect(const std::string& token);

  // {"keys":[...]}: the current key and every retired key that may still
  // verify a live token.
  std::string JwksJson();
  // The OpenID Provider metadata for GET /.well-known/openid-configuration.
  std::string DiscoveryJson();

  // Re-reads the store's keys now (tests; rotate-signing-key's callers).
  Status Reload();

 private:
  struct Key {
    jwt::KeyPair pair;
    int64_t retired_at = 0;    // 0: the current key
    int64_t verify_until = 0;  // retired keys only
  };
  struct KeySet {
    std::vector<Key> keys;  // the current (signing) key first
  };

  TokenService(const Config& config, SessionStore& store,
               SessionService& sessions, const Clock& clock, Metrics* metrics);
  // The key set, re-read from the store when it is older than
  // kKeyRefreshSeconds (or `force` and at least a second old).
  std::shared_ptr<const KeySet> Keys(bool force = false);
  Result<std::shared_ptr<const KeySet>> ReadStoreKeys();
  Status EnsureStoreKey();

  const Config& config_;      // constant after construction
  SessionStore& store_;       // thread-safe by contract
  SessionService& sessions_;  // thread-safe by contract
  const Clock& clock_;
  Metrics* const metrics_;       // thread-safe; may be null
  bool keys_from_file_ = false;  // constant after Open
  Mutex mutex_;
  std::shared_ptr<const KeySet> keys_ GUARDED_BY(mutex_);
  int64_t keys_read_at_ GUARDED_BY(mutex_) = 0;
  int64_t forced_read_at_ GUARDED_BY(mutex_) = 0;
};

// `wxsessiond rotate-signing-key`: makes a new current key of
// tokens.algorithm in the store. The former key stays (in the JWKS, and for
// verifying) until every token it may have signed has expired: an instance
// may sign with it for up to kKeyRefreshSeconds more, and each token lives
// tokens.ttl. Returns the new kid. Errors: kInvalidRequest when tokens are
// off or come from tokens.signing_key_file; the store's errors.
Result<std::string> RotateSigningKey(const Config& config, SessionStore& store,
                                     const Clock& clock);

}  // namespace wxsession

#endif  // WXSESSION_TOKEN_SERVICE_H_
