// Request framing for the connection layer: where one HTTP/1.1 request ends
// and the next begins, decided here and only here (adapter-internal).
//
// Why this exists. cpp-httplib 0.11 reads a request body only when a route
// asks for it: the body of a GET, HEAD or OPTIONS, or of a request answered
// 404, stays in the socket and is parsed as the next request. Behind a
// proxy that keeps upstream connections alive (the shipped nginx.conf
// does), a client could put a whole request in such a body and have it
// answered as somebody else's: an auth_request subrequest read the smuggled
// answer, and a smuggled POST /v1/logout ended the next user's session.
//
// So the connection layer (http_connections.cc) frames every request
// itself, before httplib sees it: it reads the head, checks it with
// ParseRequestHead, reads the whole body as the head announces it
// (Content-Length, or chunked decoded by ChunkedBodyDecoder), and hands
// httplib one canonical request (CanonicalRequest) from memory. Whatever
// httplib leaves unread of that copy is dropped with it; the socket is
// always at the start of the next request. The same rules refuse heads
// that a proxy and this server could read differently (RFC 9112 section
// 6.3), control characters (a NUL cut header values short inside httplib),
// HTTP/1.1 without Host, and they drop Range: no answer here is a file, and
// httplib served thousands of ranges of one body as a multipart answer.
//
// Nothing here does I/O, throws, or names an httplib type, so the fuzz
// target fuzz/http_framing_fuzzer.cc reaches exactly what the server runs.
//
// Thread-safety: pure functions; a ChunkedBodyDecoder is used by one thread.
#ifndef WXSESSION_HTTP_FRAMING_H_
#define WXSESSION_HTTP_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wxsession/status.h"

namespace wxsession {

// Bytes of request line plus header fields, as nginx's default
// large_client_header_buffers (4 x 8 KiB).
constexpr size_t kMaxRequestHeadBytes = 32 * 1024;
// Header fields in one request; browsers and proxies send a few dozen.
constexpr size_t kMaxHeaderFields = 100;

enum class BodyFraming {
  kNone,           // no Content-Length, no Transfer-Encoding: no body
  kContentLength,  // exactly content_length bytes follow the head
  kChunked,        // Transfer-Encoding: chunked
};

struct RequestHead {
  std::string method;
  std::string target;     // as sent: origin-form, or "*" for OPTIONS
  int minor_version = 1;  // HTTP/1.<minor_version>
  // Every field in order, name as sent, value with surrounding white space
  // removed. Content-Length, Transfer-Encoding and Expect are consumed by
  // the framing below; CanonicalRequest leaves them (and Range) out.
  std::vector<std::pair<std::string, std::string>> fields;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;    // with kContentLength
  bool expects_continue = false;  // "Expect: 100-continue"
};

// Parses a request head: optional empty lines, the request line, header
// fields, each ending in CRLF, and the empty line that ends the head.
// `head` holds exactly that (up to and including the final CRLF CRLF).
// Errors (kInvalidRequest, a message naming the rule, never quoting input):
//  - a request line other than "METHOD SP target SP HTTP/1.0|1.1";
//  - a control character (anything below 0x20 but tab, or 0x7f) in the
//    request line, a field name or a field value; a bare CR or LF; a field
//    name with white space or characters outside RFC 9110's token; a field
//    line folded onto the next (obs-fold);
//  - more than kMaxHeaderFields fields besides Content-Length (whose
//    fields CanonicalRequest replaces with one of its own);
//  - HTTP/1.1 without exactly one Host; more than one Host in HTTP/1.0;
//  - Content-Length and Transfer-Encoding together; a Content-Length that
//    is not one decimal number (repeats must agree); a Transfer-Encoding
//    other than a single "chunked" (or any on HTTP/1.0).
Result<RequestHead> ParseRequestHead(std::string_view head);

// The request as httplib is given it: the request line, every field of
// `head` but Content-Length, Transfer-Encoding, Expect, Range and If-Range,
// then "Content-Length: <body size>" (always, so httplib never reads to the
// end of the connection) and `body`.
std::string CanonicalRequest(const RequestHead& head, std::string_view body);

// Decodes a chunked body (RFC 9112 section 7.1) fed in pieces of any size,
// stopping exactly after the last chunk's trailer section, so that bytes of
// a pipelined next request are left unconsumed. Chunk extensions and
// trailer fields are read and discarded (trailer fields must be well
// formed, as header fields are).
class ChunkedBodyDecoder {
 public:
  enum class State { kNeedMore, kDone, kError };

  // Decoded bodies larger than `max_body_bytes` are an error
  // (kPayloadTooLarge).
  explicit ChunkedBodyDecoder(size_t max_body_bytes);

  // Consumes a prefix of `data`, storing its length in `*consumed` (all of
  // it unless the body ends inside `data`). Returns kDone once the body is
  // complete, kError on malformed framing (see error()), else kNeedMore.
  State Feed(std::string_view data, size_t* consumed);

  // The decoded body so far (whole after kDone).
  const std::string& body() const { return body_; }
  std::string TakeBody() { return std::move(body_); }
  // Why Feed returned kError: kInvalidRequest or kPayloadTooLarge.
  const Status& error() const { return error_; }

 private:
  enum class Phase { kSizeLine, kData, kDataEnd, kTrailer, kDone, kError };
  State Fail(ErrorCode code, const char* message);
  // Handles one whole line (without its CRLF) in phase kSizeLine/kTrailer.
  State OnLine(std::string_view line);

  const size_t max_body_bytes_;
  Phase phase_ = Phase::kSizeLine;
  std::string line_;          // the line being read, without CRLF
  bool line_has_cr_ = false;  // line_ ended with CR, LF expected next
  uint64_t chunk_left_ = 0;   // data bytes of the current chunk still due
  size_t trailer_bytes_ = 0;
  std::string body_;
  Status error_;
};

}  // namespace wxsession

#endif  // WXSESSION_HTTP_FRAMING_H_
