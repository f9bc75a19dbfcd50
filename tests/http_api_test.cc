// The HTTP layer's pure parts: the status table and the hand-rendered JSON.
#include "http/api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace wxsession {
namespace {

using json = nlohmann::json;

TEST(HttpStatusFor, MapsEveryCodeAsTheErrorTableSays) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kOk), 200);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidRequest), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnknownApp), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidSession), 401);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnauthorized), 401);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidCode), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kLoginBlocked), 403);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kRateLimited), 429);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamError), 502);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kStoreUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kDecryptFailed), 422);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kWatermarkMismatch), 422);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kWatermarkExpired), 422);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInternal), 500);
}

TEST(RenderSessionJson, IsValidJsonWithEveryField) {
  SessionInfo info;
  info.appid = "wx1";
  info.openid = "o\"quote\\back\nline\x01\xe4\xbd\xa0";
  info.created_at = 1;
  info.last_seen_at = 2;
  info.expires_at = 3;
  json parsed = json::parse(RenderSessionJson(info), nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << RenderSessionJson(info);
  EXPECT_EQ(parsed["appid"], "wx1");
  EXPECT_EQ(parsed["openid"], info.openid);
  EXPECT_TRUE(parsed["unionid"].is_null());
  EXPECT_EQ(parsed["created_at"], 1);
  EXPECT_EQ(parsed["last_seen_at"], 2);
  EXPECT_EQ(parsed["expires_at"], 3);
  info.unionid = "u-1";
  EXPECT_EQ(json::parse(RenderSessionJson(info))["unionid"], "u-1");
}

}  // namespace
}  // namespace wxsession
