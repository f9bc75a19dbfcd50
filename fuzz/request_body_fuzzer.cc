// Fuzzes the body parsing of every POST route (request_parsing.h): the
// server hands each POST body, byte for byte, to one of these functions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/request_parsing.h"

namespace {

// Every parser answers a value or an error with a message, never both or
// neither; and whatever parses as a route's body is a JSON object.
template <typename T>
void Check(const wxsession::Result<T>& parsed, bool is_object) {
  if (parsed.ok() && !is_object) std::abort();
  if (!parsed.ok() && parsed.status().message().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  wxsession::Result<nlohmann::json> object = wxsession::ParseJsonObject(body);
  Check(wxsession::ParseLoginRequest(body), object.ok());
  Check(wxsession::ParseDecryptRequest(body), object.ok());
  Check(wxsession::ParseVerifyRequest(body), object.ok());
  Check(wxsession::ParsePhoneRequest(body), object.ok());
  return 0;
}
