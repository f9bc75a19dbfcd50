// Tests for the HTTP WeChatClient (src/wechat_http.cc) and MockWeChatServer
// (src/mock_wechat.cc).
//
// Everything runs on 127.0.0.1: the mock, plus small httplib servers that
// play a misbehaving WeChat. Nothing here sleeps to wait for timing; a fake
// that must hang is released through a promise.

#include "wxsession/wechat.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
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

#include "httplib_server.h"
#include "mock_wechat.h"
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
         status.message();
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

// A WeChat stand-in that answers with `handler` and counts the calls.
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
    EXPECT_NE(status.message().find("errcode " + std::to_string(c.errcode)),
              std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("some text"), std::string::npos);
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
      StatusFromWeChatError("jscode2session", 40029, "invalid code").message(),
      "WeChat jscode2session failed: errcode 40029 (invalid code)");
  EXPECT_EQ(StatusFromWeChatError("jscode2session", 40029, "").message(),
            "WeChat jscode2session failed: errcode 40029");
}

TEST(StatusFromWeChatErrorTest, CleansAndBoundsErrmsg) {
  const Status status = StatusFromWeChatError("jscode2session", 40029,
                                              "bad\r\ncode\x01\x7f \xff done");
  EXPECT_EQ(status.message(),
            "WeChat jscode2session failed: errcode 40029 (badcode ? done)");

  // A long errmsg is cut, and never inside a multi-byte character.
  std::string long_errmsg;
  for (int i = 0; i < 300; ++i) long_errmsg += "\xe4\xb8\xad";  // U+4E2D
  const std::string message =
      StatusFromWeChatError("jscode2session", 1, long_errmsg).message();
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
  EXPECT_NE(again.status().message().find("40163"), std::string::npos)
      << again.status().message();
}

TEST_F(MockWeChatTest, SpecialCodesMapOntoTheErrorTable) {
  const auto invalid = Login("invalid");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.status().code(), ErrorCode::kInvalidCode);
  EXPECT_NE(invalid.status().message().find("40029"), std::string::npos);

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
    EXPECT_NE(invalid.status().message().find("40029"), std::string::npos)
        << "attempt " << i << ": " << invalid.status().message();
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
  EXPECT_NE(result.status().message().find("502"), std::string::npos);
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
    EXPECT_EQ(result.status().message(),
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
    EXPECT_EQ(status.message().find(kSecret), std::string::npos)
        << status.message();
    EXPECT_EQ(status.message().find(code), std::string::npos)
        << status.message();
    EXPECT_EQ(status.message().find("js_code="), std::string::npos)
        << status.message();
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

}  // namespace
}  // namespace wxsession
