// SessionKeyring, master key files and the SealedStore decorator over SQLite.
// (The whole SessionStore contract also runs through SealedStore in
// store_test.cc.)
#include "store/sealed_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using testing_support::TempDir;
using testing_support::WriteFile;

constexpr int64_t kNow = 1'700'000'000;  // a fixed "now", unix seconds
const std::string kSessionKey = "HyVFkGl5F5OQWJZZaNzBBg==";  // WeChat's shape

std::string Key(char fill) { return std::string(32, fill); }

TEST(SessionKeyring, SealsAndOpensWithAFreshNonceEachTime) {
  SessionKeyring ring(Key('k'));
  std::string a = ring.Seal("wxapp", "openid-1", kSessionKey);
  std::string b = ring.Seal("wxapp", "openid-1", kSessionKey);
  EXPECT_EQ(a.rfind("wxs1:", 0), 0u);
  EXPECT_NE(a, b);  // fresh nonce per write
  EXPECT_EQ(a.find(kSessionKey), std::string::npos);
  EXPECT_TRUE(SessionKeyring::IsSealed(a));
  EXPECT_TRUE(ring.SealedWithPrimary(a));
  Result<std::string> opened = ring.Open("wxapp", "openid-1", a);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened.value(), kSessionKey);
  EXPECT_EQ(ring.Open("wxapp", "openid-1", b).value(), kSessionKey);
}

TEST(SessionKeyring, ASealedKeyOpensOnlyOnItsOwnRow) {
  SessionKeyring ring(Key('k'));
  std::string sealed = ring.Seal("wxapp", "openid-1", kSessionKey);
  for (auto [appid, openid] : std::vector<std::pair<std::string, std::string>>{
           {"wxapp", "openid-2"},
           {"wxother", "openid-1"},
           {"wxappo", "penid-1"},
           {"", "wxappopenid-1"}}) {
    Result<std::string> moved = ring.Open(appid, openid, sealed);
    ASSERT_FALSE(moved.ok()) << appid << "/" << openid;
    EXPECT_EQ(moved.status().code(), ErrorCode::kStoreUnavailable);
    EXPECT_NE(moved.status().operator_text().find("does not authenticate"),
              std::string::npos);
  }
  // A session_key sealed for a user does not open as an access token.
  EXPECT_FALSE(ring.OpenAccessToken("wxapp", sealed).ok());
}

TEST(SessionKeyring, TamperedOrTruncatedValuesDoNotOpen) {
  SessionKeyring ring(Key('k'));
  std::string sealed = ring.Seal("wxapp", "o", kSessionKey);
  for (size_t i = 5; i < sealed.size(); ++i) {
    std::string changed = sealed;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(ring.Open("wxapp", "o", changed).ok()) << "position " << i;
  }
  EXPECT_FALSE(ring.Open("wxapp", "o", "wxs1:").ok());
  EXPECT_FALSE(ring.Open("wxapp", "o", "wxs1:!!!").ok());
  EXPECT_FALSE(ring.Open("wxapp", "o", sealed.substr(0, 30)).ok());
}

TEST(SessionKeyring, RowsFromBeforeSealingAreServedAsTheyAre) {
  SessionKeyring ring(Key('k'));
  EXPECT_FALSE(SessionKeyring::IsSealed(kSessionKey));
  EXPECT_EQ(ring.Open("wxapp", "o", kSessionKey).value(), kSessionKey);
  EXPECT_FALSE(ring.SealedWithPrimary(kSessionKey));
}

TEST(SessionKeyring, PreviousKeysOpenAndAnUnknownKeyIsNamedNotQuoted) {
  SessionKeyring old_ring(Key('o'));
  std::string under_old = old_ring.Seal("wxapp", "o", kSessionKey);

  SessionKeyring rotating(Key('n'), {Key('o')});
  EXPECT_EQ(rotating.Open("wxapp", "o", under_old).value(), kSessionKey);
  EXPECT_FALSE(rotating.SealedWithPrimary(under_old));
  EXPECT_TRUE(
      rotating.SealedWithPrimary(rotating.Seal("wxapp", "o", kSessionKey)));

  SessionKeyring other(Key('x'));
  Result<std::string> refused = other.Open("wxapp", "o", under_old);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kStoreUnavailable);
  const std::string& message = refused.status().operator_text();
  EXPECT_NE(message.find(old_ring.PrimaryKeyId()), std::string::npos)
      << message;
  EXPECT_NE(message.find("storage.master_key_file"), std::string::npos);
  EXPECT_EQ(message.find(under_old), std::string::npos);
  EXPECT_EQ(message.find(Key('x')), std::string::npos);
  EXPECT_EQ(old_ring.PrimaryKeyId().size(), 8u);
  EXPECT_NE(old_ring.PrimaryKeyId(), other.PrimaryKeyId());
}

TEST(MasterKey, AcceptsRawHexAndBase64AndNothingElse) {
  const std::string raw = crypto::RandomBytes(32);
  EXPECT_EQ(ParseMasterKey(raw).value(), raw);
  EXPECT_EQ(ParseMasterKey(crypto::HexEncode(raw) + "\n").value(), raw);
  std::string upper = crypto::HexEncode(raw);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(ParseMasterKey(upper).value(), raw);
  EXPECT_EQ(ParseMasterKey("  " + crypto::Base64Encode(raw) + "\r\n").value(),
            raw);

  for (const std::string& bad :
       {std::string(), std::string(31, 'a'), std::string(33, 'a'),
        crypto::HexEncode(raw).substr(0, 62),
        crypto::HexEncode(raw).substr(0, 63) + "g",
        crypto::Base64Encode(crypto::RandomBytes(16)),
        crypto::Base64Encode(crypto::RandomBytes(48)),
        std::string("not a key at all, just some words here")}) {
    Result<std::string> parsed = ParseMasterKey(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidRequest);
    EXPECT_NE(parsed.status().operator_text().find("32 raw bytes"),
              std::string::npos);
    if (!bad.empty()) {
      EXPECT_EQ(parsed.status().operator_text().find(bad), std::string::npos);
    }
  }
}

TEST(MasterKey, ReadingAFileNamesThePathOnError) {
  TempDir dir;
  const std::string raw = crypto::RandomBytes(32);
  WriteFile(dir.File("raw.key"), raw);
  EXPECT_EQ(ReadMasterKeyFile(dir.File("raw.key")).value(), raw);
  WriteFile(dir.File("hex.key"), crypto::HexEncode(raw) + "\n");
  EXPECT_EQ(ReadMasterKeyFile(dir.File("hex.key")).value(), raw);

  Result<std::string> missing = ReadMasterKeyFile(dir.File("missing.key"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().operator_text().find(dir.File("missing.key")),
            std::string::npos);
  WriteFile(dir.File("short.key"), "0123456789abcdef\n");
  Result<std::string> short_key = ReadMasterKeyFile(dir.File("short.key"));
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().operator_text().find("short.key"),
            std::string::npos);
  EXPECT_EQ(short_key.status().operator_text().find("0123456789abcdef"),
            std::string::npos);
  WriteFile(dir.File("huge.key"), std::string(100000, 'a'));
  EXPECT_FALSE(ReadMasterKeyFile(dir.File("huge.key")).ok());
}

// Reads one column of one row straight from the SQLite file, bypassing every
// layer of wxsessiond: what a thief holding the file would see.
std::string RawColumn(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string value;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text) value = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return value;
}

class SealedSqlite : public ::testing::Test {
 protected:
  std::unique_ptr<SessionStore> Open(SessionKeyring ring) {
    SqliteOptions options;
    options.path = dir_.File("sealed.db");
    auto inner = OpenSqliteStore(options);
    EXPECT_TRUE(inner.ok()) << inner.status().ToString();
    return std::make_unique<SealedStore>(std::move(inner).value(),
                                         std::move(ring));
  }

  NewSession Session(const std::string& id) {
    NewSession s;
    s.id_hash = crypto::Sha256(id);
    s.appid = "wxapp";
    s.openid = "openid-1";
    s.session_key = kSessionKey;
    s.created_at = kNow;
    s.expires_at = kNow + 100;
    return s;
  }

  TempDir dir_;
};

TEST_F(SealedSqlite, TheDatabaseHoldsOnlySealedKeysAndTokens) {
  auto store = Open(SessionKeyring(Key('k')));
  ASSERT_TRUE(store->CreateSession(Session("s1")).ok());
  ASSERT_TRUE(store->PutAccessToken({"wxapp", "access-token-1", kNow}).ok());

  std::string stored =
      RawColumn(dir_.File("sealed.db"), "SELECT session_key FROM users");
  EXPECT_EQ(stored.rfind("wxs1:", 0), 0u) << stored;
  std::string token =
      RawColumn(dir_.File("sealed.db"), "SELECT token FROM access_tokens");
  EXPECT_EQ(token.rfind("wxs1:", 0), 0u) << token;
  std::string files;
  for (const char* suffix : {"", "-wal"}) {
    files += testing_support::ReadFile(dir_.File("sealed.db") + suffix);
  }
  EXPECT_EQ(files.find(kSessionKey), std::string::npos);
  EXPECT_EQ(files.find("access-token-1"), std::string::npos);

  Result<LiveSession> live = store->FindLive(crypto::Sha256("s1"), kNow);
  ASSERT_TRUE(live.ok()) << live.status().ToString();
  EXPECT_EQ(live->session_key, kSessionKey);
  EXPECT_EQ(live->openid, "openid-1");
  EXPECT_EQ(store->GetAccessToken("wxapp")->token, "access-token-1");
}

TEST_F(SealedSqlite, AWrongMasterKeyIsStoreUnavailableAndDropsCachedTokens) {
  {
    auto store = Open(SessionKeyring(Key('k')));
    ASSERT_TRUE(store->CreateSession(Session("s1")).ok());
    ASSERT_TRUE(store->PutAccessToken({"wxapp", "access-token-1", kNow}).ok());
  }
  auto wrong = Open(SessionKeyring(Key('w')));
  Result<LiveSession> live = wrong->FindLive(crypto::Sha256("s1"), kNow);
  ASSERT_FALSE(live.ok());
  // Never "invalid session": a misconfigured key must not log users out.
  EXPECT_EQ(live.status().code(), ErrorCode::kStoreUnavailable);
  Result<AccessToken> token = wrong->GetAccessToken("wxapp");
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), ErrorCode::kNotFound);
  // Unknown sessions stay invalid_session.
  EXPECT_EQ(wrong->FindLive(crypto::Sha256("nope"), kNow).status().code(),
            ErrorCode::kInvalidSession);
}

TEST_F(SealedSqlite, SigningKeysAreSealedAndBoundToTheirKid) {
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\nsigning-key-material\n"
      "-----END PRIVATE KEY-----\n";
  StoredSigningKey key;
  key.kid = "kid-1";
  key.algorithm = "ES256";
  key.private_key = pem;
  key.created_at = kNow;
  {
    auto store = Open(SessionKeyring(Key('k')));
    ASSERT_TRUE(store->ReplaceSigningKey("", key, 0).value());
    Result<std::vector<StoredSigningKey>> keys = store->ListSigningKeys(kNow);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ(keys->front().private_key, pem);
  }
  std::string stored =
      RawColumn(dir_.File("sealed.db"), "SELECT private_key FROM signing_keys");
  EXPECT_EQ(stored.rfind("wxs1:", 0), 0u) << stored;
  EXPECT_EQ(stored.find("signing-key-material"), std::string::npos);
  // Another master key cannot open it: an error, never a key to sign with.
  auto wrong = Open(SessionKeyring(Key('w')));
  Result<std::vector<StoredSigningKey>> keys = wrong->ListSigningKeys(kNow);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), ErrorCode::kStoreUnavailable);
  EXPECT_EQ(keys.status().message().find("signing-key-material"),
            std::string::npos);
}

TEST_F(SealedSqlite, RowsWrittenBeforeSealingStillServe) {
  {
    SqliteOptions options;
    options.path = dir_.File("sealed.db");
    auto plain = OpenSqliteStore(options);
    ASSERT_TRUE(plain.ok());
    ASSERT_TRUE(plain.value()->CreateSession(Session("old")).ok());
  }
  auto store = Open(SessionKeyring(Key('k')));
  EXPECT_EQ(store->FindLive(crypto::Sha256("old"), kNow)->session_key,
            kSessionKey);
  // A new login of the same user replaces the key with a sealed one.
  ASSERT_TRUE(store->CreateSession(Session("new")).ok());
  EXPECT_EQ(RawColumn(dir_.File("sealed.db"), "SELECT session_key FROM users")
                .rfind("wxs1:", 0),
            0u);
  EXPECT_EQ(store->FindLive(crypto::Sha256("old"), kNow)->session_key,
            kSessionKey);
}

}  // namespace
}  // namespace wxsession
