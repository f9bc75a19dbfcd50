// Unit tests for the platforms' pieces: Alipay's keys, signatures, sign
// content, timestamp and raw JSON values; Baidu's open-data layout; the
// config keys of issue 17.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "ops/metrics.h"
#include "platforms/alipay_crypto.h"
#include "prometheus_text.h"
#include "store/sealed_store.h"
#include "test_support.h"
#include "wechat/guard.h"
#include "wxsession/config.h"
#include "wxsession/crypto.h"
#include "wxsession/open_data.h"
#include "wxsession/platform.h"

namespace wxsession {
namespace {

using alipay::RawMemberValue;
using alipay::RsaKey;
using testing_support::TempDir;
using testing_support::WriteFile;

// The base64 between a PEM's header and footer, on one line.
std::string BareBase64(const std::string& pem) {
  std::string out;
  size_t at = 0;
  while (at < pem.size()) {
    size_t end = pem.find('\n', at);
    if (end == std::string::npos) end = pem.size();
    const std::string line = pem.substr(at, end - at);
    if (line.rfind("-----", 0) != 0) out += line;
    at = end + 1;
  }
  return out;
}

// The key in PKCS#1 ("BEGIN RSA PRIVATE KEY"), written by OpenSSL itself.
std::string Pkcs1Pem(const std::string& pkcs8_pem) {
  BIO* in =
      BIO_new_mem_buf(pkcs8_pem.data(), static_cast<int>(pkcs8_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey_traditional(out, key, nullptr, nullptr, 0, nullptr,
                                       nullptr);
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  std::string text(data, static_cast<size_t>(length));
  BIO_free(out);
  EVP_PKEY_free(key);
  return text;
}

const RsaKey& TestKey() {
  static const RsaKey key = alipay::GenerateRsaKey().value();
  return key;
}

TEST(AlipayKeys, EveryFormTheConsoleHandsOutLoadsAndSignsAlike) {
  const std::string pkcs8 = TestKey().PrivatePem();
  const std::string pkcs1 = Pkcs1Pem(pkcs8);
  ASSERT_NE(pkcs1.find("BEGIN RSA PRIVATE KEY"), std::string::npos);
  const RsaKey public_key =
      RsaKey::PublicFromText(TestKey().PublicPem()).value();
  for (const std::string& text :
       {pkcs8, pkcs1, BareBase64(pkcs8), BareBase64(pkcs1)}) {
    Result<RsaKey> key = RsaKey::PrivateFromText(text);
    ASSERT_TRUE(key.ok()) << key.status().message();
    EXPECT_TRUE(public_key.VerifyBase64("a=1&b=2", key->SignBase64("a=1&b=2")));
    EXPECT_FALSE(
        public_key.VerifyBase64("a=1&b=3", key->SignBase64("a=1&b=2")));
  }
  EXPECT_TRUE(RsaKey::PublicFromText(BareBase64(TestKey().PublicPem())).ok());
}

TEST(AlipayKeys, AnythingElseIsRefusedWithoutQuotingIt) {
  for (const std::string& text :
       {std::string("not a key at all"), std::string("QUJD"),
        std::string(
            "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n"),
        TestKey().PublicPem()}) {
    Result<RsaKey> key = RsaKey::PrivateFromText(text);
    ASSERT_FALSE(key.ok());
    EXPECT_EQ(key.status().message().find("QUJD"), std::string::npos);
  }
  // A private key is not a public-key file.
  EXPECT_FALSE(RsaKey::PublicFromText("garbage").ok());
}

TEST(AlipaySign, ContentIsSortedSkipsSignAndEmptyValuesAndIsNotEncoded) {
  EXPECT_EQ(alipay::SignContent({{"method", "alipay.system.oauth.token"},
                                 {"app_id", "2021"},
                                 {"sign", "zzz"},
                                 {"empty", ""},
                                 {"timestamp", "2024-01-02 03:04:05"},
                                 {"code", "a+b/c=d&e"}}),
            "app_id=2021&code=a+b/c=d&e&method=alipay.system.oauth.token&"
            "timestamp=2024-01-02 03:04:05");
}

TEST(AlipaySign, TimestampIsBeijingTime) {
  EXPECT_EQ(alipay::BeijingTimestamp(0), "1970-01-01 08:00:00");
  EXPECT_EQ(alipay::BeijingTimestamp(1700000000), "2023-11-15 06:13:20");
}

TEST(RawMemberValue, ReturnsTheExactBytesOfTheValue) {
  const std::string body =
      "{ \"sign\" : \"x\",\n \"node\" :  { \"b\" : [1, 2.5e3, "
      "{\"c\":\"}\\\"\"}],"
      " \"a\":null }  , \"tail\": true }";
  EXPECT_EQ(RawMemberValue(body, "node").value_or("?"),
            "{ \"b\" : [1, 2.5e3, {\"c\":\"}\\\"\"}], \"a\":null }");
  EXPECT_EQ(RawMemberValue(body, "sign").value_or("?"), "\"x\"");
  EXPECT_EQ(RawMemberValue(body, "tail").value_or("?"), "true");
  EXPECT_FALSE(RawMemberValue(body, "missing").has_value());
  // An escaped key still names the member.
  EXPECT_EQ(RawMemberValue(R"({"no\u0064e":{"k":1}})", "node").value_or("?"),
            R"({"k":1})");
}

TEST(RawMemberValue, RefusesAmbiguousOrBrokenBodies) {
  EXPECT_FALSE(RawMemberValue(R"({"node":{},"node":{}})", "node").has_value());
  EXPECT_FALSE(RawMemberValue(R"({"node":{})", "node").has_value());
  EXPECT_FALSE(RawMemberValue(R"({"node":{}} trailing)", "node").has_value());
  EXPECT_FALSE(RawMemberValue(R"(["node"])", "node").has_value());
  EXPECT_FALSE(RawMemberValue(R"({"node":01})", "node").has_value());
  EXPECT_FALSE(RawMemberValue(R"({"node":"a)", "node").has_value());
  EXPECT_FALSE(RawMemberValue(std::string(1000, '['), "node").has_value());
}

// Baidu's layout, built here with OpenSSL's EVP API directly.
std::string BaiduCiphertext(const std::string& key, const std::string& iv,
                            const std::string& plain) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_192_cbc(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()),
                     reinterpret_cast<const unsigned char*>(iv.data()));
  std::string out(plain.size() + 32, '\0');
  int n = 0, m = 0;
  EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n,
                    reinterpret_cast<const unsigned char*>(plain.data()),
                    static_cast<int>(plain.size()));
  EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + n,
                      &m);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(static_cast<size_t>(n + m));
  return out;
}

std::string BaiduPlain(const std::string& json_text, const std::string& app_key,
                       uint32_t length_field) {
  std::string plain = crypto::RandomBytes(16);
  for (int shift : {24, 16, 8, 0}) {
    plain.push_back(static_cast<char>((length_field >> shift) & 0xFF));
  }
  return plain + json_text + app_key;
}

TEST(BaiduOpenData, LayoutLengthAndAppKeyAreChecked) {
  const std::string key = crypto::RandomBytes(24);
  const std::string iv = crypto::RandomBytes(16);
  const std::string text = R"({"openid":"x"})";
  const auto decrypt = [&](const std::string& plain, const std::string& app) {
    return DecryptBaiduOpenData(
        crypto::Base64Encode(key),
        crypto::Base64Encode(BaiduCiphertext(key, iv, plain)),
        crypto::Base64Encode(iv), app);
  };
  Result<std::string> ok = decrypt(BaiduPlain(text, "appkey", 14), "appkey");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok.value(), text);
  EXPECT_EQ(decrypt(BaiduPlain(text, "other", 14), "appkey").status().code(),
            ErrorCode::kWatermarkMismatch);
  EXPECT_EQ(decrypt(BaiduPlain(text, "appkey", 9999), "appkey").status().code(),
            ErrorCode::kDecryptFailed);
  EXPECT_EQ(
      decrypt(BaiduPlain("not json", "appkey", 8), "appkey").status().code(),
      ErrorCode::kDecryptFailed);
  // A 16-byte (WeChat-style) key is not Baidu's.
  EXPECT_EQ(DecryptBaiduOpenData(crypto::Base64Encode(crypto::RandomBytes(16)),
                                 "AAAA", crypto::Base64Encode(iv), "appkey")
                .status()
                .code(),
            ErrorCode::kDecryptFailed);
}

// --- Config
Result<Config> Load(const TempDir& dir, const std::string& apps) {
  WriteFile(dir.File("c.json"), "{\"apps\": " + apps + "}");
  return LoadConfig(dir.File("c.json"),
                    [](const std::string&) { return std::nullopt; }, {});
}

TEST(PlatformConfig, PlatformApiBaseAndAlipayKeysLoad) {
  TempDir dir;
  WriteFile(dir.File("app.key"), BareBase64(TestKey().PrivatePem()));
  WriteFile(dir.File("alipay.pub"), TestKey().PublicPem());
  Result<Config> config = Load(dir, R"([{"appid": "wx1", "secret": "s"},
               {"appid": "tt1", "secret": "s", "platform": "douyin",
                "api_base": "http://127.0.0.1:9/"},
               {"appid": "2021", "platform": "alipay",
                "private_key_file": ")" +
                                        dir.File("app.key") + R"(",
                "alipay_public_key_file": ")" +
                                        dir.File("alipay.pub") + R"("}])");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->apps[0].platform, Platform::kWeChat);
  EXPECT_EQ(config->apps[1].platform, Platform::kDouyin);
  EXPECT_EQ(config->apps[1].api_base, "http://127.0.0.1:9");
  EXPECT_EQ(config->apps[2].platform, Platform::kAlipay);
  EXPECT_FALSE(config->apps[2].private_key.empty());
}

TEST(PlatformConfig, MistakesNameTheKey) {
  TempDir dir;
  WriteFile(dir.File("bad.key"), "secret-looking-garbage");
  WriteFile(dir.File("alipay.pub"), TestKey().PublicPem());
  const auto error = [&](const std::string& apps) {
    Result<Config> config = Load(dir, apps);
    return config.ok() ? std::string("ok") : config.status().message();
  };
  EXPECT_NE(error(R"([{"appid":"a","secret":"s","platform":"line"}])")
                .find("apps[0].platform"),
            std::string::npos);
  EXPECT_NE(error(R"([{"appid":"a","platform":"alipay","secret":"s"}])")
                .find("apps[0].secret"),
            std::string::npos);
  EXPECT_NE(error(R"([{"appid":"a","platform":"alipay",
                       "alipay_public_key_file":"x"}])")
                .find("apps[0].private_key_file"),
            std::string::npos);
  EXPECT_NE(error(R"([{"appid":"a","secret":"s","private_key_file":"x"}])")
                .find("only Alipay apps"),
            std::string::npos);
  EXPECT_NE(error(R"([{"appid":"a","secret":"s","api_base":"ftp://x"}])")
                .find("apps[0].api_base"),
            std::string::npos);
  const std::string bad_key =
      error(R"([{"appid":"a","platform":"alipay","private_key_file":")" +
            dir.File("bad.key") + R"(","alipay_public_key_file":")" +
            dir.File("alipay.pub") + R"("}])");
  EXPECT_NE(bad_key.find("apps[0].private_key_file"), std::string::npos);
  EXPECT_EQ(bad_key.find("secret-looking-garbage"), std::string::npos);
}

// The guard (bulkhead, metrics) serves every platform's login, labelled
// with the platform and that platform's api name.
TEST(PlatformGuard, LoginsAreLabelledAndBulkheadedPerPlatform) {
  testing_support::ScriptedWeChatClient fake;
  Metrics metrics("test");
  UpstreamGuardOptions options;
  options.max_concurrent = 1;
  options.max_waiting = 0;
  options.max_wait_ms = 0;
  options.platform_of = [](const std::string& appid) {
    return appid == "2021a" ? Platform::kAlipay : Platform::kDouyin;
  };
  auto guarded = NewGuardedWeChatClient(fake, options, &metrics);
  EXPECT_TRUE(guarded->Code2Session("tt1", "s", "a.1").ok());
  EXPECT_TRUE(guarded->Code2Session("2021a", "", "b.1").ok());
  // With the one place held, another platform's login is refused at once.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  // Set before the holder starts; no other call reaches the fake.
  fake.on_call = [&] {
    entered.set_value();
    released.wait();
  };
  std::thread holder([&] { guarded->Code2Session("tt1", "s", "c.1"); });
  entered.get_future().wait();
  Result<WeChatSession> refused = guarded->Code2Session("2021a", "", "d.1");
  release.set_value();
  holder.join();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUpstreamUnavailable);

  testing_support::PromText parsed =
      testing_support::ParsePrometheusText(metrics.RenderPrometheus());
  ASSERT_EQ(parsed.error, "");
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "jscode2session"},
                          {"result", "ok"},
                          {"platform", "douyin"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "alipay.system.oauth.token"},
                          {"result", "ok"},
                          {"platform", "alipay"}}),
            1);
  EXPECT_EQ(parsed.Value(
                "wxsessiond_upstream_rejected_total",
                {{"api", "alipay.system.oauth.token"}, {"platform", "alipay"}}),
            1);
}

// Alipay sessions have no session_key: the empty key must seal and open
// like any other when storage.master_key_file is set.
TEST(AlipaySessions, AnEmptySessionKeySealsAndOpens) {
  SessionKeyring keyring(crypto::RandomBytes(SessionKeyring::kKeyBytes));
  const std::string sealed = keyring.Seal("2021a", "o1", "");
  Result<std::string> opened = keyring.Open("2021a", "o1", sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened.value(), "");
}

TEST(PlatformNames, RoundTrip) {
  for (const char* name :
       {"wechat", "qq", "douyin", "kuaishou", "baidu", "alipay"}) {
    ASSERT_TRUE(ParsePlatform(name).has_value()) << name;
    EXPECT_STREQ(PlatformName(*ParsePlatform(name)), name);
  }
  EXPECT_FALSE(ParsePlatform("WeChat").has_value());
}

}  // namespace
}  // namespace wxsession
