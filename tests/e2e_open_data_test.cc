// End to end: the open-data routes, the phone number, checksession and the
// access-token centre, on the real wxsessiond binary against
// `wxsessiond mock-wechat`. Keys come from the mock's GET /mock/session_key;
// test data is encrypted here with crypto::Aes128CbcEncrypt.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "redis_support.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::ExpectError;
using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::PortFromListeningLine;
using testing_support::Process;
using testing_support::RedisServerProcess;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kAdminToken[] = "admin-0123456789abcdef-must-never-leak";

// Writes the admin token file in `dir` and returns the config keys for it,
// followed by `extra`.
std::string AdminConfig(const TempDir& dir, const std::string& extra = "") {
  const std::string path = dir.File("admin_token");
  // Surrounding whitespace is trimmed by the loader.
  WriteFile(path, std::string("  ") + kAdminToken + "\n");
  std::string config = R"("admin": {"token_file": ")" + path + R"("})";
  if (!extra.empty()) config += ",\n  " + extra;
  return config;
}

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(20, 0);
  return client;
}

json Get(httplib::Client& client, const std::string& path) {
  auto res = client.Get(path);
  EXPECT_TRUE(res && res->status == 200) << path;
  return res ? json::parse(res->body, nullptr, false) : json();
}

// A request body for /v1/decrypt: `payload` encrypted under `session_key`
// (base64 text) with a fresh random iv.
json Encrypted(const json& payload, const std::string& session_key) {
  const std::string iv = crypto::RandomBytes(16);
  const std::string key = crypto::Base64Decode(session_key).value_or("");
  return json{
      {"encryptedData",
       crypto::Base64Encode(
           crypto::Aes128CbcEncrypt(key, iv, payload.dump()).value_or(""))},
      {"iv", crypto::Base64Encode(iv)}};
}

json Watermarked(json payload, const std::string& appid = ServerFixture::kAppId,
                 int64_t timestamp = UnixNow()) {
  payload["watermark"] = {{"appid", appid}, {"timestamp", timestamp}};
  return payload;
}

class OpenDataE2E : public ::testing::Test {
 protected:
  explicit OpenDataE2E(const std::string& extra = "")
      : fixture_(AdminConfig(admin_dir_, extra)) {}
  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  httplib::Client Client() { return ClientFor(fixture_.port()); }
  httplib::Client Mock() { return ClientFor(fixture_.mock_port()); }

  std::string LoginOk(const std::string& code) {
    auto res = Client().Post("/v1/login", json{{"code", code}}.dump(),
                             "application/json");
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no reply");
    return res ? json::parse(res->body, nullptr, false).value("session_id", "")
               : "";
  }

  std::string OpenIdOf(const std::string& id) {
    auto res = Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
    EXPECT_TRUE(res && res->status == 200);
    return res ? json::parse(res->body, nullptr, false).value("openid", "")
               : "";
  }

  // The newest session_key the mock issued to the session's user.
  std::string KeyOf(const std::string& id) {
    httplib::Client mock = Mock();
    auto res = mock.Get("/mock/session_key",
                        httplib::Params{{"appid", ServerFixture::kAppId},
                                        {"openid", OpenIdOf(id)}},
                        httplib::Headers{});
    EXPECT_TRUE(res && res->status == 200);
    return res ? json::parse(res->body, nullptr, false).value("session_key", "")
               : "";
  }

  httplib::Result Post(const std::string& path, const std::string& id,
                       const std::string& body) {
    httplib::Headers headers;
    if (!id.empty()) headers.emplace("Authorization", "Bearer " + id);
    return Client().Post(path, headers, body, "application/json");
  }
  httplib::Result Post(const std::string& path, const std::string& id,
                       const json& body) {
    return Post(path, id, body.dump());
  }

  json MockStats() {
    httplib::Client mock = Mock();
    return Get(mock, "/mock/stats");
  }
  void MockFailNext(const std::string& api, int errcode, int times = 1) {
    auto res = Mock().Post("/mock/fail_next?api=" + api +
                           "&errcode=" + std::to_string(errcode) +
                           "&times=" + std::to_string(times));
    ASSERT_TRUE(res && res->status == 200);
  }

  httplib::Result AdminToken(const std::string& query = "") {
    return Client().Get(
        "/v1/admin/access-token" + query,
        {{"Authorization", std::string("Bearer ") + kAdminToken}});
  }

  TempDir admin_dir_;  // before fixture_: it holds the admin token file
  ServerFixture fixture_;
};

// ---------------------------------------------------------------------------
// POST /v1/decrypt

TEST_F(OpenDataE2E, DecryptAnswersEveryPayloadKind) {
  const std::string id = LoginOk("alice.1");
  const std::string key = KeyOf(id);
  ASSERT_EQ(crypto::Base64Decode(key).value_or("").size(), 16u);
  const json payloads[] = {
      Watermarked({{"openId", OpenIdOf(id)},
                   {"nickName", "Alice \xE5\xB0\x8F\xE7\xBE\x8A"},
                   {"gender", 2},
                   {"avatarUrl", "https://thirdwx.qlogo.cn/x/132"}}),
      Watermarked({{"phoneNumber", "+86 13580006666"},
                   {"purePhoneNumber", "13580006666"},
                   {"countryCode", "86"}}),
      Watermarked({{"openGId", "tG5bE0lZ3Vz0g"}}),
      Watermarked({{"stepInfoList",
                    {{{"timestamp", 1445866601}, {"step", 100}},
                     {{"timestamp", 1445876601}, {"step", 120}}}}}),
  };
  for (const json& payload : payloads) {
    auto res = Post("/v1/decrypt", id, Encrypted(payload, key));
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(json::parse(res->body), (json{{"data", payload}}));
  }
}

TEST_F(OpenDataE2E, DecryptUsesTheNewestKeyOfTheUser) {
  const std::string first = LoginOk("bob.1");
  const std::string old_key = KeyOf(first);
  const json payload = Watermarked({{"openGId", "G1"}});
  const json old_data = Encrypted(payload, old_key);
  ASSERT_EQ(Post("/v1/decrypt", first, old_data)->status, 200);

  // The same user logs in again (another device, or a wx.login the client
  // did after getting the data): WeChat issues a new key, and the server
  // keeps only the newest for the user.
  const std::string second = LoginOk("bob.2");
  const std::string new_key = KeyOf(second);
  ASSERT_NE(new_key, old_key);
  const json new_data = Encrypted(payload, new_key);
  for (const std::string& id : {first, second}) {
    auto ok = Post("/v1/decrypt", id, new_data);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
    auto stale = Post("/v1/decrypt", id, old_data);
    ExpectError(stale, 422, "decrypt_failed");
    EXPECT_NE(stale->body.find("wx.login"), std::string::npos) << stale->body;
  }
}

TEST_F(OpenDataE2E, DecryptAcceptsWrappedBase64) {
  const std::string id = LoginOk("carol.1");
  json body =
      Encrypted(Watermarked({{"nickName", std::string(200, 'n')}}), KeyOf(id));
  const std::string flat = body["encryptedData"];
  std::string wrapped;
  for (size_t i = 0; i < flat.size(); i += 76) {
    wrapped += flat.substr(i, 76) + "\r\n";
  }
  body["encryptedData"] = wrapped;
  auto res = Post("/v1/decrypt", id, body);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(OpenDataE2E, DecryptErrors) {
  const std::string id = LoginOk("dave.1");
  const std::string key = KeyOf(id);
  const json good = Encrypted(Watermarked({{"openGId", "G"}}), key);

  ExpectError(Post("/v1/decrypt", "", good), 401, "invalid_session");
  ExpectError(Post("/v1/decrypt", "x", good), 401, "invalid_session");
  ExpectError(Post("/v1/decrypt", id, std::string("{not json")), 400,
              "invalid_request");
  ExpectError(Post("/v1/decrypt", id, json::array()), 400, "invalid_request");
  ExpectError(Post("/v1/decrypt", id, json{{"iv", good["iv"]}}), 400,
              "invalid_request");
  ExpectError(
      Post("/v1/decrypt", id, json{{"encryptedData", good["encryptedData"]}}),
      400, "invalid_request");
  ExpectError(Post("/v1/decrypt", id,
                   json{{"encryptedData", good["encryptedData"]}, {"iv", 16}}),
              400, "invalid_request");
  ExpectError(Post("/v1/decrypt", id,
                   json{{"encryptedData", json::array()}, {"iv", good["iv"]}}),
              400, "invalid_request");

  json bad_base64 = good;
  bad_base64["encryptedData"] = "***";
  ExpectError(Post("/v1/decrypt", id, bad_base64), 422, "decrypt_failed");
  json short_iv = good;
  short_iv["iv"] = crypto::Base64Encode("12345678");
  ExpectError(Post("/v1/decrypt", id, short_iv), 422, "decrypt_failed");
  json flipped = good;
  std::string bytes =
      crypto::Base64Decode(good["encryptedData"].get<std::string>()).value();
  bytes[bytes.size() - 1] = static_cast<char>(bytes[bytes.size() - 1] ^ 0x55);
  flipped["encryptedData"] = crypto::Base64Encode(bytes);
  ExpectError(Post("/v1/decrypt", id, flipped), 422, "decrypt_failed");
  json truncated = good;
  truncated["encryptedData"] =
      crypto::Base64Encode(bytes.substr(0, bytes.size() - 3));
  ExpectError(Post("/v1/decrypt", id, truncated), 422, "decrypt_failed");
  ExpectError(
      Post("/v1/decrypt", id,
           Encrypted(Watermarked({{"openGId", "G"}}, "wxsomeoneelse00000"),
                     key)),
      422, "watermark_mismatch");
  ExpectError(Post("/v1/decrypt", id, Encrypted(json::array({1, 2}), key)), 422,
              "decrypt_failed");

  // max_age is off by default: a year-old watermark is accepted.
  auto old =
      Post("/v1/decrypt", id,
           Encrypted(Watermarked({{"openGId", "G"}}, ServerFixture::kAppId,
                                 UnixNow() - 365 * 86400),
                     key));
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 200) << old->body;
}

class OpenDataMaxAgeE2E : public OpenDataE2E {
 protected:
  OpenDataMaxAgeE2E() : OpenDataE2E(R"("open_data": {"max_age": "5m"})") {}
};

TEST_F(OpenDataMaxAgeE2E, OldWatermarksAreExpired) {
  const std::string id = LoginOk("erin.1");
  const std::string key = KeyOf(id);
  const json payload = {{"openGId", "G"}};
  ExpectError(Post("/v1/decrypt", id,
                   Encrypted(Watermarked(payload, ServerFixture::kAppId,
                                         UnixNow() - 3600),
                             key)),
              422, "watermark_expired");
  auto fresh = Post(
      "/v1/decrypt", id,
      Encrypted(Watermarked(payload, ServerFixture::kAppId, UnixNow() - 10),
                key));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->status, 200) << fresh->body;
}

// ---------------------------------------------------------------------------
// POST /v1/verify

TEST_F(OpenDataE2E, VerifyChecksTheSignatureWithTheNewestKey) {
  const std::string first = LoginOk("fay.1");
  const std::string raw = R"({"nickName":"Fay","gender":2})";
  const auto verify = [&](const std::string& id, const std::string& data,
                          const std::string& signature) {
    auto res = Post("/v1/verify", id,
                    json{{"rawData", data}, {"signature", signature}});
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "");
    return res ? json::parse(res->body, nullptr, false) : json();
  };
  const std::string old_key = KeyOf(first);
  EXPECT_EQ(verify(first, raw, crypto::Sha1Hex(raw + old_key)),
            (json{{"valid", true}}));
  EXPECT_EQ(verify(first, raw + " ", crypto::Sha1Hex(raw + old_key)),
            (json{{"valid", false}}));
  EXPECT_EQ(verify(first, raw, crypto::Sha1Hex(old_key + raw)),
            (json{{"valid", false}}));

  LoginOk("fay.2");
  const std::string new_key = KeyOf(first);
  EXPECT_EQ(verify(first, raw, crypto::Sha1Hex(raw + new_key)),
            (json{{"valid", true}}));
  EXPECT_EQ(verify(first, raw, crypto::Sha1Hex(raw + old_key)),
            (json{{"valid", false}}));

  ExpectError(
      Post("/v1/verify", "", json{{"rawData", raw}, {"signature", "s"}}), 401,
      "invalid_session");
  ExpectError(Post("/v1/verify", first, json{{"rawData", raw}}), 400,
              "invalid_request");
  ExpectError(
      Post("/v1/verify", first, json{{"rawData", raw}, {"signature", 1}}), 400,
      "invalid_request");
}

// ---------------------------------------------------------------------------
// POST /v1/phone

TEST_F(OpenDataE2E, PhoneNumberAnswersTheThreeFields) {
  const std::string id = LoginOk("gus.1");
  const auto phone = [&](const std::string& code) {
    return Post("/v1/phone", id, json{{"code", code}});
  };
  auto cn = phone("cn.1");
  ASSERT_TRUE(cn);
  ASSERT_EQ(cn->status, 200) << cn->body;
  EXPECT_EQ(json::parse(cn->body), (json{{"phoneNumber", "13800138000"},
                                         {"purePhoneNumber", "13800138000"},
                                         {"countryCode", "86"}}));
  // WeChat sent countryCode as a number: the answer still has a string.
  auto numeric = phone("numeric.1");
  ASSERT_TRUE(numeric);
  ASSERT_EQ(numeric->status, 200) << numeric->body;
  EXPECT_EQ(json::parse(numeric->body)["countryCode"], "86");
  auto us = phone("us.1");
  ASSERT_TRUE(us);
  EXPECT_EQ(json::parse(us->body), (json{{"phoneNumber", "+1 2025550123"},
                                         {"purePhoneNumber", "2025550123"},
                                         {"countryCode", "1"}}));
  // One token served all three.
  EXPECT_EQ(MockStats()["stable_token"], 1);
  EXPECT_EQ(MockStats()["getuserphonenumber"], 3);
}

TEST_F(OpenDataE2E, PhoneNumberErrors) {
  const std::string id = LoginOk("hana.1");
  const auto phone = [&](const std::string& code) {
    return Post("/v1/phone", id, json{{"code", code}});
  };
  ExpectError(phone("invalid"), 400, "invalid_code");
  auto limited = phone("limit");
  ExpectError(limited, 429, "rate_limited");
  EXPECT_EQ(limited->get_header_value("Retry-After"), "60");
  auto busy = phone("busy");
  ExpectError(busy, 503, "upstream_unavailable");
  EXPECT_FALSE(busy->get_header_value("Retry-After").empty());
  ExpectError(phone("errcode:40013"), 502, "upstream_error");
  ExpectError(phone("http:500"), 502, "upstream_error");
  ExpectError(phone("otherapp.1"), 422, "watermark_mismatch");
  ASSERT_EQ(phone("cn.7")->status, 200);
  ExpectError(phone("cn.7"), 400, "invalid_code");  // single-use
  ExpectError(phone(""), 400, "invalid_request");
  ExpectError(Post("/v1/phone", id, json::object()), 400, "invalid_request");
  ExpectError(Post("/v1/phone", id, json{{"code", 5}}), 400, "invalid_request");
  ExpectError(Post("/v1/phone", "", json{{"code", "cn.8"}}), 401,
              "invalid_session");
}

TEST_F(OpenDataE2E, ARejectedTokenIsForceRefreshedAndTheCallRetriedOnce) {
  const std::string id = LoginOk("ivan.1");
  ASSERT_EQ(Post("/v1/phone", id, json{{"code", "cn.1"}})->status, 200);
  // Someone else force-refreshes the token: ours now gets 40001.
  ASSERT_TRUE(Mock().Post("/mock/invalidate_token?appid=" +
                          std::string(ServerFixture::kAppId)));
  auto res = Post("/v1/phone", id, json{{"code", "cn.2"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  json stats = MockStats();
  EXPECT_EQ(stats["stable_token"], 2);
  EXPECT_EQ(stats["stable_token_forced"], 1);
  EXPECT_EQ(stats["getuserphonenumber"], 3);
  // The replacement is what the admin route hands out now.
  auto admin = AdminToken();
  ASSERT_TRUE(admin && admin->status == 200);
  EXPECT_EQ(MockStats()["stable_token"], 2);
}

TEST_F(OpenDataE2E, TokenRejectedTwiceIsAnUpstreamErrorAfterOneRetry) {
  const std::string id = LoginOk("judy.1");
  MockFailNext("getuserphonenumber", 42001, 2);
  ExpectError(Post("/v1/phone", id, json{{"code", "cn.1"}}), 502,
              "upstream_error");
  json stats = MockStats();
  EXPECT_EQ(stats["getuserphonenumber"], 2);
  EXPECT_EQ(stats["stable_token_forced"], 1);
}

// ---------------------------------------------------------------------------
// POST /v1/session/check

TEST_F(OpenDataE2E, SessionCheckFollowsTheNewestKey) {
  const std::string first = LoginOk("kate.1");
  const auto check = [&](const std::string& id) {
    return Post("/v1/session/check", id, std::string());
  };
  auto valid = check(first);
  ASSERT_TRUE(valid);
  ASSERT_EQ(valid->status, 200) << valid->body;
  EXPECT_EQ(json::parse(valid->body), (json{{"session_key_valid", true}}));

  // A second login through the server: the server holds the newest key, so
  // the first session's check still passes.
  LoginOk("kate.2");
  EXPECT_EQ(json::parse(check(first)->body)["session_key_valid"], true);

  // A wx.login the server never saw: WeChat's key moved on, ours is stale.
  auto behind = Mock().Get(
      "/sns/jscode2session?appid=" + std::string(ServerFixture::kAppId) +
      "&secret=s&js_code=kate.3&grant_type=authorization_code");
  ASSERT_TRUE(behind && behind->status == 200);
  auto stale = check(first);
  ASSERT_TRUE(stale);
  ASSERT_EQ(stale->status, 200) << stale->body;
  EXPECT_EQ(json::parse(stale->body), (json{{"session_key_valid", false}}));

  MockFailNext("checksession", 45011);
  ExpectError(check(first), 429, "rate_limited");
  MockFailNext("checksession", -1, 2);
  ExpectError(check(first), 503, "upstream_unavailable");
  ExpectError(check(""), 401, "invalid_session");
  EXPECT_EQ(MockStats()["stable_token"], 1);
}

TEST_F(OpenDataE2E, ABodilessPostWithoutContentLengthIsAnsweredAtOnce) {
  // What `curl -X POST` sends: no Content-Length, no body. HTTP/1.1 says
  // the body is empty; the server must not wait for one.
  const std::string id = LoginOk("kim.1");
  const std::string reply = testing_support::RawHttp(
      fixture_.port(),
      "POST /v1/session/check HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer " +
          id + "\r\nConnection: close\r\n\r\n",
      // Milliseconds without an answer: under the server's 5 s read
      // timeout, which a server waiting for a body would run into.
      3000);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find(R"({"session_key_valid":true})"), std::string::npos)
      << reply;
}

// ---------------------------------------------------------------------------
// GET /v1/admin/access-token

TEST_F(OpenDataE2E, AdminAccessTokenWantsTheAdminToken) {
  auto client = Client();
  auto none = client.Get("/v1/admin/access-token");
  ExpectError(none, 401, "unauthorized");
  EXPECT_FALSE(none->get_header_value("WWW-Authenticate").empty());
  ExpectError(
      client.Get("/v1/admin/access-token",
                 {{"Authorization", "Bearer wrong-token-of-some-length"}}),
      401, "unauthorized");
  ExpectError(client.Get("/v1/admin/access-token",
                         {{"Authorization",
                           std::string("Bearer ") + kAdminToken + "x"}}),
              401, "unauthorized");
  ExpectError(
      client.Get("/v1/admin/access-token", {{"X-WX-Session", kAdminToken}}),
      401, "unauthorized");
  // A session id is not an admin token.
  const std::string id = LoginOk("leo.1");
  ExpectError(
      client.Get("/v1/admin/access-token", {{"Authorization", "Bearer " + id}}),
      401, "unauthorized");
  EXPECT_EQ(MockStats()["stable_token"], 0);

  auto res = AdminToken();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store");
  json body = json::parse(res->body);
  const std::string token = body["access_token"];
  EXPECT_EQ(token.rfind("mock-at-", 0), 0u) << token;
  EXPECT_GT(body["expires_at"].get<int64_t>(), UnixNow() + 7000);
  auto by_appid = AdminToken("?appid=" + std::string(ServerFixture::kAppId));
  ASSERT_TRUE(by_appid);
  EXPECT_EQ(json::parse(by_appid->body)["access_token"], token);
  ExpectError(AdminToken("?appid=wxnotconfigured0000"), 400, "unknown_app");
  EXPECT_EQ(MockStats()["stable_token"], 1);

  // Neither the admin token nor the access token nor the secret is logged.
  const std::string log = fixture_.server()->Stderr();
  EXPECT_NE(log.find("admin_unauthorized"), std::string::npos) << log;
  EXPECT_EQ(log.find(kAdminToken), std::string::npos);
  EXPECT_EQ(log.find(token), std::string::npos);
  EXPECT_EQ(log.find(ServerFixture::kSecret), std::string::npos);
}

TEST_F(OpenDataE2E, AdminAccessTokenPassesWeChatErrorsOn) {
  MockFailNext("stable_token", 40013);
  ExpectError(AdminToken(), 502, "upstream_error");
  MockFailNext("stable_token", -1, 2);
  auto busy = AdminToken();
  ExpectError(busy, 503, "upstream_unavailable");
  EXPECT_FALSE(busy->get_header_value("Retry-After").empty());
  MockFailNext("stable_token", 45011);
  ExpectError(AdminToken(), 429, "rate_limited");
  auto ok = AdminToken();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(OpenDataE2ENoAdmin, AdminRoutesDoNotExistWithoutAnAdminToken) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  httplib::Client client = ClientFor(fixture.port());
  ExpectError(
      client.Get("/v1/admin/access-token",
                 {{"Authorization", std::string("Bearer ") + kAdminToken}}),
      404, "not_found");
}

TEST(OpenDataE2EConfig, AShortAdminTokenStopsStartUp) {
  TempDir dir;
  WriteFile(dir.File("admin_token"), "tinytok\n");
  ServerFixture fixture(R"("admin": {"token_file": ")" +
                        dir.File("admin_token") + R"("})");
  Process server({BinaryPath(), "serve", "--config", fixture.config_path()});
  auto code = server.Wait(10000);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(server.Stderr().find("admin.token_file"), std::string::npos)
      << server.Stderr();
  // The token itself is never quoted.
  EXPECT_EQ(server.Stderr().find("tinytok"), std::string::npos)
      << server.Stderr();
}

// ---------------------------------------------------------------------------
// The access-token centre under load, across processes and restarts. The
// mock answers after a delay, so callers really overlap the one fetch.

class TokenCentreE2E : public ::testing::Test {
 protected:
  // Milliseconds the mock takes per call: long enough that concurrent
  // callers arrive while the first fetch is in flight, well under the
  // fixture's 1 s WeChat timeout.
  static constexpr int kMockDelayMs = 300;

  // `store_config`: extra config keys, e.g. a Redis store.
  explicit TokenCentreE2E(const std::string& store_config = "")
      : mock_({BinaryPath(), "mock-wechat", "--listen", "127.0.0.1:0",
               "--delay", std::to_string(kMockDelayMs)}),
        mock_port_(MockPort(mock_)),
        fixture_(AdminConfig(admin_dir_, store_config), /*start_mock=*/false,
                 "http://127.0.0.1:" + std::to_string(mock_port_)) {}

  static int MockPort(Process& mock) {
    auto line = mock.WaitForLine("listening on", 10000);
    return line ? PortFromListeningLine(*line) : 0;
  }

  void SetUp() override {
    ASSERT_GT(mock_port_, 0);
    ASSERT_TRUE(fixture_.Start());
  }

  // Starts another server process on the fixture's config (same database).
  std::unique_ptr<Process> StartSecondServer(int* port) {
    auto server = std::make_unique<Process>(std::vector<std::string>{
        BinaryPath(), "serve", "--config", fixture_.config_path()});
    auto line = server->WaitForLine("listening on", 10000);
    *port = line ? PortFromListeningLine(*line) : 0;
    return server;
  }

  // Fetches the admin token from each of `ports` in `per_port` parallel
  // callers; returns every token answered (empty strings for failures).
  static std::vector<std::string> ConcurrentTokens(
      const std::vector<int>& ports, int per_port) {
    std::vector<std::future<std::string>> calls;
    for (int port : ports) {
      for (int i = 0; i < per_port; ++i) {
        calls.push_back(std::async(std::launch::async, [port] {
          httplib::Client client = ClientFor(port);
          auto res = client.Get(
              "/v1/admin/access-token",
              {{"Authorization", std::string("Bearer ") + kAdminToken}});
          if (!res || res->status != 200) return std::string();
          return json::parse(res->body, nullptr, false)
              .value("access_token", "");
        }));
      }
    }
    std::vector<std::string> tokens;
    for (auto& call : calls) tokens.push_back(call.get());
    return tokens;
  }

  int StableTokenCalls() {
    httplib::Client mock = ClientFor(mock_port_);
    return Get(mock, "/mock/stats").value("stable_token", -1);
  }

  // Two server processes on one store: concurrent callers on both share
  // one fetch, and a restart of one keeps the token.
  void ExpectTwoServersShareOneToken() {
    int second_port = 0;
    std::unique_ptr<Process> second = StartSecondServer(&second_port);
    ASSERT_GT(second_port, 0) << second->Stderr();

    // Both processes at once, 25 callers each: one fetch between them.
    const std::vector<std::string> tokens =
        ConcurrentTokens({fixture_.port(), second_port}, 25);
    ASSERT_EQ(tokens.size(), 50u);
    const std::set<std::string> distinct(tokens.begin(), tokens.end());
    ASSERT_EQ(distinct.size(), 1u);
    const std::string token = *distinct.begin();
    EXPECT_FALSE(token.empty());
    EXPECT_EQ(StableTokenCalls(), 1);

    // Restart the first server: the token comes back from the store.
    fixture_.StopServer(SIGTERM);
    ASSERT_EQ(fixture_.WaitServer(5000), std::optional<int>(0));
    ASSERT_TRUE(fixture_.Start());
    EXPECT_EQ(ConcurrentTokens({fixture_.port()}, 1),
              std::vector<std::string>{token});
    EXPECT_EQ(StableTokenCalls(), 1);

    second->Signal(SIGTERM);
    EXPECT_EQ(second->Wait(5000), std::optional<int>(0));
  }

  Process mock_;
  int mock_port_;
  TempDir admin_dir_;
  ServerFixture fixture_;
};

TEST_F(TokenCentreE2E, HundredConcurrentCallersMakeOneUpstreamCall) {
  const std::vector<std::string> tokens =
      ConcurrentTokens({fixture_.port()}, 100);
  ASSERT_EQ(tokens.size(), 100u);
  EXPECT_FALSE(tokens.front().empty());
  EXPECT_EQ(std::set<std::string>(tokens.begin(), tokens.end()).size(), 1u);
  EXPECT_EQ(StableTokenCalls(), 1);
}

TEST_F(TokenCentreE2E, TwoServerProcessesShareOneTokenAndARestartKeepsIt) {
  ExpectTwoServersShareOneToken();
}

// A running redis-server, started before the fixture that names it.
struct RunningRedis {
  RunningRedis() { started = redis.Start(); }
  RedisServerProcess redis;
  bool started = false;
};

// The same with the Redis store: the token and the lease live in Redis.
class RedisTokenCentreE2E : protected RunningRedis, public TokenCentreE2E {
 protected:
  RedisTokenCentreE2E()
      : TokenCentreE2E(R"("store": ")" + redis.url() +
                       R"(", "redis": {"prefix": "tok:"})") {}
  void SetUp() override {
    ASSERT_TRUE(started) << redis.error();
    TokenCentreE2E::SetUp();
  }
};

TEST_F(RedisTokenCentreE2E, TwoServerProcessesShareOneTokenAndARestartKeepsIt) {
  ExpectTwoServersShareOneToken();
  EXPECT_NE(redis.Command({"KEYS", "tok:*"}), "") << "nothing stored in Redis";
}

}  // namespace
}  // namespace wxsession
