// StoreLocator: where sessions live, parsed from the config key `store`.
//
//   "sqlite"                                          the file `database`
//   "redis://[[user]:password@]host[:port][/db]"      one Redis over TCP
//   "redis+unix://[[user]:password@]/path.sock[?db=N]" one Redis over a
//                                                     Unix socket
//   "redis-sentinel://[[user]:password@]host1[:port],host2[:port]/master[/db]"
//                                                     the master that Redis
//                                                     Sentinel names
//
// Ports default to 6379 (redis) and 26379 (sentinel). The password (and user)
// may be percent-encoded; they are for the data nodes: sentinels are asked
// without AUTH. The password is a secret: error messages never quote the
// input, and Redacted() masks it.
//
// Thread-safety: plain values and pure functions.
#ifndef WXSESSION_STORE_LOCATOR_H_
#define WXSESSION_STORE_LOCATOR_H_

#include <string>
#include <vector>

#include "wxsession/status.h"

namespace wxsession {

enum class StoreKind { kSqlite, kRedisTcp, kRedisUnix, kRedisSentinel };

struct StoreHost {
  std::string host;  // a name or an address; IPv6 without brackets
  int port = 0;
};

struct StoreLocator {
  StoreKind kind = StoreKind::kSqlite;
  std::vector<StoreHost>
      hosts;                // kRedisTcp: one; kRedisSentinel: the sentinels
  std::string unix_path;    // kRedisUnix
  std::string master_name;  // kRedisSentinel
  std::string user;         // Redis 6 ACL user; empty = "default"
  std::string password;     // never printed; empty = no AUTH
  int db = 0;

  bool is_redis() const { return kind != StoreKind::kSqlite; }
  // The locator as a URL with the user and password replaced by "***", for
  // logs and messages.
  std::string Redacted() const;
};

// Parses `text` as above. Errors: kInvalidRequest with a message that says
// what is wrong without quoting `text` (it may hold a password).
Result<StoreLocator> ParseStoreLocator(const std::string& text);

}  // namespace wxsession

#endif  // WXSESSION_STORE_LOCATOR_H_
