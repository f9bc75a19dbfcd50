// Tests for the HTTP WeChatClient (src/wechat/client.cc): the errcode table,
// reading jscode2session's replies (errors, retries, redaction), and the
// calls of the access-token centre (stable_token, getuserphonenumber,
// checksession).
//
// Each test talks to a FakeWeChatServer (wechat_fakes.h) on 127.0.0.1 that
// plays a well- or ill-behaved WeChat. Nothing here sleeps to wait for
// timing; a fake that must hang is released through a promise.
#include "wxsession/wechat.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "wechat_fakes.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::AlwaysReply;
using testing_support::BusyOnceThen;
using testing_support::Describe;
using testing_support::FakeWeChatServer;
using testing_support::FinalCalls;
using testing_support::HttpClientFor;
using testing_support::kAppId;
using testing_support::kSecret;
using testing_support::kShortTimeoutMs;
using testing_support::LoopbackBase;
using testing_support::RefusingPort;
using testing_support::ReplyJson;
using testing_support::ScriptedTokens;
using testing_support::SuccessBody;

// ---------------------------------------------------------------------------
// StatusFromWeChatError: the errcode table.

TEST(StatusFromWeChatErrorTest, MapsTheDocumentedErrcodes) {
  struct Case {
    long long errcode;
    ErrorCode expected;
  };
  const Case cases[] = {
      {40029, ErrorCode::kInvalidCode},
      {40163, ErrorCode::kInvalidCode},
      {40226, ErrorCode::kLoginBlocked},
      {45011, ErrorCode::kRateLimited},
      {-1, ErrorCode::kUpstreamUnavailable},
      {40013, ErrorCode::kUpstreamError},
      {40125, ErrorCode::kUpstreamError},
      {41008, ErrorCode::kUpstreamError},
      {123456789012LL, ErrorCode::kUpstreamError},
  };
  for (const Case& c : cases) {
    const Status status =
        StatusFromWeChatError("jscode2session", c.errcode, "some text");
    EXPECT_EQ(status.code(), c.expected) << c.errcode;
    EXPECT_NE(
        status.operator_text().find("errcode " + std::to_string(c.errcode)),
        std::string::npos)
        << status.operator_text();
    EXPECT_NE(status.operator_text().find("some text"), std::string::npos);
  }
}

TEST(StatusFromWeChatErrorTest, SetsRetryAfterWhereWaitingHelps) {
  EXPECT_EQ(StatusFromWeChatError("jscode2session", 45011, "").retry_after(),
            60);
  const auto busy =
      StatusFromWeChatError("jscode2session", -1, "system error").retry_after();
  ASSERT_TRUE(busy.has_value());
  EXPECT_GE(*busy, 1);
  EXPECT_FALSE(
      StatusFromWeChatError("jscode2session", 40029, "").retry_after());
}

TEST(StatusFromWeChatErrorTest, MessageNamesTheApiAndQuotesErrmsg) {
  EXPECT_EQ(StatusFromWeChatError("jscode2session", 40029, "invalid code")
                .operator_text(),
            "WeChat jscode2session failed: errcode 40029 (invalid code)");
  EXPECT_EQ(StatusFromWeChatError("jscode2session", 40029, "").operator_text(),
            "WeChat jscode2session failed: errcode 40029");
}

TEST(StatusFromWeChatErrorTest, CleansAndBoundsErrmsg) {
  const Status status = StatusFromWeChatError("jscode2session", 40029,
                                              "bad\r\ncode\x01\x7f \xff done");
  EXPECT_EQ(status.operator_text(),
            "WeChat jscode2session failed: errcode 40029 (badcode ? done)");

  // A long errmsg is cut, and never inside a multi-byte character.
  std::string long_errmsg;
  for (int i = 0; i < 300; ++i) long_errmsg += "\xe4\xb8\xad";  // U+4E2D
  const std::string message =
      StatusFromWeChatError("jscode2session", 1, long_errmsg).operator_text();
  EXPECT_LT(message.size(), 300u);
  const size_t open = message.find('(');
  ASSERT_NE(open, std::string::npos);
  const std::string quoted = message.substr(open + 1);
  // Everything quoted is whole 3-byte characters, then "...)".
  ASSERT_GE(quoted.size(), 4u);
  EXPECT_EQ(quoted.substr(quoted.size() - 4), "...)");
  EXPECT_EQ((quoted.size() - 4) % 3, 0u);
}

// ---------------------------------------------------------------------------
// jscode2session's replies, from fakes that misbehave.

TEST(WeChatHttpTest, Non200ReplyIsUpstreamError) {
  FakeWeChatServer fake([](const httplib::Request&, httplib::Response& res) {
    res.status = 502;
    ReplyJson(res, SuccessBody());
  });
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError);
  EXPECT_NE(result.status().operator_text().find("502"), std::string::npos);
  EXPECT_EQ(FinalCalls(client, fake), 1);
}

TEST(WeChatHttpTest, NonJsonReplyIsUpstreamError) {
  FakeWeChatServer fake([](const httplib::Request&, httplib::Response& res) {
    res.set_content("<html>gateway</html>", "text/html");
  });
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError);
}

TEST(WeChatHttpTest, ReplyWithoutOpenIdOrSessionKeyIsUpstreamError) {
  const json bodies[] = {
      json{{"openid", "o1"}},
      json{{"session_key", "k"}},
      json::object(),
      json{{"errcode", 0}, {"errmsg", "ok"}},
      json{{"openid", 1}, {"session_key", "k"}},
      json{{"openid", "o1"}, {"session_key", ""}},
      json{{"errcode", "40029"}, {"openid", "o1"}, {"session_key", "k"}},
      json::array({1, 2}),
  };
  for (const json& body : bodies) {
    FakeWeChatServer fake(AlwaysReply(body));
    auto client = HttpClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << body.dump();
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError) << body.dump();
    EXPECT_EQ(FinalCalls(client, fake), 1) << body.dump();
  }
}

TEST(WeChatHttpTest, ErrcodeZeroWithFieldsIsSuccess) {
  json body = SuccessBody("o-zero");
  body["errcode"] = 0;
  body["errmsg"] = "ok";
  FakeWeChatServer fake(AlwaysReply(body));
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_TRUE(result.ok()) << Describe(result.status());
  EXPECT_EQ(result->openid, "o-zero");
  EXPECT_EQ(result->session_key, "c2Vzc2lvbmtleTEyMzQ1Ng==");
}

TEST(WeChatHttpTest, UnionIdOnlyWhenWeChatSendsOne) {
  {
    json body = SuccessBody();
    body["unionid"] = "u-union";
    FakeWeChatServer fake(AlwaysReply(body));
    auto client = HttpClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_EQ(result->unionid, std::optional<std::string>("u-union"));
  }
  {
    FakeWeChatServer fake(AlwaysReply(SuccessBody()));
    auto client = HttpClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_FALSE(result->unionid.has_value());
  }
}

TEST(WeChatHttpTest, BusyOnceThenSuccessRetriesExactlyOnce) {
  FakeWeChatServer fake(BusyOnceThen(SuccessBody("o-second-try")));
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_TRUE(result.ok()) << Describe(result.status());
  EXPECT_EQ(result->openid, "o-second-try");
  EXPECT_EQ(FinalCalls(client, fake), 2);
}

TEST(WeChatHttpTest, BusyTwiceIsUpstreamUnavailableAfterTwoCalls) {
  FakeWeChatServer fake(AlwaysReply(json{{"errcode", -1}, {"errmsg", "busy"}}));
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(result.status().retry_after().has_value());
  EXPECT_EQ(FinalCalls(client, fake), 2);
}

TEST(WeChatHttpTest, EachErrcodeMapsAndIsNotRetried) {
  struct Case {
    int errcode;
    ErrorCode expected;
  };
  const Case cases[] = {
      {40029, ErrorCode::kInvalidCode},   {40163, ErrorCode::kInvalidCode},
      {40226, ErrorCode::kLoginBlocked},  {45011, ErrorCode::kRateLimited},
      {40013, ErrorCode::kUpstreamError}, {40125, ErrorCode::kUpstreamError},
      {87009, ErrorCode::kUpstreamError},
  };
  for (const Case& c : cases) {
    FakeWeChatServer fake(AlwaysReply(
        json{{"errcode", c.errcode}, {"errmsg", "text for the operator"}}));
    auto client = HttpClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << c.errcode;
    EXPECT_EQ(result.status().code(), c.expected) << c.errcode;
    EXPECT_EQ(result.status().operator_text(),
              "WeChat jscode2session failed: errcode " +
                  std::to_string(c.errcode) + " (text for the operator)");
    if (c.errcode == 45011) {
      EXPECT_EQ(result.status().retry_after(), 60);
    }
    EXPECT_EQ(FinalCalls(client, fake), 1) << c.errcode;
  }
}

TEST(WeChatHttpTest, SecretAndCodeNeverAppearInMessages) {
  const std::string code = "CoDe-9f8e7d6c5b4a";
  const std::string both = std::string(kSecret) + " " + code;
  std::vector<Status> failures;
  const auto collect = [&](WeChatClient& client) {
    const auto result = client.Code2Session(kAppId, kSecret, code);
    ASSERT_FALSE(result.ok());
    failures.push_back(result.status());
  };

  const json echoing[] = {
      // An errmsg that echoes the request, for each mapped errcode.
      json{{"errcode", 40029}, {"errmsg", "bad " + both}},
      json{{"errcode", 40226}, {"errmsg", both}},
      json{{"errcode", 45011}, {"errmsg", both}},
      json{{"errcode", -1}, {"errmsg", both}},
      json{{"errcode", 40125}, {"errmsg", "invalid appsecret " + both}},
      json{{"openid", both}},
  };
  for (const json& body : echoing) {
    FakeWeChatServer fake(AlwaysReply(body));
    auto client = HttpClientFor(fake.base());
    collect(*client);
  }
  {
    FakeWeChatServer fake([&](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("internal error for " + both, "text/plain");
    });
    auto client = HttpClientFor(fake.base());
    collect(*client);
  }
  {
    FakeWeChatServer fake([&](const httplib::Request&, httplib::Response& res) {
      res.set_content("not json " + both, "text/plain");
    });
    auto client = HttpClientFor(fake.base());
    collect(*client);
  }
  {
    RefusingPort refusing;
    auto client = HttpClientFor(LoopbackBase(refusing.port()));
    collect(*client);
  }
  {
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    FakeWeChatServer fake([released](const httplib::Request&,
                                     httplib::Response&) { released.wait(); });
    auto client = HttpClientFor(fake.base(), kShortTimeoutMs);
    collect(*client);
    release.set_value();
  }
  {
    auto client = HttpClientFor("gopher://nowhere");
    collect(*client);
  }

  ASSERT_EQ(failures.size(), 11u);
  for (const Status& status : failures) {
    EXPECT_EQ(status.operator_text().find(kSecret), std::string::npos)
        << status.operator_text();
    EXPECT_EQ(status.operator_text().find(code), std::string::npos)
        << status.operator_text();
    EXPECT_EQ(status.operator_text().find("js_code="), std::string::npos)
        << status.operator_text();
  }
}

// ---------------------------------------------------------------------------
// The calls of the access-token centre: stable_token, getuserphonenumber,
// checksession.

// HMAC-SHA256 through OpenSSL's one-shot API, independent of crypto.cc.
std::string OpenSslHmacSha256Hex(const std::string& key,
                                 const std::string& message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
       digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0F]);
  }
  return hex;
}

json PhoneInfoBody(json country_code = "86") {
  return json{
      {"errcode", 0},
      {"errmsg", "ok"},
      {"phone_info",
       {{"phoneNumber", "13800138000"},
        {"purePhoneNumber", "13800138000"},
        {"countryCode", country_code},
        {"watermark", {{"timestamp", 1700000000}, {"appid", kAppId}}}}}};
}

TEST(CheckSessionSignatureTest,
     IsHexHmacSha256OfTheEmptyStringKeyedByTheKeyText) {
  // Computed with: printf '' | openssl dgst -sha256 -hmac
  // 'c2Vzc2lvbmtleTEyMzQ1Ng=='
  EXPECT_EQ(CheckSessionSignature("c2Vzc2lvbmtleTEyMzQ1Ng=="),
            "ccb2e9df14ac8fbee1618807b7ef67ba20b9454a9dd45b9028948933c30834bc");
  for (const std::string key :
       {"tiihtNczf5v6AKRyjwEUhQ==", "AAECAwQFBgcICQoLDA0ODw==", "x"}) {
    EXPECT_EQ(CheckSessionSignature(key), OpenSslHmacSha256Hex(key, ""));
    // The key is the base64 text, not the decoded bytes, and the message
    // is empty, not the openid.
    EXPECT_NE(CheckSessionSignature(key),
              OpenSslHmacSha256Hex(crypto::Base64Decode(key).value_or(""), ""));
  }
}

TEST(StableTokenTest, PostsTheDocumentedBodyAndReadsTheToken) {
  std::mutex mutex;
  std::vector<json> bodies;
  std::string method;
  std::string content_type;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        method = req.method;
        content_type = req.get_header_value("Content-Type");
        bodies.push_back(json::parse(req.body, nullptr, false));
        ReplyJson(res, json{{"access_token", "ACCESS_TOKEN_1"},
                            {"expires_in", 7200}});
      },
      "/cgi-bin/stable_token");
  auto client = HttpClientFor(fake.base());
  const auto plain = client->StableToken(kAppId, kSecret, false);
  ASSERT_TRUE(plain.ok()) << Describe(plain.status());
  EXPECT_EQ(plain->access_token, "ACCESS_TOKEN_1");
  EXPECT_EQ(plain->expires_in, 7200);
  ASSERT_TRUE(client->StableToken(kAppId, kSecret, true).ok());

  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(method, "POST");
  EXPECT_EQ(content_type, "application/json");
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(bodies[0], (json{{"grant_type", "client_credential"},
                             {"appid", kAppId},
                             {"secret", kSecret},
                             {"force_refresh", false}}));
  EXPECT_EQ(bodies[1]["force_refresh"], true);
}

TEST(StableTokenTest, UnusableRepliesAreUpstreamErrors) {
  const json bodies[] = {
      json{{"expires_in", 7200}},
      json{{"access_token", ""}, {"expires_in", 7200}},
      json{{"access_token", "T"}},
      json{{"access_token", "T"}, {"expires_in", 0}},
      json{{"access_token", "T"}, {"expires_in", -5}},
      json{{"access_token", "T"}, {"expires_in", "7200"}},
      json{{"access_token", std::string(5000, 'T')}, {"expires_in", 7200}},
      json{{"errcode", 40001}, {"errmsg", "invalid credential"}},
      json{{"errcode", 40164}, {"errmsg", "invalid ip, not in whitelist"}},
  };
  for (const json& body : bodies) {
    FakeWeChatServer fake(AlwaysReply(body), "/cgi-bin/stable_token");
    auto client = HttpClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_FALSE(result.ok()) << body.dump();
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError) << body.dump();
    EXPECT_NE(result.status().operator_text().find("stable_token"),
              std::string::npos);
    EXPECT_EQ(FinalCalls(client, fake), 1) << body.dump();
  }
}

TEST(StableTokenTest, BusyIsRetriedOnceAndQuotaIsRateLimited) {
  {
    FakeWeChatServer fake(
        BusyOnceThen(json{{"access_token", "T2"}, {"expires_in", 7000}}),
        "/cgi-bin/stable_token");
    auto client = HttpClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_EQ(result->access_token, "T2");
    EXPECT_EQ(FinalCalls(client, fake), 2);
  }
  {
    FakeWeChatServer fake(
        AlwaysReply(json{{"errcode", 45011}, {"errmsg", "quota"}}),
        "/cgi-bin/stable_token");
    auto client = HttpClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kRateLimited);
  }
}

TEST(StableTokenTest, SecretNeverAppearsInMessages) {
  FakeWeChatServer fake(
      AlwaysReply(json{{"errcode", 40125},
                       {"errmsg", std::string("bad secret ") + kSecret}}),
      "/cgi-bin/stable_token");
  auto client = HttpClientFor(fake.base());
  const auto result = client->StableToken(kAppId, kSecret, false);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().operator_text().find(kSecret), std::string::npos)
      << result.status().operator_text();
  EXPECT_NE(result.status().operator_text().find("[secret]"),
            std::string::npos);
}

TEST(PhoneNumberTest, SendsCodeAndOpenIdWithTheTokenAndReadsPhoneInfo) {
  std::mutex mutex;
  json body;
  std::string token;
  std::string method;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        method = req.method;
        body = json::parse(req.body, nullptr, false);
        token = req.get_param_value("access_token");
        ReplyJson(res, PhoneInfoBody());
      },
      "/wxa/business/getuserphonenumber");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("tok+en/1=");
  const auto phone =
      client->GetPhoneNumber(tokens, kAppId, "phone-code-1", "o-openid");
  ASSERT_TRUE(phone.ok()) << Describe(phone.status());
  EXPECT_EQ(phone->phone_number, "13800138000");
  EXPECT_EQ(phone->pure_phone_number, "13800138000");
  EXPECT_EQ(phone->country_code, "86");
  EXPECT_EQ(phone->watermark_appid, kAppId);
  EXPECT_EQ(phone->watermark_timestamp, 1700000000);

  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(method, "POST");
  EXPECT_EQ(token, "tok+en/1=");  // percent-encoded on the way, intact here
  EXPECT_EQ(body, (json{{"code", "phone-code-1"}, {"openid", "o-openid"}}));
  EXPECT_EQ(tokens.gets(), 1);
  EXPECT_EQ(tokens.replacements(), 0);
  EXPECT_EQ(tokens.appids(), std::vector<std::string>{kAppId});
}

TEST(PhoneNumberTest, NumericCountryCodeBecomesText) {
  FakeWeChatServer fake(AlwaysReply(PhoneInfoBody(86)),
                        "/wxa/business/getuserphonenumber");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("t");
  const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
  ASSERT_TRUE(phone.ok()) << Describe(phone.status());
  EXPECT_EQ(phone->country_code, "86");
}

TEST(PhoneNumberTest, ReplyWithoutPhoneInfoIsUpstreamError) {
  json no_number = PhoneInfoBody();
  no_number["phone_info"].erase("phoneNumber");
  json no_country = PhoneInfoBody();
  no_country["phone_info"].erase("countryCode");
  json float_country = PhoneInfoBody(86.5);
  const json bodies[] = {json{{"errcode", 0}, {"errmsg", "ok"}},
                         json{{"phone_info", "13800138000"}}, no_number,
                         no_country, float_country};
  for (const json& body : bodies) {
    FakeWeChatServer fake(AlwaysReply(body),
                          "/wxa/business/getuserphonenumber");
    auto client = HttpClientFor(fake.base());
    ScriptedTokens tokens("t");
    const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
    ASSERT_FALSE(phone.ok()) << body.dump();
    EXPECT_EQ(phone.status().code(), ErrorCode::kUpstreamError) << body.dump();
  }
}

TEST(PhoneNumberTest, ErrcodesMapAsInLogin) {
  struct Case {
    int errcode;
    ErrorCode expected;
    int calls;  // -1 is retried once
  };
  const Case cases[] = {
      {40029, ErrorCode::kInvalidCode, 1},
      {45011, ErrorCode::kRateLimited, 1},
      {-1, ErrorCode::kUpstreamUnavailable, 2},
      {40013, ErrorCode::kUpstreamError, 1},
      {47001, ErrorCode::kUpstreamError, 1},
  };
  for (const Case& c : cases) {
    FakeWeChatServer fake(
        AlwaysReply(json{{"errcode", c.errcode}, {"errmsg", "mock"}}),
        "/wxa/business/getuserphonenumber");
    auto client = HttpClientFor(fake.base());
    ScriptedTokens tokens("t");
    const auto phone =
        client->GetPhoneNumber(tokens, kAppId, "phone-code-9", "o");
    ASSERT_FALSE(phone.ok()) << c.errcode;
    EXPECT_EQ(phone.status().code(), c.expected) << c.errcode;
    EXPECT_EQ(phone.status().operator_text(),
              "WeChat getuserphonenumber failed: errcode " +
                  std::to_string(c.errcode) + " (mock)");
    EXPECT_EQ(FinalCalls(client, fake), c.calls) << c.errcode;
    EXPECT_EQ(tokens.replacements(), 0) << c.errcode;
  }
}

TEST(PhoneNumberTest, ARejectedTokenIsReplacedOnceAndTheCallRepeated) {
  for (const int rejection : {40001, 42001}) {
    FakeWeChatServer fake(
        [rejection](const httplib::Request& req, httplib::Response& res) {
          if (req.get_param_value("access_token") == "fresh") {
            ReplyJson(res, PhoneInfoBody());
          } else {
            ReplyJson(
                res,
                json{{"errcode", rejection},
                     {"errmsg", "token " + req.get_param_value("access_token") +
                                    " is no good"}});
          }
        },
        "/wxa/business/getuserphonenumber");
    auto client = HttpClientFor(fake.base());
    ScriptedTokens tokens("stale", "fresh");
    const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
    ASSERT_TRUE(phone.ok()) << rejection << " " << Describe(phone.status());
    EXPECT_EQ(tokens.replacements(), 1);
    EXPECT_EQ(tokens.rejected(), std::vector<std::string>{"stale"});
    EXPECT_EQ(FinalCalls(client, fake), 2) << rejection;
  }
}

TEST(PhoneNumberTest, ASecondRejectionIsAnUpstreamErrorWithoutAThirdCall) {
  FakeWeChatServer fake(
      [](const httplib::Request& req, httplib::Response& res) {
        ReplyJson(res,
                  json{{"errcode", 40001},
                       {"errmsg", "invalid credential " +
                                      req.get_param_value("access_token")}});
      },
      "/wxa/business/getuserphonenumber");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("tokenA-secretish", "tokenB-secretish");
  const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
  ASSERT_FALSE(phone.ok());
  EXPECT_EQ(phone.status().code(), ErrorCode::kUpstreamError);
  // The token is a credential: never quoted back.
  EXPECT_EQ(phone.status().operator_text().find("secretish"), std::string::npos)
      << phone.status().operator_text();
  EXPECT_NE(phone.status().operator_text().find("[access_token]"),
            std::string::npos);
  EXPECT_EQ(tokens.replacements(), 1);
  EXPECT_EQ(FinalCalls(client, fake), 2);
}

TEST(PhoneNumberTest, ATokenSourceErrorIsPassedOnWithoutACall) {
  FakeWeChatServer fake(AlwaysReply(PhoneInfoBody()),
                        "/wxa/business/getuserphonenumber");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("t");
  tokens.FailWith(Status(ErrorCode::kStoreUnavailable, "disk full"));
  const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
  ASSERT_FALSE(phone.ok());
  EXPECT_EQ(phone.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_EQ(FinalCalls(client, fake), 0);
}

TEST(CheckSessionKeyTest, SendsTheSignedQueryAndReadsTheVerdict) {
  const std::string session_key = "c2Vzc2lvbmtleTEyMzQ1Ng==";
  std::mutex mutex;
  httplib::Params params;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        params = req.params;
        if (req.get_param_value("openid") == "o-stale") {
          ReplyJson(res,
                    json{{"errcode", 87009}, {"errmsg", "invalid signature"}});
        } else {
          ReplyJson(res, json{{"errcode", 0}, {"errmsg", "ok"}});
        }
      },
      "/wxa/checksession");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("the-token");
  const auto valid =
      client->CheckSessionKey(tokens, kAppId, "o-1", session_key);
  ASSERT_TRUE(valid.ok()) << Describe(valid.status());
  EXPECT_TRUE(valid.value());
  {
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_EQ(params.size(), 4u);
    EXPECT_EQ(params.find("access_token")->second, "the-token");
    EXPECT_EQ(params.find("openid")->second, "o-1");
    EXPECT_EQ(params.find("sig_method")->second, "hmac_sha256");
    EXPECT_EQ(params.find("signature")->second,
              OpenSslHmacSha256Hex(session_key, ""));
  }
  const auto stale =
      client->CheckSessionKey(tokens, kAppId, "o-stale", session_key);
  ASSERT_TRUE(stale.ok()) << Describe(stale.status());
  EXPECT_FALSE(stale.value());
}

TEST(CheckSessionKeyTest, OtherErrcodesAreErrorsAndRejectedTokensAreReplaced) {
  {
    FakeWeChatServer fake(
        AlwaysReply(json{{"errcode", 40003}, {"errmsg", "openid"}}),
        "/wxa/checksession");
    auto client = HttpClientFor(fake.base());
    ScriptedTokens tokens("t");
    const auto result = client->CheckSessionKey(tokens, kAppId, "o", "k");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError);
  }
  {
    FakeWeChatServer fake(
        [](const httplib::Request& req, httplib::Response& res) {
          if (req.get_param_value("access_token") == "fresh") {
            ReplyJson(res, json{{"errcode", 0}, {"errmsg", "ok"}});
          } else {
            ReplyJson(res, json{{"errcode", 42001}, {"errmsg", "expired"}});
          }
        },
        "/wxa/checksession");
    auto client = HttpClientFor(fake.base());
    ScriptedTokens tokens("old", "fresh");
    const auto result = client->CheckSessionKey(tokens, kAppId, "o", "k");
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_TRUE(result.value());
    EXPECT_EQ(tokens.replacements(), 1);
  }
}

TEST(CheckSessionKeyTest, NeitherKeyNorSignatureNorTokenReachesMessages) {
  const std::string session_key = "c2Vzc2lvbmtleTEyMzQ1Ng==";
  const std::string signature = CheckSessionSignature(session_key);
  FakeWeChatServer fake(
      AlwaysReply(json{
          {"errcode", 40013},
          {"errmsg", "echo " + session_key + " " + signature + " tok-SECRET"}}),
      "/wxa/checksession");
  auto client = HttpClientFor(fake.base());
  ScriptedTokens tokens("tok-SECRET");
  const auto result = client->CheckSessionKey(tokens, kAppId, "o", session_key);
  ASSERT_FALSE(result.ok());
  const std::string& message = result.status().operator_text();
  EXPECT_EQ(message.find(session_key), std::string::npos) << message;
  EXPECT_EQ(message.find(signature), std::string::npos) << message;
  EXPECT_EQ(message.find("tok-SECRET"), std::string::npos) << message;
}

}  // namespace
}  // namespace wxsession
