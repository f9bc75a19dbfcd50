// End to end: every platform (QQ, Douyin, Kuaishou, Baidu, Alipay beside
// WeChat) on the real wxsessiond binary against `wxsessiond mock-wechat`,
// and each platform's client straight against the mock for every error row
// of docs/PLATFORMS.md. Baidu's open data is encrypted by Node's crypto, an
// implementation independent of ours.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mock/wechat.h"
#include "platforms/alipay_crypto.h"
#include "platforms/platform_client.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::ExpectError;
using testing_support::FindProgram;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::RunCommand;
using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kAdminToken[] = "admin-0123456789abcdef-must-never-leak";

// One app per platform, and one more per platform with a wrong credential.
struct App {
  const char* appid;
  Platform platform;
};
const std::vector<App>& Apps() {
  static const std::vector<App> apps = {
      {"wxplat00000000001", Platform::kWeChat},
      {"qqplat00000000001", Platform::kQQ},
      {"ttplat00000000001", Platform::kDouyin},
      {"ksplat00000000001", Platform::kKuaishou},
      {"bdplat00000000001", Platform::kBaidu},
      {"2021plat000000001", Platform::kAlipay}};
  return apps;
}
std::string WrongAppId(const App& app) {
  return std::string(app.appid).substr(0, 15) + "99";
}

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(20, 0);
  return client;
}

std::string Bearer(const std::string& id) { return "Bearer " + id; }

// The mock, with the Alipay app's public key, and the server with every
// app, started once for the suite.
class PlatformsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    Result<alipay::RsaKey> app_key = alipay::GenerateRsaKey();
    Result<alipay::RsaKey> other_key = alipay::GenerateRsaKey();
    ASSERT_TRUE(app_key.ok() && other_key.ok());
    app_key_ = new alipay::RsaKey(app_key.value());
    WriteFile(dir_->File("app_public.pem"), app_key->PublicPem());
    // The app's key as the Alipay console shows it: bare base64, no PEM.
    std::string bare;
    for (const std::string& line : {app_key->PrivatePem()}) {
      size_t at = 0;
      while (at < line.size()) {
        size_t end = line.find('\n', at);
        if (end == std::string::npos) end = line.size();
        std::string piece = line.substr(at, end - at);
        if (piece.rfind("-----", 0) != 0) bare += piece;
        at = end + 1;
      }
    }
    WriteFile(dir_->File("app_private.txt"), bare + "\n");
    WriteFile(dir_->File("other_private.pem"), other_key->PrivatePem());

    mock_ =
        new Process({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
                     "--alipay-app-public-key", dir_->File("app_public.pem")});
    std::string mock_public;
    while (true) {
      std::optional<std::string> line = mock_->ReadLine(30000);
      ASSERT_TRUE(line) << mock_->Stderr();
      if (line->find("listening on") != std::string::npos) {
        mock_port_ = PortFromListeningLine(*line);
        break;
      }
      if (line->rfind("-----", 0) == 0 || !mock_public.empty()) {
        mock_public += *line + "\n";
      }
    }
    ASSERT_NE(mock_public.find("BEGIN PUBLIC KEY"), std::string::npos);
    WriteFile(dir_->File("alipay_public.pem"), mock_public);
    WriteFile(dir_->File("admin_token"), std::string(kAdminToken) + "\n");

    const std::string base = "http://127.0.0.1:" + std::to_string(mock_port_);
    json apps = json::array();
    for (const App& app : Apps()) {
      for (bool wrong : {false, true}) {
        json entry = {{"appid", wrong ? WrongAppId(app) : app.appid},
                      {"platform", PlatformName(app.platform)}};
        // WeChat apps too: a per-app api_base beats wechat.api_base.
        entry["api_base"] = base;
        if (app.platform == Platform::kAlipay) {
          entry["private_key_file"] =
              dir_->File(wrong ? "other_private.pem" : "app_private.txt");
          entry["alipay_public_key_file"] = dir_->File("alipay_public.pem");
        } else {
          entry["secret"] = wrong ? "wrong-secret" : "platform-secret";
        }
        apps.push_back(entry);
      }
    }
    json config = {
        {"listen", "127.0.0.1:0"},
        {"database", dir_->File("sessions.db")},
        {"apps", apps},
        {"admin", {{"token_file", dir_->File("admin_token")}}},
        // Nothing listens on port 9: only per-app api_base works.
        {"wechat", {{"api_base", "http://127.0.0.1:9"}, {"timeout", 2}}}};
    WriteFile(dir_->File("config.json"), config.dump(2));
    server_ = new Process(
        {BinaryPath(), "serve", "--config", dir_->File("config.json")});
    std::optional<std::string> line =
        server_->WaitForLine("listening on", 30000);
    ASSERT_TRUE(line) << server_->Stderr();
    port_ = PortFromListeningLine(*line);
  }

  static void TearDownTestSuite() {
    if (server_) {
      server_->Signal(SIGTERM);
      server_->Wait(5000);
    }
    delete server_;
    delete mock_;
    delete app_key_;
    delete dir_;
    server_ = nullptr;
    mock_ = nullptr;
  }

  static AppConfig ConfigOf(const App& app, bool wrong = false,
                            const std::string& base = "") {
    AppConfig config;
    config.appid = wrong ? WrongAppId(app) : app.appid;
    config.platform = app.platform;
    config.api_base =
        base.empty() ? "http://127.0.0.1:" + std::to_string(mock_port_) : base;
    config.secret = wrong ? "wrong-secret" : "platform-secret";
    if (app.platform == Platform::kAlipay) {
      config.private_key = testing_support::ReadFile(
          dir_->File(wrong ? "other_private.pem" : "app_private.txt"));
      config.alipay_public_key =
          testing_support::ReadFile(dir_->File("alipay_public.pem"));
    }
    return config;
  }

  // POST /v1/login; the reply.
  static httplib::Result Login(const std::string& appid,
                               const std::string& code) {
    httplib::Client client = ClientFor(port_);
    return client.Post("/v1/login",
                       json{{"appid", appid}, {"code", code}}.dump(),
                       "application/json");
  }

  static std::string LoginOk(const std::string& appid,
                             const std::string& code) {
    httplib::Result res = Login(appid, code);
    EXPECT_TRUE(res && res->status == 200)
        << appid << " " << code << ": " << (res ? res->body : "no answer");
    if (!res || res->status != 200) return "";
    return json::parse(res->body).value("session_id", "");
  }

  static int64_t MockCalls(const std::string& route) {
    httplib::Client mock = ClientFor(mock_port_);
    auto res = mock.Get("/mock/stats");
    if (!res || res->status != 200) return -1;
    return json::parse(res->body).value(route, int64_t{-1});
  }

  static std::string StatsRoute(Platform platform) {
    switch (platform) {
      case Platform::kWeChat:
      case Platform::kQQ:
        return "jscode2session";
      default:
        return PlatformName(platform);
    }
  }

  static std::string SessionKey(const std::string& appid,
                                const std::string& openid) {
    httplib::Client mock = ClientFor(mock_port_);
    auto res =
        mock.Get("/mock/session_key?appid=" + appid + "&openid=" + openid);
    if (!res || res->status != 200) return "";
    return json::parse(res->body).value("session_key", "");
  }

  static TempDir* dir_;
  static Process* mock_;
  static Process* server_;
  static alipay::RsaKey* app_key_;
  static int mock_port_;
  static int port_;
};

TempDir* PlatformsTest::dir_ = nullptr;
Process* PlatformsTest::mock_ = nullptr;
Process* PlatformsTest::server_ = nullptr;
alipay::RsaKey* PlatformsTest::app_key_ = nullptr;
int PlatformsTest::mock_port_ = 0;
int PlatformsTest::port_ = 0;

TEST_F(PlatformsTest, EveryPlatformLogsInLooksUpAndLogsOut) {
  for (const App& app : Apps()) {
    SCOPED_TRACE(PlatformName(app.platform));
    const std::string id =
        LoginOk(app.appid, std::string("life.") + PlatformName(app.platform));
    ASSERT_FALSE(id.empty());
    httplib::Client client = ClientFor(port_);
    auto session = client.Get("/v1/session", {{"Authorization", Bearer(id)}});
    ASSERT_TRUE(session && session->status == 200);
    const json info = json::parse(session->body);
    EXPECT_EQ(info["appid"], app.appid);
    EXPECT_EQ(info["platform"], PlatformName(app.platform));
    EXPECT_EQ(info["openid"], MockWeChatServer::OpenIdFor(app.appid, "life"));

    auto auth = client.Get("/v1/auth", {{"Authorization", Bearer(id)}});
    ASSERT_TRUE(auth && auth->status == 204);
    EXPECT_EQ(auth->get_header_value("X-WX-Platform"),
              PlatformName(app.platform));
    EXPECT_EQ(auth->get_header_value("X-WX-AppID"), app.appid);

    auto out = client.Post("/v1/logout", {{"Authorization", Bearer(id)}}, "",
                           "application/json");
    ASSERT_TRUE(out);
    EXPECT_EQ(out->status, 204);
    ExpectError(client.Get("/v1/session", {{"Authorization", Bearer(id)}}), 401,
                "invalid_session");
  }
}

TEST_F(PlatformsTest, UnionIdsArriveWhereThePlatformSendsThem) {
  for (const App& app : Apps()) {
    SCOPED_TRACE(PlatformName(app.platform));
    const std::string id = LoginOk(
        app.appid, std::string("unionuser.") + PlatformName(app.platform));
    httplib::Client client = ClientFor(port_);
    auto session = client.Get("/v1/session", {{"Authorization", Bearer(id)}});
    ASSERT_TRUE(session && session->status == 200);
    const json info = json::parse(session->body);
    // Kuaishou and Baidu send no unionid.
    if (app.platform == Platform::kKuaishou ||
        app.platform == Platform::kBaidu) {
      EXPECT_TRUE(info["unionid"].is_null());
    } else {
      EXPECT_TRUE(info["unionid"].is_string()) << info.dump();
    }
  }
}

TEST_F(PlatformsTest, ARetriedCodeGetsTheSameSessionWithOneUpstreamCall) {
  for (const App& app : Apps()) {
    SCOPED_TRACE(PlatformName(app.platform));
    const int64_t before = MockCalls(StatsRoute(app.platform));
    const std::string code = std::string("retry.") + PlatformName(app.platform);
    const std::string first = LoginOk(app.appid, code);
    const std::string second = LoginOk(app.appid, code);
    EXPECT_FALSE(first.empty());
    EXPECT_EQ(first, second);
    EXPECT_EQ(MockCalls(StatsRoute(app.platform)), before + 1);
  }
}

TEST_F(PlatformsTest, ErrorRowsMapThroughTheServer) {
  for (const App& app : Apps()) {
    SCOPED_TRACE(PlatformName(app.platform));
    ExpectError(Login(app.appid, "invalid"),
                app.platform == Platform::kKuaishou ? 502 : 400,
                app.platform == Platform::kKuaishou ? "upstream_error"
                                                    : "invalid_code");
    ExpectError(Login(app.appid, "busy"), 503, "upstream_unavailable");
    httplib::Result limited = Login(app.appid, "limit");
    ExpectError(limited, 429, "rate_limited");
    if (limited) {
      EXPECT_FALSE(limited->get_header_value("Retry-After").empty());
    }
    ExpectError(Login(app.appid, "http:500"),
                app.platform == Platform::kWeChat ? 502 : 503,
                app.platform == Platform::kWeChat ? "upstream_error"
                                                  : "upstream_unavailable");
    ExpectError(Login(WrongAppId(app), "wrongcred.1"), 502, "upstream_error");
  }
  // Neither a secret nor a key reaches the log.
  const std::string log = server_->Stderr();
  EXPECT_NE(log.find("login_failed"), std::string::npos);
  EXPECT_EQ(log.find("platform-secret"), std::string::npos);
  EXPECT_EQ(log.find("wrong-secret"), std::string::npos);
  const std::string key_text =
      testing_support::ReadFile(dir_->File("app_private.txt"));
  EXPECT_EQ(log.find(key_text.substr(100, 40)), std::string::npos);
}

TEST_F(PlatformsTest, MetricsLabelUpstreamCallsWithThePlatform) {
  LoginOk("ttplat00000000001", "metrics.1");
  LoginOk("2021plat000000001", "metrics.1");
  httplib::Client client = ClientFor(port_);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_NE(res->body.find("wxsessiond_upstream_requests_total{api="
                           "\"jscode2session\",result=\"ok\",platform="
                           "\"douyin\"}"),
            std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("api=\"alipay.system.oauth.token\",result=\"ok\","
                           "platform=\"alipay\""),
            std::string::npos);
}

TEST_F(PlatformsTest, WeChatOnlyRoutesAnswerUnsupportedElsewhere) {
  httplib::Client client = ClientFor(port_);
  for (const App& app : Apps()) {
    if (app.platform == Platform::kWeChat) continue;
    SCOPED_TRACE(PlatformName(app.platform));
    const std::string id =
        LoginOk(app.appid, std::string("routes.") + PlatformName(app.platform));
    const httplib::Headers auth = {{"Authorization", Bearer(id)}};
    ExpectError(
        client.Post("/v1/phone", auth, R"({"code":"p1"})", "application/json"),
        400, "unsupported_for_platform");
    ExpectError(client.Post("/v1/session/check", auth, "", "application/json"),
                400, "unsupported_for_platform");
    ExpectError(
        client.Get(std::string("/v1/admin/access-token?appid=") + app.appid,
                   {{"Authorization", Bearer(kAdminToken)}}),
        400, "unsupported_for_platform");
    const bool verifies =
        app.platform != Platform::kBaidu && app.platform != Platform::kAlipay;
    auto verify =
        client.Post("/v1/verify", auth, R"({"rawData":"{}","signature":"00"})",
                    "application/json");
    if (verifies) {
      ASSERT_TRUE(verify);
      EXPECT_EQ(verify->status, 200) << verify->body;
    } else {
      ExpectError(verify, 400, "unsupported_for_platform");
    }
  }
  const std::string alipay = LoginOk("2021plat000000001", "routes.2");
  ExpectError(client.Post("/v1/decrypt", {{"Authorization", Bearer(alipay)}},
                          R"({"encryptedData":"AAAA","iv":"AAAA"})",
                          "application/json"),
              400, "unsupported_for_platform");
}

// QQ, Douyin and Kuaishou decrypt as WeChat, a watermark checked when
// present.
TEST_F(PlatformsTest, WeChatStyleOpenDataDecryptsOnQQDouyinAndKuaishou) {
  httplib::Client client = ClientFor(port_);
  for (const App& app : Apps()) {
    if (app.platform != Platform::kQQ && app.platform != Platform::kDouyin &&
        app.platform != Platform::kKuaishou) {
      continue;
    }
    SCOPED_TRACE(PlatformName(app.platform));
    const std::string id =
        LoginOk(app.appid, std::string("crypt.") + PlatformName(app.platform));
    const std::string key =
        SessionKey(app.appid, MockWeChatServer::OpenIdFor(app.appid, "crypt"));
    ASSERT_FALSE(key.empty());
    const auto body = [&](const json& payload) {
      const std::string iv = crypto::RandomBytes(16);
      return json{
          {"encryptedData",
           crypto::Base64Encode(
               crypto::Aes128CbcEncrypt(crypto::Base64Decode(key).value_or(""),
                                        iv, payload.dump())
                   .value_or(""))},
          {"iv", crypto::Base64Encode(iv)}}
          .dump();
    };
    const httplib::Headers auth = {{"Authorization", Bearer(id)}};
    auto plain = client.Post("/v1/decrypt", auth, body({{"nick", "n"}}),
                             "application/json");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->status, 200) << plain->body;
    auto marked = client.Post(
        "/v1/decrypt", auth,
        body({{"nick", "n"}, {"watermark", {{"appid", app.appid}}}}),
        "application/json");
    ASSERT_TRUE(marked);
    EXPECT_EQ(marked->status, 200) << marked->body;
    ExpectError(client.Post("/v1/decrypt", auth,
                            body({{"watermark", {{"appid", "someoneelse"}}}}),
                            "application/json"),
                422, "watermark_mismatch");
  }
}

// Baidu: the vector comes from Node's crypto (AES-192-CBC, PKCS#7), laid out
// as Baidu's docs say: 16 random bytes, a big-endian length, JSON, app key.
std::string NodeBaiduCiphertext(const std::string& key_b64,
                                const std::string& iv_b64,
                                const std::string& json_text,
                                const std::string& app_key) {
  const std::string node = FindProgram("node");
  EXPECT_FALSE(node.empty()) << "node is needed (scripts/lib.sh installs it)";
  const std::string script =
      "const c = require('crypto');"
      "const [key, iv, text, app] = process.argv.slice(1);"
      "const body = Buffer.from(text, 'utf8');"
      "const len = Buffer.alloc(4); len.writeUInt32BE(body.length);"
      "const plain = Buffer.concat([c.randomBytes(16), len, body,"
      "  Buffer.from(app, 'utf8')]);"
      "const cipher = c.createCipheriv('aes-192-cbc',"
      "  Buffer.from(key, 'base64'), Buffer.from(iv, 'base64'));"
      "process.stdout.write(Buffer.concat([cipher.update(plain),"
      "  cipher.final()]).toString('base64') + '\\n');";
  testing_support::CommandResult result =
      RunCommand({node, "-e", script, key_b64, iv_b64, json_text, app_key});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::string out = result.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  EXPECT_FALSE(out.empty()) << result.err;
  return out;
}

TEST_F(PlatformsTest, BaiduOpenDataDecryptsAVectorMadeByNode) {
  const std::string appid = "bdplat00000000001";
  const std::string id = LoginOk(appid, "baiducrypt.1");
  const std::string key =
      SessionKey(appid, MockWeChatServer::OpenIdFor(appid, "baiducrypt"));
  ASSERT_EQ(crypto::Base64Decode(key).value_or("").size(), 24u);
  const std::string iv = crypto::Base64Encode(crypto::RandomBytes(16));
  const std::string text = R"({"nickname":"百度用户","sex":1})";
  httplib::Client client = ClientFor(port_);
  const httplib::Headers auth = {{"Authorization", Bearer(id)}};

  auto ok = client.Post(
      "/v1/decrypt", auth,
      json{{"encryptedData", NodeBaiduCiphertext(key, iv, text, appid)},
           {"iv", iv}}
          .dump(),
      "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["data"], json::parse(text));

  ExpectError(
      client.Post("/v1/decrypt", auth,
                  json{{"encryptedData",
                        NodeBaiduCiphertext(key, iv, text, "anotherappkey")},
                       {"iv", iv}}
                      .dump(),
                  "application/json"),
      422, "watermark_mismatch");
  // Another key: the padding or the layout fails, never a 200.
  const std::string other = crypto::Base64Encode(crypto::RandomBytes(24));
  ExpectError(client.Post("/v1/decrypt", auth,
                          json{{"encryptedData",
                                NodeBaiduCiphertext(other, iv, text, appid)},
                               {"iv", iv}}
                              .dump(),
                          "application/json"),
              422, "decrypt_failed");
}

TEST_F(PlatformsTest, AlipaySignaturesHoldBothWays) {
  const std::string appid = "2021plat000000001";
  // The mock checked the request's signature: a login works...
  EXPECT_FALSE(LoginOk(appid, "signed.1").empty());
  // ...and an app signing with another key is refused (502).
  ExpectError(Login(WrongAppId(Apps()[5]), "signed.2"), 502, "upstream_error");
  // A response whose sign does not cover its bytes is not trusted.
  ExpectError(Login(appid, "badsign.1"), 502, "upstream_error");
  // Unusual spacing and key order: the sign covers the exact bytes.
  const std::string spaced = LoginOk(appid, "spaced.1");
  ASSERT_FALSE(spaced.empty());
  httplib::Client client = ClientFor(port_);
  auto info = client.Get("/v1/session", {{"Authorization", Bearer(spaced)}});
  ASSERT_TRUE(info && info->status == 200);
  EXPECT_EQ(json::parse(info->body)["openid"],
            MockWeChatServer::OpenIdFor(appid, "spaced"));
  // An error inside the response node is an error.
  ExpectError(Login(appid, "nodeerror"), 400, "invalid_code");
  // Without open_id, user_id is the openid.
  const std::string legacy = LoginOk(appid, "legacy.1");
  auto legacy_info =
      client.Get("/v1/session", {{"Authorization", Bearer(legacy)}});
  ASSERT_TRUE(legacy_info && legacy_info->status == 200);
  const std::string openid = json::parse(legacy_info->body)["openid"];
  EXPECT_EQ(openid.rfind("2088", 0), 0u) << openid;
  EXPECT_EQ(openid.size(), 16u);
}

// Every error row, per platform, with each platform's client straight
// against the mock (so a code used twice reaches the mock twice).
TEST_F(PlatformsTest, EveryErrorRowPerPlatformClient) {
  for (const App& app : Apps()) {
    if (app.platform == Platform::kWeChat) continue;
    SCOPED_TRACE(PlatformName(app.platform));
    std::unique_ptr<WeChatClient> client =
        NewOtherPlatformClient(ConfigOf(app), 2000);
    const auto code_of = [&](const std::string& code) {
      Result<WeChatSession> result = client->Code2Session(app.appid, "", code);
      return result.ok() ? ErrorCode::kOk : result.status().code();
    };
    const std::string direct =
        std::string("direct.") + PlatformName(app.platform);
    EXPECT_EQ(code_of(direct), ErrorCode::kOk);
    // Used twice -> invalid (Kuaishou: unclassified -> upstream_error).
    const ErrorCode invalid = app.platform == Platform::kKuaishou
                                  ? ErrorCode::kUpstreamError
                                  : ErrorCode::kInvalidCode;
    EXPECT_EQ(code_of(direct), invalid);
    EXPECT_EQ(code_of("invalid"), invalid);
    EXPECT_EQ(code_of("limit"), ErrorCode::kRateLimited);
    EXPECT_EQ(code_of("http:500"), ErrorCode::kUpstreamUnavailable);

    // Busy: 503, retried once where the platform's busy answer says the
    // call was not processed (as WeChat's -1); 5xx is not retried.
    const int64_t before = MockCalls(StatsRoute(app.platform));
    EXPECT_EQ(code_of("busy"), ErrorCode::kUpstreamUnavailable);
    const bool busy_retried = app.platform == Platform::kQQ ||
                              app.platform == Platform::kDouyin ||
                              app.platform == Platform::kAlipay;
    EXPECT_EQ(MockCalls(StatsRoute(app.platform)),
              before + (busy_retried ? 2 : 1));

    // A wrong secret or key -> 502.
    std::unique_ptr<WeChatClient> wrong =
        NewOtherPlatformClient(ConfigOf(app, /*wrong=*/true), 2000);
    Result<WeChatSession> refused =
        wrong->Code2Session(WrongAppId(app), "", "direct.2");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), ErrorCode::kUpstreamError);
    // Never a secret in a message.
    EXPECT_EQ(refused.status().message().find("wrong-secret"),
              std::string::npos);

    // No answer at all (nothing listens on port 9) -> 503.
    std::unique_ptr<WeChatClient> nowhere = NewOtherPlatformClient(
        ConfigOf(app, false, "http://127.0.0.1:9"), 2000);
    Result<WeChatSession> unreachable =
        nowhere->Code2Session(app.appid, "", "direct.3");
    ASSERT_FALSE(unreachable.ok());
    EXPECT_EQ(unreachable.status().code(), ErrorCode::kUpstreamUnavailable);
  }
}

// A platform slower than wechat.timeout -> 503, for every platform.
TEST(PlatformTimeouts, ASlowPlatformIsUnavailable) {
  TempDir dir;
  Result<alipay::RsaKey> key = alipay::GenerateRsaKey();
  ASSERT_TRUE(key.ok());
  WriteFile(dir.File("app_public.pem"), key->PublicPem());
  Process mock({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
                "--delay", "1500", "--alipay-app-public-key",
                dir.File("app_public.pem")});
  std::optional<std::string> line = mock.WaitForLine("listening on", 30000);
  ASSERT_TRUE(line);
  const std::string base =
      "http://127.0.0.1:" + std::to_string(PortFromListeningLine(*line));
  for (const App& app : Apps()) {
    if (app.platform == Platform::kWeChat) continue;
    SCOPED_TRACE(PlatformName(app.platform));
    AppConfig config;
    config.appid = app.appid;
    config.platform = app.platform;
    config.api_base = base;
    config.secret = "platform-secret";
    config.private_key = key->PrivatePem();
    config.alipay_public_key = key->PublicPem();
    std::unique_ptr<WeChatClient> client = NewOtherPlatformClient(config, 300);
    Result<WeChatSession> result =
        client->Code2Session(app.appid, "", "slow.1");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable)
        << result.status().message();
  }
}

// Concurrent posts of one code share a single upstream call, on every
// platform: the mock is slow enough for the posts to overlap.
TEST(PlatformSingleFlight, ConcurrentPostsOfOneCodeShareOneCall) {
  TempDir dir;
  Result<alipay::RsaKey> key = alipay::GenerateRsaKey();
  ASSERT_TRUE(key.ok());
  WriteFile(dir.File("app_public.pem"), key->PublicPem());
  WriteFile(dir.File("app.key"), key->PrivatePem());
  Process mock({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
                "--delay", "300", "--alipay-app-public-key",
                dir.File("app_public.pem")});
  std::string mock_public;
  int mock_port = 0;
  while (true) {
    std::optional<std::string> line = mock.ReadLine(30000);
    ASSERT_TRUE(line);
    if (line->find("listening on") != std::string::npos) {
      mock_port = PortFromListeningLine(*line);
      break;
    }
    if (line->rfind("-----", 0) == 0 || !mock_public.empty()) {
      mock_public += *line + "\n";
    }
  }
  WriteFile(dir.File("alipay.pub"), mock_public);
  const std::string base = "http://127.0.0.1:" + std::to_string(mock_port);
  json apps = json::array();
  for (const App& app : Apps()) {
    json entry = {{"appid", app.appid},
                  {"platform", PlatformName(app.platform)},
                  {"api_base", base}};
    if (app.platform == Platform::kAlipay) {
      entry["private_key_file"] = dir.File("app.key");
      entry["alipay_public_key_file"] = dir.File("alipay.pub");
    } else {
      entry["secret"] = "platform-secret";
    }
    apps.push_back(entry);
  }
  WriteFile(dir.File("config.json"), json{{"listen", "127.0.0.1:0"},
                                          {"database", dir.File("sessions.db")},
                                          {"apps", apps}}
                                         .dump());
  Process server({BinaryPath(), "serve", "--config", dir.File("config.json")});
  std::optional<std::string> line = server.WaitForLine("listening on", 30000);
  ASSERT_TRUE(line) << server.Stderr();
  const int port = PortFromListeningLine(*line);

  for (const App& app : Apps()) {
    SCOPED_TRACE(PlatformName(app.platform));
    const std::string code =
        std::string("flight.") + PlatformName(app.platform);
    std::vector<std::string> ids(4);
    std::vector<std::thread> posts;
    for (size_t i = 0; i < ids.size(); ++i) {
      posts.emplace_back([&, i] {
        httplib::Client client = ClientFor(port);
        auto res = client.Post(
            "/v1/login", json{{"appid", app.appid}, {"code", code}}.dump(),
            "application/json");
        if (res && res->status == 200) {
          ids[i] = json::parse(res->body).value("session_id", "");
        }
      });
    }
    for (std::thread& post : posts) post.join();
    for (const std::string& id : ids) {
      EXPECT_FALSE(id.empty());
      EXPECT_EQ(id, ids[0]);
    }
  }
  httplib::Client client = ClientFor(mock_port);
  auto stats = client.Get("/mock/stats");
  ASSERT_TRUE(stats && stats->status == 200);
  const json counts = json::parse(stats->body);
  // One call per platform (WeChat and QQ share jscode2session).
  EXPECT_EQ(counts["jscode2session"], 2);
  for (const char* route : {"douyin", "kuaishou", "baidu", "alipay"}) {
    EXPECT_EQ(counts[route], 1) << route;
  }
  server.Signal(SIGTERM);
  server.Wait(5000);
}

// `wxsessiond dev`: one app per platform, each logging in against the
// built-in mock.
TEST(PlatformDev, DevServesOneAppPerPlatform) {
  TempDir dir;
  Process dev({"/bin/sh", "-c",
               "cd '" + dir.path() + "' && exec '" + BinaryPath() +
                   "' dev --listen 127.0.0.1:0"});
  std::optional<std::string> line = dev.WaitForLine("listening on", 30000);
  ASSERT_TRUE(line) << dev.Stderr();
  const int port = PortFromListeningLine(*line);
  httplib::Client client = ClientFor(port);
  for (const auto& [appid, platform] :
       std::vector<std::pair<std::string, std::string>>{
           {"wxdev000000000000", "wechat"},
           {"qqdev000000000000", "qq"},
           {"ttdev000000000000", "douyin"},
           {"ksdev000000000000", "kuaishou"},
           {"bddev000000000000", "baidu"},
           {"2021dev000000000", "alipay"}}) {
    SCOPED_TRACE(platform);
    auto login = client.Post("/v1/login",
                             json{{"appid", appid}, {"code", "alice.1"}}.dump(),
                             "application/json");
    ASSERT_TRUE(login);
    ASSERT_EQ(login->status, 200) << login->body;
    const std::string id = json::parse(login->body)["session_id"];
    auto info = client.Get("/v1/session", {{"Authorization", Bearer(id)}});
    ASSERT_TRUE(info && info->status == 200);
    EXPECT_EQ(json::parse(info->body)["platform"], platform);
  }
  dev.Signal(SIGTERM);
  EXPECT_EQ(dev.Wait(10000), 0);
}

// mock-wechat --alipay-key: answers are signed with the given key, whose
// public half it prints; a file without a key is a usage error.
TEST(PlatformMock, AlipayKeyFlagIsUsedAndChecked) {
  TempDir dir;
  Result<alipay::RsaKey> key = alipay::GenerateRsaKey();
  ASSERT_TRUE(key.ok());
  WriteFile(dir.File("mock.key"), key->PrivatePem());
  Process mock({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
                "--alipay-key", dir.File("mock.key")});
  std::string printed;
  while (true) {
    std::optional<std::string> line = mock.ReadLine(30000);
    ASSERT_TRUE(line) << mock.Stderr();
    if (line->find("listening on") != std::string::npos) break;
    if (line->rfind("-----", 0) == 0 || !printed.empty())
      printed += *line + "\n";
  }
  EXPECT_EQ(printed, key->PublicPem());
  mock.Signal(SIGTERM);
  mock.Wait(5000);

  WriteFile(dir.File("bad.key"), "not a key\n");
  testing_support::CommandResult bad = RunCommand(
      {BinaryPath(), "mock-wechat", "--alipay-key", dir.File("bad.key")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--alipay-key"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace wxsession
