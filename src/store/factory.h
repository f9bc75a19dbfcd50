// Opens the session store the config names (`store`): the wiring between
// the config and the concrete backends, kept out of main.cc so the admin
// commands and the server open stores the same way.
//
// Thread-safety: plain functions; the stores they return are thread-safe.
#ifndef WXSESSION_STORE_FACTORY_H_
#define WXSESSION_STORE_FACTORY_H_

#include <memory>
#include <string>

#include "store/redis/redis_store.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/store.h"

namespace wxsession {

struct OpenedStore {
  std::unique_ptr<SessionStore> store;
  // Whether expired sessions vanish by themselves (Redis), so no sweeper
  // needs to run.
  bool expires_by_itself = false;
  // What was opened, for logs: the database path or the Redis URL with the
  // password masked.
  std::string description;
};

// Opens `config.store`. `clock` must outlive the store. Errors:
// kInvalidRequest (a malformed URL), kStoreUnavailable (SQLite cannot open
// the file). A Redis store opens even while Redis is down.
Result<OpenedStore> OpenConfiguredStore(const Config& config,
                                        const Clock& clock);

// Opens the Redis store at `url` with the config's redis.* settings (the
// target of migrate-store). A URL without a password takes
// config.redis.password. Errors: kInvalidRequest when `url` is not a Redis
// URL.
Result<std::unique_ptr<RedisStore>> OpenRedisStoreAt(const Config& config,
                                                     const std::string& url,
                                                     const Clock& clock);

}  // namespace wxsession

#endif  // WXSESSION_STORE_FACTORY_H_
