#include "core/ip_network.h"

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
  EXPECT_TRUE(IpNetwork::Parse("10.1.2.3/8")
                  ->Contains(*IpAddress::Parse("10.200.0.1")));
  EXPECT_TRUE(
      IpNetwork::Parse("0.0.0.0/0")->Contains(*IpAddress::Parse("8.8.8.8")));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
                          "10.0.0.0/-1", "/8", "nonsense/8"}) {
    EXPECT_FALSE(IpNetwork::Parse(bad)) << bad;
  }
}

}  // namespace
}  // namespace wxsession
