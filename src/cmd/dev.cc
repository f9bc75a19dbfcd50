// `wxsessiond dev`: the server on loopback against a built-in mock WeChat,
// for trying the API locally; never for production.
#include <sys/stat.h>

#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cmd/commands.h"
#include "mock/wechat.h"
#include "platforms/alipay_crypto.h"
#include "wxsession/config.h"
#include "wxsession/platform.h"

namespace wxsession {
namespace cmd {
namespace {

// One app per platform, all against the mock (docs/PLATFORMS.md).
void AddDevPlatformApps(const alipay::RsaKey& dev_app_key,
                        const MockWeChatServer& mock, Config& config) {
  for (const auto& [appid, platform] :
       std::vector<std::pair<std::string, Platform>>{
           {"wxdev000000000000", Platform::kWeChat},
           {"qqdev000000000000", Platform::kQQ},
           {"ttdev000000000000", Platform::kDouyin},
           {"ksdev000000000000", Platform::kKuaishou},
           {"bddev000000000000", Platform::kBaidu},
           {"2021dev000000000", Platform::kAlipay}}) {
    AppConfig app{appid, platform == Platform::kAlipay ? "" : "dev-secret"};
    app.platform = platform;
    app.api_base = config.wechat_api_base;
    if (platform == Platform::kAlipay) {
      app.private_key = dev_app_key.PrivatePem();
      app.alipay_public_key = mock.AlipayPublicKeyPem();
    }
    config.apps.push_back(std::move(app));
  }
}

// The walk-through dev prints once the server listens on `host`:`port`.
void PrintDevWalkThrough(const std::string& host, int port) {
  std::string base = "http://" + host + ":" + std::to_string(port);
  std::printf(
      "\nwxsessiond dev: a local server against a mock WeChat.\n"
      "Any code logs in (\"alice.1\" and \"alice.2\" are one user); the codes\n"
      "invalid, blocked, busy and limit show WeChat's errors.\n"
      "Apps: wxdev000000000000 (wechat), qqdev000000000000 (qq),\n"
      "ttdev000000000000 (douyin), ksdev000000000000 (kuaishou),\n"
      "bddev000000000000 (baidu), 2021dev000000000 (alipay).\n\n"
      "  curl -s -X POST %s/v1/login -H 'Content-Type: application/json' \\\n"
      "       -d '{\"appid\":\"wxdev000000000000\",\"code\":\"alice.1\"}'\n"
      "  curl -s %s/v1/session -H 'Authorization: Bearer <session_id>'\n"
      "  curl -s -X POST %s/v1/phone -H 'Authorization: Bearer "
      "<session_id>' \\\n"
      "       -H 'Content-Type: application/json' -d '{\"code\":\"p1\"}'\n"
      "  curl -s -X POST %s/v1/session/check -H 'Authorization: Bearer "
      "<session_id>'\n"
      "  curl -s -X POST %s/v1/logout -H 'Authorization: Bearer "
      "<session_id>' -i\n\n"
      "Ctrl-C stops it.\n",
      base.c_str(), base.c_str(), base.c_str(), base.c_str(), base.c_str());
  std::fflush(stdout);
}

}  // namespace

int CmdDev(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond dev [--listen HOST:PORT] [--database PATH]\n"
      "\n"
      "Runs the server against a built-in mock WeChat with one app\n"
      "(appid wxdev000000000000), data in ./dev. For trying the API locally;\n"
      "never for production. One app per other platform is configured too\n"
      "(qqdev..., ttdev..., ksdev..., bddev..., 2021dev...; see\n"
      "docs/PLATFORMS.md), against the same mock.\n";
  Args args = ParseArgs(argc, argv, 2, {"listen", "database"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);

  // The Alipay app's key pair, made afresh: the mock checks requests with
  // its public half.
  Result<alipay::RsaKey> dev_app_key = alipay::GenerateRsaKey();
  if (!dev_app_key.ok()) return Fail(dev_app_key.status());
  MockWeChatOptions mock_options;
  mock_options.alipay_app_public_key = dev_app_key->PublicPem();
  MockWeChatServer mock(mock_options);
  Result<int> mock_port = mock.Bind("127.0.0.1", 0);
  if (!mock_port.ok()) return Fail(mock_port.status());
  std::thread mock_thread([&mock] { mock.Serve(); });

  // A Config of dev's own, given the same derived defaults as `serve`
  // (ResolveDefaults: bulkhead sizes, rate-limit burst): a Config built by
  // hand here once left the WeChat bulkhead at 0.
  Config config;
  ConfigOverrides overrides;
  overrides.database = args.Has("database")
                           ? args.Get("database")
                           : std::string("./dev/wxsessiond.db");
  if (args.Has("listen")) overrides.listen = args.Get("listen");
  Status built = ApplyOverrides(overrides, &config);
  if (built.ok()) built = ResolveDefaults(&config);
  if (!built.ok()) {
    mock.Stop();
    mock_thread.join();
    return Usage(usage, built.operator_text());
  }
  config.wechat_api_base =
      "http://127.0.0.1:" + std::to_string(mock_port.value());
  AddDevPlatformApps(dev_app_key.value(), mock, config);
  config.expose_openid = true;
  // A request that names no app means the WeChat one, as with one app (the
  // README's walk-through sends no appid).
  config.default_appid = "wxdev000000000000";
  if (!args.Has("database")) ::mkdir("./dev", 0700);

  int code = RunServer(config, [&config](int port) {
    PrintDevWalkThrough(config.listen_host, port);
  });
  mock.Stop();
  mock_thread.join();
  return code;
}

}  // namespace cmd
}  // namespace wxsession
