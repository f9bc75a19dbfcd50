// Fuzzes what decrypting WeChat open data runs on client input: the real
// DecryptOpenData and OpenDataSignatureMatches (open_data.h), and below them
// base64, AES-128-CBC with PKCS#7 padding and JSON parsing of the plaintext.
// Input: "<key b64>\n<iv b64>\n<data b64>"; anything else is also decrypted
// raw under a fixed key, so the padding check sees arbitrary ciphertext.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "wxsession/crypto.h"
#include "wxsession/open_data.h"

namespace {

using nlohmann::json;
namespace crypto = wxsession::crypto;

void ParsePlaintext(const std::string& plain) {
  json parsed = json::parse(plain, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return;
  auto watermark = parsed.find("watermark");
  if (watermark == parsed.end() || !watermark->is_object()) return;
  auto appid = watermark->find("appid");
  auto timestamp = watermark->find("timestamp");
  if (appid != watermark->end() && appid->is_string()) {
    (void)appid->get<std::string>();
  }
  if (timestamp != watermark->end() && timestamp->is_number_integer()) {
    (void)timestamp->get<int64_t>();
  }
  // Rendering the decrypted object back to the client must not throw on
  // invalid UTF-8 (the parse above rejects it, but dump with replace is what
  // the HTTP layer uses).
  (void)parsed.dump(-1, ' ', false, json::error_handler_t::replace);
}

void CheckBase64RoundTrip(std::string_view text) {
  std::optional<std::string> bytes = crypto::Base64Decode(text);
  if (!bytes) return;
  std::optional<std::string> again =
      crypto::Base64Decode(crypto::Base64Encode(*bytes));
  if (!again || *again != *bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  static const std::string kKey = "0123456789abcdef";  // 16 bytes
  static const std::string kIv = "fedcba9876543210";   // 16 bytes

  if (auto plain = crypto::Aes128CbcDecrypt(kKey, kIv, input)) {
    ParsePlaintext(*plain);
    // Decrypt(Encrypt(p)) == p for whatever plaintext came out.
    auto cipher = crypto::Aes128CbcEncrypt(kKey, kIv, *plain);
    if (!cipher || crypto::Aes128CbcDecrypt(kKey, kIv, *cipher) != plain) {
      std::abort();
    }
  }

  size_t first = input.find('\n');
  size_t second =
      first == std::string::npos ? first : input.find('\n', first + 1);
  if (second == std::string::npos) {
    CheckBase64RoundTrip(input);
    return 0;
  }
  std::string_view view(input);
  std::string_view key_text = view.substr(0, first);
  std::string_view iv_text = view.substr(first + 1, second - first - 1);
  std::string_view data_text = view.substr(second + 1);
  CheckBase64RoundTrip(data_text);
  // What POST /v1/decrypt runs, with the key as the store holds it.
  wxsession::Result<std::string> decrypted = wxsession::DecryptOpenData(
      key_text, data_text, iv_text, "wxfuzz", /*now=*/1'700'000'000,
      /*max_age_seconds=*/600);
  if (decrypted.ok()) {
    nlohmann::json parsed = nlohmann::json::parse(decrypted.value(), nullptr,
                                                  /*allow_exceptions=*/false);
    if (!parsed.is_object()) std::abort();  // promised by DecryptOpenData
  }
  // What POST /v1/verify runs.
  wxsession::OpenDataSignatureMatches(data_text, iv_text, key_text);
  auto key = crypto::Base64Decode(key_text);
  auto iv = crypto::Base64Decode(iv_text);
  auto cipher = crypto::Base64Decode(data_text);
  if (!key || !iv || !cipher) return 0;
  if (auto plain = crypto::Aes128CbcDecrypt(*key, *iv, *cipher)) {
    ParsePlaintext(*plain);
  }
  return 0;
}
