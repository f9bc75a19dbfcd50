#include "http/request_parsing.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

namespace wxsession {

using json = nlohmann::json;

Result<json> ParseJsonObject(std::string_view body) {
  // A key twice in one object is refused, at any depth: parsers disagree on
  // which one wins (nlohmann keeps the last, others the first), so a proxy
  // or WAF that looked at one would let through a request we read as
  // another. The stack holds the keys seen in each open object.
  std::vector<std::set<std::string>> open_objects;
  bool duplicate = false;
  json parsed = json::parse(
      body,
      [&open_objects, &duplicate](int, json::parse_event_t event, json& value) {
        switch (event) {
          case json::parse_event_t::object_start:
            open_objects.emplace_back();
            break;
          case json::parse_event_t::object_end:
            if (!open_objects.empty()) open_objects.pop_back();
            break;
          case json::parse_event_t::key:
            if (!open_objects.empty() &&
                !open_objects.back().insert(value.get<std::string>()).second) {
              duplicate = true;
            }
            break;
          default:
            break;
        }
        return true;
      },
      /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Status(ErrorCode::kInvalidRequest, "the body is not valid JSON");
  }
  if (duplicate) {
    return Status(ErrorCode::kInvalidRequest,
                  "the body names a JSON key twice in one object");
  }
  if (!parsed.is_object()) {
    return Status(ErrorCode::kInvalidRequest, "the body must be a JSON object");
  }
  return parsed;
}

Result<std::string> JsonStringField(const json& body, const char* name,
                                    bool required) {
  auto found = body.find(name);
  if (found == body.end() || found->is_null()) {
    if (!required) return std::string();
    return Status(ErrorCode::kInvalidRequest,
                  std::string("missing field \"") + name + "\"");
  }
  if (!found->is_string()) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("field \"") + name + "\" must be a string");
  }
  return found->get<std::string>();
}

Result<LoginRequest> ParseLoginRequest(std::string_view body) {
  Result<json> parsed = ParseJsonObject(body);
  if (!parsed.ok()) return parsed.status();
  Result<std::string> code = JsonStringField(parsed.value(), "code", true);
  if (!code.ok()) return code.status();
  Result<std::string> appid = JsonStringField(parsed.value(), "appid", false);
  if (!appid.ok()) return appid.status();
  return LoginRequest{std::move(code).value(), std::move(appid).value()};
}

Result<DecryptRequest> ParseDecryptRequest(std::string_view body) {
  Result<json> parsed = ParseJsonObject(body);
  if (!parsed.ok()) return parsed.status();
  Result<std::string> encrypted =
      JsonStringField(parsed.value(), "encryptedData", true);
  if (!encrypted.ok()) return encrypted.status();
  Result<std::string> iv = JsonStringField(parsed.value(), "iv", true);
  if (!iv.ok()) return iv.status();
  return DecryptRequest{std::move(encrypted).value(), std::move(iv).value()};
}

Result<VerifyRequest> ParseVerifyRequest(std::string_view body) {
  Result<json> parsed = ParseJsonObject(body);
  if (!parsed.ok()) return parsed.status();
  Result<std::string> raw_data =
      JsonStringField(parsed.value(), "rawData", true);
  if (!raw_data.ok()) return raw_data.status();
  Result<std::string> signature =
      JsonStringField(parsed.value(), "signature", true);
  if (!signature.ok()) return signature.status();
  return VerifyRequest{std::move(raw_data).value(),
                       std::move(signature).value()};
}

Result<PhoneRequest> ParsePhoneRequest(std::string_view body) {
  Result<json> parsed = ParseJsonObject(body);
  if (!parsed.ok()) return parsed.status();
  Result<std::string> code = JsonStringField(parsed.value(), "code", true);
  if (!code.ok()) return code.status();
  return PhoneRequest{std::move(code).value()};
}

std::optional<std::string> BearerCredential(const std::string& authorization) {
  constexpr size_t kSchemeLength = 7;  // "Bearer "
  if (authorization.size() <= kSchemeLength) return std::nullopt;
  std::string scheme = authorization.substr(0, kSchemeLength);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme != "bearer ") return std::nullopt;
  std::string id = authorization.substr(kSchemeLength);
  while (!id.empty() && id.front() == ' ') id.erase(id.begin());
  while (!id.empty() && id.back() == ' ') id.pop_back();
  return id;
}

std::string SessionIdFromHeaders(const std::string& authorization,
                                 const std::string& x_wx_session) {
  if (std::optional<std::string> id = BearerCredential(authorization)) {
    return *id;
  }
  return x_wx_session;
}

}  // namespace wxsession
