// Baidu's open data (swan.getUserInfo and friends): see
// DecryptBaiduOpenData in open_data.h and docs/PLATFORMS.md.
#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "wxsession/crypto.h"
#include "wxsession/open_data.h"

namespace wxsession {
namespace {

// AES-192: a 24-byte key; 16-byte iv and blocks.
constexpr size_t kBaiduKeyBytes = 24;
constexpr size_t kBlockBytes = 16;
// The plaintext opens with 16 random bytes, then a 4-byte length.
constexpr size_t kRandomPrefixBytes = 16;
constexpr size_t kLengthBytes = 4;
// Baidu's sample strips a pad byte of 1 to 32.
constexpr unsigned kMaxPadBytes = 32;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

Status DecryptFailed(const std::string& what) {
  return Status(ErrorCode::kDecryptFailed, what);
}

// AES-192-CBC without padding removal; nullopt if OpenSSL refuses.
std::optional<std::string> Aes192CbcDecryptRaw(const std::string& key,
                                               const std::string& iv,
                                               const std::string& ciphertext) {
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter> ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_192_cbc(), nullptr,
                         reinterpret_cast<const unsigned char*>(key.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) !=
          1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1) {
    return std::nullopt;
  }
  std::string out(ciphertext.size() + kBlockBytes, '\0');
  int written = 0;
  int final_bytes = 0;
  if (EVP_DecryptUpdate(
          ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &written,
          reinterpret_cast<const unsigned char*>(ciphertext.data()),
          static_cast<int>(ciphertext.size())) != 1 ||
      EVP_DecryptFinal_ex(
          ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + written,
          &final_bytes) != 1) {
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(written) + static_cast<size_t>(final_bytes));
  return out;
}

}  // namespace

Result<std::string> DecryptBaiduOpenData(std::string_view session_key,
                                         std::string_view encrypted_data,
                                         std::string_view iv,
                                         const std::string& app_key) {
  Result<OpenDataInputs> in = DecodeOpenDataInputs(
      session_key, encrypted_data, iv, kBaiduKeyBytes,
      "the stored session_key is not a 24-byte Baidu key; log in again");
  if (!in.ok()) return in.status();
  std::optional<std::string> plain =
      Aes192CbcDecryptRaw(in->key, in->iv, in->ciphertext);
  if (!plain || plain->empty()) {
    return DecryptFailed("encryptedData could not be decrypted");
  }
  const unsigned pad = static_cast<unsigned char>(plain->back());
  bool padded = pad >= 1 && pad <= kMaxPadBytes && pad <= plain->size();
  for (size_t i = 0; padded && i < pad; ++i) {
    padded = static_cast<unsigned char>((*plain)[plain->size() - 1 - i]) == pad;
  }
  if (!padded) {
    return DecryptFailed(
        "encryptedData does not decrypt with the user's current session_key "
        "(bad padding); call swan.login again before fetching the data");
  }
  plain->resize(plain->size() - pad);
  if (plain->size() < kRandomPrefixBytes + kLengthBytes) {
    return DecryptFailed("the decrypted data is too short for Baidu's layout");
  }
  const auto byte = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>((*plain)[i]));
  };
  const size_t at = kRandomPrefixBytes;
  const uint64_t length = (byte(at) << 24) | (byte(at + 1) << 16) |
                          (byte(at + 2) << 8) | byte(at + 3);
  const size_t json_at = at + kLengthBytes;
  if (length > plain->size() - json_at) {
    return DecryptFailed(
        "the decrypted data's length field runs past its end, so the key or "
        "iv is not the one Baidu used");
  }
  std::string text = plain->substr(json_at, static_cast<size_t>(length));
  const std::string trailer = plain->substr(json_at + length);
  const nlohmann::json object =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return DecryptFailed(
        "encryptedData decrypts, but not to a JSON object, so the key or iv "
        "is not the one Baidu used");
  }
  if (!crypto::ConstantTimeEquals(trailer, app_key)) {
    return Status(ErrorCode::kWatermarkMismatch,
                  "the decrypted data was encrypted for another app key, not "
                  "for this session's app " +
                      app_key);
  }
  return text;
}

}  // namespace wxsession
