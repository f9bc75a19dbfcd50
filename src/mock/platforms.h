// The other platforms' login exchanges in `wxsessiond mock-wechat`, each on
// its own path as the real platform serves it (docs/PLATFORMS.md):
//
//   GET  /sns/jscode2session           QQ: WeChat's own route (mock_wechat.h)
//                                      answers QQ apps too, since QQ uses
//                                      WeChat's path and errcodes
//   POST /api/apps/v2/jscode2session   Douyin   (JSON)
//   POST /oauth2/mp/code2session       Kuaishou (form)
//   POST /oauth/jscode2sessionkey      Baidu    (form)
//   POST /gateway.do                   Alipay   (form, RSA2-signed)
//
// Every platform follows the WeChat route's code rules: "invalid" -> the
// platform's invalid-code answer, "busy" -> its busy answer, "limit" -> its
// quota answer, a code exchanged before -> invalid, a secret
// "wrong-secret" -> its bad-credential answer, "http:500" -> HTTP 500;
// any other code logs in the user named by the part before the first '.'
// (openid MockWeChatServer::OpenIdFor(appid, user); a user starting with
// "union" gets a unionid). Baidu issues 24-byte session_keys (AES-192).
//
// Alipay: the mock checks each request's sign (SHA256withRSA over the
// sorted parameters) with the app public key it was given, and the
// timestamp (Beijing time, within 10 minutes); it signs every answer with
// its own key. Extra Alipay codes: "nodeerror" (isv.code-invalid inside the
// response node), "badsign.*" (a success whose sign does not verify),
// "spaced.*" (a success laid out with unusual spacing and key order),
// "legacy.*" (user_id only, no open_id).
#ifndef WXSESSION_PLATFORMS_MOCK_PLATFORMS_H_
#define WXSESSION_PLATFORMS_MOCK_PLATFORMS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "platforms/alipay_crypto.h"

namespace httplib {
class Server;
}

namespace wxsession {

// What the platform routes share with the WeChat mock.
struct MockPlatformHooks {
  std::function<void()> delay;  // the mock's --delay
  // Marks `key` used; false when it was used before.
  std::function<bool(const std::string& key)> spend_code;
  // Remembers the newest session_key of (appid, openid) for
  // GET /mock/session_key.
  std::function<void(const std::string& appid, const std::string& openid,
                     const std::string& session_key)>
      record_key;
  std::function<void(const std::string& api)> count;  // for /mock/stats
};

struct MockAlipayKeys {
  alipay::RsaKey mock_key;  // signs the mock's answers
  // Checks requests' signatures; invalid() -> every request is refused
  // (isv.missing-signature-config).
  alipay::RsaKey app_public_key;
};

void RegisterMockPlatformRoutes(httplib::Server& server,
                                MockPlatformHooks hooks,
                                std::shared_ptr<const MockAlipayKeys> keys);

}  // namespace wxsession

#endif  // WXSESSION_PLATFORMS_MOCK_PLATFORMS_H_
