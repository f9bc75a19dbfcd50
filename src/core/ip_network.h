// IP addresses and CIDR networks as plain values: parsing, printing and
// prefix matching, with no socket or HTTP in sight. The configuration checks
// trusted_proxies with them; src/http/client_ip.h builds the client-address
// rules on top.
//
// Thread-safety: both types are plain values; const methods may be called
// from any thread.
#ifndef WXSESSION_CORE_IP_NETWORK_H_
#define WXSESSION_CORE_IP_NETWORK_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace wxsession {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what
// a dual-stack socket reports for IPv4 peers) are read as IPv4.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4 uses the first 4

  // nullopt for anything that is not a bare address (no port, no brackets,
  // no zone).
  static std::optional<IpAddress> Parse(const std::string& text);
  std::string ToString() const;
  size_t size() const { return v6 ? 16 : 4; }
};

// A network in CIDR notation, e.g. "10.0.0.0/8" or "fd00::/8". A bare
// address means the one host (/32 or /128).
struct IpNetwork {
  IpAddress base;  // host bits cleared
  int prefix_bits = 0;

  // nullopt for a malformed address or prefix length.
  static std::optional<IpNetwork> Parse(const std::string& text);
  bool Contains(const IpAddress& address) const;
};

}  // namespace wxsession

#endif  // WXSESSION_CORE_IP_NETWORK_H_
