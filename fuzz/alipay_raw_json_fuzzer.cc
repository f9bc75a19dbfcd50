// Fuzzes the raw JSON value extractor that Alipay's response signature is
// checked over (src/platforms/alipay_crypto.cc, RawMemberValue): whatever
// the body, it must not crash, and when the body is JSON it agrees with a
// real parser. Input: "<key>\n<body>".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "platforms/alipay_crypto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string key = input.substr(0, newline);
  const std::string body =
      newline == std::string::npos ? "" : input.substr(newline + 1);
  const std::optional<std::string_view> raw =
      wxsession::alipay::RawMemberValue(body, key);
  if (!raw) return 0;
  // The span lies inside the body.
  if (raw->data() < body.data() ||
      raw->data() + raw->size() > body.data() + body.size()) {
    std::abort();
  }
  // Where a real parser accepts the body, the span is the member's value.
  const nlohmann::json whole =
      nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (whole.is_discarded() || !whole.is_object()) return 0;
  const nlohmann::json value =
      nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !whole.contains(key) || whole.at(key) != value) {
    std::abort();
  }
  return 0;
}
