#include "wxsession/platform.h"

namespace wxsession {

const char* PlatformName(Platform platform) {
  switch (platform) {
    case Platform::kWeChat:
      return "wechat";
    case Platform::kQQ:
      return "qq";
    case Platform::kDouyin:
      return "douyin";
    case Platform::kKuaishou:
      return "kuaishou";
    case Platform::kBaidu:
      return "baidu";
    case Platform::kAlipay:
      return "alipay";
  }
  return "wechat";
}

std::optional<Platform> ParsePlatform(const std::string& name) {
  for (Platform platform :
       {Platform::kWeChat, Platform::kQQ, Platform::kDouyin,
        Platform::kKuaishou, Platform::kBaidu, Platform::kAlipay}) {
    if (name == PlatformName(platform)) return platform;
  }
  return std::nullopt;
}

const char* PlatformNames() {
  return "wechat, qq, douyin, kuaishou, baidu, alipay";
}

const char* DefaultApiBase(Platform platform) {
  switch (platform) {
    case Platform::kWeChat:
      return "https://api.weixin.qq.com";
    case Platform::kQQ:
      return "https://api.q.qq.com";
    case Platform::kDouyin:
      return "https://developer.toutiao.com";
    case Platform::kKuaishou:
      return "https://open.kuaishou.com";
    case Platform::kBaidu:
      return "https://spapi.baidu.com";
    case Platform::kAlipay:
      return "https://openapi.alipay.com";
  }
  return "";
}

const char* LoginApiName(Platform platform) {
  switch (platform) {
    case Platform::kWeChat:
    case Platform::kQQ:
    case Platform::kDouyin:
      return "jscode2session";
    case Platform::kKuaishou:
      return "code2session";
    case Platform::kBaidu:
      return "jscode2sessionkey";
    case Platform::kAlipay:
      return "alipay.system.oauth.token";
  }
  return "jscode2session";
}

const char* PlatformTitle(Platform platform) {
  switch (platform) {
    case Platform::kWeChat:
      return "WeChat";
    case Platform::kQQ:
      return "QQ";
    case Platform::kDouyin:
      return "Douyin";
    case Platform::kKuaishou:
      return "Kuaishou";
    case Platform::kBaidu:
      return "Baidu";
    case Platform::kAlipay:
      return "Alipay";
  }
  return "WeChat";
}

}  // namespace wxsession
