// Open data: DecryptOpenData and OpenDataSignatureMatches on vectors made
// here (with OpenSSL directly where the code under test would otherwise
// check itself), and OpenDataService over a real SessionService, SQLite
// store, access-token centre, fake WeChat and manual clock.
#include "wxsession/open_data.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"
#include "wxsession/access_token.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::ScriptedWeChatClient;
using testing_support::TempDir;

constexpr int64_t kNow = 1'700'000'000;  // unix seconds
constexpr char kApp[] = "wx4f4bc4dec97d474b";

// Fixed key and iv (bytes 00..0f and 0f..00), so every tamper case below is
// deterministic.
const std::string kKeyBytes = [] {
  std::string key;
  for (int i = 0; i < 16; ++i) key.push_back(static_cast<char>(i));
  return key;
}();
const std::string kIvBytes = [] {
  std::string iv;
  for (int i = 15; i >= 0; --i) iv.push_back(static_cast<char>(i));
  return iv;
}();
const std::string kKey = crypto::Base64Encode(kKeyBytes);
const std::string kIv = crypto::Base64Encode(kIvBytes);

json Watermarked(json payload, const std::string& appid = kApp,
                 int64_t timestamp = kNow) {
  payload["watermark"] = {{"appid", appid}, {"timestamp", timestamp}};
  return payload;
}

// The payloads WeChat encrypts this way.
json UserInfo() {
  return Watermarked({{"openId", "oGZUI0egBJY1zhBYw2KhdUfwVJJE"},
                      {"nickName", "Band \xF0\x9F\x8E\xB8"},  // an emoji
                      {"gender", 1},
                      {"language", "zh_CN"},
                      {"city", "Guangzhou"},
                      {"province", "Guangdong"},
                      {"country", "CN"},
                      {"avatarUrl", "http://wx.qlogo.cn/mmopen/vi_32/abc/0"},
                      {"unionId", "ocMvos6NjeKLIBqg5Mr9QjxrP1FA"}});
}
json LegacyPhone() {
  return Watermarked({{"phoneNumber", "13580006666"},
                      {"purePhoneNumber", "13580006666"},
                      {"countryCode", "86"}});
}
json ShareInfo() { return Watermarked({{"openGId", "OPENGID"}}); }
json RunData() {
  return Watermarked({{"stepInfoList",
                       {{{"timestamp", 1445866601}, {"step", 100}},
                        {{"timestamp", 1445876601}, {"step", 120}}}}});
}

std::string Encrypt(const std::string& plaintext,
                    const std::string& key = kKeyBytes) {
  return crypto::Base64Encode(
      crypto::Aes128CbcEncrypt(key, kIvBytes, plaintext).value());
}

// AES-128-CBC without padding, straight from OpenSSL, for ciphertexts whose
// padding is wrong on purpose. `blocks` must be whole 16-byte blocks.
std::string EncryptRawBlocks(const std::string& blocks) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string out(blocks.size() + 16, '\0');
  int length = 0;
  int final_length = 0;
  EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), nullptr,
                     reinterpret_cast<const unsigned char*>(kKeyBytes.data()),
                     reinterpret_cast<const unsigned char*>(kIvBytes.data()));
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &length,
                    reinterpret_cast<const unsigned char*>(blocks.data()),
                    static_cast<int>(blocks.size()));
  EVP_EncryptFinal_ex(ctx,
                      reinterpret_cast<unsigned char*>(out.data()) + length,
                      &final_length);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(static_cast<size_t>(length + final_length));
  return crypto::Base64Encode(out);
}

Result<std::string> Decrypt(const std::string& encrypted,
                            const std::string& iv = kIv,
                            const std::string& key = kKey,
                            int64_t max_age = 0) {
  return DecryptOpenData(key, encrypted, iv, kApp, kNow, max_age);
}

void ExpectDecryptFailed(const Result<std::string>& result,
                         const std::string& why) {
  ASSERT_FALSE(result.ok()) << why;
  EXPECT_EQ(result.status().code(), ErrorCode::kDecryptFailed)
      << why << ": " << result.status().ToString();
  EXPECT_FALSE(result.status().message().empty());
}

// The message that names the usual cause.
bool NamesStaleKey(const Status& status) {
  return status.message().find("wx.login") != std::string::npos &&
         status.message().find("session_key") != std::string::npos;
}

TEST(DecryptOpenDataTest, OpenSslCommandLineVector) {
  // printf '%s' '{"nickName":"Band","watermark":{"appid":"wx4f4bc4dec97d474b",
  //   "timestamp":1477314187}}' | openssl enc -aes-128-cbc -base64 -A
  //   -K 000102030405060708090a0b0c0d0e0f -iv 0f0e0d0c0b0a09080706050403020100
  const std::string encrypted =
      "t/AEb9D/nQIA67YUZIMZeOhZnvFxfjt5ncbQtRaMqe9beducyjFrpECmxB/1gUzVcjIhI+"
      "IN6EaEQHeDyi3EYBl51+tpKm7JkIlzJUo5zOZkzoAcAj42LwbXpOfKm3ER";
  ASSERT_EQ(kKey, "AAECAwQFBgcICQoLDA0ODw==");
  ASSERT_EQ(kIv, "Dw4NDAsKCQgHBgUEAwIBAA==");
  Result<std::string> data = Decrypt(encrypted);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(data.value(),
            R"({"nickName":"Band","watermark":{"appid":"wx4f4bc4dec97d474b",)"
            R"("timestamp":1477314187}})");
}

TEST(DecryptOpenDataTest, EveryPayloadKindRoundTrips) {
  for (const json& payload :
       {UserInfo(), LegacyPhone(), ShareInfo(), RunData()}) {
    Result<std::string> data = Decrypt(Encrypt(payload.dump()));
    ASSERT_TRUE(data.ok()) << payload.dump() << " " << data.status().ToString();
    EXPECT_EQ(json::parse(data.value()), payload);
  }
}

TEST(DecryptOpenDataTest, WrappedBase64IsAccepted) {
  const std::string encrypted = Encrypt(UserInfo().dump());
  ASSERT_GT(encrypted.size(), 100u);
  // As WeChat's demo prints it: lines of 76 characters, CRLF or LF.
  for (const std::string newline : {"\n", "\r\n", " \n\t"}) {
    std::string wrapped;
    for (size_t i = 0; i < encrypted.size(); i += 76) {
      wrapped += encrypted.substr(i, 76) + newline;
    }
    Result<std::string> data = Decrypt(wrapped, "  " + kIv + "\n");
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    EXPECT_EQ(json::parse(data.value()), UserInfo());
  }
}

TEST(DecryptOpenDataTest, EveryFlippedByteFails) {
  const std::string ciphertext =
      crypto::Base64Decode(Encrypt(UserInfo().dump())).value();
  for (size_t i = 0; i < ciphertext.size(); ++i) {
    std::string tampered = ciphertext;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    ExpectDecryptFailed(Decrypt(crypto::Base64Encode(tampered)),
                        "flipped byte " + std::to_string(i));
  }
}

TEST(DecryptOpenDataTest, TruncatedCiphertextFails) {
  const std::string ciphertext =
      crypto::Base64Decode(Encrypt(UserInfo().dump())).value();
  // A whole block short: the padding check sees a middle block.
  ExpectDecryptFailed(Decrypt(crypto::Base64Encode(
                          ciphertext.substr(0, ciphertext.size() - 16))),
                      "one block short");
  // Not whole blocks.
  Result<std::string> partial = Decrypt(
      crypto::Base64Encode(ciphertext.substr(0, ciphertext.size() - 5)));
  ExpectDecryptFailed(partial, "5 bytes short");
  EXPECT_NE(partial.status().message().find("multiple of 16"),
            std::string::npos);
  ExpectDecryptFailed(Decrypt(""), "empty");
  // Truncated base64 text (a dropped character) is not base64 at all.
  const std::string text = Encrypt(UserInfo().dump());
  ExpectDecryptFailed(Decrypt(text.substr(0, text.size() - 3)),
                      "base64 cut short");
}

TEST(DecryptOpenDataTest, BadPaddingFailsNamingTheStaleKey) {
  const std::string body = R"({"watermark":{"appid":"wx4f4bc4dec97d474b"}})";
  ASSERT_EQ(body.size(), 44u);
  const std::string cases[] = {
      body + std::string(4, '\x05'),                 // says 5, has 4
      body + std::string(3, '\x03') + "\x02",        // inconsistent
      body + std::string(4, '\0'),                   // zero is never valid
      body.substr(0, 28) + std::string(20, '\x14'),  // beyond a block
  };
  for (const std::string& padded : cases) {
    ASSERT_EQ(padded.size() % 16, 0u);
    Result<std::string> result = Decrypt(EncryptRawBlocks(padded));
    ExpectDecryptFailed(result, "bad padding");
    EXPECT_TRUE(NamesStaleKey(result.status())) << result.status().message();
  }
  // Control: the same body with correct padding decrypts.
  EXPECT_TRUE(Decrypt(EncryptRawBlocks(body + std::string(4, '\x04'))).ok());
}

TEST(DecryptOpenDataTest, AnotherKeyFailsNamingTheStaleKey) {
  std::string other_key = kKeyBytes;
  other_key[0] = 'x';
  Result<std::string> result = Decrypt(Encrypt(UserInfo().dump(), other_key));
  ExpectDecryptFailed(result, "other key");
  EXPECT_TRUE(NamesStaleKey(result.status())) << result.status().message();
}

TEST(DecryptOpenDataTest, IvMustBeSixteenBytesOfBase64) {
  const std::string encrypted = Encrypt(UserInfo().dump());
  ExpectDecryptFailed(
      Decrypt(encrypted, crypto::Base64Encode(kIvBytes.substr(0, 12))),
      "short iv");
  ExpectDecryptFailed(
      Decrypt(encrypted, crypto::Base64Encode(kIvBytes + "12345678")),
      "long iv");
  ExpectDecryptFailed(Decrypt(encrypted, ""), "empty iv");
  ExpectDecryptFailed(Decrypt(encrypted, "not base64!"), "iv not base64");
  Result<std::string> short_iv =
      Decrypt(encrypted, crypto::Base64Encode(kIvBytes.substr(0, 12)));
  EXPECT_NE(short_iv.status().message().find("16 bytes"), std::string::npos);
}

TEST(DecryptOpenDataTest, OnlyStandardBase64IsAccepted) {
  std::string encrypted = Encrypt(UserInfo().dump());
  // URL-safe alphabet, a percent-encoded '+', and '+' turned into a space
  // by a careless URL decoder (the space is skipped, so the length breaks).
  std::string url_safe = encrypted;
  for (char& c : url_safe) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  ASSERT_NE(url_safe, encrypted);
  ExpectDecryptFailed(Decrypt(url_safe), "url-safe alphabet");
  std::string percent = encrypted;
  const size_t plus = percent.find('+');
  ASSERT_NE(plus, std::string::npos);
  percent.replace(plus, 1, "%2B");
  ExpectDecryptFailed(Decrypt(percent), "percent-encoded");
  std::string spaced = encrypted;
  spaced[plus] = ' ';
  ExpectDecryptFailed(Decrypt(spaced), "plus became space");
}

TEST(DecryptOpenDataTest, PlaintextMustBeAJsonObject) {
  for (const std::string& plaintext :
       {std::string("[1,2,3]"), std::string("\"text\""), std::string("42"),
        std::string("not json at all"), std::string("{\"a\":1"),
        std::string("{\"bad\":\"\xff\xfe\"}")}) {
    Result<std::string> result = Decrypt(Encrypt(plaintext));
    ExpectDecryptFailed(result, plaintext);
    EXPECT_TRUE(NamesStaleKey(result.status())) << result.status().message();
  }
}

TEST(DecryptOpenDataTest, TheStoredKeyMustBeSixteenBytes) {
  const std::string encrypted = Encrypt(UserInfo().dump());
  ExpectDecryptFailed(Decrypt(encrypted, kIv, crypto::Base64Encode("short")),
                      "short key");
  ExpectDecryptFailed(Decrypt(encrypted, kIv, "%%%"), "key not base64");
}

TEST(DecryptOpenDataTest, WatermarkMustNameTheSessionsApp) {
  const json cases[] = {
      Watermarked({{"openGId", "G"}}, "wxsomeoneelse00000"),
      json{{"openGId", "G"}},
      json{{"openGId", "G"}, {"watermark", "wx4f4bc4dec97d474b"}},
      json{{"openGId", "G"}, {"watermark", {{"appid", 7}}}},
  };
  for (const json& payload : cases) {
    Result<std::string> result = Decrypt(Encrypt(payload.dump()));
    ASSERT_FALSE(result.ok()) << payload.dump();
    EXPECT_EQ(result.status().code(), ErrorCode::kWatermarkMismatch)
        << payload.dump();
  }
}

TEST(DecryptOpenDataTest, MaxAgeRejectsOldWatermarksOnlyWhenSet) {
  const std::string old =
      Encrypt(Watermarked(ShareInfo(), kApp, kNow - 301).dump());
  const std::string recent =
      Encrypt(Watermarked(ShareInfo(), kApp, kNow - 300).dump());
  EXPECT_TRUE(Decrypt(old).ok());  // max_age 0: off
  Result<std::string> expired = Decrypt(old, kIv, kKey, 300);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), ErrorCode::kWatermarkExpired);
  EXPECT_TRUE(Decrypt(recent, kIv, kKey, 300).ok());
  // Without a timestamp the age cannot be told.
  const std::string undated =
      Encrypt(json{{"watermark", {{"appid", kApp}}}}.dump());
  EXPECT_TRUE(Decrypt(undated).ok());
  EXPECT_EQ(Decrypt(undated, kIv, kKey, 300).status().code(),
            ErrorCode::kWatermarkExpired);
}

// SHA-1 through OpenSSL's one-shot API, independent of crypto.cc.
std::string OpenSslSha1Hex(const std::string& data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       digest);
  return crypto::HexEncode(
      std::string(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

TEST(OpenDataSignatureTest, AcceptsTheRightSignatureAndRejectsEveryOther) {
  const std::string key = "c2Vzc2lvbmtleTEyMzQ1Ng==";
  // printf '{"a":1}c2Vzc2lvbmtleTEyMzQ1Ng==' | openssl dgst -sha1
  EXPECT_TRUE(OpenDataSignatureMatches(
      R"({"a":1})", "455932c2e117a7a2a1f8140befde6395d2cb8459", key));

  const std::string raw = UserInfo().dump();
  const std::string good = OpenSslSha1Hex(raw + key);
  EXPECT_TRUE(OpenDataSignatureMatches(raw, good, key));

  std::string upper = good;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  const std::string rejected[] = {
      OpenSslSha1Hex(key + raw),        // concatenated the other way
      OpenSslSha1Hex(raw + key + "x"),  // other data
      upper,                            // not lowercase
      good.substr(0, 39),               // truncated
      good + "0",                       // extended
      "",                               //
  };
  for (const std::string& signature : rejected) {
    EXPECT_FALSE(OpenDataSignatureMatches(raw, signature, key)) << signature;
  }
  EXPECT_FALSE(OpenDataSignatureMatches(raw + " ", good, key));
  EXPECT_FALSE(OpenDataSignatureMatches(raw, good, "other-key"));
}

// ---------------------------------------------------------------------------
// OpenDataService over real parts.

class OpenDataServiceTest : public ::testing::Test {
 protected:
  OpenDataServiceTest() : clock_(kNow) {
    config_.apps.push_back({kApp, "secret"});
  }

  void SetUp() override {
    store_ = testing_support::OpenTestSqliteStore(dir_.File("s.db"));
    ASSERT_NE(store_, nullptr);
    sessions_ =
        std::make_unique<SessionService>(config_, *store_, wechat_, clock_);
    tokens_ =
        std::make_unique<AccessTokenCentre>(config_, *store_, wechat_, clock_);
    open_data_ = std::make_unique<OpenDataService>(config_, *sessions_, wechat_,
                                                   *tokens_, clock_);
  }

  // Logs `user` in with the 16-byte key `key_bytes`; returns the session id.
  std::string LoginWithKey(const std::string& code,
                           const std::string& key_bytes) {
    WeChatSession session;
    session.openid = "o-" + code.substr(0, code.find('.'));
    session.session_key = crypto::Base64Encode(key_bytes);
    wechat_.Push(session);
    Result<LoginResult> login = sessions_->Login(kApp, code);
    EXPECT_TRUE(login.ok()) << login.status().ToString();
    return login.ok() ? login->session_id : "";
  }

  TempDir dir_;
  Config config_;
  ManualClock clock_;
  ScriptedWeChatClient wechat_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<SessionService> sessions_;
  std::unique_ptr<AccessTokenCentre> tokens_;
  std::unique_ptr<OpenDataService> open_data_;
};

TEST_F(OpenDataServiceTest, DecryptsWithTheUsersNewestKey) {
  const std::string key1(16, '1');
  const std::string key2(16, '2');
  const std::string first = LoginWithKey("alice.1", key1);
  const std::string old_data = Encrypt(UserInfo().dump(), key1);
  Result<std::string> data = open_data_->Decrypt(first, old_data, kIv);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(json::parse(data.value()), UserInfo());

  // A second login of the same user (another device) brings a new key:
  // both sessions now decrypt with it, and data made under the old key
  // fails with the explanation.
  const std::string second = LoginWithKey("alice.2", key2);
  const std::string new_data = Encrypt(UserInfo().dump(), key2);
  EXPECT_TRUE(open_data_->Decrypt(first, new_data, kIv).ok());
  EXPECT_TRUE(open_data_->Decrypt(second, new_data, kIv).ok());
  for (const std::string& session : {first, second}) {
    Result<std::string> stale = open_data_->Decrypt(session, old_data, kIv);
    ASSERT_FALSE(stale.ok());
    EXPECT_EQ(stale.status().code(), ErrorCode::kDecryptFailed);
    EXPECT_TRUE(NamesStaleKey(stale.status())) << stale.status().message();
  }
}

TEST_F(OpenDataServiceTest, ChecksTheWatermarkAgainstTheSessionsAppAndAge) {
  const std::string id = LoginWithKey("bob.1", kKeyBytes);
  EXPECT_EQ(
      open_data_
          ->Decrypt(id, Encrypt(Watermarked(ShareInfo(), "wxother").dump()),
                    kIv)
          .status()
          .code(),
      ErrorCode::kWatermarkMismatch);
  const std::string day_old =
      Encrypt(Watermarked(RunData(), kApp, kNow - 86400).dump());
  EXPECT_TRUE(open_data_->Decrypt(id, day_old, kIv).ok());
  config_.open_data_max_age = 3600;
  EXPECT_EQ(open_data_->Decrypt(id, day_old, kIv).status().code(),
            ErrorCode::kWatermarkExpired);
}

TEST_F(OpenDataServiceTest, NoSessionNoData) {
  const std::string encrypted = Encrypt(UserInfo().dump());
  EXPECT_EQ(open_data_->Decrypt("nope", encrypted, kIv).status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(open_data_->VerifySignature("nope", "raw", "sig").status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(open_data_->GetPhoneNumber("nope", "code").status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(open_data_->CheckSessionKey("nope").status().code(),
            ErrorCode::kInvalidSession);
  const std::string id = LoginWithKey("carol.1", kKeyBytes);
  ASSERT_TRUE(sessions_->Logout(id).ok());
  EXPECT_EQ(open_data_->Decrypt(id, encrypted, kIv).status().code(),
            ErrorCode::kInvalidSession);
  EXPECT_EQ(wechat_.token_calls(), 0);
}

TEST_F(OpenDataServiceTest, VerifiesSignaturesWithTheNewestKey) {
  const std::string first = LoginWithKey("dave.1", std::string(16, 'a'));
  LoginWithKey("dave.2", std::string(16, 'b'));
  const std::string newest = crypto::Base64Encode(std::string(16, 'b'));
  const std::string older = crypto::Base64Encode(std::string(16, 'a'));
  const std::string raw = R"({"nickName":"Dave"})";
  EXPECT_TRUE(
      open_data_->VerifySignature(first, raw, OpenSslSha1Hex(raw + newest))
          .value());
  EXPECT_FALSE(
      open_data_->VerifySignature(first, raw, OpenSslSha1Hex(raw + older))
          .value());
}

TEST_F(OpenDataServiceTest, PhoneNumberGoesThroughTheTokenCentre) {
  const std::string id = LoginWithKey("erin.1", kKeyBytes);
  std::string seen_appid;
  std::string seen_code;
  std::string seen_openid;
  std::string seen_token;
  wechat_.phone = [&](AccessTokenSource& tokens, const std::string& appid,
                      const std::string& code,
                      const std::string& openid) -> Result<PhoneNumber> {
    seen_appid = appid;
    seen_code = code;
    seen_openid = openid;
    Result<std::string> token = tokens.AccessTokenFor(appid);
    if (!token.ok()) return token.status();
    seen_token = token.value();
    PhoneNumber phone;
    phone.phone_number = "+1 2025550123";
    phone.pure_phone_number = "2025550123";
    phone.country_code = "1";
    phone.watermark_appid = appid;
    return phone;
  };
  Result<PhoneNumber> phone = open_data_->GetPhoneNumber(id, "button-code");
  ASSERT_TRUE(phone.ok()) << phone.status().ToString();
  EXPECT_EQ(phone->pure_phone_number, "2025550123");
  EXPECT_EQ(phone->country_code, "1");
  EXPECT_EQ(seen_appid, kApp);
  EXPECT_EQ(seen_code, "button-code");
  EXPECT_EQ(seen_openid, "o-erin");
  EXPECT_EQ(seen_token, "token-1");
  EXPECT_EQ(store_->GetAccessToken(kApp)->token, "token-1");
}

TEST_F(OpenDataServiceTest, PhoneNumberChecksCodeAndWatermark) {
  const std::string id = LoginWithKey("fay.1", kKeyBytes);
  EXPECT_EQ(open_data_->GetPhoneNumber(id, "").status().code(),
            ErrorCode::kInvalidRequest);
  EXPECT_EQ(
      open_data_->GetPhoneNumber(id, std::string(129, 'c')).status().code(),
      ErrorCode::kInvalidRequest);

  std::string watermark = "wxsomeoneelse00000";
  wechat_.phone = [&](AccessTokenSource&, const std::string&,
                      const std::string&,
                      const std::string&) -> Result<PhoneNumber> {
    PhoneNumber phone;
    phone.phone_number = phone.pure_phone_number = "13800138000";
    phone.country_code = "86";
    phone.watermark_appid = watermark;
    return phone;
  };
  EXPECT_EQ(open_data_->GetPhoneNumber(id, "c1").status().code(),
            ErrorCode::kWatermarkMismatch);
  watermark = "";
  EXPECT_EQ(open_data_->GetPhoneNumber(id, "c2").status().code(),
            ErrorCode::kWatermarkMismatch);
  watermark = kApp;
  EXPECT_TRUE(open_data_->GetPhoneNumber(id, "c3").ok());

  wechat_.phone = [](AccessTokenSource&, const std::string&, const std::string&,
                     const std::string&) -> Result<PhoneNumber> {
    return Status(ErrorCode::kInvalidCode, "WeChat getuserphonenumber failed");
  };
  EXPECT_EQ(open_data_->GetPhoneNumber(id, "c4").status().code(),
            ErrorCode::kInvalidCode);
}

TEST_F(OpenDataServiceTest, CheckSessionKeyAsksAboutTheNewestKey) {
  const std::string first = LoginWithKey("gus.1", std::string(16, 'a'));
  LoginWithKey("gus.2", std::string(16, 'b'));
  std::string seen_key;
  std::string seen_openid;
  wechat_.check_session = [&](AccessTokenSource&, const std::string&,
                              const std::string& openid,
                              const std::string& session_key) -> Result<bool> {
    seen_openid = openid;
    seen_key = session_key;
    return false;
  };
  Result<bool> valid = open_data_->CheckSessionKey(first);
  ASSERT_TRUE(valid.ok());
  EXPECT_FALSE(valid.value());
  EXPECT_EQ(seen_openid, "o-gus");
  EXPECT_EQ(seen_key, crypto::Base64Encode(std::string(16, 'b')));
}

// Calls to WeChat for one session are limited per minute, across the
// phone number and the key check; the bucket refills with the clock.
TEST_F(OpenDataServiceTest, WeChatCallsPerSessionRefillWithTheClock) {
  config_.wechat_per_session_per_minute = 2;
  open_data_ = std::make_unique<OpenDataService>(config_, *sessions_, wechat_,
                                                 *tokens_, clock_);
  const std::string id = LoginWithKey("quota.1", std::string(16, 'q'));
  const std::string other = LoginWithKey("other.1", std::string(16, 'o'));
  EXPECT_TRUE(open_data_->GetPhoneNumber(id, "code-1").ok());
  EXPECT_TRUE(open_data_->CheckSessionKey(id).ok());
  Result<bool> refused = open_data_->CheckSessionKey(id);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kRateLimited);
  ASSERT_TRUE(refused.status().retry_after().has_value());
  EXPECT_GE(*refused.status().retry_after(), 1);
  EXPECT_EQ(open_data_->GetPhoneNumber(id, "code-2").status().code(),
            ErrorCode::kRateLimited);
  // Another session has its own calls.
  EXPECT_TRUE(open_data_->CheckSessionKey(other).ok());
  // Half a minute later one call is back (2 a minute), not two.
  clock_.Advance(30);
  EXPECT_TRUE(open_data_->CheckSessionKey(id).ok());
  EXPECT_EQ(open_data_->CheckSessionKey(id).status().code(),
            ErrorCode::kRateLimited);
  // 0 turns the limit off.
  config_.wechat_per_session_per_minute = 0;
  open_data_ = std::make_unique<OpenDataService>(config_, *sessions_, wechat_,
                                                 *tokens_, clock_);
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(open_data_->CheckSessionKey(id).ok());
}

}  // namespace
}  // namespace wxsession
