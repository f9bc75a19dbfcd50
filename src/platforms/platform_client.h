// The client behind every login: one WeChatClient that serves each
// configured app on its own platform.
//
//   wechat apps   go to `wechat` (the client for wechat.api_base), or to a
//                 WeChat client of their own when they set api_base.
//   other apps    go to their platform's exchange (docs/PLATFORMS.md):
//                 qq GET /sns/jscode2session, douyin POST
//                 /api/apps/v2/jscode2session, kuaishou POST
//                 /oauth2/mp/code2session, baidu POST
//                 /oauth/jscode2sessionkey, alipay POST /gateway.do
//                 (alipay.system.oauth.token, RSA2-signed both ways).
//                 StableToken, GetPhoneNumber and CheckSessionKey answer
//                 kUnsupportedForPlatform for them.
//
// Each platform's answer maps onto the same closed error set as WeChat's
// (wechat.h): invalid code -> kInvalidCode, busy / unreachable / timeout /
// HTTP 5xx -> kUpstreamUnavailable, quota / HTTP 429 -> kRateLimited,
// anything else (a wrong secret or key, an unknown code, a bad signature)
// -> kUpstreamError. Retries as WeChat's: once, only after a connection
// that never carried the request or the platform's "busy" answer.
//
// Thread-safety: as WeChatClient.
#ifndef WXSESSION_PLATFORMS_PLATFORM_CLIENT_H_
#define WXSESSION_PLATFORMS_PLATFORM_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "wxsession/config.h"
#include "wxsession/platform.h"
#include "wxsession/wechat.h"

namespace wxsession {

// `config` must outlive the client. `timeout_ms` is wechat.timeout.
std::unique_ptr<WeChatClient> NewPlatformClient(
    const Config& config, std::unique_ptr<WeChatClient> wechat,
    int64_t timeout_ms);

// The platform of `appid` in `config`; WeChat for an unknown appid.
Platform PlatformOf(const Config& config, const std::string& appid);

// The login exchange of one non-WeChat app, on its own (tests use it
// directly). `app` is copied.
std::unique_ptr<WeChatClient> NewOtherPlatformClient(const AppConfig& app,
                                                     int64_t timeout_ms);

}  // namespace wxsession

#endif  // WXSESSION_PLATFORMS_PLATFORM_CLIENT_H_
