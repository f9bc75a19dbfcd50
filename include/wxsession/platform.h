// Platform: the mini-program platforms wxsessiond logs users in for, and
// what is fixed per platform (its name in the config and on the wire, its
// default API host, the name of its login call).
//
// Every app in the config belongs to one platform ("platform", default
// "wechat"); appids are unique across platforms, so an appid alone names
// its platform. See docs/PLATFORMS.md for each platform's exchange.
//
// Thread-safety: pure functions over constants.
#ifndef WXSESSION_PLATFORM_H_
#define WXSESSION_PLATFORM_H_

#include <optional>
#include <string>

namespace wxsession {

enum class Platform { kWeChat, kQQ, kDouyin, kKuaishou, kBaidu, kAlipay };

// The wire name: "wechat", "qq", "douyin", "kuaishou", "baidu", "alipay".
const char* PlatformName(Platform platform);
// The platform named `name` (exactly as PlatformName spells it), or nullopt.
std::optional<Platform> ParsePlatform(const std::string& name);
// "wechat, qq, douyin, kuaishou, baidu, alipay", for error messages.
const char* PlatformNames();
// The host the platform's login call goes to when the app sets no
// api_base, e.g. "https://api.q.qq.com". WeChat's is wechat.api_base.
const char* DefaultApiBase(Platform platform);
// The name of the platform's login call, as the metrics' `api` label:
// "jscode2session", "code2session", "jscode2sessionkey",
// "alipay.system.oauth.token".
const char* LoginApiName(Platform platform);
// The platform as users know it, for messages: "WeChat", "QQ", "Douyin"...
const char* PlatformTitle(Platform platform);

}  // namespace wxsession

#endif  // WXSESSION_PLATFORM_H_
