#include "http/client_ip.h"

#include <gtest/gtest.h>

namespace wxsession {
namespace {

TEST(IpAddress, ParsesV4V6AndReadsMappedV4AsV4) {
  ASSERT_TRUE(IpAddress::Parse("192.0.2.7"));
  EXPECT_FALSE(IpAddress::Parse("192.0.2.7")->v6);
  ASSERT_TRUE(IpAddress::Parse("2001:db8::1"));
  EXPECT_TRUE(IpAddress::Parse("2001:db8::1")->v6);
  auto mapped = IpAddress::Parse("::ffff:192.0.2.7");
  ASSERT_TRUE(mapped);
  EXPECT_FALSE(mapped->v6);
  EXPECT_EQ(mapped->ToString(), "192.0.2.7");
  for (const char* bad : {"", "1.2.3", "1.2.3.4:80", "[::1]", "fe80::1%eth0",
                          "example.com", "1.2.3.4 ", "999.1.1.1"}) {
    EXPECT_FALSE(IpAddress::Parse(bad)) << bad;
  }
}

TEST(IpNetwork, ContainsChecksThePrefixOnly) {
  auto net = IpNetwork::Parse("10.1.0.0/16");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->Contains(*IpAddress::Parse("10.1.255.3")));
  EXPECT_FALSE(net->Contains(*IpAddress::Parse("10.2.0.1")));
  EXPECT_FALSE(net->Contains(*IpAddress::Parse("::ffff:10.2.0.1")));
  EXPECT_TRUE(net->Contains(*IpAddress::Parse("::ffff:10.1.0.1")));
  auto host = IpNetwork::Parse("127.0.0.1");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix_bits, 32);
  EXPECT_FALSE(host->Contains(*IpAddress::Parse("127.0.0.2")));
  auto v6 = IpNetwork::Parse("fd00::/8");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->Contains(*IpAddress::Parse("fd12:3456::1")));
  EXPECT_FALSE(v6->Contains(*IpAddress::Parse("fe80::1")));
  EXPECT_FALSE(v6->Contains(*IpAddress::Parse("10.0.0.1")));
  // Host bits in the base are cleared, not a reason to refuse.
  EXPECT_TRUE(IpNetwork::Parse("10.1.2.3/8")->Contains(
      *IpAddress::Parse("10.200.0.1")));
  EXPECT_TRUE(IpNetwork::Parse("0.0.0.0/0")->Contains(
      *IpAddress::Parse("8.8.8.8")));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
                          "10.0.0.0/-1", "/8", "nonsense/8"}) {
    EXPECT_FALSE(IpNetwork::Parse(bad)) << bad;
  }
}

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
  EXPECT_EQ(RateLimitKeyFor("2001:db8:1:2::9"), RateLimitKeyFor("2001:db8:1:2::1"));
  EXPECT_NE(RateLimitKeyFor("2001:db8:1:3::1"), RateLimitKeyFor("2001:db8:1:2::1"));
  EXPECT_EQ(RateLimitKeyFor("weird"), "weird");
}

}  // namespace
}  // namespace wxsession
