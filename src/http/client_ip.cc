#include "http/client_ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace wxsession {
namespace {

std::string Trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

// Splits on ',' and trims each entry.
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(Trim(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return out;
}

}  // namespace

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
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0,
                                            0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(&v6, kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
    std::memcpy(address.bytes.data(), reinterpret_cast<uint8_t*>(&v6) + 12,
                4);
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

Result<TrustedProxies> TrustedProxies::Parse(
    const std::vector<std::string>& cidrs) {
  std::vector<IpNetwork> networks;
  for (const std::string& text : cidrs) {
    std::optional<IpNetwork> network = IpNetwork::Parse(text);
    if (!network) {
      return Status(ErrorCode::kInvalidRequest,
                    "\"" + text +
                        "\" is not an address or CIDR network such as "
                        "10.0.0.0/8 or fd00::/8");
    }
    networks.push_back(*network);
  }
  return TrustedProxies(std::move(networks));
}

bool TrustedProxies::Contains(const std::string& address) const {
  std::optional<IpAddress> parsed = IpAddress::Parse(address);
  if (!parsed) return false;
  for (const IpNetwork& network : networks_) {
    if (network.Contains(*parsed)) return true;
  }
  return false;
}

std::string TrustedProxies::ClientAddress(const std::string& peer,
                                          const std::string& forwarded_for,
                                          const std::string& real_ip) const {
  if (!Contains(peer)) return peer;
  if (!Trim(forwarded_for).empty()) {
    std::vector<std::string> hops = SplitList(forwarded_for);
    // Walk from the right past our own proxies; the first other address is
    // the client as our outermost proxy saw it.
    for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
      std::optional<IpAddress> address = IpAddress::Parse(*hop);
      if (!address) return peer;  // garbage in the chain: trust none of it
      if (!Contains(*hop)) return address->ToString();
    }
    // Every hop is one of ours: the leftmost is the best we know.
    return IpAddress::Parse(hops.front())->ToString();
  }
  if (std::optional<IpAddress> address = IpAddress::Parse(Trim(real_ip))) {
    return address->ToString();
  }
  return peer;
}

std::string RateLimitKeyFor(const std::string& address) {
  std::optional<IpAddress> parsed = IpAddress::Parse(address);
  if (!parsed) return address;
  if (!parsed->v6) return parsed->ToString();
  IpAddress prefix = *parsed;
  // Keep the first 64 bits, a subscriber's usual allocation.
  std::fill(prefix.bytes.begin() + 8, prefix.bytes.end(), 0);
  return prefix.ToString() + "/64";
}

}  // namespace wxsession
