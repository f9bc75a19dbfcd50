// Tests for mock-wechat's server (src/mock/wechat.cc): its jscode2session
// users and error codes, its own /mock routes, its lifecycle, and its token
// routes, all through the real HTTP WeChatClient on 127.0.0.1.
#include "mock/wechat.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "wechat_fakes.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"
#include "wxsession/wechat.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::Describe;
using testing_support::HttpClientFor;
using testing_support::kAppId;
using testing_support::kPatientTimeoutMs;
using testing_support::kSecret;
using testing_support::LoopbackBase;
using testing_support::ScriptedTokens;

class MockWeChatTest : public ::testing::Test {
 protected:
  void SetUp() override { StartMock(MockWeChatOptions{}); }

  void StartMock(MockWeChatOptions options) {
    mock_ = std::make_unique<MockWeChatServer>(options);
    const Result<int> port = mock_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << Describe(port.status());
    port_ = port.value();
    serve_thread_ = std::thread([this] { mock_->Serve(); });
    client_ = HttpClientFor(LoopbackBase(port_));
  }

  void TearDown() override { StopMock(); }

  void StopMock() {
    client_.reset();  // closes kept-alive connections first
    if (mock_) mock_->Stop();
    if (serve_thread_.joinable()) serve_thread_.join();
    mock_.reset();
  }

  Result<WeChatSession> Login(const std::string& code,
                              const std::string& appid = kAppId) {
    return client_->Code2Session(appid, kSecret, code);
  }

  // A plain HTTP client for the mock's own routes.
  httplib::Client Raw() {
    httplib::Client raw("127.0.0.1", port_);
    raw.set_read_timeout(std::chrono::milliseconds(kPatientTimeoutMs));
    return raw;
  }

  std::unique_ptr<MockWeChatServer> mock_;
  std::thread serve_thread_;
  int port_ = -1;
  std::unique_ptr<WeChatClient> client_;
};

TEST_F(MockWeChatTest, ExchangesACodeForOpenIdAndSessionKey) {
  const Result<WeChatSession> session = Login("alice.1");
  ASSERT_TRUE(session.ok()) << Describe(session.status());
  EXPECT_EQ(session->openid, MockWeChatServer::OpenIdFor(kAppId, "alice"));
  EXPECT_EQ(session->openid.size(), 28u);
  EXPECT_EQ(session->openid[0], 'o');
  const auto key = crypto::Base64Decode(session->session_key);
  ASSERT_TRUE(key.has_value()) << session->session_key;
  EXPECT_EQ(key->size(), 16u);
  EXPECT_FALSE(session->unionid.has_value());
}

TEST_F(MockWeChatTest, OpenIdIsStablePerUserAndAppWhileKeysAreFresh) {
  const auto first = Login("alice.1");
  const auto second = Login("alice.2");
  const auto bob = Login("bob.1");
  const auto other_app = Login("alice.3", "wx_other_app");
  ASSERT_TRUE(first.ok() && second.ok() && bob.ok() && other_app.ok());
  EXPECT_EQ(first->openid, second->openid);
  EXPECT_NE(first->session_key, second->session_key);
  EXPECT_NE(first->openid, bob->openid);
  EXPECT_NE(first->openid, other_app->openid);
  EXPECT_EQ(other_app->openid,
            MockWeChatServer::OpenIdFor("wx_other_app", "alice"));
}

TEST_F(MockWeChatTest, UnionUsersGetAUnionIdSharedAcrossApps) {
  const auto first = Login("union_carol.1");
  const auto other_app = Login("union_carol.2", "wx_other_app");
  ASSERT_TRUE(first.ok() && other_app.ok());
  ASSERT_TRUE(first->unionid.has_value());
  EXPECT_EQ(first->unionid->size(), 28u);
  EXPECT_EQ((*first->unionid)[0], 'u');
  EXPECT_EQ(first->unionid, other_app->unionid);
  EXPECT_NE(first->openid, other_app->openid);

  const auto plain = Login("dave.1");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->unionid.has_value());
}

TEST_F(MockWeChatTest, ACodeUsedTwiceIsAnInvalidCode) {
  ASSERT_TRUE(Login("alice.1").ok());
  const auto again = Login("alice.1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kInvalidCode);
  EXPECT_NE(again.status().operator_text().find("40163"), std::string::npos)
      << again.status().operator_text();
}

TEST_F(MockWeChatTest, SpecialCodesMapOntoTheErrorTable) {
  const auto invalid = Login("invalid");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.status().code(), ErrorCode::kInvalidCode);
  EXPECT_NE(invalid.status().operator_text().find("40029"), std::string::npos);

  const auto blocked = Login("blocked");
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), ErrorCode::kLoginBlocked);

  const auto limit = Login("limit");
  ASSERT_FALSE(limit.ok());
  EXPECT_EQ(limit.status().code(), ErrorCode::kRateLimited);
  EXPECT_EQ(limit.status().retry_after(), 60);

  const auto busy = Login("busy");
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(busy.status().retry_after().has_value());
}

TEST_F(MockWeChatTest, FailedExchangesDoNotSpendTheCode) {
  for (int i = 0; i < 2; ++i) {
    const auto invalid = Login("invalid");
    ASSERT_FALSE(invalid.ok());
    EXPECT_NE(invalid.status().operator_text().find("40029"), std::string::npos)
        << "attempt " << i << ": " << invalid.status().operator_text();
  }
}

TEST_F(MockWeChatTest, RejectsMissingParametersLikeWeChat) {
  struct Case {
    std::string query;
    int errcode;
  };
  const Case cases[] = {
      {"secret=s&js_code=c&grant_type=authorization_code", 41002},
      {"appid=a&js_code=c&grant_type=authorization_code", 41004},
      {"appid=a&secret=s&grant_type=authorization_code", 41008},
      {"appid=a&secret=s&js_code=c", 40002},
      {"appid=a&secret=s&js_code=c&grant_type=client_credential", 40002},
  };
  httplib::Client raw = Raw();
  for (const Case& c : cases) {
    const auto reply = raw.Get("/sns/jscode2session?" + c.query);
    ASSERT_TRUE(reply) << c.query;
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->get_header_value("Content-Type"), "application/json");
    const json body = json::parse(reply->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << reply->body;
    EXPECT_EQ(body.value("errcode", 0), c.errcode) << c.query;
    EXPECT_TRUE(body.contains("errmsg"));
  }
}

TEST_F(MockWeChatTest, SessionKeyRouteGivesTheNewestKey) {
  const auto first = Login("erin.1");
  const auto second = Login("erin.2");
  ASSERT_TRUE(first.ok() && second.ok());

  httplib::Client raw = Raw();
  httplib::Params params{{"appid", kAppId}, {"openid", second->openid}};
  const auto reply = raw.Get("/mock/session_key", params, httplib::Headers{});
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->status, 200) << reply->body;
  const json body = json::parse(reply->body, nullptr, false);
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body.value("session_key", ""), second->session_key);

  httplib::Params unknown{{"appid", kAppId}, {"openid", "o-nobody"}};
  const auto missing =
      raw.Get("/mock/session_key", unknown, httplib::Headers{});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(MockWeChatTest, ResetForgetsUsedCodes) {
  ASSERT_TRUE(Login("frank.1").ok());
  ASSERT_FALSE(Login("frank.1").ok());

  httplib::Client raw = Raw();
  const auto reply = raw.Post("/mock/reset");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_TRUE(Login("frank.1").ok());
}

TEST_F(MockWeChatTest, DelayedMockStillAnswers) {
  StopMock();
  MockWeChatOptions options;
  options.delay_ms = 50;  // ms; short, only to run the delayed path
  StartMock(options);
  const auto session = Login("gina.1");
  ASSERT_TRUE(session.ok()) << Describe(session.status());
  EXPECT_EQ(session->openid, MockWeChatServer::OpenIdFor(kAppId, "gina"));
}

TEST(MockWeChatLifecycleTest, StopBeforeServeDoesNotHang) {
  MockWeChatServer mock;
  ASSERT_TRUE(mock.Bind("127.0.0.1", 0).ok());
  mock.Stop();
  mock.Serve();  // returns at once instead of serving forever
}

TEST(MockWeChatLifecycleTest, StopRightAfterStartingServeDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    MockWeChatServer mock;
    ASSERT_TRUE(mock.Bind("127.0.0.1", 0).ok());
    std::thread serve([&mock] { mock.Serve(); });
    mock.Stop();
    serve.join();
  }
}

// mock-wechat's token routes, through the real client.
class MockWeChatTokenTest : public MockWeChatTest {
 protected:
  json Stats() {
    const auto reply = Raw().Get("/mock/stats");
    EXPECT_TRUE(reply && reply->status == 200);
    return reply ? json::parse(reply->body, nullptr, false) : json();
  }

  // An AccessTokenSource backed by the mock's stable_token.
  class MockTokens : public AccessTokenSource {
   public:
    explicit MockTokens(WeChatClient& client) : client_(client) {}
    Result<std::string> AccessTokenFor(const std::string& appid) override {
      auto token = client_.StableToken(appid, kSecret, false);
      if (!token.ok()) return token.status();
      return token->access_token;
    }
    Result<std::string> ReplaceRejectedAccessToken(
        const std::string& appid, const std::string&) override {
      ++replacements;
      auto token = client_.StableToken(appid, kSecret, true);
      if (!token.ok()) return token.status();
      return token->access_token;
    }
    std::atomic<int> replacements{0};

   private:
    WeChatClient& client_;
  };
};

TEST_F(MockWeChatTokenTest, StableTokenIsStableUntilForced) {
  const auto first = client_->StableToken(kAppId, kSecret, false);
  const auto second = client_->StableToken(kAppId, kSecret, false);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->access_token, second->access_token);
  EXPECT_GT(first->expires_in, 7000);
  EXPECT_LE(first->expires_in, 7200);
  const auto other_app = client_->StableToken("wx_other_app", kSecret, false);
  ASSERT_TRUE(other_app.ok());
  EXPECT_NE(other_app->access_token, first->access_token);

  const auto forced = client_->StableToken(kAppId, kSecret, true);
  ASSERT_TRUE(forced.ok());
  EXPECT_NE(forced->access_token, first->access_token);
  const json stats = Stats();
  EXPECT_EQ(stats["stable_token"], 4);
  EXPECT_EQ(stats["stable_token_forced"], 1);

  // The forced refresh killed the old token: a call with it gets 40001,
  // the client asks for a replacement and succeeds with it.
  ScriptedTokens tokens(first->access_token, forced->access_token);
  const auto phone = client_->GetPhoneNumber(tokens, kAppId, "p.1", "");
  ASSERT_TRUE(phone.ok()) << Describe(phone.status());
  EXPECT_EQ(tokens.replacements(), 1);
}

TEST_F(MockWeChatTokenTest, StableTokenValidatesLikeWeChat) {
  struct Case {
    json body;
    int errcode;
  };
  const Case cases[] = {
      {json{{"appid", "a"}, {"secret", "s"}}, 40002},
      {json{{"grant_type", "client_credential"}, {"secret", "s"}}, 41002},
      {json{{"grant_type", "client_credential"}, {"appid", "a"}}, 41004},
      {json{{"grant_type", "client_credential"},
            {"appid", "a"},
            {"secret", "s"},
            {"force_refresh", "yes"}},
       47001},
      {json{{"grant_type", "client_credential"},
            {"appid", "a"},
            {"secret", "errcode:40013"}},
       40013},
      {json::array(), 47001},
  };
  for (const Case& c : cases) {
    const auto reply =
        Raw().Post("/cgi-bin/stable_token", c.body.dump(), "application/json");
    ASSERT_TRUE(reply);
    const json body = json::parse(reply->body, nullptr, false);
    EXPECT_EQ(body.value("errcode", 0), c.errcode) << c.body.dump();
  }
}

TEST_F(MockWeChatTokenTest, PhoneCodesProduceEachAnswer) {
  MockTokens tokens(*client_);
  const auto cn = client_->GetPhoneNumber(tokens, kAppId, "cn.1", "o");
  ASSERT_TRUE(cn.ok()) << Describe(cn.status());
  EXPECT_EQ(cn->pure_phone_number, "13800138000");
  EXPECT_EQ(cn->country_code, "86");
  EXPECT_EQ(cn->watermark_appid, kAppId);

  const auto us = client_->GetPhoneNumber(tokens, kAppId, "us.1", "o");
  ASSERT_TRUE(us.ok());
  EXPECT_EQ(us->phone_number, "+1 2025550123");
  EXPECT_EQ(us->country_code, "1");

  const auto numeric =
      client_->GetPhoneNumber(tokens, kAppId, "numeric.1", "o");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->country_code, "86");

  const auto other = client_->GetPhoneNumber(tokens, kAppId, "otherapp.1", "o");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->watermark_appid, kAppId);

  const auto reused = client_->GetPhoneNumber(tokens, kAppId, "cn.1", "o");
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(reused.status().code(), ErrorCode::kInvalidCode);

  EXPECT_EQ(
      client_->GetPhoneNumber(tokens, kAppId, "invalid", "o").status().code(),
      ErrorCode::kInvalidCode);
  EXPECT_EQ(
      client_->GetPhoneNumber(tokens, kAppId, "limit", "o").status().code(),
      ErrorCode::kRateLimited);
  EXPECT_EQ(
      client_->GetPhoneNumber(tokens, kAppId, "busy", "o").status().code(),
      ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(client_->GetPhoneNumber(tokens, kAppId, "errcode:40013", "o")
                .status()
                .code(),
            ErrorCode::kUpstreamError);
  EXPECT_EQ(tokens.replacements, 0);
}

TEST_F(MockWeChatTokenTest, TokenErrorsOnCallsThatUseOne) {
  httplib::Client raw = Raw();
  const auto expect_errcode = [&](const std::string& path, int errcode) {
    const auto reply = raw.Post(path, R"({"code":"x.1"})", "application/json");
    ASSERT_TRUE(reply) << path;
    const json body = json::parse(reply->body, nullptr, false);
    EXPECT_EQ(body.value("errcode", 0), errcode) << path << " " << reply->body;
  };
  expect_errcode("/wxa/business/getuserphonenumber", 41001);
  expect_errcode("/wxa/business/getuserphonenumber?access_token=never-issued",
                 40001);
  const auto token = client_->StableToken(kAppId, kSecret, false);
  ASSERT_TRUE(token.ok());
  ASSERT_TRUE(raw.Post("/mock/invalidate_token?appid=" + std::string(kAppId)));
  expect_errcode(
      "/wxa/business/getuserphonenumber?access_token=" + token->access_token,
      40001);
}

TEST_F(MockWeChatTokenTest, CheckSessionAcceptsOnlyTheNewestKey) {
  const auto first = Login("ivan.1");
  ASSERT_TRUE(first.ok());
  MockTokens tokens(*client_);
  const auto valid = client_->CheckSessionKey(tokens, kAppId, first->openid,
                                              first->session_key);
  ASSERT_TRUE(valid.ok()) << Describe(valid.status());
  EXPECT_TRUE(valid.value());

  const auto second = Login("ivan.2");
  ASSERT_TRUE(second.ok());
  const auto stale = client_->CheckSessionKey(tokens, kAppId, first->openid,
                                              first->session_key);
  ASSERT_TRUE(stale.ok()) << Describe(stale.status());
  EXPECT_FALSE(stale.value());
  const auto fresh = client_->CheckSessionKey(tokens, kAppId, second->openid,
                                              second->session_key);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh.value());

  const auto unknown =
      client_->CheckSessionKey(tokens, kAppId, "o-nobody", first->session_key);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kUpstreamError);
}

TEST_F(MockWeChatTokenTest, FailNextScriptsErrcodesAndStatsCountCalls) {
  httplib::Client raw = Raw();
  const auto bad = raw.Post("/mock/fail_next?api=nope&errcode=1");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  ASSERT_EQ(
      raw.Post("/mock/fail_next?api=stable_token&errcode=-1&times=2")->status,
      200);
  // Busy twice: the client's one retry is spent, the call fails.
  const auto busy = client_->StableToken(kAppId, kSecret, false);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(client_->StableToken(kAppId, kSecret, false).ok());

  ASSERT_EQ(raw.Post("/mock/fail_next?api=checksession&errcode=45011")->status,
            200);
  const auto login = Login("judy.1");
  ASSERT_TRUE(login.ok());
  MockTokens tokens(*client_);
  const auto limited = client_->CheckSessionKey(tokens, kAppId, login->openid,
                                                login->session_key);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), ErrorCode::kRateLimited);

  const json stats = Stats();
  EXPECT_EQ(stats["stable_token"], 4);  // 2 busy + 1 + MockTokens' one
  EXPECT_EQ(stats["stable_token_forced"], 0);
  EXPECT_EQ(stats["checksession"], 1);
  EXPECT_EQ(stats["jscode2session"], 1);
  EXPECT_EQ(stats["getuserphonenumber"], 0);
}

}  // namespace
}  // namespace wxsession
