#include "wxsession/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace wxsession::crypto {
namespace {

constexpr size_t kSessionIdBytes = 32;  // 256 bits: unguessable, no collisions
constexpr size_t kSessionIdChars = 43;  // ceil(32 * 8 / 6) base64url chars
constexpr size_t kAes128KeyBytes = 16;  // AES-128
constexpr size_t kAesBlockBytes = 16;   // AES block size, also the CBC iv size
constexpr size_t kAes256KeyBytes = 32;  // AES-256
constexpr size_t kGcmNonceBytes = 12;   // the GCM nonce size NIST recommends
constexpr size_t kGcmTagBytes = 16;     // full-length tag: no truncation

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64UrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// OpenSSL wants non-null pointers even for zero-length input on some paths;
// an empty std::string_view may carry nullptr.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (EVP_Digest(Bytes(data), data.size(), out, &out_len, md, nullptr) != 1) {
    // Only fails on allocation failure or a broken provider: nothing sane to
    // return, and a wrong digest would be a security bug.
    std::fputs("wxsessiond: EVP_Digest failed\n", stderr);
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(out), out_len);
}

std::string Base64EncodeWith(std::string_view bytes, const char* alphabet,
                             bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t triple = (static_cast<unsigned char>(bytes[i]) << 16) |
                      (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                      static_cast<unsigned char>(bytes[i + 2]);
    out += alphabet[(triple >> 18) & 0x3f];
    out += alphabet[(triple >> 12) & 0x3f];
    out += alphabet[(triple >> 6) & 0x3f];
    out += alphabet[triple & 0x3f];
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 0x3f];
    out += alphabet[(v >> 12) & 0x3f];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 0x3f];
    out += alphabet[(v >> 12) & 0x3f];
    out += alphabet[(v >> 6) & 0x3f];
    if (pad) out += '=';
  }
  return out;
}

// Value of a standard base64 character, or -1.
int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool IsBase64Whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// Runs AES-128-CBC with PKCS#7 padding in either direction. Lengths are
// checked by the callers. Any failure (in practice: bad padding on decrypt)
// gives nullopt and leaves OpenSSL's per-thread error queue empty, so a later
// unrelated OpenSSL call (e.g. TLS in the HTTP client) does not report our
// stale error.
std::optional<std::string> Aes128Cbc(bool encrypt, std::string_view key,
                                     std::string_view iv,
                                     std::string_view input) {
  if (input.size() > static_cast<size_t>(INT_MAX) - kAesBlockBytes) {
    return std::nullopt;  // EVP lengths are int
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  std::string out(input.size() + kAesBlockBytes, '\0');
  auto* out_bytes = reinterpret_cast<unsigned char*>(&out[0]);
  int len = 0;
  int final_len = 0;
  bool ok = EVP_CipherInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, Bytes(key),
                              Bytes(iv), encrypt ? 1 : 0) == 1 &&
            EVP_CipherUpdate(ctx.get(), out_bytes, &len, Bytes(input),
                             static_cast<int>(input.size())) == 1 &&
            EVP_CipherFinal_ex(ctx.get(), out_bytes + len, &final_len) == 1;
  if (!ok) {
    ERR_clear_error();
    // Do not leave partial plaintext lying around in freed memory.
    OPENSSL_cleanse(&out[0], out.size());
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(len) + static_cast<size_t>(final_len));
  return out;
}

// AES-256-GCM in either direction. Lengths are checked by the callers. On
// decrypt `input` is ciphertext || tag. Leaves OpenSSL's error queue empty,
// like Aes128Cbc.
std::optional<std::string> Aes256Gcm(bool encrypt, std::string_view key,
                                     std::string_view nonce,
                                     std::string_view input,
                                     std::string_view associated_data) {
  std::string_view body = input;
  std::string_view tag;
  if (!encrypt) {
    body = input.substr(0, input.size() - kGcmTagBytes);
    tag = input.substr(input.size() - kGcmTagBytes);
  }
  if (body.size() > static_cast<size_t>(INT_MAX) - kGcmTagBytes ||
      associated_data.size() > static_cast<size_t>(INT_MAX)) {
    return std::nullopt;  // EVP lengths are int
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  std::string out(body.size() + (encrypt ? kGcmTagBytes : 0), '\0');
  // A non-null output pointer even for an empty body (see Bytes()).
  unsigned char scratch = 0;
  auto* out_bytes =
      out.empty() ? &scratch : reinterpret_cast<unsigned char*>(&out[0]);
  int len = 0;
  int final_len = 0;
  int aad_len = 0;
  bool ok =
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr,
                        encrypt ? 1 : 0) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN,
                          static_cast<int>(nonce.size()), nullptr) == 1 &&
      EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, Bytes(key), Bytes(nonce),
                        encrypt ? 1 : 0) == 1 &&
      (associated_data.empty() ||
       EVP_CipherUpdate(ctx.get(), nullptr, &aad_len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) == 1) &&
      (body.empty() || EVP_CipherUpdate(ctx.get(), out_bytes, &len, Bytes(body),
                                        static_cast<int>(body.size())) == 1);
  if (ok && !encrypt) {
    // The expected tag must be set before the final call checks it.
    std::string expected(tag);
    ok = EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG,
                             static_cast<int>(kGcmTagBytes), &expected[0]) == 1;
  }
  ok = ok && EVP_CipherFinal_ex(ctx.get(), out_bytes + len, &final_len) == 1;
  if (ok && encrypt) {
    ok = EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG,
                             static_cast<int>(kGcmTagBytes),
                             out_bytes + body.size()) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    // Never hand out plaintext that failed authentication.
    if (!out.empty()) OPENSSL_cleanse(&out[0], out.size());
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    // RAND_bytes takes an int length; draw large requests in chunks.
    size_t chunk = std::min(n - done, static_cast<size_t>(INT_MAX));
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&out[done]),
                   static_cast<int>(chunk)) != 1) {
      std::fputs("wxsessiond: RAND_bytes failed; cannot continue safely\n",
                 stderr);
      std::abort();
    }
    done += chunk;
  }
  return out;
}

std::string NewSessionId() {
  return Base64UrlEncode(RandomBytes(kSessionIdBytes));
}

bool LooksLikeSessionId(std::string_view id) {
  if (id.size() != kSessionIdChars) return false;
  for (char c : id) {
    if (!IsBase64UrlChar(c)) return false;
  }
  return true;
}

namespace {

// OpenSSL 3 re-fetches the implementation behind EVP_sha256() and friends
// on every use, through the provider store's locks; every lookup hashes a
// session id, so fetch once and keep the explicit handles for the process.
const EVP_MD* FetchedSha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}
const EVP_MD* FetchedSha1() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  return md != nullptr ? md : EVP_sha1();
}

}  // namespace

std::string Sha256(std::string_view data) {
  return Digest(FetchedSha256(), data);
}

std::string Sha1Hex(std::string_view data) {
  return HexEncode(Digest(FetchedSha1(), data));
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (key.size() > static_cast<size_t>(INT_MAX) ||
      HMAC(EVP_sha256(), Bytes(key), static_cast<int>(key.size()),
           Bytes(message), message.size(), out, &out_len) == nullptr) {
    // Same reasoning as Digest: a wrong MAC must never be returned.
    std::fputs("wxsessiond: HMAC failed\n", stderr);
    std::abort();
  }
  return HexEncode(std::string_view(reinterpret_cast<char*>(out), out_len));
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

std::optional<std::string> LowerHexDecode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    const int high = value(text[i]);
    const int low = value(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  return Base64EncodeWith(bytes, kBase64Alphabet, /*pad=*/true);
}

std::string Base64UrlEncode(std::string_view bytes) {
  return Base64EncodeWith(bytes, kBase64UrlAlphabet, /*pad=*/false);
}

// Strict on purpose: a lenient decoder lets two different texts decode to the
// same bytes (non-zero trailing bits, stray characters), which hides client
// bugs and makes signatures over the text ambiguous.
std::optional<std::string> Base64Decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t accumulator = 0;
  size_t data_chars = 0;
  size_t padding_chars = 0;
  for (char c : text) {
    if (IsBase64Whitespace(c)) continue;
    if (c == '=') {
      ++padding_chars;
      continue;
    }
    // Data after padding: two texts glued together, or garbage.
    if (padding_chars > 0) return std::nullopt;
    int value = Base64Value(c);
    if (value < 0) return std::nullopt;
    accumulator = (accumulator << 6) | static_cast<uint32_t>(value);
    ++data_chars;
    if (data_chars % 4 == 0) {
      out += static_cast<char>((accumulator >> 16) & 0xff);
      out += static_cast<char>((accumulator >> 8) & 0xff);
      out += static_cast<char>(accumulator & 0xff);
      accumulator = 0;
    }
  }
  switch (data_chars % 4) {
    case 0:
      if (padding_chars != 0) return std::nullopt;
      break;
    case 1:
      // 6 bits cannot hold a whole byte.
      return std::nullopt;
    case 2:
      // 12 bits: one byte plus 4 bits that must be zero.
      if (padding_chars != 0 && padding_chars != 2) return std::nullopt;
      if ((accumulator & 0x0f) != 0) return std::nullopt;
      out += static_cast<char>((accumulator >> 4) & 0xff);
      break;
    case 3:
      // 18 bits: two bytes plus 2 bits that must be zero.
      if (padding_chars != 0 && padding_chars != 1) return std::nullopt;
      if ((accumulator & 0x03) != 0) return std::nullopt;
      out += static_cast<char>((accumulator >> 10) & 0xff);
      out += static_cast<char>((accumulator >> 2) & 0xff);
      break;
  }
  return out;
}

std::optional<std::string> Aes128CbcDecrypt(std::string_view key,
                                            std::string_view iv,
                                            std::string_view ciphertext) {
  if (key.size() != kAes128KeyBytes || iv.size() != kAesBlockBytes ||
      ciphertext.empty() || ciphertext.size() % kAesBlockBytes != 0) {
    return std::nullopt;
  }
  return Aes128Cbc(/*encrypt=*/false, key, iv, ciphertext);
}

std::optional<std::string> Aes128CbcEncrypt(std::string_view key,
                                            std::string_view iv,
                                            std::string_view plaintext) {
  if (key.size() != kAes128KeyBytes || iv.size() != kAesBlockBytes) {
    return std::nullopt;
  }
  return Aes128Cbc(/*encrypt=*/true, key, iv, plaintext);
}

std::optional<std::string> Aes256GcmSeal(std::string_view key,
                                         std::string_view nonce,
                                         std::string_view plaintext,
                                         std::string_view associated_data) {
  if (key.size() != kAes256KeyBytes || nonce.size() != kGcmNonceBytes) {
    return std::nullopt;
  }
  return Aes256Gcm(/*encrypt=*/true, key, nonce, plaintext, associated_data);
}

std::optional<std::string> Aes256GcmOpen(std::string_view key,
                                         std::string_view nonce,
                                         std::string_view sealed,
                                         std::string_view associated_data) {
  if (key.size() != kAes256KeyBytes || nonce.size() != kGcmNonceBytes ||
      sealed.size() < kGcmTagBytes) {
    return std::nullopt;
  }
  return Aes256Gcm(/*encrypt=*/false, key, nonce, sealed, associated_data);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Lengths are not secret here (session ids and signatures have fixed
  // lengths), so an early return on a length mismatch leaks nothing useful.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(Bytes(a), Bytes(b), a.size()) == 0;
}

namespace {

// Longest key text accepted: a 4096-bit PEM private key is about 3.3 KiB.
constexpr size_t kMaxRsaKeyTextBytes = 16 * 1024;

// Whether `data` (input type "PEM" or "DER") decodes to an RSA key of the
// kind `selection` asks for.
bool DecodesAsRsa(std::string_view data, const char* input_type,
                  int selection) {
  EVP_PKEY* key = nullptr;
  OSSL_DECODER_CTX* ctx = OSSL_DECODER_CTX_new_for_pkey(
      &key, input_type, nullptr, "RSA", selection, nullptr, nullptr);
  if (ctx == nullptr) return false;
  const unsigned char* bytes = Bytes(data);
  size_t length = data.size();
  const bool ok = OSSL_DECODER_from_data(ctx, &bytes, &length) == 1;
  OSSL_DECODER_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok && key != nullptr;
}

// PEM when the text has a PEM header, else the bare base64 of the DER.
Status CheckRsaKey(const std::string& text, int selection, const char* what,
                   const char* forms) {
  if (text.size() > kMaxRsaKeyTextBytes) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string(what) + ": longer than 16 KiB, not an RSA key");
  }
  bool ok = false;
  if (text.find("-----BEGIN") != std::string::npos) {
    ok = DecodesAsRsa(text, "PEM", selection);
  } else if (std::optional<std::string> der = Base64Decode(text)) {
    ok = !der->empty() && DecodesAsRsa(*der, "DER", selection);
  }
  if (ok) return Status::Ok();
  return Status(ErrorCode::kInvalidRequest, std::string(what) + ": " + forms);
}

}  // namespace

Status CheckRsaPrivateKey(const std::string& text) {
  return CheckRsaKey(text, OSSL_KEYMGMT_SELECT_PRIVATE_KEY, "private key",
                     "not an RSA private key in PEM (PKCS#1 or PKCS#8) or "
                     "the bare base64 the Alipay console shows");
}

Status CheckRsaPublicKey(const std::string& text) {
  return CheckRsaKey(text, OSSL_KEYMGMT_SELECT_PUBLIC_KEY, "public key",
                     "not an RSA public key in PEM (\"PUBLIC KEY\" or \"RSA "
                     "PUBLIC KEY\") or the bare base64 the Alipay console "
                     "shows");
}

}  // namespace wxsession::crypto
