// The body and header parsing every route runs (request_parsing.h). The
// same functions are fuzzed (fuzz/request_body_fuzzer.cc, token_fuzzer.cc);
// inputs the fuzzers find that break them belong here.
#include "http/request_parsing.h"

#include <gtest/gtest.h>

#include <string>

namespace wxsession {
namespace {

void ExpectInvalid(const Status& status, const std::string& mentions = "") {
  EXPECT_EQ(status.code(), ErrorCode::kInvalidRequest) << status.ToString();
  EXPECT_FALSE(status.message().empty());
  if (!mentions.empty()) {
    EXPECT_NE(status.message().find(mentions), std::string::npos)
        << status.message();
  }
}

TEST(ParseLoginRequest, ReadsCodeAndOptionalAppid) {
  Result<LoginRequest> both =
      ParseLoginRequest(R"({"code":"0a3X","appid":"wx1","extra":[1]})");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->code, "0a3X");
  EXPECT_EQ(both->appid, "wx1");
  Result<LoginRequest> code_only =
      ParseLoginRequest(R"({"code":"c","appid":null})");
  ASSERT_TRUE(code_only.ok());
  EXPECT_EQ(code_only->appid, "");
}

TEST(ParseLoginRequest, RefusesEveryOtherShape) {
  ExpectInvalid(ParseLoginRequest("").status(), "not valid JSON");
  ExpectInvalid(ParseLoginRequest("{").status(), "not valid JSON");
  ExpectInvalid(ParseLoginRequest("null").status(), "JSON object");
  ExpectInvalid(ParseLoginRequest("[]").status(), "JSON object");
  ExpectInvalid(ParseLoginRequest("{}").status(), "\"code\"");
  ExpectInvalid(ParseLoginRequest(R"({"code":null})").status(), "\"code\"");
  ExpectInvalid(ParseLoginRequest(R"({"code":1})").status(), "string");
  ExpectInvalid(ParseLoginRequest(R"({"code":"c","appid":{}})").status(),
                "\"appid\"");
  // Invalid UTF-8 and raw control characters are not JSON.
  ExpectInvalid(ParseLoginRequest("{\"code\":\"\xff\"}").status());
  ExpectInvalid(
      ParseLoginRequest(std::string("{\"code\":\"a\0b\"}", 14)).status());
  // Trailing garbage after the object.
  ExpectInvalid(ParseLoginRequest(R"({"code":"c"} {"code":"d"})").status());
}

TEST(ParseLoginRequest, DeepNestingIsRefusedWithoutExhaustingTheStack) {
  std::string arrays = std::string(100000, '[') + std::string(100000, ']');
  ExpectInvalid(ParseLoginRequest(arrays).status(), "JSON object");
  std::string objects;
  for (int i = 0; i < 50000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(50000, '}');
  ExpectInvalid(ParseLoginRequest(objects).status(), "\"code\"");
  ExpectInvalid(ParseLoginRequest(std::string(100000, '[')).status(),
                "not valid JSON");
}

TEST(ParseOpenDataRequests, ReadTheirFieldsAndNothingElse) {
  Result<DecryptRequest> decrypt =
      ParseDecryptRequest(R"({"encryptedData":"AAAA","iv":"BBBB"})");
  ASSERT_TRUE(decrypt.ok());
  EXPECT_EQ(decrypt->encrypted_data, "AAAA");
  EXPECT_EQ(decrypt->iv, "BBBB");
  ExpectInvalid(ParseDecryptRequest(R"({"encryptedData":"AAAA"})").status(),
                "\"iv\"");
  ExpectInvalid(ParseDecryptRequest(R"({"iv":"B","encryptedData":7})").status(),
                "\"encryptedData\"");

  Result<VerifyRequest> verify =
      ParseVerifyRequest(R"({"rawData":"{\"a\":1}","signature":"abc"})");
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->raw_data, R"({"a":1})");
  EXPECT_EQ(verify->signature, "abc");
  ExpectInvalid(ParseVerifyRequest(R"({"rawData":"x"})").status(),
                "\"signature\"");

  Result<PhoneRequest> phone = ParsePhoneRequest(R"({"code":"btn"})");
  ASSERT_TRUE(phone.ok());
  EXPECT_EQ(phone->code, "btn");
  ExpectInvalid(ParsePhoneRequest("null").status(), "JSON object");
}

TEST(SessionIdFromHeaders, BearerFirstThenXWXSession) {
  EXPECT_EQ(SessionIdFromHeaders("Bearer abc", "xyz"), "abc");
  EXPECT_EQ(SessionIdFromHeaders("bearer   abc  ", ""), "abc");
  EXPECT_EQ(SessionIdFromHeaders("BEARER abc", ""), "abc");
  EXPECT_EQ(SessionIdFromHeaders("Basic dXNlcjpwYXNz", "xyz"), "xyz");
  EXPECT_EQ(SessionIdFromHeaders("Bearer ", "xyz"), "xyz");
  EXPECT_EQ(SessionIdFromHeaders("", ""), "");
  // Bytes pass through untouched: the shape check comes later.
  EXPECT_EQ(SessionIdFromHeaders(std::string("Bearer a\0b", 10), ""),
            std::string("a\0b", 3));
  EXPECT_EQ(BearerCredential("Bearer t0k"), std::optional<std::string>("t0k"));
  EXPECT_EQ(BearerCredential("Token t0k"), std::nullopt);
  EXPECT_EQ(BearerCredential("Bearer"), std::nullopt);
}

}  // namespace
}  // namespace wxsession
