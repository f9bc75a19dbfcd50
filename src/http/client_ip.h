// Client addresses: which address a request really comes from when proxies
// stand in between, and the networks whose word on that is trusted.
//
// A proxy (nginx, Caddy, Traefik) connects to wxsessiond itself, so the
// TCP peer is the proxy; the client's address travels in X-Forwarded-For or
// X-Real-IP. Anyone can send those headers, so they count only when the peer
// is in `trusted_proxies`, and X-Forwarded-For is read from the right: each
// trusted proxy appends the address it saw, so the rightmost entry that is
// not itself a trusted proxy is the first one no client could forge.
//
// Thread-safety: every type here is a plain value, constant once built;
// const methods may be called from any thread.
#ifndef WXSESSION_CLIENT_IP_H_
#define WXSESSION_CLIENT_IP_H_

#include <string>
#include <utility>
#include <vector>

#include "core/ip_network.h"
#include "wxsession/status.h"

namespace wxsession {

class TrustedProxies {
 public:
  TrustedProxies() = default;  // trusts nobody
  explicit TrustedProxies(std::vector<IpNetwork> networks)
      : networks_(std::move(networks)) {}

  // Parses CIDR texts. kInvalidRequest naming the first bad entry.
  static Result<TrustedProxies> Parse(const std::vector<std::string>& cidrs);

  bool Contains(const std::string& address) const;

  // The client's address. `peer` is the TCP peer; `forwarded_for` is every
  // X-Forwarded-For header joined with ','; `real_ip` is X-Real-IP. When the
  // peer is not trusted, or the headers are absent or malformed, the answer
  // is `peer`.
  std::string ClientAddress(const std::string& peer,
                            const std::string& forwarded_for,
                            const std::string& real_ip) const;

 private:
  std::vector<IpNetwork> networks_;  // constant after construction
};

// The key a per-client limit should count under: the address itself for
// IPv4, its /64 prefix for IPv6 (one subscriber usually holds a whole /64,
// so per-address limits would be trivially sidestepped). Text that is not an
// address is returned unchanged.
std::string RateLimitKeyFor(const std::string& address);

}  // namespace wxsession

#endif  // WXSESSION_CLIENT_IP_H_
