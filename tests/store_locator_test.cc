// The `store` URL: every accepted form, and errors that never quote the
// input (it may hold a password).
#include "core/store_locator.h"

#include <gtest/gtest.h>

namespace wxsession {
namespace {

TEST(StoreLocator, SqliteIsTheDefaultWord) {
  Result<StoreLocator> sqlite = ParseStoreLocator("sqlite");
  ASSERT_TRUE(sqlite.ok());
  EXPECT_EQ(sqlite->kind, StoreKind::kSqlite);
  EXPECT_FALSE(sqlite->is_redis());
}

TEST(StoreLocator, RedisTcpWithDefaultsAndEveryPart) {
  Result<StoreLocator> plain = ParseStoreLocator("redis://cache.internal");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->kind, StoreKind::kRedisTcp);
  ASSERT_EQ(plain->hosts.size(), 1u);
  EXPECT_EQ(plain->hosts[0].host, "cache.internal");
  EXPECT_EQ(plain->hosts[0].port, 6379);
  EXPECT_EQ(plain->db, 0);
  EXPECT_TRUE(plain->password.empty());

  Result<StoreLocator> full =
      ParseStoreLocator("redis://:s%40cret@10.0.0.5:6380/2");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->hosts[0].host, "10.0.0.5");
  EXPECT_EQ(full->hosts[0].port, 6380);
  EXPECT_EQ(full->db, 2);
  EXPECT_EQ(full->password, "s@cret");
  EXPECT_TRUE(full->user.empty());

  Result<StoreLocator> acl = ParseStoreLocator("redis://app:p@ss@[::1]:7000");
  ASSERT_TRUE(acl.ok()) << acl.status().ToString();
  EXPECT_EQ(acl->user, "app");
  EXPECT_EQ(acl->password, "p@ss");  // the last '@' ends the user info
  EXPECT_EQ(acl->hosts[0].host, "::1");
  EXPECT_EQ(acl->hosts[0].port, 7000);
}

TEST(StoreLocator, RedisUnixSocket) {
  Result<StoreLocator> unix_socket =
      ParseStoreLocator("redis+unix:///run/redis/redis.sock");
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status().ToString();
  EXPECT_EQ(unix_socket->kind, StoreKind::kRedisUnix);
  EXPECT_EQ(unix_socket->unix_path, "/run/redis/redis.sock");
  Result<StoreLocator> with_db =
      ParseStoreLocator("redis+unix://:pw@/tmp/r.sock?db=4");
  ASSERT_TRUE(with_db.ok()) << with_db.status().ToString();
  EXPECT_EQ(with_db->unix_path, "/tmp/r.sock");
  EXPECT_EQ(with_db->db, 4);
  EXPECT_EQ(with_db->password, "pw");
}

TEST(StoreLocator, RedisSentinelList) {
  Result<StoreLocator> sentinel = ParseStoreLocator(
      "redis-sentinel://:pw@s1:26379,s2,10.0.0.3:26380/mymaster");
  ASSERT_TRUE(sentinel.ok()) << sentinel.status().ToString();
  EXPECT_EQ(sentinel->kind, StoreKind::kRedisSentinel);
  ASSERT_EQ(sentinel->hosts.size(), 3u);
  EXPECT_EQ(sentinel->hosts[1].host, "s2");
  EXPECT_EQ(sentinel->hosts[1].port, 26379);
  EXPECT_EQ(sentinel->hosts[2].port, 26380);
  EXPECT_EQ(sentinel->master_name, "mymaster");
  EXPECT_EQ(sentinel->password, "pw");
  Result<StoreLocator> with_db =
      ParseStoreLocator("redis-sentinel://s1/mymaster/5");
  ASSERT_TRUE(with_db.ok());
  EXPECT_EQ(with_db->db, 5);
}

TEST(StoreLocator, RedactedMasksThePassword) {
  Result<StoreLocator> locator =
      ParseStoreLocator("redis://admin:hunter2@db.example:6379/1");
  ASSERT_TRUE(locator.ok());
  std::string shown = locator->Redacted();
  EXPECT_EQ(shown.find("hunter2"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("admin"), std::string::npos) << shown;
  EXPECT_EQ(shown, "redis://***:***@db.example:6379/1");
  EXPECT_EQ(
      ParseStoreLocator("redis-sentinel://:hunter2@a:1,b:2/m")->Redacted(),
      "redis-sentinel://***:***@a:1,b:2/m");
  EXPECT_EQ(ParseStoreLocator("redis+unix:///x.sock")->Redacted(),
            "redis+unix:///x.sock");
}

TEST(StoreLocator, MalformedUrlsAreRefusedWithoutQuotingThem) {
  const char* bad[] = {
      "",
      "postgres://:hunter2@db",
      "redis://",
      "redis://:hunter2@",
      "redis://:hunter2@host:notaport",
      "redis://:hunter2@host:99999",
      "redis://:hunter2@host:0",
      "redis://:hunter2@host/notadb",
      "redis://hunter2@host",  // user info without ':'
      "redis://:@host",
      "redis://:hunter2@host:6379 /0",
      "redis://:hunter2%zz@host",
      "redis+unix://:hunter2@relative.sock",
      "redis+unix:///x.sock?dbx=1",
      "redis-sentinel://:hunter2@s1:26379",
      "redis-sentinel://:hunter2@s1:26379/",
      "redis-sentinel://:hunter2@s1:26379,/m",
      "redis://:hunter2@[::1",
  };
  for (const char* text : bad) {
    Result<StoreLocator> locator = ParseStoreLocator(text);
    ASSERT_FALSE(locator.ok()) << text;
    EXPECT_EQ(locator.status().code(), ErrorCode::kInvalidRequest) << text;
    EXPECT_EQ(locator.status().message().find("hunter2"), std::string::npos)
        << locator.status().message();
    EXPECT_EQ(locator.status().message().rfind("store: ", 0), 0u)
        << locator.status().message();
  }
}

}  // namespace
}  // namespace wxsession
