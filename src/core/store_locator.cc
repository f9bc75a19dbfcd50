// Parses the `store` config value. Every message says what is wrong with a
// fixed text: quoting the input could print a Redis password.
#include "core/store_locator.h"

#include <cstdlib>
#include <optional>
#include <string_view>

namespace wxsession {
namespace {

constexpr int kDefaultRedisPort = 6379;
constexpr int kDefaultSentinelPort = 26379;
constexpr int kMaxPort = 65535;
// Redis has 16 databases unless configured otherwise; a server may allow
// more, so only the absurd is refused here and the server judges the rest.
constexpr int kMaxDb = 1 << 20;

constexpr char kSqliteScheme[] = "sqlite";
constexpr char kRedisScheme[] = "redis://";
constexpr char kUnixScheme[] = "redis+unix://";
constexpr char kSentinelScheme[] = "redis-sentinel://";

Status LocatorError(const std::string& what) {
  return Status(ErrorCode::kInvalidRequest, what);
}

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes. nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int high = HexValue(text[i + 1]);
    int low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

// Splits "[[user]:password@]rest" off the front of `text`. The last '@'
// ends the user info, so a password may contain '@' even unescaped.
Status TakeUserInfo(std::string_view* text, StoreLocator* out) {
  size_t at = text->rfind('@');
  if (at == std::string_view::npos) return Status::Ok();
  std::string_view info = text->substr(0, at);
  *text = text->substr(at + 1);
  size_t colon = info.find(':');
  if (colon == std::string_view::npos) {
    return LocatorError(
        "store: the part before '@' must be :password or user:password");
  }
  std::optional<std::string> user = PercentDecode(info.substr(0, colon));
  std::optional<std::string> password = PercentDecode(info.substr(colon + 1));
  if (!user || !password) {
    return LocatorError("store: bad %-escape in the user or password");
  }
  if (password->empty()) {
    return LocatorError("store: empty password after ':'");
  }
  out->user = *user;
  out->password = *password;
  return Status::Ok();
}

Result<int> ParseNumber(std::string_view text, int max, const char* what) {
  // At most 7 digits: no overflow before the range check.
  if (!AllDigits(text) || text.size() > 7) {
    return LocatorError(std::string("store: ") + what + " must be a number");
  }
  int value = std::atoi(std::string(text).c_str());
  if (value > max) {
    return LocatorError(std::string("store: ") + what + " is out of range");
  }
  return value;
}

// "host", "host:port", "[v6]" or "[v6]:port".
Result<StoreHost> ParseHost(std::string_view text, int default_port) {
  StoreHost host;
  host.port = default_port;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1) {
      return LocatorError("store: unterminated [IPv6] address");
    }
    host.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return LocatorError("store: expected :port after the [IPv6] address");
      }
      port = rest.substr(1);
      if (port.empty()) return LocatorError("store: empty port");
    }
  } else {
    size_t colon = text.find(':');
    host.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      if (port.empty()) return LocatorError("store: empty port");
    }
  }
  if (host.host.empty()) return LocatorError("store: missing host");
  if (host.host.find_first_of(" \t\r\n/?#[]@,") != std::string::npos) {
    return LocatorError("store: the host has characters a host cannot have");
  }
  if (!port.empty()) {
    Result<int> number = ParseNumber(port, kMaxPort, "port");
    if (!number.ok()) return number.status();
    if (number.value() == 0) return LocatorError("store: port 0");
    host.port = number.value();
  }
  return host;
}

Result<StoreLocator> ParseRedisTcp(std::string_view rest) {
  StoreLocator out;
  out.kind = StoreKind::kRedisTcp;
  if (Status s = TakeUserInfo(&rest, &out); !s.ok()) return s;
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Result<StoreHost> host = ParseHost(authority, kDefaultRedisPort);
  if (!host.ok()) return host.status();
  out.hosts.push_back(host.value());
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      Result<int> number = ParseNumber(db, kMaxDb, "database number");
      if (!number.ok()) return number.status();
      out.db = number.value();
    }
  }
  return out;
}

Result<StoreLocator> ParseRedisUnix(std::string_view rest) {
  StoreLocator out;
  out.kind = StoreKind::kRedisUnix;
  if (Status s = TakeUserInfo(&rest, &out); !s.ok()) return s;
  size_t query = rest.find('?');
  std::string_view path = rest.substr(0, query);
  if (path.empty() || path.front() != '/') {
    return LocatorError(
        "store: redis+unix:// needs an absolute socket path, e.g. "
        "redis+unix:///run/redis/redis.sock");
  }
  out.unix_path = std::string(path);
  if (query != std::string_view::npos) {
    std::string_view params = rest.substr(query + 1);
    constexpr std::string_view kDbParam = "db=";
    if (params.substr(0, kDbParam.size()) != kDbParam) {
      return LocatorError("store: the only redis+unix:// parameter is ?db=N");
    }
    Result<int> number =
        ParseNumber(params.substr(kDbParam.size()), kMaxDb, "database number");
    if (!number.ok()) return number.status();
    out.db = number.value();
  }
  return out;
}

Result<StoreLocator> ParseRedisSentinel(std::string_view rest) {
  StoreLocator out;
  out.kind = StoreKind::kRedisSentinel;
  if (Status s = TakeUserInfo(&rest, &out); !s.ok()) return s;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return LocatorError(
        "store: redis-sentinel:// needs /mastername after the sentinels");
  }
  std::string_view hosts = rest.substr(0, slash);
  while (true) {
    size_t comma = hosts.find(',');
    Result<StoreHost> host =
        ParseHost(hosts.substr(0, comma), kDefaultSentinelPort);
    if (!host.ok()) return host.status();
    out.hosts.push_back(host.value());
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
  }
  std::string_view path = rest.substr(slash + 1);
  size_t db_slash = path.find('/');
  out.master_name = std::string(path.substr(0, db_slash));
  if (out.master_name.empty()) {
    return LocatorError("store: redis-sentinel:// needs a master name");
  }
  if (out.master_name.find_first_of(" \t\r\n?#") != std::string::npos) {
    return LocatorError("store: the master name has unexpected characters");
  }
  if (db_slash != std::string_view::npos) {
    Result<int> number =
        ParseNumber(path.substr(db_slash + 1), kMaxDb, "database number");
    if (!number.ok()) return number.status();
    out.db = number.value();
  }
  return out;
}

std::string HostText(const StoreHost& host) {
  bool v6 = host.host.find(':') != std::string::npos;
  return (v6 ? "[" + host.host + "]" : host.host) + ":" +
         std::to_string(host.port);
}

}  // namespace

std::string StoreLocator::Redacted() const {
  std::string auth = password.empty() ? "" : "***:***@";
  switch (kind) {
    case StoreKind::kSqlite:
      return kSqliteScheme;
    case StoreKind::kRedisTcp:
      return kRedisScheme + auth + HostText(hosts.front()) + "/" +
             std::to_string(db);
    case StoreKind::kRedisUnix:
      return kUnixScheme + auth + unix_path +
             (db == 0 ? "" : "?db=" + std::to_string(db));
    case StoreKind::kRedisSentinel: {
      std::string list;
      for (const StoreHost& host : hosts) {
        if (!list.empty()) list += ",";
        list += HostText(host);
      }
      return kSentinelScheme + auth + list + "/" + master_name +
             (db == 0 ? "" : "/" + std::to_string(db));
    }
  }
  return "";
}

Result<StoreLocator> ParseStoreLocator(const std::string& text) {
  std::string_view view(text);
  auto starts = [&view](std::string_view prefix) {
    return view.substr(0, prefix.size()) == prefix;
  };
  if (text == kSqliteScheme) return StoreLocator{};
  if (text.find_first_of(" \t\r\n") != std::string::npos) {
    return LocatorError("store: must not contain whitespace");
  }
  if (starts(kRedisScheme)) {
    return ParseRedisTcp(view.substr(sizeof(kRedisScheme) - 1));
  }
  if (starts(kUnixScheme)) {
    return ParseRedisUnix(view.substr(sizeof(kUnixScheme) - 1));
  }
  if (starts(kSentinelScheme)) {
    return ParseRedisSentinel(view.substr(sizeof(kSentinelScheme) - 1));
  }
  return LocatorError(
      "store: expected \"sqlite\", redis://host:port[/db], "
      "redis+unix:///path.sock or redis-sentinel://host:port,.../mastername");
}

}  // namespace wxsession
