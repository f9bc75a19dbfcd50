// `wxsessiond mock-wechat`: WeChat and the other platforms on loopback, for
// tests, benchmarks and trying the API.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cmd/commands.h"
#include "cmd/stop_coordinator.h"
#include "mock/wechat.h"
#include "platforms/alipay_crypto.h"
#include "wxsession/config.h"

namespace wxsession {
namespace cmd {
namespace {

// Fills `options` from --alipay-key, --alipay-app-public-key and --delay.
// Returns the usage error, or "" when they are all well-formed.
std::string MockOptionsFromArgs(const Args& args, MockWeChatOptions& options) {
  for (const auto& [flag, out, load] :
       std::vector<std::tuple<const char*, std::string*,
                              Result<alipay::RsaKey> (*)(const std::string&)>>{
           {"alipay-key", &options.alipay_key,
            &alipay::RsaKey::PrivateFromText},
           {"alipay-app-public-key", &options.alipay_app_public_key,
            &alipay::RsaKey::PublicFromText}}) {
    if (!args.Has(flag)) continue;
    std::ifstream file(args.Get(flag));
    std::stringstream text;
    text << file.rdbuf();
    if (!file || !load(text.str()).ok()) {
      return std::string("--") + flag +
             ": expected a readable file with an RSA key";
    }
    *out = text.str();
  }
  if (args.Has("delay")) {
    // A named copy: `end` points into it, so it must outlive the check.
    const std::string text = args.Get("delay");
    char* end = nullptr;
    long long delay = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || delay < 0) {
      return "--delay: expected milliseconds, e.g. 100";
    }
    options.delay_ms = delay;
  }
  return "";
}

}  // namespace

int CmdMockWeChat(int argc, char** argv) {
  const char* usage =
      "usage: wxsessiond mock-wechat [--listen HOST:PORT] [--delay MS]\n"
      "\n"
      "Serves a stand-in for WeChat's server API (default 127.0.0.1:0):\n"
      "jscode2session, stable_token, getuserphonenumber, checksession.\n"
      "Codes: invalid -> 40029, blocked -> 40226, busy -> -1, limit -> 45011,\n"
      "errcode:N -> N, a code used twice -> 40163 (40029 for phone codes);\n"
      "any other login code logs in the user named by the part before the\n"
      "first '.', any other phone code answers +86 13800138000.\n"
      "--delay applies to every WeChat route, not to the /mock/ routes.\n"
      "\n"
      "The other platforms' logins are served too (docs/PLATFORMS.md).\n"
      "Alipay: answers are signed with --alipay-key FILE (an RSA private key,\n"
      "PEM or bare base64), or a key pair made at start; its public half is\n"
      "printed before the listening line. Requests must be signed for\n"
      "--alipay-app-public-key FILE (the app's public key).\n";
  Args args =
      ParseArgs(argc, argv, 2,
                {"listen", "delay", "alipay-key", "alipay-app-public-key"}, {});
  if (args.help || !args.error.empty()) return Usage(usage, args.error);
  MockWeChatOptions options;
  if (std::string error = MockOptionsFromArgs(args, options); !error.empty()) {
    return Usage(usage, error);
  }
  auto host_port = ParseHostPort(
      args.Has("listen") ? args.Get("listen") : std::string("127.0.0.1:0"));
  if (!host_port) return Usage(usage, "--listen: expected HOST:PORT");
  MockWeChatServer mock(options);
  Result<int> port = mock.Bind(host_port->first, host_port->second);
  if (!port.ok()) {
    return Fail(port.status());
  }
  BlockedSignalSource signals;
  std::thread signal_thread([&] {
    signals.Wait();
    mock.Stop();
  });
  std::printf("mock-wechat alipay public key:\n%s",
              mock.AlipayPublicKeyPem().c_str());
  std::printf("mock-wechat listening on http://%s:%d\n",
              host_port->first.c_str(), port.value());
  std::fflush(stdout);
  bool served = mock.Serve();
  signals.Interrupt();  // when Serve returned for another reason
  signal_thread.join();
  return served ? kExitOk : kExitFailure;
}

}  // namespace cmd
}  // namespace wxsession
