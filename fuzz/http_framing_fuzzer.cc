// Fuzzes the connection layer's request framing (src/http/framing.h): the
// input is what a client sends on a connection. Its head (through the first
// CRLF CRLF) goes to ParseRequestHead as the connection layer hands it, and
// what follows is read as the body the head announces.
//
// Checked beyond "no crash, no sanitizer report":
//  - a parsed head holds no control character but tab in any name or value;
//  - the canonical request httplib is given parses again, to the same
//    request line and fields, with Content-Length equal to the body, and is
//    a fixed point (canonicalising it again changes nothing);
//  - a chunked body decodes the same fed whole or a byte at a time, and
//    stops at the same byte (so a pipelined request after it is intact).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/framing.h"

namespace {

using wxsession::BodyFraming;
using wxsession::ChunkedBodyDecoder;
using wxsession::RequestHead;
using wxsession::Result;

void Require(bool condition) {
  if (!condition) std::abort();
}

bool Clean(const std::string& text) {
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

void CheckCanonical(const RequestHead& head, std::string_view body) {
  const std::string canonical = wxsession::CanonicalRequest(head, body);
  const size_t end = canonical.find("\r\n\r\n");
  Require(end != std::string::npos);
  Result<RequestHead> again = wxsession::ParseRequestHead(
      std::string_view(canonical).substr(0, end + 4));
  Require(again.ok());
  Require(again->method == head.method && again->target == head.target);
  Require(again->framing == BodyFraming::kContentLength);
  Require(again->content_length == body.size());
  Require(canonical.substr(end + 4) == body);
  Require(wxsession::CanonicalRequest(again.value(), body) == canonical);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  const size_t end = stream.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    Result<RequestHead> head = wxsession::ParseRequestHead(stream);
    Require(!head.ok() && !head.status().message().empty());
    return 0;
  }
  Result<RequestHead> head =
      wxsession::ParseRequestHead(stream.substr(0, end + 4));
  if (!head.ok()) {
    Require(!head.status().message().empty());
    return 0;
  }
  for (const auto& [name, value] : head->fields) {
    Require(!name.empty() && Clean(name) && Clean(value));
  }
  Require(Clean(head->method) && Clean(head->target));
  const std::string_view rest = stream.substr(end + 4);
  switch (head->framing) {
    case BodyFraming::kNone:
      CheckCanonical(head.value(), "");
      break;
    case BodyFraming::kContentLength:
      if (head->content_length <= rest.size()) {
        CheckCanonical(head.value(), rest.substr(0, head->content_length));
      }
      break;
    case BodyFraming::kChunked: {
      constexpr size_t kLimit = 64 * 1024;
      ChunkedBodyDecoder whole(kLimit);
      size_t consumed_whole = 0;
      const ChunkedBodyDecoder::State state = whole.Feed(rest, &consumed_whole);
      ChunkedBodyDecoder bytewise(kLimit);
      ChunkedBodyDecoder::State state_bytewise =
          ChunkedBodyDecoder::State::kNeedMore;
      size_t consumed_bytewise = 0;
      while (consumed_bytewise < rest.size() &&
             state_bytewise == ChunkedBodyDecoder::State::kNeedMore) {
        size_t consumed = 0;
        state_bytewise =
            bytewise.Feed(rest.substr(consumed_bytewise, 1), &consumed);
        consumed_bytewise += consumed;
        if (consumed == 0) break;
      }
      Require(state == state_bytewise);
      Require(whole.body() == bytewise.body());
      if (state == ChunkedBodyDecoder::State::kDone) {
        Require(consumed_whole == consumed_bytewise);
        Require(whole.body().size() <= kLimit);
        CheckCanonical(head.value(), whole.body());
      }
      if (state == ChunkedBodyDecoder::State::kError) {
        Require(!whole.error().ok() && !whole.error().message().empty());
      }
      break;
    }
  }
  return 0;
}
