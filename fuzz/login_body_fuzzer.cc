// Fuzzes the request body parsing of the POST routes (request_parsing.h):
// the server hands every POST body, byte for byte, to these functions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "request_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  wxsession::Result<wxsession::LoginRequest> login =
      wxsession::ParseLoginRequest(body);
  wxsession::Result<nlohmann::json> object = wxsession::ParseJsonObject(body);
  // A body that parses as a login is a JSON object, and errors are never
  // empty-handed.
  if (login.ok() && !object.ok()) std::abort();
  if (!login.ok() && login.status().message().empty()) std::abort();
  if (object.ok()) {
    for (const char* field : {"code", "appid", "encryptedData", "iv"}) {
      wxsession::JsonStringField(object.value(), field, true);
    }
  }
  return 0;
}
