// Request framing: see http_framing.h for why the connection layer, not
// httplib, decides where a request ends.
#include "http/framing.h"

#include <algorithm>
#include <cctype>

namespace wxsession {
namespace {

// Hex digits of a chunk size: 15 fit in 60 bits, far past any body we take.
constexpr size_t kMaxChunkSizeDigits = 15;
// A chunk-size line with its extensions, and the whole trailer section, in
// bytes: generous for what clients send, small enough to bound memory.
constexpr size_t kMaxChunkLineBytes = 4096;
constexpr size_t kMaxTrailerBytes = 8192;

Status Invalid(const char* message) {
  return Status(ErrorCode::kInvalidRequest, message);
}

// RFC 9110 section 5.6.2: tchar.
bool IsTokenChar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

// Field values: visible ASCII, space, tab and obs-text (bytes >= 0x80); no
// other control character. A NUL here once cut values short inside httplib.
bool IsFieldValue(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char ch) {
    const unsigned char c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view TrimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// Splits `head` into CRLF-terminated lines. False if a CR or LF stands
// anywhere but in a CRLF pair, or the last line lacks its CRLF.
bool SplitLines(std::string_view head, std::vector<std::string_view>* lines) {
  size_t start = 0;
  while (start < head.size()) {
    size_t end = head.find_first_of("\r\n", start);
    if (end == std::string_view::npos || head[end] != '\r' ||
        end + 1 >= head.size() || head[end + 1] != '\n') {
      return false;
    }
    lines->push_back(head.substr(start, end - start));
    start = end + 2;
  }
  return true;
}

Status ParseRequestLine(std::string_view line, RequestHead* out) {
  const size_t first = line.find(' ');
  const size_t last = line.rfind(' ');
  if (first == std::string_view::npos || first == last) {
    return Invalid("the request line must be METHOD SP target SP HTTP/1.1");
  }
  std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, last - first - 1);
  std::string_view version = line.substr(last + 1);
  if (!IsToken(method)) {
    return Invalid("the request method must be a token");
  }
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char ch) {
        const unsigned char c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f;
      })) {
    return Invalid("the request target must be visible ASCII without spaces");
  }
  if (version == "HTTP/1.1") {
    out->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    out->minor_version = 0;
  } else {
    return Invalid("only HTTP/1.0 and HTTP/1.1 are served");
  }
  out->method = std::string(method);
  out->target = std::string(target);
  return Status::Ok();
}

// Content-Length: one decimal number; a list ("5, 5") or repeats must all
// say the same number (RFC 9110 section 8.6), else the request is refused.
Status ApplyContentLength(std::string_view value, bool* seen,
                          uint64_t* length) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view item = TrimWhitespace(value.substr(start, comma - start));
    if (item.empty() || item.size() > 18 ||  // 18 digits fit in uint64
        !std::all_of(item.begin(), item.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      return Invalid("Content-Length must be one decimal number");
    }
    uint64_t number = 0;
    for (char c : item) number = number * 10 + static_cast<uint64_t>(c - '0');
    if (*seen && number != *length) {
      return Invalid("Content-Length must be one decimal number");
    }
    *seen = true;
    *length = number;
    start = comma + 1;
  }
  return Status::Ok();
}

bool IsDroppedField(std::string_view name) {
  for (std::string_view dropped :
       {"Content-Length", "Transfer-Encoding", "Expect", "Range", "If-Range"}) {
    if (EqualsIgnoreCase(name, dropped)) return true;
  }
  return false;
}

}  // namespace

Result<RequestHead> ParseRequestHead(std::string_view head) {
  std::vector<std::string_view> lines;
  if (!SplitLines(head, &lines)) {
    return Invalid(
        "every line of the request head must end in CRLF, and CR "
        "or LF may stand nowhere else");
  }
  // RFC 9112 section 2.2: empty lines before the request line are ignored.
  size_t at = 0;
  while (at < lines.size() && lines[at].empty()) ++at;
  if (at >= lines.size() || !lines.back().empty()) {
    return Invalid("the request head is incomplete");
  }
  RequestHead out;
  if (Status s = ParseRequestLine(lines[at], &out); !s.ok()) return s;

  size_t hosts = 0;
  size_t lengths = 0;  // Content-Length fields, not counted as fields:
                       // CanonicalRequest replaces them with its own
  bool length_seen = false;
  size_t transfer_encodings = 0;
  bool chunked = false;
  for (size_t i = at + 1; i + 1 < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.empty()) return Invalid("the request head is malformed");
    if (line.front() == ' ' || line.front() == '\t') {
      return Invalid("header lines may not be folded (obs-fold)");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return Invalid("a header line must be NAME: value");
    }
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) {
      return Invalid(
          "a header name must be a token, with no white space "
          "before the colon");
    }
    std::string_view value = line.substr(colon + 1);
    if (!IsFieldValue(value)) {
      return Invalid("header values may not hold control characters");
    }
    value = TrimWhitespace(value);
    if (EqualsIgnoreCase(name, "Content-Length")) {
      ++lengths;
    } else if (out.fields.size() - lengths >= kMaxHeaderFields) {
      return Invalid("too many header fields");
    }
    if (EqualsIgnoreCase(name, "Host")) {
      ++hosts;
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      if (Status s =
              ApplyContentLength(value, &length_seen, &out.content_length);
          !s.ok()) {
        return s;
      }
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      ++transfer_encodings;
      chunked = EqualsIgnoreCase(value, "chunked");
    } else if (EqualsIgnoreCase(name, "Expect")) {
      if (EqualsIgnoreCase(value, "100-continue")) out.expects_continue = true;
    }
    out.fields.emplace_back(std::string(name), std::string(value));
  }

  if (out.minor_version == 1 && hosts != 1) {
    return Invalid("an HTTP/1.1 request must carry exactly one Host header");
  }
  if (hosts > 1) return Invalid("send at most one Host header");
  if (transfer_encodings > 0) {
    if (length_seen) {
      return Invalid("send Content-Length or Transfer-Encoding, not both");
    }
    if (transfer_encodings > 1 || !chunked || out.minor_version == 0) {
      return Invalid(
          "the only Transfer-Encoding accepted is chunked "
          "(HTTP/1.1)");
    }
    out.framing = BodyFraming::kChunked;
  } else if (length_seen) {
    out.framing = BodyFraming::kContentLength;
  }
  if (out.framing == BodyFraming::kNone) out.expects_continue = false;
  return out;
}

std::string CanonicalRequest(const RequestHead& head, std::string_view body) {
  std::string out;
  out.reserve(256 + body.size());
  out += head.method;
  out += ' ';
  out += head.target;
  out += head.minor_version == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n";
  for (const auto& [name, value] : head.fields) {
    if (IsDroppedField(name)) continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\n\r\n";
  out += body;
  return out;
}

// --- ChunkedBodyDecoder ---------------------------------------------------

ChunkedBodyDecoder::ChunkedBodyDecoder(size_t max_body_bytes)
    : max_body_bytes_(max_body_bytes) {}

ChunkedBodyDecoder::State ChunkedBodyDecoder::Fail(ErrorCode code,
                                                   const char* message) {
  phase_ = Phase::kError;
  error_ = Status(code, message);
  return State::kError;
}

ChunkedBodyDecoder::State ChunkedBodyDecoder::OnLine(std::string_view line) {
  if (phase_ == Phase::kTrailer) {
    if (line.empty()) {
      phase_ = Phase::kDone;
      return State::kDone;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon)) ||
        !IsFieldValue(line.substr(colon + 1))) {
      return Fail(ErrorCode::kInvalidRequest,
                  "a chunked body's trailer field is malformed");
    }
    return State::kNeedMore;
  }
  // chunk-size [ chunk-ext ] : hex digits, then optional ";ext" parts.
  size_t digits = 0;
  uint64_t size = 0;
  while (digits < line.size() &&
         std::isxdigit(static_cast<unsigned char>(line[digits]))) {
    if (digits == kMaxChunkSizeDigits) {
      return Fail(ErrorCode::kPayloadTooLarge, "the body is too large");
    }
    const char c = static_cast<char>(
        std::tolower(static_cast<unsigned char>(line[digits])));
    size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    ++digits;
  }
  std::string_view rest = line.substr(digits);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) {
    rest.remove_prefix(1);
  }
  if (digits == 0 || (!rest.empty() && rest.front() != ';') ||
      !IsFieldValue(rest)) {
    return Fail(ErrorCode::kInvalidRequest,
                "a chunk must start with its size in hex");
  }
  if (size > max_body_bytes_ - body_.size()) {
    return Fail(ErrorCode::kPayloadTooLarge, "the body is too large");
  }
  if (size == 0) {
    phase_ = Phase::kTrailer;
  } else {
    chunk_left_ = size;
    phase_ = Phase::kData;
  }
  return State::kNeedMore;
}

ChunkedBodyDecoder::State ChunkedBodyDecoder::Feed(std::string_view data,
                                                   size_t* consumed) {
  size_t at = 0;
  State state = phase_ == Phase::kDone    ? State::kDone
                : phase_ == Phase::kError ? State::kError
                                          : State::kNeedMore;
  while (at < data.size() && state == State::kNeedMore) {
    switch (phase_) {
      case Phase::kData: {
        const size_t n = static_cast<size_t>(
            std::min<uint64_t>(chunk_left_, data.size() - at));
        body_.append(data.data() + at, n);
        at += n;
        chunk_left_ -= n;
        if (chunk_left_ == 0) phase_ = Phase::kDataEnd;
        break;
      }
      case Phase::kDataEnd:
        // The CRLF after a chunk's data.
        if (!line_has_cr_) {
          if (data[at] != '\r') {
            state = Fail(ErrorCode::kInvalidRequest,
                         "a chunk's data must end in CRLF");
            break;
          }
          line_has_cr_ = true;
        } else {
          if (data[at] != '\n') {
            state = Fail(ErrorCode::kInvalidRequest,
                         "a chunk's data must end in CRLF");
            break;
          }
          line_has_cr_ = false;
          phase_ = Phase::kSizeLine;
        }
        ++at;
        break;
      case Phase::kSizeLine:
      case Phase::kTrailer: {
        const char c = data[at++];
        if (line_has_cr_) {
          if (c != '\n') {
            state = Fail(ErrorCode::kInvalidRequest,
                         "lines of a chunked body must end in CRLF");
            break;
          }
          line_has_cr_ = false;
          std::string line = std::move(line_);
          line_.clear();
          state = OnLine(line);
          break;
        }
        if (c == '\r') {
          line_has_cr_ = true;
          break;
        }
        if (c == '\n') {
          state = Fail(ErrorCode::kInvalidRequest,
                       "lines of a chunked body must end in CRLF");
          break;
        }
        line_ += c;
        if (phase_ == Phase::kTrailer) ++trailer_bytes_;
        if (line_.size() > kMaxChunkLineBytes ||
            trailer_bytes_ > kMaxTrailerBytes) {
          state = Fail(ErrorCode::kInvalidRequest,
                       "a chunked body's line is too long");
        }
        break;
      }
      case Phase::kDone:
        state = State::kDone;
        break;
      case Phase::kError:
        state = State::kError;
        break;
    }
  }
  *consumed = at;
  return state;
}

}  // namespace wxsession
