#include "http/client_ip.h"

#include <algorithm>

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
