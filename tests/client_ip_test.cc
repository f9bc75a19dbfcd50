#include "http/client_ip.h"

#include <gtest/gtest.h>

namespace wxsession {
namespace {

TEST(TrustedProxies, ParseNamesTheBadEntry) {
  EXPECT_TRUE(TrustedProxies::Parse({"127.0.0.1/32", "::1"}).ok());
  auto bad = TrustedProxies::Parse({"127.0.0.1/32", "10.0.0.0/40"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("10.0.0.0/40"), std::string::npos);
}

TEST(TrustedProxies, HeadersFromAnUntrustedPeerAreIgnored) {
  TrustedProxies proxies = TrustedProxies::Parse({"127.0.0.1/32"}).value();
  EXPECT_EQ(proxies.ClientAddress("203.0.113.9", "1.1.1.1", "2.2.2.2"),
            "203.0.113.9");
  TrustedProxies nobody;
  EXPECT_EQ(nobody.ClientAddress("127.0.0.1", "1.1.1.1", "2.2.2.2"),
            "127.0.0.1");
}

TEST(TrustedProxies, ForwardedForIsReadFromTheRightPastTrustedHops) {
  TrustedProxies proxies =
      TrustedProxies::Parse({"127.0.0.1/32", "10.0.0.0/8"}).value();
  // The client forged the first entry; our proxy appended what it saw.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "6.6.6.6, 198.51.100.4", ""),
            "198.51.100.4");
  // Two layers of our own proxies.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "198.51.100.4, 10.0.0.5", ""),
            "198.51.100.4");
  // Repeated headers joined in order behave as one list.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "6.6.6.6,198.51.100.4,10.0.0.5",
                                  "7.7.7.7"),
            "198.51.100.4");
  // Every hop trusted: the leftmost is the best known.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "10.0.0.9, 10.0.0.5", ""),
            "10.0.0.9");
  // Garbage anywhere in the chain: trust none of it.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "198.51.100.4, unknown", ""),
            "127.0.0.1");
  // IPv6 and mapped entries are normalised.
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "2001:DB8::1", ""),
            "2001:db8::1");
  EXPECT_EQ(proxies.ClientAddress("::ffff:127.0.0.1", "::ffff:192.0.2.1", ""),
            "192.0.2.1");
}

TEST(TrustedProxies, RealIpIsUsedWhenThereIsNoForwardedFor) {
  TrustedProxies proxies = TrustedProxies::Parse({"127.0.0.1/32"}).value();
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "", " 192.0.2.8 "), "192.0.2.8");
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "", "not-an-ip"), "127.0.0.1");
  EXPECT_EQ(proxies.ClientAddress("127.0.0.1", "", ""), "127.0.0.1");
}

TEST(RateLimitKey, IsTheAddressForV4AndTheSlash64ForV6) {
  EXPECT_EQ(RateLimitKeyFor("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(RateLimitKeyFor("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64");
  EXPECT_EQ(RateLimitKeyFor("2001:db8:1:2::9"),
            RateLimitKeyFor("2001:db8:1:2::1"));
  EXPECT_NE(RateLimitKeyFor("2001:db8:1:3::1"),
            RateLimitKeyFor("2001:db8:1:2::1"));
  EXPECT_EQ(RateLimitKeyFor("weird"), "weird");
}

}  // namespace
}  // namespace wxsession
