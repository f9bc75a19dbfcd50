// Tests for the HTTP WeChatClient (src/wechat/client.cc) and MockWeChatServer
// (src/mock/wechat.cc).
//
// Everything runs on 127.0.0.1: the mock, plus small httplib servers that
// play a misbehaving WeChat. Nothing here sleeps to wait for timing; a fake
// that must hang is released through a promise.

#include "wxsession/wechat.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http/httplib_server.h"
#include "mock/wechat.h"
#include "wxsession/crypto.h"
#include "wxsession/status.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

constexpr char kAppId[] = "wx0123456789abcdef";
constexpr char kSecret[] = "SeCrEt-0123456789abcdef0123456789";

// Timeout for calls that should succeed: generous (ms) so a loaded machine
// cannot turn a pass into a failure.
constexpr int64_t kPatientTimeoutMs = 10000;
// Timeout (ms) for the test that waits for the client to give up.
constexpr int64_t kShortTimeoutMs = 300;

std::string Describe(const Status& status) {
  return "code " + std::to_string(static_cast<int>(status.code())) + ": " +
         status.operator_text();
}

std::unique_ptr<WeChatClient> ClientFor(
    const std::string& api_base, int64_t timeout_ms = kPatientTimeoutMs) {
  WeChatHttpOptions options;
  options.api_base = api_base;
  options.timeout_ms = timeout_ms;
  return NewHttpWeChatClient(options);
}

std::string LoopbackBase(int port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

// A WeChat stand-in that answers with `handler` (GET or POST on `path`) and
// counts the calls.
// Declare it before any client that talks to it: the client must close its
// kept-alive connection before the server stops, or Stop waits for it.
class FakeWeChat {
 public:
  using Handler =
      std::function<void(const httplib::Request&, httplib::Response&)>;

  explicit FakeWeChat(Handler handler,
                      const std::string& path = "/sns/jscode2session")
      : handler_(std::move(handler)) {
    // Enough workers (count) for the concurrency test's parked requests.
    server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    // Without it a reply on a reused connection waits ~40 ms for an ACK.
    server_.set_tcp_nodelay(true);
    server_.Get(path,
                [this](const httplib::Request& req, httplib::Response& res) {
                  ++calls_;
                  handler_(req, res);
                });
    server_.Post(path,
                 [this](const httplib::Request& req, httplib::Response& res) {
                   ++calls_;
                   handler_(req, res);
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ > 0) {
      server_.DeepenBacklog();
      thread_ = std::thread([this] { server_.listen_after_bind(); });
    }
  }

  ~FakeWeChat() { Stop(); }

  // Stops and waits for every handler to finish, so calls() is final.
  void Stop() {
    if (!thread_.joinable()) return;
    // stop() is ignored until listen_after_bind has started running.
    while (!server_.is_running()) std::this_thread::yield();
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string base() const { return LoopbackBase(port_); }
  int calls() const { return calls_.load(); }

 private:
  const Handler handler_;
  // Deep backlog: the concurrency test opens more connections at once than
  // httplib's default backlog of 5 holds, and a dropped SYN costs 1 s.
  DeepBacklogServer server_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> calls_{0};
};

void ReplyJson(httplib::Response& res, const json& body) {
  res.set_content(body.dump(), "application/json");
}

FakeWeChat::Handler AlwaysReply(json body) {
  return [body](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, body);
  };
}

json SuccessBody(const std::string& openid = "o-fake-openid") {
  return json{{"openid", openid}, {"session_key", "c2Vzc2lvbmtleTEyMzQ1Ng=="}};
}

// A loopback port that refuses connections: bound, so no one else can take
// it while the test runs, but not listening, so the kernel answers RST.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (fd_ >= 0 &&
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
            0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~RefusingPort() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = -1;
};

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
    EXPECT_NE(status.operator_text().find("errcode " + std::to_string(c.errcode)),
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
  EXPECT_EQ(
      StatusFromWeChatError("jscode2session", 40029, "invalid code").operator_text(),
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
// Against MockWeChatServer.

class MockWeChatTest : public ::testing::Test {
 protected:
  void SetUp() override { StartMock(MockWeChatOptions{}); }

  void StartMock(MockWeChatOptions options) {
    mock_ = std::make_unique<MockWeChatServer>(options);
    const Result<int> port = mock_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << Describe(port.status());
    port_ = port.value();
    serve_thread_ = std::thread([this] { mock_->Serve(); });
    client_ = ClientFor(LoopbackBase(port_));
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

// ---------------------------------------------------------------------------
// Against fakes that misbehave.

TEST(WeChatHttpTest, Non200ReplyIsUpstreamError) {
  FakeWeChat fake([](const httplib::Request&, httplib::Response& res) {
    res.status = 502;
    ReplyJson(res, SuccessBody());
  });
  auto client = ClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError);
  EXPECT_NE(result.status().operator_text().find("502"), std::string::npos);
  client.reset();
  fake.Stop();
  EXPECT_EQ(fake.calls(), 1);
}

TEST(WeChatHttpTest, NonJsonReplyIsUpstreamError) {
  FakeWeChat fake([](const httplib::Request&, httplib::Response& res) {
    res.set_content("<html>gateway</html>", "text/html");
  });
  auto client = ClientFor(fake.base());
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
    FakeWeChat fake(AlwaysReply(body));
    auto client = ClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << body.dump();
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError) << body.dump();
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), 1) << body.dump();
  }
}

TEST(WeChatHttpTest, ErrcodeZeroWithFieldsIsSuccess) {
  json body = SuccessBody("o-zero");
  body["errcode"] = 0;
  body["errmsg"] = "ok";
  FakeWeChat fake(AlwaysReply(body));
  auto client = ClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_TRUE(result.ok()) << Describe(result.status());
  EXPECT_EQ(result->openid, "o-zero");
  EXPECT_EQ(result->session_key, "c2Vzc2lvbmtleTEyMzQ1Ng==");
}

TEST(WeChatHttpTest, UnionIdOnlyWhenWeChatSendsOne) {
  {
    json body = SuccessBody();
    body["unionid"] = "u-union";
    FakeWeChat fake(AlwaysReply(body));
    auto client = ClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_EQ(result->unionid, std::optional<std::string>("u-union"));
  }
  {
    FakeWeChat fake(AlwaysReply(SuccessBody()));
    auto client = ClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_FALSE(result->unionid.has_value());
  }
}

TEST(WeChatHttpTest, BusyOnceThenSuccessRetriesExactlyOnce) {
  std::atomic<int> seen{0};
  FakeWeChat fake([&seen](const httplib::Request&, httplib::Response& res) {
    if (seen++ == 0) {
      ReplyJson(res, json{{"errcode", -1}, {"errmsg", "system error"}});
    } else {
      ReplyJson(res, SuccessBody("o-second-try"));
    }
  });
  auto client = ClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_TRUE(result.ok()) << Describe(result.status());
  EXPECT_EQ(result->openid, "o-second-try");
  client.reset();
  fake.Stop();
  EXPECT_EQ(fake.calls(), 2);
}

TEST(WeChatHttpTest, BusyTwiceIsUpstreamUnavailableAfterTwoCalls) {
  FakeWeChat fake(AlwaysReply(json{{"errcode", -1}, {"errmsg", "busy"}}));
  auto client = ClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(result.status().retry_after().has_value());
  client.reset();
  fake.Stop();
  EXPECT_EQ(fake.calls(), 2);
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
    FakeWeChat fake(AlwaysReply(
        json{{"errcode", c.errcode}, {"errmsg", "text for the operator"}}));
    auto client = ClientFor(fake.base());
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << c.errcode;
    EXPECT_EQ(result.status().code(), c.expected) << c.errcode;
    EXPECT_EQ(result.status().operator_text(),
              "WeChat jscode2session failed: errcode " +
                  std::to_string(c.errcode) + " (text for the operator)");
    if (c.errcode == 45011) {
      EXPECT_EQ(result.status().retry_after(), 60);
    }
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), 1) << c.errcode;
  }
}

TEST(WeChatHttpTest, ConnectionRefusedIsUpstreamUnavailable) {
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  for (const std::string scheme : {"http", "https"}) {
    auto client =
        ClientFor(scheme + "://127.0.0.1:" + std::to_string(refusing.port()));
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << scheme;
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable)
        << scheme << " " << Describe(result.status());
    EXPECT_TRUE(result.status().retry_after().has_value());
  }
}

TEST(WeChatHttpTest, ReadTimeoutIsUnavailableAndNotRetried) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  FakeWeChat fake([released](const httplib::Request&, httplib::Response& res) {
    released.wait();  // hangs like a WeChat that took the code and stalled
    ReplyJson(res, SuccessBody());
  });
  auto client = ClientFor(fake.base(), kShortTimeoutMs);
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  release.set_value();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamUnavailable)
      << Describe(result.status());
  EXPECT_TRUE(result.status().retry_after().has_value());
  client.reset();
  fake.Stop();  // waits for every handler, so the count is final
  EXPECT_EQ(fake.calls(), 1);
}

TEST(WeChatHttpTest, EveryValueArrivesIntactWhateverItsCharacters) {
  const std::string appid = "wx app&x=1";
  const std::string secret = "s+/&= %#?;\"'";
  const std::string code =
      "a+b/c&d=e f%g?h#i~._-%2B%u4E2D\xe4\xb8\xad\xe6\x96\x87\xf0\x9f\x98\x80";
  std::mutex mutex;
  httplib::Params received;
  std::string target;
  FakeWeChat fake([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex);
    received = req.params;
    target = req.target;
    ReplyJson(res, SuccessBody());
  });
  auto client = ClientFor(fake.base());
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

TEST(WeChatHttpTest, ApiBaseMayCarryAPathPrefix) {
  FakeWeChat fake(AlwaysReply(SuccessBody("o-behind-proxy")),
                  "/wx/proxy/sns/jscode2session");
  for (const std::string suffix : {"/wx/proxy", "/wx/proxy/"}) {
    auto client = ClientFor(fake.base() + suffix);
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_TRUE(result.ok()) << suffix << " " << Describe(result.status());
    EXPECT_EQ(result->openid, "o-behind-proxy");
  }
}

TEST(WeChatHttpTest, UnusableApiBaseIsInternalError) {
  for (const std::string api_base :
       {"", "ftp://api.weixin.qq.com", "api.weixin.qq.com", "http://",
        "http://host:99999", "http://host:port", "https://a?b=c",
        "http://user@host"}) {
    auto client = ClientFor(api_base);
    const auto result = client->Code2Session(kAppId, kSecret, "c1");
    ASSERT_FALSE(result.ok()) << api_base;
    EXPECT_EQ(result.status().code(), ErrorCode::kInternal) << api_base;
  }
}

TEST(WeChatHttpTest, OversizedReplyIsUpstreamError) {
  json body = SuccessBody();
  body["padding"] = std::string(100 * 1024, 'x');  // bytes; over the cap
  FakeWeChat fake(AlwaysReply(body));
  auto client = ClientFor(fake.base());
  const auto result = client->Code2Session(kAppId, kSecret, "c1");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError)
      << Describe(result.status());
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
    FakeWeChat fake(AlwaysReply(body));
    auto client = ClientFor(fake.base());
    collect(*client);
  }
  {
    FakeWeChat fake([&](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("internal error for " + both, "text/plain");
    });
    auto client = ClientFor(fake.base());
    collect(*client);
  }
  {
    FakeWeChat fake([&](const httplib::Request&, httplib::Response& res) {
      res.set_content("not json " + both, "text/plain");
    });
    auto client = ClientFor(fake.base());
    collect(*client);
  }
  {
    RefusingPort refusing;
    auto client = ClientFor(LoopbackBase(refusing.port()));
    collect(*client);
  }
  {
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    FakeWeChat fake([released](const httplib::Request&, httplib::Response&) {
      released.wait();
    });
    auto client = ClientFor(fake.base(), kShortTimeoutMs);
    collect(*client);
    release.set_value();
  }
  {
    auto client = ClientFor("gopher://nowhere");
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

// The client must not funnel calls through one connection: N calls are
// parked in the fake until all N have arrived. A serialising client would
// deliver one at a time, the fake would give up, and the calls would fail.
TEST(WeChatHttpTest, ConcurrentCallsRunInParallel) {
  constexpr int kCalls = 8;  // parallel logins; below the fake's 32 workers
  std::mutex mutex;
  std::condition_variable all_arrived;
  int arrived = 0;
  FakeWeChat fake([&](const httplib::Request& req, httplib::Response& res) {
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
  auto client = ClientFor(fake.base());
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

TEST(WeChatHttpTest, SequentialCallsReuseOneConnection) {
  std::mutex mutex;
  std::set<int> client_ports;
  FakeWeChat fake([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex);
    client_ports.insert(req.remote_port);
    ReplyJson(res, SuccessBody());
  });
  auto client = ClientFor(fake.base());
  for (int i = 0; i < 3; ++i) {
    const auto result =
        client->Code2Session(kAppId, kSecret, "c" + std::to_string(i));
    ASSERT_TRUE(result.ok()) << Describe(result.status());
  }
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(client_ports.size(), 1u);
}

// ---------------------------------------------------------------------------
// The calls of the access-token centre: stable_token, getuserphonenumber,
// checksession.

// An AccessTokenSource that hands out `current` and, when asked to replace
// a rejected token, `replacement`.
class ScriptedTokens : public AccessTokenSource {
 public:
  explicit ScriptedTokens(std::string current, std::string replacement = "")
      : current_(std::move(current)), replacement_(std::move(replacement)) {}

  Result<std::string> AccessTokenFor(const std::string& appid) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++gets_;
    appids_.push_back(appid);
    if (!error_.ok()) return error_;
    return current_;
  }
  Result<std::string> ReplaceRejectedAccessToken(
      const std::string& appid, const std::string& rejected) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++replacements_;
    appids_.push_back(appid);
    rejected_.push_back(rejected);
    current_ = replacement_;
    return current_;
  }

  void FailWith(Status error) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(error);
  }
  int gets() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return gets_;
  }
  int replacements() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return replacements_;
  }
  std::vector<std::string> rejected() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return rejected_;
  }
  std::vector<std::string> appids() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return appids_;
  }

 private:
  mutable std::mutex mutex_;
  std::string current_;  // GUARDED_BY(mutex_)
  const std::string replacement_;
  Status error_;                       // GUARDED_BY(mutex_)
  int gets_ = 0;                       // GUARDED_BY(mutex_)
  int replacements_ = 0;               // GUARDED_BY(mutex_)
  std::vector<std::string> rejected_;  // GUARDED_BY(mutex_)
  std::vector<std::string> appids_;    // GUARDED_BY(mutex_)
};

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
  FakeWeChat fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        method = req.method;
        content_type = req.get_header_value("Content-Type");
        bodies.push_back(json::parse(req.body, nullptr, false));
        ReplyJson(res, json{{"access_token", "ACCESS_TOKEN_1"},
                            {"expires_in", 7200}});
      },
      "/cgi-bin/stable_token");
  auto client = ClientFor(fake.base());
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
    FakeWeChat fake(AlwaysReply(body), "/cgi-bin/stable_token");
    auto client = ClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_FALSE(result.ok()) << body.dump();
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError) << body.dump();
    EXPECT_NE(result.status().operator_text().find("stable_token"),
              std::string::npos);
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), 1) << body.dump();
  }
}

TEST(StableTokenTest, BusyIsRetriedOnceAndQuotaIsRateLimited) {
  {
    std::atomic<int> seen{0};
    FakeWeChat fake(
        [&seen](const httplib::Request&, httplib::Response& res) {
          if (seen++ == 0) {
            ReplyJson(res, json{{"errcode", -1}, {"errmsg", "system error"}});
          } else {
            ReplyJson(res, json{{"access_token", "T2"}, {"expires_in", 7000}});
          }
        },
        "/cgi-bin/stable_token");
    auto client = ClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_TRUE(result.ok()) << Describe(result.status());
    EXPECT_EQ(result->access_token, "T2");
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), 2);
  }
  {
    FakeWeChat fake(AlwaysReply(json{{"errcode", 45011}, {"errmsg", "quota"}}),
                    "/cgi-bin/stable_token");
    auto client = ClientFor(fake.base());
    const auto result = client->StableToken(kAppId, kSecret, false);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kRateLimited);
  }
}

TEST(StableTokenTest, SecretNeverAppearsInMessages) {
  FakeWeChat fake(
      AlwaysReply(json{{"errcode", 40125},
                       {"errmsg", std::string("bad secret ") + kSecret}}),
      "/cgi-bin/stable_token");
  auto client = ClientFor(fake.base());
  const auto result = client->StableToken(kAppId, kSecret, false);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().operator_text().find(kSecret), std::string::npos)
      << result.status().operator_text();
  EXPECT_NE(result.status().operator_text().find("[secret]"), std::string::npos);
}

TEST(PhoneNumberTest, SendsCodeAndOpenIdWithTheTokenAndReadsPhoneInfo) {
  std::mutex mutex;
  json body;
  std::string token;
  std::string method;
  FakeWeChat fake(
      [&](const httplib::Request& req, httplib::Response& res) {
        std::lock_guard<std::mutex> lock(mutex);
        method = req.method;
        body = json::parse(req.body, nullptr, false);
        token = req.get_param_value("access_token");
        ReplyJson(res, PhoneInfoBody());
      },
      "/wxa/business/getuserphonenumber");
  auto client = ClientFor(fake.base());
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
  FakeWeChat fake(AlwaysReply(PhoneInfoBody(86)),
                  "/wxa/business/getuserphonenumber");
  auto client = ClientFor(fake.base());
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
    FakeWeChat fake(AlwaysReply(body), "/wxa/business/getuserphonenumber");
    auto client = ClientFor(fake.base());
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
    FakeWeChat fake(
        AlwaysReply(json{{"errcode", c.errcode}, {"errmsg", "mock"}}),
        "/wxa/business/getuserphonenumber");
    auto client = ClientFor(fake.base());
    ScriptedTokens tokens("t");
    const auto phone =
        client->GetPhoneNumber(tokens, kAppId, "phone-code-9", "o");
    ASSERT_FALSE(phone.ok()) << c.errcode;
    EXPECT_EQ(phone.status().code(), c.expected) << c.errcode;
    EXPECT_EQ(phone.status().operator_text(),
              "WeChat getuserphonenumber failed: errcode " +
                  std::to_string(c.errcode) + " (mock)");
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), c.calls) << c.errcode;
    EXPECT_EQ(tokens.replacements(), 0) << c.errcode;
  }
}

TEST(PhoneNumberTest, ARejectedTokenIsReplacedOnceAndTheCallRepeated) {
  for (const int rejection : {40001, 42001}) {
    FakeWeChat fake(
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
    auto client = ClientFor(fake.base());
    ScriptedTokens tokens("stale", "fresh");
    const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
    ASSERT_TRUE(phone.ok()) << rejection << " " << Describe(phone.status());
    EXPECT_EQ(tokens.replacements(), 1);
    EXPECT_EQ(tokens.rejected(), std::vector<std::string>{"stale"});
    client.reset();
    fake.Stop();
    EXPECT_EQ(fake.calls(), 2) << rejection;
  }
}

TEST(PhoneNumberTest, ASecondRejectionIsAnUpstreamErrorWithoutAThirdCall) {
  FakeWeChat fake(
      [](const httplib::Request& req, httplib::Response& res) {
        ReplyJson(res,
                  json{{"errcode", 40001},
                       {"errmsg", "invalid credential " +
                                      req.get_param_value("access_token")}});
      },
      "/wxa/business/getuserphonenumber");
  auto client = ClientFor(fake.base());
  ScriptedTokens tokens("tokenA-secretish", "tokenB-secretish");
  const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
  ASSERT_FALSE(phone.ok());
  EXPECT_EQ(phone.status().code(), ErrorCode::kUpstreamError);
  // The token is a credential: never quoted back.
  EXPECT_EQ(phone.status().operator_text().find("secretish"), std::string::npos)
      << phone.status().operator_text();
  EXPECT_NE(phone.status().operator_text().find("[access_token]"), std::string::npos);
  EXPECT_EQ(tokens.replacements(), 1);
  client.reset();
  fake.Stop();
  EXPECT_EQ(fake.calls(), 2);
}

TEST(PhoneNumberTest, ATokenSourceErrorIsPassedOnWithoutACall) {
  FakeWeChat fake(AlwaysReply(PhoneInfoBody()),
                  "/wxa/business/getuserphonenumber");
  auto client = ClientFor(fake.base());
  ScriptedTokens tokens("t");
  tokens.FailWith(Status(ErrorCode::kStoreUnavailable, "disk full"));
  const auto phone = client->GetPhoneNumber(tokens, kAppId, "c", "o");
  ASSERT_FALSE(phone.ok());
  EXPECT_EQ(phone.status().code(), ErrorCode::kStoreUnavailable);
  client.reset();
  fake.Stop();
  EXPECT_EQ(fake.calls(), 0);
}

TEST(CheckSessionKeyTest, SendsTheSignedQueryAndReadsTheVerdict) {
  const std::string session_key = "c2Vzc2lvbmtleTEyMzQ1Ng==";
  std::mutex mutex;
  httplib::Params params;
  FakeWeChat fake(
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
  auto client = ClientFor(fake.base());
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
    FakeWeChat fake(AlwaysReply(json{{"errcode", 40003}, {"errmsg", "openid"}}),
                    "/wxa/checksession");
    auto client = ClientFor(fake.base());
    ScriptedTokens tokens("t");
    const auto result = client->CheckSessionKey(tokens, kAppId, "o", "k");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), ErrorCode::kUpstreamError);
  }
  {
    FakeWeChat fake(
        [](const httplib::Request& req, httplib::Response& res) {
          if (req.get_param_value("access_token") == "fresh") {
            ReplyJson(res, json{{"errcode", 0}, {"errmsg", "ok"}});
          } else {
            ReplyJson(res, json{{"errcode", 42001}, {"errmsg", "expired"}});
          }
        },
        "/wxa/checksession");
    auto client = ClientFor(fake.base());
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
  FakeWeChat fake(AlwaysReply(json{{"errcode", 40013},
                                   {"errmsg", "echo " + session_key + " " +
                                                  signature + " tok-SECRET"}}),
                  "/wxa/checksession");
  auto client = ClientFor(fake.base());
  ScriptedTokens tokens("tok-SECRET");
  const auto result = client->CheckSessionKey(tokens, kAppId, "o", session_key);
  ASSERT_FALSE(result.ok());
  const std::string& message = result.status().operator_text();
  EXPECT_EQ(message.find(session_key), std::string::npos) << message;
  EXPECT_EQ(message.find(signature), std::string::npos) << message;
  EXPECT_EQ(message.find("tok-SECRET"), std::string::npos) << message;
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
