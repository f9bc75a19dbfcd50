// JSON Web Tokens as wxsessiond issues them: compact JWS (RFC 7515) over a
// JSON claims set (RFC 7519), signed with ES256 (ECDSA P-256 with SHA-256,
// RFC 7518 section 3.4) or EdDSA (Ed25519, RFC 8037).
//
// An ES256 signature is the JWS form, r || s (32 bytes each, 64 in all),
// never the DER encoding OpenSSL produces and expects: Sign converts DER to
// r || s, and Verify converts back, refusing any other length.
//
// A key's id (kid) is its RFC 7638 JWK thumbprint: the same key gives the
// same kid on every instance, and the kid names the key without revealing
// anything of it.
//
// Thread-safety: a KeyPair is immutable after creation and may be used from
// any thread (OpenSSL EVP_PKEYs are safe to share for signing/verifying);
// the free functions are pure.
#ifndef WXSESSION_JWT_H_
#define WXSESSION_JWT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wxsession/status.h"

namespace wxsession::jwt {

enum class Algorithm { kES256, kEdDSA };

// "ES256" or "EdDSA", as in the JWS header's alg.
const char* AlgorithmName(Algorithm algorithm);
// The algorithm named `name` exactly; nullopt for anything else ("none",
// "HS256", "es256"...).
std::optional<Algorithm> AlgorithmFromName(std::string_view name);

// A private signing key with its public half.
class KeyPair {
 public:
  // A new random key.
  static KeyPair Generate(Algorithm algorithm);
  // A PEM private key (PKCS#8 "PRIVATE KEY", or SEC1 "EC PRIVATE KEY"):
  // P-256 gives ES256, Ed25519 gives EdDSA. Errors: kInvalidRequest saying
  // what is wrong (not PEM, another curve or key type); the message never
  // quotes the content.
  static Result<KeyPair> FromPem(std::string_view pem);

  // The private key as PKCS#8 PEM, to keep it in the store.
  std::string PrivatePem() const;
  Algorithm algorithm() const;
  const std::string& kid() const;
  // The public key as a JWK (RFC 7517) JSON object: kty, crv, x (and y),
  // kid, alg, use "sig". Never a private part.
  std::string PublicJwkJson() const;

  // The JWS signature of `signing_input` (r || s for ES256).
  std::string Sign(std::string_view signing_input) const;
  // True when `signature` is this key's valid JWS signature of the input.
  bool Verify(std::string_view signing_input, std::string_view signature) const;

  struct Impl;  // defined in jwt.cc only

 private:
  explicit KeyPair(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// base64url without padding, and its strict inverse: only the base64url
// alphabet, no padding, no whitespace, canonical trailing bits.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// A compact JWS: base64url(header) "." base64url(claims) "." signature, with
// header {"alg","kid","typ":"JWT"}. `claims_json` must be a JSON object.
std::string Encode(const KeyPair& key, const std::string& claims_json);

// Checks a compact JWS and returns its claims, a JSON object text. The token
// must have three base64url parts, a header naming typ "JWT" (when present)
// and an alg equal to the algorithm of the key `find_key` returns for its
// kid, and a signature that key verifies. `find_key` answers nullptr for an
// unknown kid. Errors: kInvalidSession with a message that names the
// failure class only (malformed, unknown key, bad signature); claims are
// not checked here (the caller checks iss, aud, exp, nbf).
Result<std::string> DecodeVerified(
    std::string_view token,
    const std::function<const KeyPair*(const std::string& kid)>& find_key);

}  // namespace wxsession::jwt

#endif  // WXSESSION_JWT_H_
