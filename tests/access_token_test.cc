// AccessTokenCentre with a fake WeChat, a manual clock and real SQLite
// stores. Two centres on one database file play two processes.
#include "wxsession/access_token.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::ScriptedWeChatClient;
using testing_support::TempDir;

constexpr int64_t kStart = 1'700'000'000;  // unix seconds
constexpr char kApp[] = "wxapp1";

// A SessionStore that passes everything to a real one, except that
// PutAccessToken can be made to fail like a full disk.
class FlakyStore : public testing_support::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status PutAccessToken(const AccessToken& token) override {
    if (fail_put) {
      return Status(ErrorCode::kStoreUnavailable, "database or disk is full");
    }
    return ForwardingStore::PutAccessToken(token);
  }

  std::atomic<bool> fail_put{false};
};

class AccessTokenTest : public ::testing::Test {
 protected:
  AccessTokenTest() : clock_(kStart) {
    config_.apps.push_back({kApp, "secret-1"});
    // The centre's polls sleep on the ManualClock: each lets its 50 ms pass
    // at once, is counted, and runs `on_sleep`.
    clock_.OnWait([this](int64_t) {
      ++sleeps_;
      if (on_sleep) on_sleep();
    });
  }

  std::unique_ptr<SessionStore> OpenStore() {
    return testing_support::OpenTestSqliteStore(dir_.File("s.db"));
  }

  void SetUp() override {
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    centre_ = NewCentre(*store_, wechat_);
  }

  std::unique_ptr<AccessTokenCentre> NewCentre(SessionStore& store,
                                               ScriptedWeChatClient& wechat) {
    return std::make_unique<AccessTokenCentre>(config_, store, wechat, clock_);
  }

  TempDir dir_;
  Config config_;
  ManualClock clock_;
  ScriptedWeChatClient wechat_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<AccessTokenCentre> centre_;
  std::atomic<int> sleeps_{0};
  std::function<void()> on_sleep;
};

TEST_F(AccessTokenTest, FirstGetFetchesAndCachesInTheStore) {
  Result<AccessToken> token = centre_->Get(kApp);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->appid, kApp);
  EXPECT_EQ(token->token, "token-1");
  EXPECT_EQ(token->expires_at, kStart + 7200);
  EXPECT_EQ(wechat_.token_calls(), 1);
  EXPECT_EQ(wechat_.forced_token_calls(), 0);

  Result<AccessToken> stored = store_->GetAccessToken(kApp);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->token, "token-1");
  EXPECT_EQ(stored->expires_at, kStart + 7200);

  clock_.Advance(3600);
  EXPECT_EQ(centre_->Get(kApp)->token, "token-1");
  EXPECT_EQ(centre_->AccessTokenFor(kApp).value(), "token-1");
  EXPECT_EQ(wechat_.token_calls(), 1);
}

TEST_F(AccessTokenTest, AppIdMayBeOmittedOnlyWithOneApp) {
  EXPECT_EQ(centre_->Get("")->token, "token-1");
  EXPECT_EQ(centre_->Get("wxnope").status().code(), ErrorCode::kUnknownApp);
  config_.apps.push_back({"wxapp2", "secret-2"});
  EXPECT_EQ(centre_->Get("").status().code(), ErrorCode::kInvalidRequest);
  EXPECT_EQ(centre_->Get("wxapp2")->token, "token-2");
  EXPECT_EQ(centre_->Get(kApp)->token, "token-1");
  EXPECT_EQ(wechat_.token_calls(), 2);
}

TEST_F(AccessTokenTest, RefreshesAheadOfExpiryNotBefore) {
  ASSERT_TRUE(centre_->Get(kApp).ok());
  const int64_t margin = AccessTokenCentre::kRefreshMarginSeconds;
  clock_.Set(kStart + 7200 - margin - 1);
  EXPECT_EQ(centre_->Get(kApp)->token, "token-1");
  EXPECT_EQ(wechat_.token_calls(), 1);
  clock_.Advance(1);
  Result<AccessToken> refreshed = centre_->Get(kApp);
  ASSERT_TRUE(refreshed.ok());
  EXPECT_EQ(refreshed->token, "token-2");
  EXPECT_EQ(refreshed->expires_at, kStart + 7200 - margin + 7200);
  EXPECT_EQ(wechat_.token_calls(), 2);
  EXPECT_EQ(wechat_.forced_token_calls(), 0);
}

TEST_F(AccessTokenTest, ARestartKeepsTheToken) {
  ASSERT_EQ(centre_->Get(kApp)->token, "token-1");
  centre_.reset();
  store_.reset();

  std::unique_ptr<SessionStore> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);
  ScriptedWeChatClient fresh_wechat;
  auto centre = NewCentre(*reopened, fresh_wechat);
  EXPECT_EQ(centre->Get(kApp)->token, "token-1");
  EXPECT_EQ(fresh_wechat.token_calls(), 0);
}

TEST_F(AccessTokenTest, HundredConcurrentCallersMakeOneUpstreamCall) {
  constexpr int kCallers = 100;
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();
  // The one fetch waits until every caller has been started, so the others
  // arrive while it is in flight.
  wechat_.on_token_call = [opened] { opened.wait(); };
  std::atomic<int> started{0};
  std::vector<std::future<Result<AccessToken>>> results;
  for (int i = 0; i < kCallers; ++i) {
    results.push_back(std::async(std::launch::async, [&] {
      ++started;
      return centre_->Get(kApp);
    }));
  }
  while (started.load() < kCallers) std::this_thread::yield();
  gate.set_value();
  std::set<std::string> tokens;
  for (auto& result : results) {
    Result<AccessToken> token = result.get();
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    tokens.insert(token->token);
  }
  EXPECT_EQ(tokens, std::set<std::string>{"token-1"});
  EXPECT_EQ(wechat_.token_calls(), 1);
}

TEST_F(AccessTokenTest, TwoProcessesShareOneToken) {
  std::unique_ptr<SessionStore> other_store = OpenStore();
  ScriptedWeChatClient other_wechat;
  auto other = NewCentre(*other_store, other_wechat);
  ASSERT_EQ(centre_->Get(kApp)->token, "token-1");
  EXPECT_EQ(other->Get(kApp)->token, "token-1");
  EXPECT_EQ(wechat_.token_calls(), 1);
  EXPECT_EQ(other_wechat.token_calls(), 0);
}

TEST_F(AccessTokenTest, AProcessWaitsForAnotherProcesssRefresh) {
  std::unique_ptr<SessionStore> other_store = OpenStore();
  ScriptedWeChatClient other_wechat;
  auto other = NewCentre(*other_store, other_wechat);

  // This process fetches and stalls inside WeChat, holding the lease.
  std::promise<void> in_fetch;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  wechat_.on_token_call = [&in_fetch, released] {
    in_fetch.set_value();
    released.wait();
  };
  auto first =
      std::async(std::launch::async, [&] { return centre_->Get(kApp); });
  in_fetch.get_future().wait();

  // The other process finds the lease taken and polls; on its first poll
  // the stalled fetch is let go and allowed to finish.
  bool let_go = false;
  on_sleep = [&] {
    if (!let_go) {
      let_go = true;
      release.set_value();
      first.wait();
    }
  };
  Result<AccessToken> waited = other->Get(kApp);
  if (!let_go)
    release.set_value();  // a broken centre did not wait: fail, not hang
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(waited->token, "token-1");
  EXPECT_EQ(first.get()->token, "token-1");
  EXPECT_GE(sleeps_.load(), 1);
  EXPECT_EQ(wechat_.token_calls(), 1);
  EXPECT_EQ(other_wechat.token_calls(), 0);
}

TEST_F(AccessTokenTest, ACrashedHoldersLeaseRunsOutAndIsTakenOver) {
  const AccessTokenCentre::Options defaults;
  ASSERT_TRUE(store_
                  ->TryLockTokenRefresh(kApp, "crashed", kStart * 1000,
                                        defaults.lease_ms)
                  .value());
  // Each poll lets poll_interval_ms pass: the lease runs out after
  // lease_ms of them, and the next look takes it over.
  Result<AccessToken> token = centre_->Get(kApp);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->token, "token-1");
  EXPECT_EQ(wechat_.token_calls(), 1);
  EXPECT_EQ(sleeps_.load(), defaults.lease_ms / defaults.poll_interval_ms);
  EXPECT_EQ(clock_.Now(), kStart + defaults.lease_ms / 1000);
}

TEST_F(AccessTokenTest, WaitingIsBoundedAndEndsInUpstreamUnavailable) {
  ASSERT_TRUE(
      store_->TryLockTokenRefresh(kApp, "slow", kStart * 1000, 60'000).value());
  Result<AccessToken> token = centre_->Get(kApp);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(token.status().retry_after().has_value());
  const AccessTokenCentre::Options defaults;
  EXPECT_EQ(sleeps_.load(), defaults.wait_ms / defaults.poll_interval_ms - 1);
  EXPECT_EQ(wechat_.token_calls(), 0);
}

TEST_F(AccessTokenTest,
       InsideTheMarginTheOldTokenIsServedWhileAnotherRefreshes) {
  ASSERT_TRUE(store_->PutAccessToken({kApp, "old", kStart + 100}).ok());
  ASSERT_TRUE(store_->TryLockTokenRefresh(kApp, "other", kStart * 1000, 30'000)
                  .value());
  EXPECT_EQ(centre_->Get(kApp)->token, "old");
  EXPECT_EQ(sleeps_.load(), 0);
  EXPECT_EQ(wechat_.token_calls(), 0);
}

TEST_F(AccessTokenTest,
       AFailedRefreshInsideTheMarginServesTheOldTokenAndRetriesLater) {
  ASSERT_TRUE(store_->PutAccessToken({kApp, "old", kStart + 100}).ok());
  wechat_.PushToken(Status(ErrorCode::kUpstreamUnavailable, "WeChat down"));
  EXPECT_EQ(centre_->Get(kApp)->token, "old");
  EXPECT_EQ(wechat_.token_calls(), 1);
  // Not on every call while WeChat is down.
  EXPECT_EQ(centre_->Get(kApp)->token, "old");
  EXPECT_EQ(wechat_.token_calls(), 1);
  clock_.Advance(AccessTokenCentre::kRetryIntervalSeconds);
  EXPECT_EQ(centre_->Get(kApp)->token, "token-2");
  EXPECT_EQ(wechat_.token_calls(), 2);
}

TEST_F(AccessTokenTest, AnExpiredTokenIsNeverServed) {
  ASSERT_TRUE(store_->PutAccessToken({kApp, "old", kStart}).ok());
  wechat_.PushToken(Status(ErrorCode::kUpstreamUnavailable, "WeChat down"));
  Result<AccessToken> token = centre_->Get(kApp);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::kUpstreamUnavailable);
  // WeChat's own errors reach the caller as they are.
  wechat_.PushToken(Status(ErrorCode::kUpstreamError, "errcode 40013"));
  EXPECT_EQ(centre_->Get(kApp).status().code(), ErrorCode::kUpstreamError);
  EXPECT_EQ(centre_->Get(kApp)->token, "token-3");
}

TEST_F(AccessTokenTest, ATokenThatCannotBeStoredIsAStoreError) {
  FlakyStore flaky(*store_);
  auto centre = NewCentre(flaky, wechat_);
  flaky.fail_put = true;
  Result<AccessToken> token = centre->Get(kApp);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::kStoreUnavailable);
  // The lease was given back: the next try goes ahead at once.
  flaky.fail_put = false;
  clock_.Advance(AccessTokenCentre::kRetryIntervalSeconds);
  EXPECT_EQ(centre->Get(kApp)->token, "token-2");
  EXPECT_EQ(sleeps_.load(), 0);
}

TEST_F(AccessTokenTest, ARejectedTokenIsForceRefreshedOnce) {
  ASSERT_EQ(centre_->Get(kApp)->token, "token-1");
  Result<std::string> replaced =
      centre_->ReplaceRejectedAccessToken(kApp, "token-1");
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(replaced.value(), "token-2");
  EXPECT_EQ(wechat_.forced_token_calls(), 1);
  EXPECT_EQ(store_->GetAccessToken(kApp)->token, "token-2");

  // Someone reporting the same old token gets the new one, no new call.
  EXPECT_EQ(centre_->ReplaceRejectedAccessToken(kApp, "token-1").value(),
            "token-2");
  EXPECT_EQ(wechat_.token_calls(), 2);

  // The fresh token rejected at once: no second force within 30 s.
  Result<std::string> again =
      centre_->ReplaceRejectedAccessToken(kApp, "token-2");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kUpstreamError);
  EXPECT_EQ(wechat_.token_calls(), 2);

  clock_.Advance(AccessTokenCentre::kMinForceIntervalSeconds);
  EXPECT_EQ(centre_->ReplaceRejectedAccessToken(kApp, "token-2").value(),
            "token-3");
  EXPECT_EQ(wechat_.forced_token_calls(), 2);
}

TEST_F(AccessTokenTest, ConcurrentRejectionsShareOneForcedRefresh) {
  ASSERT_EQ(centre_->Get(kApp)->token, "token-1");
  constexpr int kCallers = 20;
  std::promise<void> gate;
  std::shared_future<void> opened = gate.get_future().share();
  wechat_.on_token_call = [opened] { opened.wait(); };
  std::atomic<int> started{0};
  std::vector<std::future<Result<std::string>>> results;
  for (int i = 0; i < kCallers; ++i) {
    results.push_back(std::async(std::launch::async, [&] {
      ++started;
      return centre_->ReplaceRejectedAccessToken(kApp, "token-1");
    }));
  }
  while (started.load() < kCallers) std::this_thread::yield();
  gate.set_value();
  for (auto& result : results) {
    Result<std::string> token = result.get();
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    EXPECT_EQ(token.value(), "token-2");
  }
  EXPECT_EQ(wechat_.token_calls(), 2);
  EXPECT_EQ(wechat_.forced_token_calls(), 1);
}

TEST_F(AccessTokenTest, AnotherProcesssReplacementIsUsedWithoutForcing) {
  ASSERT_EQ(centre_->Get(kApp)->token, "token-1");
  std::unique_ptr<SessionStore> other_store = OpenStore();
  ScriptedWeChatClient other_wechat;
  other_wechat.PushToken(StableAccessToken{"from-other-process", 7200});
  auto other = NewCentre(*other_store, other_wechat);
  ASSERT_EQ(other->ReplaceRejectedAccessToken(kApp, "token-1").value(),
            "from-other-process");
  EXPECT_EQ(other_wechat.forced_token_calls(), 1);
  // This process's callers then report the same rejected token.
  EXPECT_EQ(centre_->ReplaceRejectedAccessToken(kApp, "token-1").value(),
            "from-other-process");
  EXPECT_EQ(wechat_.token_calls(), 1);
  EXPECT_EQ(wechat_.forced_token_calls(), 0);
}

TEST_F(AccessTokenTest, ReplaceRejectedNeedsAToken) {
  EXPECT_EQ(centre_->ReplaceRejectedAccessToken(kApp, "").status().code(),
            ErrorCode::kInternal);
  EXPECT_EQ(wechat_.token_calls(), 0);
}

TEST(AccessTokenOptionsTest, LeaseOutlastsTwoTriesOfTheConfiguredTimeout) {
  EXPECT_EQ(AccessTokenCentre::OptionsFor(5000).lease_ms,
            AccessTokenCentre::kMinLeaseMs);
  const AccessTokenCentre::Options slow = AccessTokenCentre::OptionsFor(20'000);
  EXPECT_EQ(slow.lease_ms, 60'000);
  EXPECT_GT(slow.wait_ms, slow.lease_ms);
}

}  // namespace
}  // namespace wxsession
