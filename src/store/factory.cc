#include "store/factory.h"

#include "core/store_locator.h"
#include "store/sqlite/sqlite_store.h"

namespace wxsession {

Result<std::unique_ptr<RedisStore>> OpenRedisStoreAt(const Config& config,
                                                     const std::string& url,
                                                     const Clock& clock) {
  Result<StoreLocator> locator = ParseStoreLocator(url);
  if (!locator.ok()) return locator.status();
  if (!locator->is_redis()) {
    return Status(ErrorCode::kInvalidRequest,
                  "store: expected a redis://, redis+unix:// or "
                  "redis-sentinel:// URL");
  }
  RedisStoreOptions options;
  options.locator = locator.value();
  if (options.locator.password.empty()) {
    options.locator.password = config.redis.password;
  }
  options.prefix = config.redis.prefix;
  options.timeout_ms = config.redis.timeout_ms;
  options.pool_size = config.redis.pool_size;
  options.min_replicas_ack = config.redis.min_replicas_ack;
  options.user_retention_seconds = config.user_retention;
  return OpenRedisStore(options, clock);
}

Result<OpenedStore> OpenConfiguredStore(const Config& config,
                                        const Clock& clock) {
  Result<StoreLocator> locator = ParseStoreLocator(config.store);
  if (!locator.ok()) return locator.status();
  OpenedStore opened;
  if (locator->is_redis()) {
    Result<std::unique_ptr<RedisStore>> redis =
        OpenRedisStoreAt(config, config.store, clock);
    if (!redis.ok()) return redis.status();
    opened.store = std::move(redis).value();
    opened.expires_by_itself = true;
    opened.description = locator->Redacted();
    return opened;
  }
  SqliteOptions options;
  options.path = config.database;
  options.durability = config.durability;
  options.max_pages = config.storage_max_pages;
  Result<std::unique_ptr<SessionStore>> sqlite = OpenSqliteStore(options);
  if (!sqlite.ok()) return sqlite.status();
  opened.store = std::move(sqlite).value();
  opened.description = config.database;
  return opened;
}

}  // namespace wxsession
