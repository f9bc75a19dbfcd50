// Cryptographic helpers wxsessiond needs, over OpenSSL 3.
//
// Everything here is a pure function of its inputs except the random
// functions, which draw from OpenSSL's CSPRNG (RAND_bytes). No function logs
// or keeps its inputs.
//
// Thread-safety: every function may be called from any thread.
#ifndef WXSESSION_CRYPTO_H_
#define WXSESSION_CRYPTO_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "wxsession/status.h"

namespace wxsession::crypto {

// `n` bytes from the CSPRNG. Aborts the process if the CSPRNG fails, since no
// caller can continue safely without randomness.
std::string RandomBytes(size_t n);

// A new session id: 32 random bytes, base64url without padding (43 chars).
std::string NewSessionId();

// True when `id` has the shape NewSessionId produces (43 base64url chars).
// Lets callers reject garbage without touching the store.
bool LooksLikeSessionId(std::string_view id);

// Raw 32-byte SHA-256 digest.
std::string Sha256(std::string_view data);
// Lowercase hex SHA-1 digest (40 chars).
std::string Sha1Hex(std::string_view data);
// Lowercase hex HMAC-SHA256 (64 chars).
std::string HmacSha256Hex(std::string_view key, std::string_view message);

std::string HexEncode(std::string_view bytes);
// Decodes lowercase hex (what HexEncode makes); nullopt on an odd length or
// any other character.
std::optional<std::string> LowerHexDecode(std::string_view text);

// Standard base64 with padding.
std::string Base64Encode(std::string_view bytes);
// Decodes standard base64. Whitespace (space, tab, CR, LF) anywhere is
// skipped, as WeChat's sample code wraps lines. Padding is optional but, when
// present, must be correct. Any other character, a length that is not a
// whole number of bytes, or non-zero trailing bits -> nullopt.
std::optional<std::string> Base64Decode(std::string_view text);
// base64url (RFC 4648 section 5) without padding.
std::string Base64UrlEncode(std::string_view bytes);

// AES-128-CBC with PKCS#7 padding. `key` and `iv` must be 16 bytes.
// Decrypt returns nullopt for a wrong key/iv length, a ciphertext that is
// empty or not a multiple of 16 bytes, or bad padding.
std::optional<std::string> Aes128CbcDecrypt(std::string_view key,
                                            std::string_view iv,
                                            std::string_view ciphertext);
std::optional<std::string> Aes128CbcEncrypt(std::string_view key,
                                            std::string_view iv,
                                            std::string_view plaintext);

// AES-256-GCM, for sealing secrets at rest. `key` must be 32 bytes and
// `nonce` 12 bytes; a nonce must never be used twice with one key (callers
// draw it from RandomBytes). `associated_data` is authenticated, not
// encrypted: it binds the ciphertext to where it is stored.
// Seal returns ciphertext followed by the 16-byte tag, or nullopt for a
// wrong key or nonce length. Open returns the plaintext, or nullopt for a
// wrong key or nonce length, input shorter than the tag, or any change to
// the ciphertext, tag, associated data or key (authentication failure).
std::optional<std::string> Aes256GcmSeal(std::string_view key,
                                         std::string_view nonce,
                                         std::string_view plaintext,
                                         std::string_view associated_data);
std::optional<std::string> Aes256GcmOpen(std::string_view key,
                                         std::string_view nonce,
                                         std::string_view sealed,
                                         std::string_view associated_data);

// Whether `text` holds an RSA private key (PEM "BEGIN RSA PRIVATE KEY",
// PKCS#1, or "BEGIN PRIVATE KEY", PKCS#8) or the bare base64 of its DER, the
// forms the Alipay console hands out; the configuration checks key files with
// it before anything signs. kInvalidRequest ("private key: ...") otherwise,
// never quoting the text.
Status CheckRsaPrivateKey(const std::string& text);
// The same for an RSA public key (PEM "BEGIN PUBLIC KEY", SPKI, or "BEGIN
// RSA PUBLIC KEY", PKCS#1, or bare base64 DER); "public key: ..." otherwise.
Status CheckRsaPublicKey(const std::string& text);

// Compares in time that depends only on the lengths, not on the contents.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace wxsession::crypto

#endif  // WXSESSION_CRYPTO_H_
