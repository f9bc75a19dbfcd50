// Alipay's keys, signatures and raw JSON values: see alipay_crypto.h.
#include "platforms/alipay_crypto.h"

#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <ctime>
#include <vector>

#include "wxsession/crypto.h"

namespace wxsession::alipay {
namespace {

// Longest key text accepted: a 4096-bit PEM private key is about 3.3 KiB.
constexpr size_t kMaxKeyTextBytes = 16 * 1024;
// Nesting accepted in a JSON body before it is refused: Alipay's answers are
// two levels deep; this only bounds recursion on hostile input.
constexpr int kMaxJsonDepth = 64;
// Seconds east of UTC of Beijing time, in which Alipay reads timestamps.
constexpr int64_t kBeijingOffsetSeconds = 8 * 3600;

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};

Status KeyError(const char* what, const std::string& why) {
  return Status(ErrorCode::kInvalidRequest, std::string(what) + ": " + why);
}

// Decodes `der_or_pem` (input type "PEM" or "DER") into a key of the kind
// `selection` asks for. nullptr when OpenSSL finds no such RSA key in it.
EVP_PKEY* Decode(const std::string& data, const char* input_type,
                 int selection) {
  EVP_PKEY* key = nullptr;
  OSSL_DECODER_CTX* ctx = OSSL_DECODER_CTX_new_for_pkey(
      &key, input_type, nullptr, "RSA", selection, nullptr, nullptr);
  if (ctx == nullptr) return nullptr;
  const unsigned char* bytes =
      reinterpret_cast<const unsigned char*>(data.data());
  size_t length = data.size();
  const int ok = OSSL_DECODER_from_data(ctx, &bytes, &length);
  OSSL_DECODER_CTX_free(ctx);
  if (ok != 1) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return key;
}

// PEM when the text has a PEM header, else the bare base64 of the DER.
EVP_PKEY* Load(const std::string& text, int selection) {
  if (text.find("-----BEGIN") != std::string::npos) {
    return Decode(text, "PEM", selection);
  }
  std::optional<std::string> der = crypto::Base64Decode(text);
  if (!der || der->empty()) return nullptr;
  return Decode(*der, "DER", selection);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<size_t>(length))
                    : std::string();
}

// A small JSON reader that only finds where values start and end.
class RawScanner {
 public:
  explicit RawScanner(std::string_view text) : text_(text) {}

  void SkipSpace() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' ||
                                  text_[at_] == '\n' || text_[at_] == '\r')) {
      ++at_;
    }
  }
  bool Peek(char c) const { return at_ < text_.size() && text_[at_] == c; }
  bool Take(char c) {
    if (!Peek(c)) return false;
    ++at_;
    return true;
  }
  bool AtEnd() const { return at_ == text_.size(); }
  size_t at() const { return at_; }

  // A string at the cursor, decoded into `out` (may be null).
  bool String(std::string* out) {
    if (!Take('"')) return false;
    while (at_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[at_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!Escape(out)) return false;
      } else if (out) {
        out->push_back(static_cast<char>(c));
      }
    }
    return false;
  }

  // Skips one value of any kind.
  bool Value(int depth) {
    if (depth > kMaxJsonDepth) return false;
    SkipSpace();
    if (Peek('"')) return String(nullptr);
    if (Take('{')) {
      SkipSpace();
      if (Take('}')) return true;
      while (true) {
        SkipSpace();
        if (!String(nullptr)) return false;
        SkipSpace();
        if (!Take(':')) return false;
        if (!Value(depth + 1)) return false;
        SkipSpace();
        if (Take('}')) return true;
        if (!Take(',')) return false;
      }
    }
    if (Take('[')) {
      SkipSpace();
      if (Take(']')) return true;
      while (true) {
        if (!Value(depth + 1)) return false;
        SkipSpace();
        if (Take(']')) return true;
        if (!Take(',')) return false;
      }
    }
    for (const char* word : {"true", "false", "null"}) {
      const std::string_view literal(word);
      if (text_.substr(at_, literal.size()) == literal) {
        at_ += literal.size();
        return true;
      }
    }
    return Number();
  }

 private:
  // The escape after a backslash, decoded into `out` (may be null).
  bool Escape(std::string* out) {
    if (at_ >= text_.size()) return false;
    const char escape = text_[at_++];
    if (escape == 'u') return UnicodeEscape(out);
    char plain = 0;
    switch (escape) {
      case '"':
        plain = '"';
        break;
      case '\\':
        plain = '\\';
        break;
      case '/':
        plain = '/';
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      default:
        return false;
    }
    if (out) out->push_back(plain);
    return true;
  }

  // The XXXX of \uXXXX (with a surrogate pair, both halves), as UTF-8 into
  // `out` (may be null).
  bool UnicodeEscape(std::string* out) {
    unsigned code = 0;
    if (!Hex4(&code)) return false;
    if (code >= 0xD800 && code <= 0xDBFF && at_ + 1 < text_.size() &&
        text_[at_] == '\\' && text_[at_ + 1] == 'u') {
      at_ += 2;
      unsigned low = 0;
      if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (out) AppendUtf8(code, out);
    return true;
  }

  bool Hex4(unsigned* out) {
    if (at_ + 4 > text_.size()) return false;
    unsigned value = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text_[at_++];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        value |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        value |= static_cast<unsigned>(c - 'A' + 10);
      else
        return false;
    }
    *out = value;
    return true;
  }

  static void AppendUtf8(unsigned code, std::string* out) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  // JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool Number() {
    const size_t start = at_;
    Take('-');
    const auto digits = [this] {
      const size_t from = at_;
      while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
        ++at_;
      }
      return at_ > from;
    };
    if (Take('0')) {
      // a leading zero stands alone
    } else if (!digits()) {
      return false;
    }
    if (Take('.') && !digits()) return false;
    if (Peek('e') || Peek('E')) {
      ++at_;
      if (!Take('+')) Take('-');
      if (!digits()) return false;
    }
    return at_ > start;
  }

  std::string_view text_;
  size_t at_ = 0;
};

}  // namespace

Result<RsaKey> RsaKey::PrivateFromText(const std::string& text) {
  if (text.size() > kMaxKeyTextBytes) {
    return KeyError("private key", "longer than 16 KiB, not an RSA key");
  }
  EVP_PKEY* key = Load(text, OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
  if (key == nullptr) {
    return KeyError("private key",
                    "not an RSA private key in PEM (PKCS#1 or PKCS#8) or the "
                    "bare base64 the Alipay console shows");
  }
  RsaKey out;
  out.key_.reset(key, PkeyDeleter());
  return out;
}

Result<RsaKey> RsaKey::PublicFromText(const std::string& text) {
  if (text.size() > kMaxKeyTextBytes) {
    return KeyError("public key", "longer than 16 KiB, not an RSA key");
  }
  EVP_PKEY* key = Load(text, OSSL_KEYMGMT_SELECT_PUBLIC_KEY);
  if (key == nullptr) {
    return KeyError("public key",
                    "not an RSA public key in PEM (\"PUBLIC KEY\" or \"RSA "
                    "PUBLIC KEY\") or the bare base64 the Alipay console "
                    "shows");
  }
  RsaKey out;
  out.key_.reset(key, PkeyDeleter());
  return out;
}

std::string RsaKey::SignBase64(std::string_view message) const {
  if (!key_) return "";
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                                 key_.get()) != 1) {
    return "";
  }
  size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &length, data, message.size()) != 1) {
    return "";
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(),
                     reinterpret_cast<unsigned char*>(signature.data()),
                     &length, data, message.size()) != 1) {
    return "";
  }
  signature.resize(length);
  return crypto::Base64Encode(signature);
}

bool RsaKey::VerifyBase64(std::string_view message,
                          std::string_view signature_base64) const {
  if (!key_) return false;
  std::optional<std::string> signature = crypto::Base64Decode(signature_base64);
  if (!signature || signature->empty()) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                                   key_.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature->data()),
             signature->size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

std::string RsaKey::PublicPem() const {
  if (!key_) return "";
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) return "";
  return BioText(bio.get());
}

std::string RsaKey::PrivatePem() const {
  if (!key_) return "";
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr,
                                       0, nullptr, nullptr) != 1) {
    return "";
  }
  return BioText(bio.get());
}

Result<RsaKey> GenerateRsaKey(int bits) {
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned>(bits));
  if (key == nullptr) {
    return Status::Fault(ErrorCode::kInternal, "RSA key generation failed");
  }
  RsaKey out;
  out.key_.reset(key, PkeyDeleter());
  return out;
}

std::string SignContent(const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [name, value] : params) {  // std::map: sorted by name
    if (name == "sign" || value.empty()) continue;
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string BeijingTimestamp(int64_t unix_seconds) {
  const std::time_t shifted =
      static_cast<std::time_t>(unix_seconds + kBeijingOffsetSeconds);
  std::tm parts{};
  gmtime_r(&shifted, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

std::optional<std::string_view> RawMemberValue(std::string_view body,
                                               std::string_view key) {
  RawScanner scanner(body);
  scanner.SkipSpace();
  if (!scanner.Take('{')) return std::nullopt;
  std::optional<std::string_view> found;
  scanner.SkipSpace();
  if (!scanner.Take('}')) {
    while (true) {
      scanner.SkipSpace();
      std::string name;
      if (!scanner.String(&name)) return std::nullopt;
      scanner.SkipSpace();
      if (!scanner.Take(':')) return std::nullopt;
      scanner.SkipSpace();
      const size_t start = scanner.at();
      if (!scanner.Value(1)) return std::nullopt;
      if (name == key) {
        if (found) return std::nullopt;  // twice: ambiguous
        found = body.substr(start, scanner.at() - start);
      }
      scanner.SkipSpace();
      if (scanner.Take('}')) break;
      if (!scanner.Take(',')) return std::nullopt;
    }
  }
  scanner.SkipSpace();
  if (!scanner.AtEnd()) return std::nullopt;
  return found;
}

}  // namespace wxsession::alipay
