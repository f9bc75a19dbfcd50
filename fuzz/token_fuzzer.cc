// Fuzzes session-token parsing: the Authorization / X-WX-Session header
// values as the server sees them, then the shape check every route makes
// before touching the store. Input: "<authorization>\n<x-wx-session>".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http/request_parsing.h"
#include "wxsession/crypto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t newline = input.find('\n');
  std::string authorization = input.substr(0, newline);
  std::string x_wx_session =
      newline == std::string::npos ? "" : input.substr(newline + 1);
  std::string id = wxsession::SessionIdFromHeaders(authorization, x_wx_session);
  // The admin routes take their token through the same Bearer parsing.
  std::optional<std::string> bearer =
      wxsession::BearerCredential(authorization);
  if (bearer && id != *bearer) std::abort();
  if (wxsession::crypto::LooksLikeSessionId(id)) {
    if (id.size() != 43) std::abort();
    if (wxsession::crypto::Sha256(id).size() != 32) std::abort();
  }
  // Whatever came in, a freshly minted id always passes the check.
  if (!wxsession::crypto::LooksLikeSessionId(wxsession::crypto::NewSessionId()))
    std::abort();
  return 0;
}
