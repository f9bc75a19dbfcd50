// JWT signing (jwt.h) and TokenService with a fake WeChat, a manual clock and
// real SQLite stores; two services on one database file play two instances.
#include "wxsession/token_service.h"

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "store/sealed_store.h"
#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"
#include "wxsession/jwt.h"
#include "wxsession/platform.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::ScriptedWeChatClient;
using testing_support::TempDir;

constexpr int64_t kStart = 1'700'000'000;  // unix seconds
constexpr char kApp[] = "wxapp1";
constexpr char kIssuer[] = "https://auth.example.com";
constexpr int64_t kTtl = 600;  // seconds

// The parts of a compact JWS, decoded.
struct Parts {
  json header, claims;
  std::string signature;
};

Parts Split(const std::string& token) {
  Parts parts;
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  parts.header = json::parse(*jwt::Base64UrlDecode(token.substr(0, first)));
  parts.claims = json::parse(
      *jwt::Base64UrlDecode(token.substr(first + 1, second - first - 1)));
  parts.signature = *jwt::Base64UrlDecode(token.substr(second + 1));
  return parts;
}

// `token` with its claims replaced, the original signature kept.
std::string WithClaims(const std::string& token, const json& claims) {
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  return token.substr(0, first) + "." + jwt::Base64UrlEncode(claims.dump()) +
         token.substr(second);
}

TEST(Jwt, Es256SignaturesAreRAndSNotDerAndVerify) {
  jwt::KeyPair key = jwt::KeyPair::Generate(jwt::Algorithm::kES256);
  for (int i = 0; i < 20; ++i) {  // DER length varies; r||s never does
    std::string signature = key.Sign("input-" + std::to_string(i));
    ASSERT_EQ(signature.size(), 64u);
    EXPECT_TRUE(key.Verify("input-" + std::to_string(i), signature));
    EXPECT_FALSE(key.Verify("input-x", signature));
  }
}

TEST(Jwt, KeysRoundTripThroughPemWithAStableThumbprintKid) {
  for (jwt::Algorithm algorithm :
       {jwt::Algorithm::kES256, jwt::Algorithm::kEdDSA}) {
    jwt::KeyPair key = jwt::KeyPair::Generate(algorithm);
    Result<jwt::KeyPair> again = jwt::KeyPair::FromPem(key.PrivatePem());
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->kid(), key.kid());
    EXPECT_EQ(again->algorithm(), algorithm);
    EXPECT_EQ(key.kid().size(), 43u);  // base64url of a SHA-256
    json jwk = json::parse(key.PublicJwkJson());
    EXPECT_EQ(jwk["kid"], key.kid());
    EXPECT_EQ(jwk["use"], "sig");
    EXPECT_FALSE(jwk.contains("d"));  // never the private part
    EXPECT_EQ(jwk["alg"], jwt::AlgorithmName(algorithm));
    EXPECT_EQ(jwk.contains("y"), algorithm == jwt::Algorithm::kES256);
    EXPECT_TRUE(again->Verify("x", key.Sign("x")));
  }
  EXPECT_FALSE(jwt::KeyPair::FromPem("not a key").ok());
}

TEST(Jwt, DecodeRefusesNoneOtherAlgorithmsAndUnknownKids) {
  jwt::KeyPair key = jwt::KeyPair::Generate(jwt::Algorithm::kES256);
  auto find = [&](const std::string& kid) -> const jwt::KeyPair* {
    return kid == key.kid() ? &key : nullptr;
  };
  const std::string token = jwt::Encode(key, R"({"sub":"a"})");
  ASSERT_TRUE(jwt::DecodeVerified(token, find).ok());
  const std::string claims = jwt::Base64UrlEncode(R"({"sub":"a"})");
  for (const char* alg : {"none", "EdDSA", "HS256", "es256"}) {
    json header = {{"alg", alg}, {"kid", key.kid()}, {"typ", "JWT"}};
    std::string forged = jwt::Base64UrlEncode(header.dump()) + "." + claims +
                         "." + token.substr(token.rfind('.') + 1);
    EXPECT_FALSE(jwt::DecodeVerified(forged, find).ok()) << alg;
    EXPECT_FALSE(
        jwt::DecodeVerified(
            jwt::Base64UrlEncode(header.dump()) + "." + claims + ".", find)
            .ok())
        << alg;
  }
  jwt::KeyPair other = jwt::KeyPair::Generate(jwt::Algorithm::kES256);
  EXPECT_FALSE(
      jwt::DecodeVerified(jwt::Encode(other, R"({"sub":"a"})"), find).ok());
  EXPECT_FALSE(jwt::DecodeVerified("a.b", find).ok());
  EXPECT_FALSE(jwt::DecodeVerified(token + "=", find).ok());
}

class TokenServiceTest : public ::testing::Test {
 protected:
  TokenServiceTest() : clock_(kStart) {
    config_.apps.push_back({kApp, "secret-1"});
    config_.tokens.issuer = kIssuer;
    config_.tokens.ttl = kTtl;
  }

  void SetUp() override {
    store_ = OpenStore();
    ASSERT_NE(store_, nullptr);
    sessions_ =
        std::make_unique<SessionService>(config_, *store_, wechat_, clock_);
  }

  std::unique_ptr<SessionStore> OpenStore() {
    return testing_support::OpenTestSqliteStore(dir_.File("s.db"));
  }

  std::unique_ptr<TokenService> OpenTokens(SessionStore& store,
                                           const Config& config) {
    Result<std::unique_ptr<TokenService>> opened =
        TokenService::Open(config, store, *sessions_, clock_, nullptr);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  std::string Login(const std::string& code) {
    Result<LoginResult> login = sessions_->Login("", code);
    EXPECT_TRUE(login.ok()) << login.status().ToString();
    return login.ok() ? login->session_id : "";
  }

  std::string Issue(TokenService& tokens, const std::string& session_id) {
    Result<IssuedToken> issued = tokens.Issue(session_id);
    EXPECT_TRUE(issued.ok()) << issued.status().ToString();
    return issued.ok() ? issued->access_token : "";
  }

  std::set<std::string> JwksKids(TokenService& tokens) {
    std::set<std::string> kids;
    const json jwks = json::parse(tokens.JwksJson());
    for (const json& key : jwks["keys"]) {
      kids.insert(key["kid"].get<std::string>());
    }
    return kids;
  }

  TempDir dir_;
  Config config_;
  ManualClock clock_;
  ScriptedWeChatClient wechat_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<SessionService> sessions_;
};

TEST_F(TokenServiceTest, IssuesTheContractsClaimsAndHeader) {
  for (const char* algorithm : {"ES256", "EdDSA"}) {
    Config config = config_;
    config.tokens.algorithm = algorithm;
    auto tokens = OpenTokens(*store_, config);
    ASSERT_NE(tokens, nullptr);
    const std::string id = Login(std::string("alice.") + algorithm);
    Result<IssuedToken> issued = tokens->Issue(id);
    ASSERT_TRUE(issued.ok()) << issued.status().ToString();
    EXPECT_EQ(issued->expires_in, kTtl);
    EXPECT_EQ(issued->algorithm, algorithm);
    Parts parts = Split(issued->access_token);
    EXPECT_EQ(parts.header["alg"], algorithm);
    EXPECT_EQ(parts.header["typ"], "JWT");
    EXPECT_TRUE(JwksKids(*tokens).count(parts.header["kid"]));
    EXPECT_EQ(parts.signature.size(), 64u);
    EXPECT_EQ(parts.claims["iss"], kIssuer);
    EXPECT_EQ(parts.claims["sub"], "o-alice");
    EXPECT_EQ(parts.claims["aud"], kApp);
    EXPECT_EQ(parts.claims["appid"], kApp);
    EXPECT_FALSE(parts.claims.contains("unionid"));
    EXPECT_EQ(parts.claims["sid"], crypto::HexEncode(crypto::Sha256(id)));
    EXPECT_EQ(parts.claims["iat"], kStart);
    EXPECT_EQ(parts.claims["nbf"], kStart);
    EXPECT_EQ(parts.claims["exp"], kStart + kTtl);
    EXPECT_EQ(parts.claims["jti"].get<std::string>().size(), 22u);  // 128 bits
    EXPECT_NE(Split(Issue(*tokens, id)).claims["jti"], parts.claims["jti"]);
    EXPECT_TRUE(tokens->Verify(issued->access_token).ok());
  }
}

TEST_F(TokenServiceTest, AConfiguredAudienceAndTheUnionIdGoIntoTheToken) {
  config_.tokens.audience = "api.example.com";
  auto tokens = OpenTokens(*store_, config_);
  WeChatSession session;
  session.openid = "o-bob";
  session.unionid = "u-bob";
  session.session_key = "k";
  wechat_.Push(session);
  const std::string token = Issue(*tokens, Login("bob.1"));
  EXPECT_EQ(Split(token).claims["aud"], "api.example.com");
  EXPECT_EQ(Split(token).claims["unionid"], "u-bob");
  Result<TokenClaims> claims = tokens->Verify(token);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ(*claims->unionid, "u-bob");
}

TEST_F(TokenServiceTest, ADeadSessionGetsNoToken) {
  auto tokens = OpenTokens(*store_, config_);
  EXPECT_EQ(tokens->Issue("no-such-session").status().code(),
            ErrorCode::kInvalidSession);
  const std::string id = Login("alice.1");
  ASSERT_TRUE(sessions_->Logout(id).ok());
  EXPECT_EQ(tokens->Issue(id).status().code(), ErrorCode::kInvalidSession);
}

TEST_F(TokenServiceTest, TamperedExpiredAndForeignTokensAreRefused) {
  auto tokens = OpenTokens(*store_, config_);
  const std::string token = Issue(*tokens, Login("alice.1"));
  ASSERT_TRUE(tokens->Verify(token).ok());

  std::string flipped = token;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens->Verify(flipped).ok());
  json claims = Split(token).claims;
  claims["sub"] = "o-mallory";
  EXPECT_FALSE(tokens->Verify(WithClaims(token, claims)).ok());

  // The same token shape from another deployment (another key and issuer).
  TempDir other_dir;
  auto other_store =
      testing_support::OpenTestSqliteStore(other_dir.File("other.db"));
  Config other = config_;
  other.tokens.issuer = "https://other.example.com";
  SessionService other_sessions(other, *other_store, wechat_, clock_);
  auto other_tokens =
      TokenService::Open(other, *other_store, other_sessions, clock_, nullptr);
  ASSERT_TRUE(other_tokens.ok());
  const std::string foreign = Issue(
      *other_tokens.value(), other_sessions.Login("", "alice.2")->session_id);
  EXPECT_TRUE(other_tokens.value()->Verify(foreign).ok());
  EXPECT_FALSE(tokens->Verify(foreign).ok());

  // Our key, another issuer: refused by the claim check alone.
  auto same_key_other_issuer = OpenTokens(*store_, other);
  EXPECT_FALSE(
      tokens->Verify(Issue(*same_key_other_issuer, Login("alice.3"))).ok());

  clock_.Advance(kTtl - 1);
  EXPECT_TRUE(tokens->Verify(token).ok());
  clock_.Advance(1);
  EXPECT_EQ(tokens->Verify(token).status().code(), ErrorCode::kInvalidSession);
}

// A JWT stands for its session as the session id does: /v1/auth sends the
// same identity headers, X-WX-Platform included, whichever the client holds.
TEST_F(TokenServiceTest, AuthenticateAnswersWhatALookupOfTheSessionAnswers) {
  config_.apps.front().platform = Platform::kDouyin;
  auto tokens = OpenTokens(*store_, config_);
  const std::string id = Login("tina.1");
  Result<SessionInfo> by_token = tokens->Authenticate(Issue(*tokens, id));
  Result<SessionInfo> by_id = sessions_->Lookup(id);
  ASSERT_TRUE(by_token.ok()) << by_token.status().ToString();
  ASSERT_TRUE(by_id.ok()) << by_id.status().ToString();
  EXPECT_EQ(by_token->platform, "douyin");
  EXPECT_EQ(by_token->platform, by_id->platform);
  EXPECT_EQ(by_token->appid, by_id->appid);
  EXPECT_EQ(by_token->openid, by_id->openid);
  EXPECT_EQ(by_token->unionid, by_id->unionid);
  EXPECT_EQ(by_token->created_at, by_id->created_at);
  EXPECT_EQ(by_token->expires_at, by_id->expires_at);
}

TEST_F(TokenServiceTest, AuthenticateSeesALogoutOrABanAtOnce) {
  auto tokens = OpenTokens(*store_, config_);
  const std::string id = Login("alice.1");
  const std::string token = Issue(*tokens, id);
  Result<SessionInfo> live = tokens->Authenticate(token);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(live->openid, "o-alice");
  EXPECT_EQ(live->appid, kApp);
  ASSERT_TRUE(sessions_->Logout(id).ok());
  EXPECT_TRUE(tokens->Verify(token).ok());  // locally still valid until exp
  EXPECT_EQ(tokens->Authenticate(token).status().code(),
            ErrorCode::kInvalidSession);

  // A ban ends every session of the user (store RevokeUser).
  const std::string other = Issue(*tokens, Login("bob.1"));
  ASSERT_TRUE(tokens->Authenticate(other).ok());
  ASSERT_EQ(store_->RevokeUser(kApp, "o-bob").value(), 1);
  EXPECT_EQ(tokens->Authenticate(other).status().code(),
            ErrorCode::kInvalidSession);
}

TEST_F(TokenServiceTest, IntrospectionIsActiveOnlyForLiveTokensAndSessions) {
  auto tokens = OpenTokens(*store_, config_);
  const std::string id = Login("alice.1");
  const std::string token = Issue(*tokens, id);
  json active = json::parse(tokens->Introspect(token).value());
  EXPECT_EQ(active["active"], true);
  EXPECT_EQ(active["sub"], "o-alice");
  EXPECT_EQ(active["appid"], kApp);
  EXPECT_EQ(active["aud"], kApp);
  EXPECT_EQ(active["iss"], kIssuer);
  EXPECT_EQ(active["sid"], crypto::HexEncode(crypto::Sha256(id)));
  EXPECT_EQ(active["exp"], kStart + kTtl);
  EXPECT_EQ(active["iat"], kStart);
  EXPECT_EQ(active["token_type"], "Bearer");
  json by_session = json::parse(tokens->Introspect(id).value());
  EXPECT_EQ(by_session["active"], true);
  EXPECT_EQ(by_session["sid"], active["sid"]);

  const std::string inactive = R"({"active":false})";
  EXPECT_EQ(tokens->Introspect("garbage").value(), inactive);
  EXPECT_EQ(tokens->Introspect("a.b.c").value(), inactive);
  EXPECT_EQ(tokens->Introspect("").value(), inactive);
  // After expiry.
  clock_.Advance(kTtl);
  EXPECT_EQ(tokens->Introspect(token).value(), inactive);
  clock_.Advance(-kTtl);
  // After a ban (every session of the user ends) and after a logout.
  const std::string bob = Issue(*tokens, Login("bob.1"));
  ASSERT_EQ(json::parse(tokens->Introspect(bob).value())["active"], true);
  ASSERT_EQ(store_->RevokeUser("", "o-bob").value(), 1);
  EXPECT_EQ(tokens->Introspect(bob).value(), inactive);
  ASSERT_TRUE(sessions_->Logout(id).ok());
  EXPECT_EQ(tokens->Introspect(token).value(), inactive);
  EXPECT_EQ(tokens->Introspect(id).value(), inactive);
}

TEST_F(TokenServiceTest, TwoInstancesOnOneStoreShareKeysAndFollowARotation) {
  auto second_store = OpenStore();  // a second process on the same file
  auto a = OpenTokens(*store_, config_);
  auto b = OpenTokens(*second_store, config_);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::set<std::string> first = JwksKids(*a);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(JwksKids(*b), first);  // the first start made one key for both
  const std::string old_kid = *first.begin();

  const std::string id = Login("alice.1");
  const std::string old_token = Issue(*a, id);
  const int64_t rotated_at = clock_.Now();
  Result<std::string> new_kid = RotateSigningKey(config_, *store_, clock_);
  ASSERT_TRUE(new_kid.ok()) << new_kid.status().ToString();
  ASSERT_NE(new_kid.value(), old_kid);

  // Until it re-reads the keys, an instance signs with the old key...
  clock_.Advance(TokenService::kKeyRefreshSeconds - 1);
  const std::string late_old = Issue(*b, id);
  EXPECT_EQ(Split(late_old).header["kid"], old_kid);
  // ...and within kKeyRefreshSeconds with the new one.
  clock_.Advance(1);
  const std::string from_b = Issue(*b, id);
  EXPECT_EQ(Split(from_b).header["kid"], new_kid.value());
  EXPECT_EQ(Split(Issue(*a, id)).header["kid"], new_kid.value());
  EXPECT_EQ(JwksKids(*a), std::set<std::string>({old_kid, new_kid.value()}));
  EXPECT_TRUE(a->Verify(old_token).ok());
  EXPECT_TRUE(a->Verify(from_b).ok());

  // The old key's last token (signed just before b re-read) expires at
  // rotated_at + kKeyRefreshSeconds - 1 + ttl; it verifies until then.
  clock_.Set(rotated_at + TokenService::kKeyRefreshSeconds - 1 + kTtl - 1);
  EXPECT_TRUE(a->Verify(late_old).ok());
  EXPECT_TRUE(JwksKids(*a).count(old_kid));
  // Once every token it signed has expired, the old key leaves the JWKS.
  clock_.Set(rotated_at + TokenService::kKeyRefreshSeconds + kTtl);
  EXPECT_EQ(JwksKids(*a), std::set<std::string>({new_kid.value()}));
  EXPECT_EQ(JwksKids(*b), std::set<std::string>({new_kid.value()}));
}

TEST_F(TokenServiceTest, ANewKeyFromAnotherInstanceVerifiesAtOnce) {
  auto second_store = OpenStore();
  auto a = OpenTokens(*store_, config_);
  auto b = OpenTokens(*second_store, config_);
  ASSERT_TRUE(RotateSigningKey(config_, *store_, clock_).ok());
  ASSERT_TRUE(b->Reload().ok());  // b re-read the keys; a has not yet
  const std::string token = Issue(*b, Login("alice.1"));
  // a meets an unknown kid and reads the keys again at once.
  EXPECT_TRUE(a->Verify(token).ok());
}

TEST_F(TokenServiceTest, ChangingTheAlgorithmMakesANewKeyAndKeepsTheOld) {
  auto es256 = OpenTokens(*store_, config_);
  const std::string old_token = Issue(*es256, Login("alice.1"));
  Config eddsa = config_;
  eddsa.tokens.algorithm = "EdDSA";
  auto ed = OpenTokens(*store_, eddsa);
  const std::string token = Issue(*ed, Login("alice.2"));
  EXPECT_EQ(Split(token).header["alg"], "EdDSA");
  EXPECT_EQ(JwksKids(*ed).size(), 2u);
  EXPECT_TRUE(ed->Verify(old_token).ok());
}

TEST_F(TokenServiceTest, KeysInASealedStoreWork) {
  auto sealed = std::make_unique<SealedStore>(
      OpenStore(), SessionKeyring(std::string(32, 'm')));
  auto tokens = OpenTokens(*sealed, config_);
  ASSERT_NE(tokens, nullptr);
  // Another instance with the same master key reads the same key.
  auto again = std::make_unique<SealedStore>(
      OpenStore(), SessionKeyring(std::string(32, 'm')));
  auto second = OpenTokens(*again, config_);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(JwksKids(*tokens), JwksKids(*second));
  EXPECT_TRUE(second->Verify(Issue(*tokens, Login("alice.1"))).ok());
}

TEST_F(TokenServiceTest, ASigningKeyFileIsUsedAndMustMatchTheAlgorithm) {
  jwt::KeyPair key = jwt::KeyPair::Generate(jwt::Algorithm::kEdDSA);
  testing_support::WriteFile(dir_.File("key.pem"), key.PrivatePem());
  config_.tokens.signing_key_file = dir_.File("key.pem");
  Result<std::unique_ptr<TokenService>> wrong =
      TokenService::Open(config_, *store_, *sessions_, clock_, nullptr);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("tokens.algorithm"),
            std::string::npos);
  config_.tokens.algorithm = "EdDSA";
  auto tokens = OpenTokens(*store_, config_);
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(JwksKids(*tokens), std::set<std::string>({key.kid()}));
  EXPECT_TRUE(store_->ListSigningKeys(kStart)->empty());  // nothing stored
  EXPECT_FALSE(RotateSigningKey(config_, *store_, clock_).ok());
  config_.tokens.signing_key_file = dir_.File("missing.pem");
  auto missing =
      TokenService::Open(config_, *store_, *sessions_, clock_, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().operator_text().find(
                "config: tokens.signing_key_file: " + dir_.File("missing.pem") +
                ": cannot read: "),
            std::string::npos)
      << missing.status().operator_text();
}

}  // namespace
}  // namespace wxsession
