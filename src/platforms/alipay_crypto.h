// What Alipay's open API needs beyond a plain HTTP call: RSA keys in the
// forms the Alipay console hands out, SHA256withRSA ("RSA2") signatures,
// the text a request signature covers, and the exact bytes of one value in
// a JSON body (a response signature covers those bytes, not a re-serialised
// copy, so the body must not be parsed and dumped again).
//
// Thread-safety: RsaKey is immutable after loading and may be used from any
// thread at once; the functions are pure (KeyPair draws from the CSPRNG).
#ifndef WXSESSION_PLATFORMS_ALIPAY_CRYPTO_H_
#define WXSESSION_PLATFORMS_ALIPAY_CRYPTO_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wxsession/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace wxsession::alipay {

// An RSA key, private or public.
class RsaKey {
 public:
  // A private key from PEM ("BEGIN RSA PRIVATE KEY", PKCS#1, or "BEGIN
  // PRIVATE KEY", PKCS#8) or the bare base64 of its DER, as the Alipay
  // console shows it (whitespace and line breaks ignored). kInvalidRequest
  // with a message that never quotes the text.
  static Result<RsaKey> PrivateFromText(const std::string& text);
  // A public key from PEM ("BEGIN PUBLIC KEY", SPKI, or "BEGIN RSA PUBLIC
  // KEY", PKCS#1) or the bare base64 of its DER.
  static Result<RsaKey> PublicFromText(const std::string& text);

  // base64(SHA256withRSA(message)) with PKCS#1 v1.5 padding. Requires a
  // private key; "" when signing fails (never for a loaded private key).
  std::string SignBase64(std::string_view message) const;
  // Whether `signature_base64` is a valid SHA256withRSA signature of
  // `message` under this key (private keys verify with their public half).
  bool VerifyBase64(std::string_view message,
                    std::string_view signature_base64) const;
  // The public half as PEM ("BEGIN PUBLIC KEY").
  std::string PublicPem() const;
  // The key as PKCS#8 PEM ("BEGIN PRIVATE KEY"); "" for a public key.
  std::string PrivatePem() const;

  bool valid() const { return key_ != nullptr; }

 private:
  std::shared_ptr<EVP_PKEY> key_;
  friend Result<RsaKey> GenerateRsaKey(int bits);
};

// A fresh RSA key pair (for the mock and `wxsessiond dev`).
Result<RsaKey> GenerateRsaKey(int bits = 2048);

// What an Alipay request signature covers: every parameter except "sign"
// and those with an empty value, sorted by name, as name=value joined with
// '&', values not URL-encoded.
std::string SignContent(const std::map<std::string, std::string>& params);

// Alipay's timestamp format, "yyyy-MM-dd HH:mm:ss", in UTC+8 (Beijing
// time), for the unix time `unix_seconds`.
std::string BeijingTimestamp(int64_t unix_seconds);

// The exact text of the value of `key` in the top-level JSON object `body`
// (from its first byte to its last, surrounding whitespace excluded).
// nullopt when `body` is not a well-formed object at the top level, `key` is
// absent, or `key` occurs twice (ambiguous: which one was signed?).
std::optional<std::string_view> RawMemberValue(std::string_view body,
                                               std::string_view key);

}  // namespace wxsession::alipay

#endif  // WXSESSION_PLATFORMS_ALIPAY_CRYPTO_H_
