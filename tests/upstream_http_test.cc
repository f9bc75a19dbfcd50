// Tests for the transport of the upstream clients
// (src/wechat/upstream_http.cc): connecting, timing out, percent-encoding, the
// API base and its path prefix, the reply size cap and the keep-alive pool.
// Most go through the HTTP WeChatClient, the transport's main user, against a
// FakeWeChatServer (wechat_fakes.h) on 127.0.0.1; the pure text helpers are
// tested directly.

#include "wechat/upstream_http.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "wechat_fakes.h"
#include "wxsession/status.h"
#include "wxsession/wechat.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::AlwaysReply;
using testing_support::Describe;
using testing_support::FakeWeChatServer;
using testing_support::FinalCalls;
using testing_support::HttpClientFor;
using testing_support::kAppId;
using testing_support::kPatientTimeoutMs;
using testing_support::kSecret;
using testing_support::kShortTimeoutMs;
using testing_support::LoopbackBase;
using testing_support::RefusingPort;
using testing_support::ReplyJson;
using testing_support::SuccessBody;

TEST(UpstreamHttpTest, ConnectionRefusedIsUpstreamUnavailable) {
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  for (const std::string scheme : {"http", "https"}) {
    auto client = HttpClientFor(
        scheme + "://127.0.0.1:" + std::to_string(refusing.port()));
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << scheme;
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable)
        << scheme << " " << Describe(result.status());
    EXPECT_TRUE(result.status().retry_after().has_value());
  }
}

TEST(UpstreamHttpTest, ReadTimeoutIsUnavailableAndNotRetried) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  FakeWeChatServer fake(
      [released](const httplib::Request&, httplib::Response& res) {
        released.wait();  // hangs like a WeChat that took the code and stalled
        ReplyJson(res, SuccessBody());
      });
  auto client = HttpClientFor(fake.base(), kShortTimeoutMs);
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  release.set_value();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable)
      << Describe(result.status());
  EXPECT_TRUE(result.status().retry_after().has_value());
  EXPECT_EQ(FinalCalls(client, fake), 1);
}

TEST(UpstreamHttpTest, EveryValueArrivesIntactWhateverItsCharacters) {
  const std::string appid = "wx app&x=1";
  const std::string secret = "s+/&= %#?;\"'";
  const std::string code =
      "a+b/c&d=e f%g?h#i~._-%2B%u4E2D\xe4\xb8\xad\xe6\x96\x87\xf0\x9f\x98\x80";
  std::mutex mutex;
  httplib::Params received;
  std::string target;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        received = req.params;
        target = req.target;
        ReplyJson(res, SuccessBody());
      });
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(appid, secret, code);
  ASSERT_TRUE(result.ok()) << Describe(result.status());
  client.reset();
  fake.Stop();

  std::lock_guard<std::mutex> lock(mutex);
  ASSERT_EQ(received.count("appid"), 1u);
  ASSERT_EQ(received.count("secret"), 1u);
  ASSERT_EQ(received.count("js_code"), 1u);
  ASSERT_EQ(received.count("grant_type"), 1u);
  EXPECT_EQ(received.find("appid")->second, appid);
  EXPECT_EQ(received.find("secret")->second, secret);
  EXPECT_EQ(received.find("js_code")->second, code);
  EXPECT_EQ(received.find("grant_type")->second, "authorization_code");
  EXPECT_EQ(received.size(), 4u);

  // On the wire the query holds only unreserved characters, '&', '=' and
  // %XX escapes with upper-case hex.
  const size_t question = target.find('?');
  ASSERT_NE(question, std::string::npos) << target;
  const std::string query = target.substr(question + 1);
  for (size_t i = 0; i < query.size(); ++i) {
    const char c = query[i];
    const bool plain = isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                       c == '_' || c == '.' || c == '~' || c == '&' || c == '=';
    if (plain) continue;
    ASSERT_EQ(c, '%') << query;
    ASSERT_LT(i + 2, query.size()) << query;
    for (size_t k = i + 1; k <= i + 2; ++k) {
      EXPECT_TRUE(isdigit(static_cast<unsigned char>(query[k])) ||
                  (query[k] >= 'A' && query[k] <= 'F'))
          << query;
    }
    i += 2;
  }
}

TEST(UpstreamHttpTest, ApiBaseMayCarryAPathPrefix) {
  FakeWeChatServer fake(AlwaysReply(SuccessBody("o-behind-proxy")),
                        "/wx/proxy/sns/jscode2session");
  for (const std::string suffix : {"/wx/proxy", "/wx/proxy/"}) {
    auto client = HttpClientFor(fake.base() + suffix);
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << suffix << " " << Describe(result.status());
    EXPECT_EQ(result->openid, "o-behind-proxy");
  }
}

TEST(UpstreamHttpTest, UnusableApiBaseIsInternalError) {
  for (const std::string api_base :
       {"", "ftp://api.weixin.qq.com", "api.weixin.qq.com", "http://",
        "http://host:99999", "http://host:port", "https://a?b=c",
        "http://user@host"}) {
    auto client = HttpClientFor(api_base);
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << api_base;
    EXPECT_EQ(result.status().code(), ErrorCode::kInternal) << api_base;
  }
}

TEST(UpstreamHttpTest, OversizedReplyIsUpstreamError) {
  json body = SuccessBody();
  body["padding"] = std::string(100 * 1024, 'x');  // bytes; over the cap
  FakeWeChatServer fake(AlwaysReply(body));
  auto client = HttpClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError)
      << Describe(result.status());
}

// The client must not funnel calls through one connection: N calls are
// parked in the fake until all N have arrived. A serialising client would
// deliver one at a time, the fake would give up, and the calls would fail.
TEST(UpstreamHttpTest, ConcurrentCallsRunInParallel) {
  constexpr int kCalls = 8;  // parallel logins; below the fake's 32 workers
  std::mutex mutex;
  std::condition_variable all_arrived;
  int arrived = 0;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::unique_lock<std::mutex> lock(mutex);
        ++arrived;
        all_arrived.notify_all();
        // Seconds before the fake gives up; only reached when the test fails.
        const bool together = all_arrived.wait_for(
            lock, std::chrono::seconds(5), [&] { return arrived >= kCalls; });
        if (!together) {
          res.status = 503;
          return;
        }
        ReplyJson(res, SuccessBody("o-" + req.get_param_value("js_code")));
      });
  auto client = HttpClientFor(fake.base());
  std::vector<std::thread> threads;
  std::vector<int> ok(kCalls, 0);
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      const auto result =
          client->Code2Session(kAppId, kSecret, "code" + std::to_string(i));
      ok[i] = result.ok() && result->openid == "o-code" + std::to_string(i);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kCalls; ++i) EXPECT_TRUE(ok[i]) << "call " << i;
}

TEST(UpstreamHttpTest, SequentialCallsReuseOneConnection) {
  std::mutex mutex;
  std::set<int> client_ports;
  FakeWeChatServer fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        client_ports.insert(req.remote_port);
        ReplyJson(res, SuccessBody());
      });
  auto client = HttpClientFor(fake.base());
  for (int i = 0; i < 3; ++i) {
    const auto result =
        client->Code2Session(kAppId, kSecret, "c" + std::to_string(i));
    ASSERT_TRUE(result.ok()) << Describe(result.status());
  }
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(client_ports.size(), 1u);
}

// ---------------------------------------------------------------------------
// The transport and its text helpers, directly.

TEST(UpstreamHttpTest, SendReportsTheReplyOrWhyThereWasNone) {
  json big = SuccessBody();
  big["padding"] = std::string(UpstreamHttp::kMaxReplyBytes, 'x');
  FakeWeChatServer fake(
      [&big](const httplib::Request& req, httplib::Response& res) {
        if (req.has_param("big")) return ReplyJson(res, big);
        res.status = 418;
        res.set_content(req.method + " " + req.body, "text/plain");
      },
      "/prefix/call");
  {
    const std::optional<ApiBase> base = ParseApiBase(fake.base() + "/prefix/");
    ASSERT_TRUE(base.has_value());
    UpstreamHttp http(*base, kPatientTimeoutMs);
    UpstreamReply reply = http.Send("POST", "/call", "{}", "application/json");
    EXPECT_TRUE(reply.replied);
    EXPECT_EQ(reply.http_status, 418);
    EXPECT_EQ(reply.body, "POST {}");
    reply = http.Send("GET", "/call?big=1", "", "");
    EXPECT_FALSE(reply.replied);
    EXPECT_TRUE(reply.too_large);
    EXPECT_FALSE(reply.never_sent);
  }
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  UpstreamHttp refused(*ParseApiBase(LoopbackBase(refusing.port())),
                       kPatientTimeoutMs);
  const UpstreamReply reply = refused.Send("GET", "/call", "", "");
  EXPECT_FALSE(reply.replied);
  EXPECT_TRUE(reply.never_sent);  // one more try is safe
}

TEST(UpstreamHttpTest, ParseApiBaseSplitsOffThePathPrefix) {
  const auto plain = ParseApiBase("https://api.weixin.qq.com");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->scheme_host_port, "https://api.weixin.qq.com");
  EXPECT_EQ(plain->path_prefix, "");
  const auto proxied = ParseApiBase("HTTP://127.0.0.1:8080/wx/proxy//");
  ASSERT_TRUE(proxied.has_value());
  EXPECT_EQ(proxied->scheme_host_port, "http://127.0.0.1:8080");
  EXPECT_EQ(proxied->path_prefix, "/wx/proxy");
  const auto ipv6 = ParseApiBase("http://[::1]:80");
  ASSERT_TRUE(ipv6.has_value());
  EXPECT_EQ(ipv6->scheme_host_port, "http://[::1]:80");
  for (const std::string bad :
       {"", "http://", "http://:80", "http://h:0", "http://h:65536",
        "http://h:123456", "http://[]", "http://h/p?q", "http://h#f",
        "http://u@h", "http://h /p", "ws://h"}) {
    EXPECT_FALSE(ParseApiBase(bad).has_value()) << bad;
  }
}

TEST(UpstreamTextTest, PercentEncodeLeavesOnlyUnreservedCharacters) {
  EXPECT_EQ(PercentEncode("azAZ09-_.~"), "azAZ09-_.~");
  EXPECT_EQ(PercentEncode("a b&c=d+e/f%"), "a%20b%26c%3Dd%2Be%2Ff%25");
  EXPECT_EQ(PercentEncode("\xe4\xb8\xad"), "%E4%B8%AD");
  EXPECT_EQ(PercentEncode(std::string("\0\x7f", 2)), "%00%7F");
}

TEST(UpstreamTextTest, CleanUpstreamTextDropsControlsAndReplacesBadUtf8) {
  EXPECT_EQ(CleanUpstreamText("ok\r\n{\"forged\":1}\x7f\t"),
            "ok{\"forged\":1}");
  EXPECT_EQ(CleanUpstreamText("\xe4\xb8\xad \xf0\x9f\x98\x80"),
            "\xe4\xb8\xad \xf0\x9f\x98\x80");
  EXPECT_EQ(CleanUpstreamText("a\xff"
                              "b"),
            "a?b");
  EXPECT_EQ(CleanUpstreamText("\xc0\xaf"), "??");            // overlong
  EXPECT_EQ(CleanUpstreamText("\xed\xa0\x80"), "???");       // surrogate
  EXPECT_EQ(CleanUpstreamText("\xf4\x90\x80\x80"), "????");  // > U+10FFFF
  EXPECT_EQ(CleanUpstreamText("\xe4\xb8"), "??");            // cut short
}

TEST(UpstreamTextTest, TruncateUtf8NeverCutsACharacter) {
  EXPECT_EQ(TruncateUtf8("abc", 3), "abc");
  EXPECT_EQ(TruncateUtf8("abcdef", 3), "abc...");
  const std::string chinese = "\xe4\xb8\xad\xe6\x96\x87";  // two characters
  EXPECT_EQ(TruncateUtf8(chinese, 6), chinese);
  EXPECT_EQ(TruncateUtf8(chinese, 5), "\xe4\xb8\xad...");
  EXPECT_EQ(TruncateUtf8(chinese, 3), "\xe4\xb8\xad...");
  EXPECT_EQ(TruncateUtf8(chinese, 2), "...");
}

TEST(UpstreamTextTest, RedactReplacesTheLongestValueAndNeverItsLabels) {
  // A code "c" inside a token "cab": the token wins where both start.
  const std::vector<std::pair<std::string, std::string>> redactions = {
      {"c", "[code]"}, {"cab", "[token]"}, {"", "[empty]"}};
  EXPECT_EQ(Redact("token cab, code c", redactions),
            "token [token], [code]ode [code]");
  // "[code]" contains "c"; it is not rewritten again.
  EXPECT_EQ(Redact("cc", redactions), "[code][code]");
  EXPECT_EQ(Redact("", redactions), "");
}

}  // namespace
}  // namespace wxsession
