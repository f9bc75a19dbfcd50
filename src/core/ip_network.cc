// IP addresses and networks: see ip_network.h.
#include "core/ip_network.h"

#include <arpa/inet.h>

#include <cstring>

namespace wxsession {

std::optional<IpAddress> IpAddress::Parse(const std::string& text) {
  // INET6_ADDRSTRLEN (46) bounds a valid address; longer text is not one.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  IpAddress address;
  if (text.find(':') == std::string::npos) {
    in_addr v4;
    if (inet_pton(AF_INET, text.c_str(), &v4) != 1) return std::nullopt;
    std::memcpy(address.bytes.data(), &v4, 4);
    return address;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return std::nullopt;
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(&v6, kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
    std::memcpy(address.bytes.data(), reinterpret_cast<uint8_t*>(&v6) + 12, 4);
    return address;
  }
  address.v6 = true;
  std::memcpy(address.bytes.data(), &v6, 16);
  return address;
}

std::string IpAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer,
                sizeof(buffer)) == nullptr) {
    return "";
  }
  return buffer;
}

std::optional<IpNetwork> IpNetwork::Parse(const std::string& text) {
  size_t slash = text.find('/');
  std::optional<IpAddress> base = IpAddress::Parse(text.substr(0, slash));
  if (!base) return std::nullopt;
  const int max_bits = static_cast<int>(base->size()) * 8;
  int bits = max_bits;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    bits = std::stoi(digits);
    // "::ffff:10.0.0.0/104" reads as IPv4, so its prefix must be too.
    if (bits > max_bits) return std::nullopt;
  }
  IpNetwork network;
  network.base = *base;
  network.prefix_bits = bits;
  for (int i = 0; i < max_bits; ++i) {
    if (i >= bits) network.base.bytes[i / 8] &= ~(0x80 >> (i % 8));
  }
  return network;
}

bool IpNetwork::Contains(const IpAddress& address) const {
  if (address.v6 != base.v6) return false;
  for (int i = 0; i < prefix_bits; ++i) {
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (i % 8));
    if ((address.bytes[i / 8] & mask) != (base.bytes[i / 8] & mask)) {
      return false;
    }
  }
  return true;
}

}  // namespace wxsession
