// Request framing (src/http/framing.h): what the connection layer accepts
// as a request head, how it decodes chunked bodies, and the canonical
// request it hands httplib.
#include "http/framing.h"

#include <gtest/gtest.h>

#include <string>

namespace wxsession {
namespace {

Result<RequestHead> Parse(const std::string& head) {
  return ParseRequestHead(head);
}

void ExpectRefused(const std::string& head, const std::string& why) {
  Result<RequestHead> parsed = Parse(head);
  ASSERT_FALSE(parsed.ok()) << why;
  EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidRequest) << why;
  EXPECT_FALSE(parsed.status().message().empty());
}

TEST(ParseRequestHead, ReadsTheRequestLineFieldsAndFraming) {
  Result<RequestHead> head = Parse(
      "POST /v1/login?x=1 HTTP/1.1\r\nHost: example.com\r\n"
      "Content-Type:  application/json \r\nContent-Length: 12\r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->method, "POST");
  EXPECT_EQ(head->target, "/v1/login?x=1");
  EXPECT_EQ(head->minor_version, 1);
  EXPECT_EQ(head->framing, BodyFraming::kContentLength);
  EXPECT_EQ(head->content_length, 12u);
  ASSERT_EQ(head->fields.size(), 3u);
  EXPECT_EQ(head->fields[1].first, "Content-Type");
  EXPECT_EQ(head->fields[1].second, "application/json");  // OWS trimmed
}

TEST(ParseRequestHead, AGetWithABodyIsFramedLikeAnyOther) {
  // The root of the smuggling report: a GET's body is still a body.
  Result<RequestHead> head =
      Parse("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->framing, BodyFraming::kContentLength);
  EXPECT_EQ(head->content_length, 34u);
  head = Parse(
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->framing, BodyFraming::kChunked);
}

TEST(ParseRequestHead, SkipsEmptyLinesBeforeTheRequestLine) {
  Result<RequestHead> head = Parse("\r\n\r\nGET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->minor_version, 0);
  EXPECT_EQ(head->framing, BodyFraming::kNone);
}

TEST(ParseRequestHead, RefusesControlCharactersAnywhere) {
  const std::string nul("\0", 1);
  ExpectRefused(
      "GET / HTTP/1.1\r\nHost: x\r\nX-WX-Session: abc" + nul + "junk\r\n\r\n",
      "NUL in a value");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01z\r\n\r\n",
                "SOH in a value");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fz\r\n\r\n",
                "DEL in a value");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-" + nul + "A: b\r\n\r\n",
                "NUL in a name");
  ExpectRefused("GET /a" + nul + "b HTTP/1.1\r\nHost: x\r\n\r\n",
                "NUL in the target");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
                "bare CR in a value");
  ExpectRefused("GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF ending a line");
  // A tab inside a value is allowed (RFC 9110 field-vchar / HTAB).
  Result<RequestHead> tab =
      Parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n");
  ASSERT_TRUE(tab.ok()) << tab.status().message();
  EXPECT_EQ(tab->fields[1].second, "a\tb");
}

TEST(ParseRequestHead, RefusesMalformedLinesAndNames) {
  ExpectRefused("GET /healthz\r\n\r\n", "no version");
  ExpectRefused("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/2");
  ExpectRefused("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "two spaces");
  ExpectRefused("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "method not a token");
  ExpectRefused("GET / HTTP/1.1\r\nHost : x\r\n\r\n", "space before colon");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", "no colon");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
                "obs-fold");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\n", "no empty line");
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (size_t i = 0; i < kMaxHeaderFields; ++i) many += "X-A: b\r\n";
  ExpectRefused(many + "\r\n", "too many fields");
}

TEST(ParseRequestHead, Http11NeedsExactlyOneHost) {
  ExpectRefused("GET /healthz HTTP/1.1\r\n\r\n", "no Host");
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Hosts");
  ExpectRefused("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
                "two Hosts in 1.0");
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\n\r\n").ok()) << "1.0 needs no Host";
}

TEST(ParseRequestHead, RefusesAmbiguousBodyLengths) {
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "CL and TE");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      "Content-Length: 4\r\n\r\n",
      "two different CLs");
  ExpectRefused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
                "a CL list that disagrees");
  ExpectRefused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                "negative CL");
  ExpectRefused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
                "hex CL");
  ExpectRefused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
                "empty CL");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: x\r\n"
      "Content-Length: 99999999999999999999\r\n\r\n",
      "CL past 64 bits");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, "
      "chunked\r\n\r\n",
      "TE other than chunked");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "TE twice");
  ExpectRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked on HTTP/1.0");
  // Repeats that agree are one length.
  Result<RequestHead> same = Parse(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n"
      "Content-Length: 5\r\n\r\n");
  ASSERT_TRUE(same.ok()) << same.status().message();
  EXPECT_EQ(same->content_length, 5u);
}

TEST(ParseRequestHead, ExpectContinueOnlyWithABody) {
  Result<RequestHead> head = Parse(
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
      "Content-Length: 2\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_TRUE(head->expects_continue);
  head = Parse("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_FALSE(head->expects_continue);
}

TEST(CanonicalRequest, DropsFramingAndRangeAndStatesTheLength) {
  Result<RequestHead> head = Parse(
      "GET /metrics HTTP/1.1\r\nHost: x\r\nRange: bytes=0-,0-,0-\r\n"
      "If-Range: \"x\"\r\nTransfer-Encoding: chunked\r\n"
      "Expect: 100-continue\r\nX-Request-Id: r1\r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.status().message();
  const std::string canonical = CanonicalRequest(head.value(), "abc");
  EXPECT_EQ(canonical,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Request-Id: r1\r\n"
            "Content-Length: 3\r\n\r\nabc");
  head = Parse("POST /v1/login HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(CanonicalRequest(head.value(), ""),
            "POST /v1/login HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
}

// Found by the http_framing fuzz target: a head at the field limit gained a
// field (the canonical Content-Length) and no longer parsed.
TEST(CanonicalRequest, AHeadAtTheFieldLimitStaysParsable) {
  std::string text = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (size_t i = 1; i < kMaxHeaderFields; ++i) text += "X-A: b\r\n";
  Result<RequestHead> head = Parse(text + "Content-Length: 0\r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.status().message();
  const std::string canonical = CanonicalRequest(head.value(), "");
  Result<RequestHead> again =
      ParseRequestHead(canonical.substr(0, canonical.find("\r\n\r\n") + 4));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(CanonicalRequest(again.value(), ""), canonical);
}

// Feeds `wire` in pieces of `step` bytes; returns the final state and the
// bytes consumed.
ChunkedBodyDecoder::State FeedInSteps(ChunkedBodyDecoder& decoder,
                                      const std::string& wire, size_t step,
                                      size_t* consumed_total) {
  ChunkedBodyDecoder::State state = ChunkedBodyDecoder::State::kNeedMore;
  *consumed_total = 0;
  size_t at = 0;
  while (at < wire.size() && state == ChunkedBodyDecoder::State::kNeedMore) {
    const size_t n = std::min(step, wire.size() - at);
    size_t consumed = 0;
    state = decoder.Feed(std::string_view(wire).substr(at, n), &consumed);
    *consumed_total += consumed;
    at += consumed;
    if (consumed < n) break;
  }
  return state;
}

TEST(ChunkedBodyDecoder, DecodesInAnyPiecesAndStopsAtTheEnd) {
  const std::string body =
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
  const std::string next = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t step : {1u, 2u, 3u, 7u, 1000u}) {
    ChunkedBodyDecoder decoder(1024);
    size_t consumed = 0;
    EXPECT_EQ(FeedInSteps(decoder, body + next, step, &consumed),
              ChunkedBodyDecoder::State::kDone)
        << "step " << step;
    EXPECT_EQ(decoder.body(), "hello, world");
    // The pipelined request after the body is left for the next read.
    EXPECT_EQ(consumed, body.size()) << "step " << step;
  }
}

TEST(ChunkedBodyDecoder, RefusesMalformedFraming) {
  for (const std::string& wire :
       {std::string("x\r\n"), std::string("5\r\nhelloXX"),
        std::string("5\nhello\r\n0\r\n\r\n"), std::string("-1\r\n"),
        std::string("5 junk\r\n"), std::string("0\r\nbad trailer\r\n\r\n"),
        std::string("0\r\nX-A: a\x01\r\n\r\n")}) {
    ChunkedBodyDecoder decoder(1024);
    size_t consumed = 0;
    EXPECT_EQ(FeedInSteps(decoder, wire, 1000, &consumed),
              ChunkedBodyDecoder::State::kError)
        << wire;
    EXPECT_EQ(decoder.error().code(), ErrorCode::kInvalidRequest) << wire;
  }
}

TEST(ChunkedBodyDecoder, RefusesBodiesOverTheLimit) {
  ChunkedBodyDecoder decoder(8);
  size_t consumed = 0;
  EXPECT_EQ(
      FeedInSteps(decoder, "5\r\nhello\r\n5\r\nworld\r\n", 1000, &consumed),
      ChunkedBodyDecoder::State::kError);
  EXPECT_EQ(decoder.error().code(), ErrorCode::kPayloadTooLarge);
  ChunkedBodyDecoder huge(1 << 20);
  EXPECT_EQ(FeedInSteps(huge, "ffffffffffffffffff\r\n", 1000, &consumed),
            ChunkedBodyDecoder::State::kError);
  EXPECT_EQ(huge.error().code(), ErrorCode::kPayloadTooLarge);
}

}  // namespace
}  // namespace wxsession
