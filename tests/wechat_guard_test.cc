#include "wechat/guard.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "prometheus_text.h"
#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::ParsePrometheusText;
using testing_support::ScriptedWeChatClient;

// Holds every call to the fake WeChat until Open().
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool WaitForCallers(int n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(5),
                             [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int waiting_ = 0;
  bool open_ = false;
};

TEST(WeChatGuard, CallsBeyondTheLimitAreRefusedWith503AndCounted) {
  ScriptedWeChatClient fake;
  Gate gate;
  fake.on_call = [&] { gate.Wait(); };
  Metrics metrics("t");
  UpstreamGuardOptions options;
  options.max_concurrent = 2;
  options.max_waiting = 0;  // no waiting: refuse at once
  auto guarded = NewGuardedWeChatClient(fake, options, &metrics);

  std::vector<std::future<Result<WeChatSession>>> running;
  for (int i = 0; i < 2; ++i) {
    running.push_back(std::async(std::launch::async, [&, i] {
      return guarded->Code2Session("wxa", "s", "u" + std::to_string(i) + ".1");
    }));
  }
  ASSERT_TRUE(gate.WaitForCallers(2));
  auto parsed = ParsePrometheusText(metrics.RenderPrometheus());
  ASSERT_EQ(parsed.error, "");
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_in_flight"), 2);

  Result<WeChatSession> refused = guarded->Code2Session("wxa", "s", "x.1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(refused.status().retry_after(), 1);
  EXPECT_NE(refused.status().operator_text().find("max_concurrent"),
            std::string::npos);
  EXPECT_EQ(fake.calls(), 2) << "a refused call must not reach WeChat";

  gate.Open();
  for (auto& call : running) EXPECT_TRUE(call.get().ok());
  parsed = ParsePrometheusText(metrics.RenderPrometheus());
  ASSERT_EQ(parsed.error, "");
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_rejected_total",
                         {{"api", "jscode2session"}, {"platform", "wechat"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "jscode2session"},
                          {"result", "ok"},
                          {"platform", "wechat"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_in_flight"), 0);
}

TEST(WeChatGuard, AWaitingCallProceedsWhenAPlaceFreesUp) {
  ScriptedWeChatClient fake;
  Gate gate;
  fake.on_call = [&] { gate.Wait(); };
  UpstreamGuardOptions options;
  options.max_concurrent = 1;
  options.max_waiting = 1;
  options.max_wait_ms = 60000;
  auto guarded = NewGuardedWeChatClient(fake, options, nullptr);
  auto first = std::async(std::launch::async, [&] {
    return guarded->Code2Session("wxa", "s", "a.1");
  });
  ASSERT_TRUE(gate.WaitForCallers(1));
  auto second = std::async(std::launch::async, [&] {
    return guarded->Code2Session("wxa", "s", "b.1");
  });
  gate.Open();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  EXPECT_EQ(fake.calls(), 2);
}

TEST(WeChatGuard, ErrorsPassThroughAndAreCountedByCode) {
  ScriptedWeChatClient fake;
  fake.Push(
      Status(ErrorCode::kInvalidCode, "WeChat jscode2session failed: 40029"));
  Metrics metrics("t");
  auto guarded = NewGuardedWeChatClient(fake, UpstreamGuardOptions{}, &metrics);
  Result<WeChatSession> result = guarded->Code2Session("wxa", "s", "bad");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidCode);
  auto parsed = ParsePrometheusText(metrics.RenderPrometheus());
  ASSERT_EQ(parsed.error, "");
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "jscode2session"},
                          {"result", "invalid_code"},
                          {"platform", "wechat"}}),
            1);
}

}  // namespace
}  // namespace wxsession
