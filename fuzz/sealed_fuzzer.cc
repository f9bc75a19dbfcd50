// Fuzzes the sealing layer's parsers: a stored session_key read back from
// the database (which an attacker with write access to the file controls)
// and the content of a master key file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "store/sealed_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  static const wxsession::SessionKeyring ring(std::string(32, 'k'),
                                              {std::string(32, 'p')});

  wxsession::Result<std::string> opened = ring.Open("wxapp", "openid", input);
  if (opened.ok() && !wxsession::SessionKeyring::IsSealed(input) &&
      opened.value() != input) {
    std::abort();  // an unsealed value comes back untouched
  }
  ring.OpenAccessToken("wxapp", input);
  ring.SealedWithPrimary(input);

  // Seal then open is the identity, for any value and row.
  std::string sealed = ring.Seal("wxapp", input, input);
  wxsession::Result<std::string> back = ring.Open("wxapp", input, sealed);
  if (!back.ok() || back.value() != input) std::abort();

  wxsession::Result<std::string> key = wxsession::ParseMasterKey(input);
  if (key.ok() && key.value().size() != 32) std::abort();
  return 0;
}
