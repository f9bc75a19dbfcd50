// End to end: signed tokens (tokens.*) on the real binary: POST /v1/token,
// the JWKS and discovery documents, POST /v1/introspect, /v1/auth with a
// JWT, metrics, and rotate-signing-key with two instances on one database.
// (The signatures themselves are checked by Node's crypto in
// tests/client/tokens_test.js.)
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "test_support.h"
#include "wxsession/clock.h"
#include "wxsession/jwt.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::ExpectError;
using testing_support::Process;
using testing_support::RunCommand;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kIntrospectionToken[] = "introspect-0123456789abcdef";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";

// Files the config names, made before the fixture writes the config.
struct TokenFiles {
  TokenFiles() {
    WriteFile(dir.File("introspect"), std::string("# one token a line\n\n  ") +
                                          kIntrospectionToken +
                                          "  \nother-token-0123456789abcdef\n");
    WriteFile(dir.File("admin"), std::string(kAdminToken) + "\n");
  }
  std::string Config(const std::string& ttl) const {
    return R"("admin": {"token_file": ")" + dir.File("admin") +
           R"("}, "tokens": {"issuer": "https://auth.example.com", "ttl": ")" +
           ttl + R"(", "introspection_tokens_file": ")" +
           dir.File("introspect") + R"("})";
  }
  TempDir dir;
};

json Claims(const std::string& token) {
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  return json::parse(
      *jwt::Base64UrlDecode(token.substr(first + 1, second - first - 1)));
}

std::string Kid(const std::string& token) {
  return json::parse(*jwt::Base64UrlDecode(token.substr(0, token.find('.'))))
      .value("kid", "");
}

class Tokens : public ::testing::Test {
 protected:
  explicit Tokens(const std::string& ttl = "10m")
      : fixture_(files_.Config(ttl)) {}
  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  httplib::Client Client(int port = 0) {
    httplib::Client client("127.0.0.1", port ? port : fixture_.port());
    client.set_read_timeout(10, 0);
    return client;
  }

  std::string Login(const std::string& code, int port = 0) {
    auto res = Client(port).Post("/v1/login", json({{"code", code}}).dump(),
                                 "application/json");
    EXPECT_TRUE(res && res->status == 200);
    return res ? json::parse(res->body).value("session_id", "") : "";
  }

  std::string Token(const std::string& session_id, int port = 0) {
    auto res = Client(port).Post(
        "/v1/token", {{"Authorization", "Bearer " + session_id}}, "", "");
    EXPECT_TRUE(res);
    if (!res) return "";
    EXPECT_EQ(res->status, 200) << res->body;
    return json::parse(res->body).value("access_token", "");
  }

  httplib::Result Auth(const std::string& credential, int port = 0) {
    return Client(port).Get("/v1/auth",
                            {{"Authorization", "Bearer " + credential}});
  }

  httplib::Result Introspect(const std::string& token,
                             const std::string& caller = kIntrospectionToken) {
    httplib::Headers headers;
    if (!caller.empty()) headers.emplace("Authorization", "Bearer " + caller);
    return Client().Post("/v1/introspect", headers,
                         "token=" + token,  // base64url and dots: form-safe
                         "application/x-www-form-urlencoded");
  }

  std::set<std::string> JwksKids(int port = 0) {
    auto res = Client(port).Get("/.well-known/jwks.json");
    std::set<std::string> kids;
    if (!res || res->status != 200) {
      ADD_FAILURE() << "no JWKS";
      return kids;
    }
    const json jwks = json::parse(res->body);
    for (const json& key : jwks["keys"]) {
      kids.insert(key.value("kid", ""));
    }
    return kids;
  }

  TokenFiles files_;
  ServerFixture fixture_;
};

TEST(TokensOff, TheRoutesAreNotFoundWithoutAnIssuer) {
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  httplib::Client client("127.0.0.1", fixture.port());
  ExpectError(client.Post("/v1/token", "", "application/json"), 404,
              "not_found");
  ExpectError(client.Post("/v1/introspect", "token=x",
                          "application/x-www-form-urlencoded"),
              404, "not_found");
  ExpectError(client.Get("/.well-known/jwks.json"), 404, "not_found");
  ExpectError(client.Get("/.well-known/openid-configuration"), 404,
              "not_found");
}

TEST(TokensConfig, ATtlOverAnHourStopsStartUp) {
  TokenFiles files;
  ServerFixture fixture(files.Config("61m"));
  testing_support::CommandResult run =
      RunCommand({BinaryPath(), "serve", "--config", fixture.config_path()});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("config: tokens.ttl"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find(kIntrospectionToken), std::string::npos);
}

TEST_F(Tokens, ALiveSessionGetsAJwtItsKeyIsPublished) {
  ExpectError(Client().Post("/v1/token", "", ""), 401, "invalid_session");
  const std::string id = Login("alice.1");
  auto res =
      Client().Post("/v1/token", {{"Authorization", "Bearer " + id}}, "", "");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store");
  json body = json::parse(res->body);
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["expires_in"], 600);  // the default ttl, 10m
  const std::string token = body["access_token"];
  json claims = Claims(token);
  EXPECT_EQ(claims["iss"], "https://auth.example.com");
  EXPECT_EQ(claims["aud"], ServerFixture::kAppId);
  EXPECT_EQ(claims["exp"].get<int64_t>() - claims["iat"].get<int64_t>(), 600);

  auto jwks = Client().Get("/.well-known/jwks.json");
  ASSERT_TRUE(jwks);
  ASSERT_EQ(jwks->status, 200);
  EXPECT_EQ(jwks->get_header_value("Cache-Control"), "public, max-age=300");
  json keys = json::parse(jwks->body)["keys"];
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0]["kid"], Kid(token));
  EXPECT_EQ(keys[0]["kty"], "EC");
  EXPECT_EQ(keys[0]["crv"], "P-256");
  EXPECT_EQ(keys[0]["alg"], "ES256");
  EXPECT_EQ(keys[0]["use"], "sig");
  EXPECT_FALSE(keys[0].contains("d"));

  auto discovery = Client().Get("/.well-known/openid-configuration");
  ASSERT_TRUE(discovery);
  ASSERT_EQ(discovery->status, 200);
  json meta = json::parse(discovery->body);
  EXPECT_EQ(meta["issuer"], "https://auth.example.com");
  EXPECT_EQ(meta["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
  EXPECT_EQ(meta["token_endpoint"], "https://auth.example.com/v1/token");
  EXPECT_EQ(meta["introspection_endpoint"],
            "https://auth.example.com/v1/introspect");
  EXPECT_EQ(meta["id_token_signing_alg_values_supported"], json({"ES256"}));
}

TEST_F(Tokens, AuthTakesAJwtAndSeesALogoutAtOnce) {
  const std::string id = Login("alice.1");
  const std::string token = Token(id);
  auto ok = Auth(token);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 204) << ok->body;
  EXPECT_EQ(ok->get_header_value("X-WX-AppID"), ServerFixture::kAppId);
  EXPECT_EQ(ok->get_header_value("X-WX-OpenID"), Claims(token)["sub"]);
  ExpectError(Auth(token.substr(0, token.size() - 2) + "AA"), 401,
              "invalid_session");
  ASSERT_EQ(Client()
                .Post("/v1/logout", {{"Authorization", "Bearer " + id}}, "", "")
                ->status,
            204);
  ExpectError(Auth(token), 401, "invalid_session");
}

TEST_F(Tokens, IntrospectionAnswersActiveOnlyForLiveCredentials) {
  const std::string id = Login("alice.1");
  const std::string token = Token(id);
  ExpectError(Introspect(token, ""), 401, "unauthorized");
  ExpectError(Introspect(token, "not-a-configured-token-0000"), 401,
              "unauthorized");
  for (const char* caller :
       {kIntrospectionToken, "other-token-0123456789abcdef", kAdminToken}) {
    auto res = Introspect(token, caller);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store");
    json body = json::parse(res->body);
    EXPECT_EQ(body["active"], true);
    EXPECT_EQ(body["sub"], Claims(token)["sub"]);
    EXPECT_EQ(body["sid"], Claims(token)["sid"]);
    EXPECT_EQ(body["exp"], Claims(token)["exp"]);
  }
  EXPECT_EQ(json::parse(Introspect(id)->body)["active"], true);
  for (const std::string& bad :
       {std::string("garbage"), token + "x", std::string("a.b.c")}) {
    auto res = Introspect(bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, R"({"active":false})");
  }
  ExpectError(Client().Post("/v1/introspect",
                            {{"Authorization",
                              std::string("Bearer ") + kIntrospectionToken}},
                            "{}", "application/json"),
              400, "invalid_request");
  Client().Post("/v1/logout", {{"Authorization", "Bearer " + id}}, "", "");
  EXPECT_EQ(Introspect(token)->body, R"({"active":false})");
  EXPECT_EQ(Introspect(id)->body, R"({"active":false})");

  auto metrics = Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "wxsessiond_tokens_issued_total{algorithm=\"ES256\"} 1\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(
                "wxsessiond_introspections_total{result=\"active\"} 4\n"),
            std::string::npos);
  EXPECT_NE(metrics->body.find(
                "wxsessiond_introspections_total{result=\"inactive\"} 5\n"),
            std::string::npos);
  EXPECT_NE(metrics->body.find(
                "wxsessiond_introspections_total{result=\"unauthorized\"} 2\n"),
            std::string::npos);
}

class ShortTokens : public Tokens {
 protected:
  ShortTokens() : Tokens("1s") {}
};

TEST_F(ShortTokens, AnExpiredJwtIsRefusedByAuthAndInactive) {
  const std::string token = Token(Login("alice.1"));
  const int64_t exp = Claims(token)["exp"];
  // Wait on the outcome, with a deadline: the token lives one second.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto res = Auth(token);
    ASSERT_TRUE(res);
    status = res->status;
    if (status == 401) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 401);
  // The server's clock (CLOCK_REALTIME); time() reads the coarse clock,
  // which can still say the second before exp for a tick after the server
  // has passed it.
  EXPECT_GE(SystemClock().Now(), exp);
  EXPECT_EQ(Introspect(token)->body, R"({"active":false})");
}

TEST_F(Tokens, RotationWithTwoInstancesOnOneDatabase) {
  const std::string id = Login("alice.1");
  const std::string old_token = Token(id);
  const std::string old_kid = Kid(old_token);
  testing_support::CommandResult rotated = RunCommand(
      {BinaryPath(), "rotate-signing-key", "--config", fixture_.config_path()});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  const std::string new_kid = json::parse(rotated.out).value("kid", "");
  ASSERT_FALSE(new_kid.empty());
  ASSERT_NE(new_kid, old_kid);

  // A second instance on the same database signs with the new key...
  Process second({BinaryPath(), "serve", "--config", fixture_.config_path(),
                  "--listen", "127.0.0.1:0"});
  auto line = second.WaitForLine("listening on", 10000);
  ASSERT_TRUE(line) << second.Stderr();
  const int second_port = testing_support::PortFromListeningLine(*line);
  const std::string new_token = Token(id, second_port);
  EXPECT_EQ(Kid(new_token), new_kid);
  EXPECT_EQ(JwksKids(second_port), std::set<std::string>({old_kid, new_kid}));
  // ...which the first accepts at once, and both accept the old token.
  EXPECT_EQ(Auth(new_token)->status, 204);
  EXPECT_EQ(Auth(old_token, second_port)->status, 204);
  EXPECT_EQ(JwksKids(), std::set<std::string>({old_kid, new_kid}));
  second.Signal(SIGTERM);
  second.Wait(5000);
}

}  // namespace
}  // namespace wxsession
