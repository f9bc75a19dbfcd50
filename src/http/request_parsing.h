// Parsing of API v1 request parts, free of any httplib type, so that unit
// tests and the fuzz targets (fuzz/) reach exactly the code the server runs
// without starting a server. Adapter-internal, used by http_api.cc.
//
// Nothing here throws: JSON is parsed with exceptions off, and every failure
// is a kInvalidRequest Status naming the problem (never quoting the input).
//
// Thread-safety: pure functions.
#ifndef WXSESSION_REQUEST_PARSING_H_
#define WXSESSION_REQUEST_PARSING_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "wxsession/status.h"

namespace wxsession {

// Parses a body that must be one JSON object. Errors: not JSON (including
// invalid UTF-8), or JSON that is not an object.
Result<nlohmann::json> ParseJsonObject(std::string_view body);

// Reads a string field of `body`. Absent or null: "" when optional, an error
// when `required`. Present with another type: an error.
Result<std::string> JsonStringField(const nlohmann::json& body,
                                    const char* name, bool required);

// One parser per POST route that takes a body. Each checks the shape only;
// the use case checks the values (what a code may look like, ...).

// POST /v1/login: {"code": string, "appid"?: string}.
struct LoginRequest {
  std::string code;
  std::string appid;  // empty when absent
};
Result<LoginRequest> ParseLoginRequest(std::string_view body);

// POST /v1/decrypt: {"encryptedData": string, "iv": string}.
struct DecryptRequest {
  std::string encrypted_data;
  std::string iv;
};
Result<DecryptRequest> ParseDecryptRequest(std::string_view body);

// POST /v1/verify: {"rawData": string, "signature": string}.
struct VerifyRequest {
  std::string raw_data;
  std::string signature;
};
Result<VerifyRequest> ParseVerifyRequest(std::string_view body);

// POST /v1/phone: {"code": string} (a getPhoneNumber button code).
struct PhoneRequest {
  std::string code;
};
Result<PhoneRequest> ParsePhoneRequest(std::string_view body);

// The credential in an Authorization value "Bearer <credential>" (scheme
// case-insensitive, surrounding spaces dropped), or nullopt for any other
// value.
std::optional<std::string> BearerCredential(const std::string& authorization);

// The session id a request carries: from "Authorization: Bearer <id>"
// (scheme case-insensitive, surrounding spaces dropped), else the
// X-WX-Session value. Empty when neither holds one. Pass "" for a header
// that is absent. The id is not validated here (crypto::LooksLikeSessionId).
std::string SessionIdFromHeaders(const std::string& authorization,
                                 const std::string& x_wx_session);

}  // namespace wxsession

#endif  // WXSESSION_REQUEST_PARSING_H_
