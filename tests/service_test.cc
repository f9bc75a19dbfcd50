// SessionService with a fake WeChat, a manual clock and a real SQLite store.
#include "wxsession/service.h"

#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>

#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::ScriptedWeChatClient;
using testing_support::TempDir;

constexpr int64_t kStart = 1'700'000'000;  // unix seconds

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() : clock_(kStart) {
    config_.apps.push_back({"wxapp1", "secret-1"});
    config_.session_ttl = 1000;
    config_.session_idle_ttl = 100;
  }

  void SetUp() override {
    store_ = testing_support::OpenTestSqliteStore(dir_.File("s.db"));
    ASSERT_NE(store_, nullptr);
    service_ =
        std::make_unique<SessionService>(config_, *store_, wechat_, clock_);
  }

  TempDir dir_;
  Config config_;
  ManualClock clock_;
  ScriptedWeChatClient wechat_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<SessionService> service_;
};

TEST_F(ServiceTest, LoginMintsAnOpaqueIdAndStoresTheSession) {
  Result<LoginResult> login = service_->Login("wxapp1", "alice.1");
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(login->session_id.size(), 43u);
  EXPECT_TRUE(crypto::LooksLikeSessionId(login->session_id));
  EXPECT_EQ(login->openid, "o-alice");
  // The idle window (100 s) is sooner than the absolute ttl (1000 s).
  EXPECT_EQ(login->expires_in, 100);
  EXPECT_EQ(login->expires_at, kStart + 100);
  Result<SessionInfo> info = service_->Lookup(login->session_id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->appid, "wxapp1");
  EXPECT_EQ(info->openid, "o-alice");
  EXPECT_EQ(info->created_at, kStart);
  EXPECT_EQ(wechat_.calls(), 1);
}

TEST_F(ServiceTest, WithoutIdleTtlTheAbsoluteTtlApplies) {
  config_.session_idle_ttl = 0;
  auto login = service_->Login("wxapp1", "a");
  ASSERT_TRUE(login.ok());
  EXPECT_EQ(login->expires_in, 1000);
  clock_.Advance(999);
  EXPECT_TRUE(service_->Lookup(login->session_id).ok());
  clock_.Advance(1);
  EXPECT_EQ(service_->Lookup(login->session_id).status().code(),
            ErrorCode::kInvalidSession);
}

TEST_F(ServiceTest, AppIdMayBeOmittedOnlyWithOneApp) {
  EXPECT_TRUE(service_->Login("", "a").ok());
  config_.apps.push_back({"wxapp2", "secret-2"});
  auto missing = service_->Login("", "b");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kInvalidRequest);
  auto unknown = service_->Login("wxnope", "c");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kUnknownApp);
  EXPECT_EQ(wechat_.calls(), 1);
}

TEST_F(ServiceTest, BadCodesNeverReachWeChat) {
  EXPECT_EQ(service_->Login("wxapp1", "").status().code(),
            ErrorCode::kInvalidRequest);
  EXPECT_EQ(service_->Login("wxapp1", std::string(129, 'x')).status().code(),
            ErrorCode::kInvalidRequest);
  EXPECT_TRUE(service_->Login("wxapp1", std::string(128, 'x')).ok());
  EXPECT_EQ(wechat_.calls(), 1);
}

TEST_F(ServiceTest, UpstreamErrorsPassThroughAndAreNotRemembered) {
  wechat_.Push(Status(ErrorCode::kUpstreamUnavailable, "busy"));
  auto first = service_->Login("wxapp1", "retry.me");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), ErrorCode::kUpstreamUnavailable);
  // A retry of the same code reaches WeChat again.
  auto second = service_->Login("wxapp1", "retry.me");
  EXPECT_TRUE(second.ok());
  EXPECT_EQ(wechat_.calls(), 2);
  EXPECT_EQ(store_->Stats(clock_.Now())->sessions, 1);
}

TEST_F(ServiceTest, TheSameCodeAgainReturnsTheSameSession) {
  auto first = service_->Login("wxapp1", "alice.1");
  clock_.Advance(60);
  auto again = service_->Login("wxapp1", "alice.1");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->session_id, again->session_id);
  // The rest of the answer comes from the store, as the first one did.
  EXPECT_EQ(again->openid, first->openid);
  EXPECT_EQ(again->expires_at, first->expires_at);
  EXPECT_EQ(wechat_.calls(), 1);
  EXPECT_EQ(store_->Stats(clock_.Now())->sessions, 1);
  // The same code in another app is another login.
  config_.apps.push_back({"wxapp2", "s2"});
  auto other_app = service_->Login("wxapp2", "alice.1");
  ASSERT_TRUE(other_app.ok());
  EXPECT_NE(other_app->session_id, first->session_id);
}

TEST_F(ServiceTest, CodeMemoryLastsFiveMinutes) {
  auto first = service_->Login("wxapp1", "alice.1");
  ASSERT_TRUE(first.ok());
  clock_.Advance(SessionService::kCodeMemorySeconds + 1);
  auto later = service_->Login("wxapp1", "alice.1");
  EXPECT_EQ(wechat_.calls(), 2);  // forgotten: WeChat decides now
}

TEST_F(ServiceTest, CodeMemoryIsBoundedByCountToo) {
  SessionService small(config_, *store_, wechat_, clock_,
                       /*max_remembered_codes=*/3);
  auto first = small.Login("wxapp1", "c0");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(small.Login("wxapp1", "c0")->session_id, first->session_id);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(small.Login("wxapp1", "c" + std::to_string(i)).ok());
  }
  EXPECT_EQ(wechat_.calls(), 4);
  // Four codes since: the first was forgotten, so WeChat decides again.
  auto again = small.Login("wxapp1", "c0");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->session_id, first->session_id);
  EXPECT_EQ(wechat_.calls(), 5);
}

TEST_F(ServiceTest, ReusingTheCodeOfAnEndedSessionIsInvalidCode) {
  auto first = service_->Login("wxapp1", "alice.1");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(service_->Logout(first->session_id).ok());
  auto again = service_->Login("wxapp1", "alice.1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kInvalidCode);
  EXPECT_EQ(wechat_.calls(), 1);
}

TEST_F(ServiceTest, ConcurrentPostsOfOneCodeMakeOneUpstreamCall) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  wechat_.on_call = [released] { released.wait(); };
  constexpr int kClients = 10;
  std::vector<std::future<Result<LoginResult>>> logins;
  for (int i = 0; i < kClients; ++i) {
    logins.push_back(std::async(std::launch::async, [this] {
      return service_->Login("wxapp1", "same.code");
    }));
  }
  release.set_value();
  std::set<std::string> ids;
  for (auto& login : logins) {
    Result<LoginResult> result = login.get();
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    ids.insert(result->session_id);
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(wechat_.calls(), 1);
}

TEST_F(ServiceTest, MalformedAndUnknownIdsAreInvalidSession) {
  EXPECT_EQ(service_->Lookup("").status().code(), ErrorCode::kInvalidSession);
  EXPECT_EQ(service_->Lookup("short").status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(service_->Lookup(crypto::NewSessionId()).status().code(),
            ErrorCode::kInvalidSession);
}

TEST_F(ServiceTest, IdleSessionsExpireAndUseExtendsThem) {
  auto login = service_->Login("wxapp1", "a");
  ASSERT_TRUE(login.ok());
  clock_.Advance(90);
  ASSERT_TRUE(service_->Lookup(login->session_id).ok());  // slides to +190
  clock_.Advance(90);
  ASSERT_TRUE(service_->Lookup(login->session_id).ok());  // slides to +280
  clock_.Advance(100);
  EXPECT_EQ(service_->Lookup(login->session_id).status().code(),
            ErrorCode::kInvalidSession);
}

TEST_F(ServiceTest, UseNeverExtendsPastTheAbsoluteTtl) {
  auto login = service_->Login("wxapp1", "a");
  ASSERT_TRUE(login.ok());
  for (int step = 0; step < 10; ++step) {
    clock_.Advance(99);
    ASSERT_TRUE(service_->Lookup(login->session_id).ok()) << step;
  }
  // 990 s in; the absolute ttl (1000 s) caps the idle slide.
  auto info = service_->Lookup(login->session_id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->expires_at, kStart + 1000);
  clock_.Advance(10);
  EXPECT_FALSE(service_->Lookup(login->session_id).ok());
}

TEST_F(ServiceTest, LastSeenIsWrittenAtMostOncePerTouchInterval) {
  EXPECT_EQ(service_->TouchInterval(), 10);  // idle_ttl 100 / 10
  auto login = service_->Login("wxapp1", "a");
  ASSERT_TRUE(login.ok());
  clock_.Advance(9);
  EXPECT_EQ(service_->Lookup(login->session_id)->last_seen_at, kStart);
  auto stored = store_->FindLive(crypto::Sha256(login->session_id), kStart + 9);
  EXPECT_EQ(stored->last_seen_at, kStart);
  clock_.Advance(1);
  EXPECT_EQ(service_->Lookup(login->session_id)->last_seen_at, kStart + 10);
  stored = store_->FindLive(crypto::Sha256(login->session_id), kStart + 10);
  EXPECT_EQ(stored->last_seen_at, kStart + 10);
  config_.session_idle_ttl = 0;
  EXPECT_EQ(service_->TouchInterval(), 1);
}

TEST_F(ServiceTest, LogoutEndsTheSessionAtOnce) {
  auto login = service_->Login("wxapp1", "a");
  ASSERT_TRUE(login.ok());
  ASSERT_TRUE(service_->Logout(login->session_id).ok());
  EXPECT_EQ(service_->Lookup(login->session_id).status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(service_->Logout(login->session_id).code(),
            ErrorCode::kInvalidSession);
}

TEST_F(ServiceTest, EverySessionOfAUserSeesTheNewestKey) {
  WeChatSession first;
  first.openid = "o-same";
  first.session_key = "a2V5LW9uZS1vbmUtb25lLQ==";
  WeChatSession second = first;
  second.session_key = "a2V5LXR3by10d28tdHdvLQ==";
  wechat_.Push(first);
  wechat_.Push(second);
  auto a = service_->Login("wxapp1", "c1");
  auto b = service_->Login("wxapp1", "c2");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(service_->LookupWithKey(a->session_id)->session_key,
            second.session_key);
  EXPECT_EQ(service_->LookupWithKey(b->session_id)->session_key,
            second.session_key);
}

TEST_F(ServiceTest, HealthReflectsTheStore) {
  EXPECT_TRUE(service_->Health().ok());
}

TEST_F(ServiceTest, CodesThatAreNotPrintableAsciiNeverReachWeChat) {
  for (const std::string& code :
       {std::string("a\0b", 3), std::string("with space"),
        std::string("tab\there"), std::string("caf\xc3\xa9"),
        std::string("\xff\xfe"), std::string("new\nline"),
        std::string("del\x7f")}) {
    Result<LoginResult> login = service_->Login("wxapp1", code);
    ASSERT_FALSE(login.ok());
    EXPECT_EQ(login.status().code(), ErrorCode::kInvalidRequest);
    EXPECT_EQ(login.status().message().find(code), std::string::npos);
  }
  EXPECT_EQ(wechat_.calls(), 0);
  // What WeChat codes look like (and the mock's own) still pass.
  EXPECT_TRUE(service_->Login("wxapp1", "0a3Xyz_-.~!:@").ok());
}

}  // namespace
}  // namespace wxsession
