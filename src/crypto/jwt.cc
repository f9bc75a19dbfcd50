// JWS signing and verification over OpenSSL 3 (see jwt.h).
#include "wxsession/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "wxsession/crypto.h"

namespace wxsession::jwt {
namespace {

using json = nlohmann::json;

constexpr size_t kP256CoordinateBytes = 32;  // P-256 field elements, r and s
constexpr size_t kEd25519PublicBytes = 32;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct SigFree {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

[[noreturn]] void Die(const char* what) {
  // A signer that cannot sign must not hand out an unsigned or wrong token.
  std::fprintf(stderr, "wxsessiond: %s failed\n", what);
  std::abort();
}

const unsigned char* Bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

// Big-endian, left-padded to `width` bytes.
std::string PaddedBignum(const BIGNUM* n, size_t width) {
  std::string out(width, '\0');
  if (BN_bn2binpad(n, reinterpret_cast<unsigned char*>(out.data()),
                   static_cast<int>(width)) != static_cast<int>(width)) {
    return std::string();
  }
  return out;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64];  // curve names are short ("prime256v1")
  size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), &length) != 1) {
    return false;
  }
  const std::string name(group, length);
  return name == "prime256v1" || name == "P-256" || name == "secp256r1";
}

}  // namespace

struct KeyPair::Impl {
  PkeyPtr key;
  Algorithm algorithm = Algorithm::kES256;
  std::string kid;
  std::string x, y;  // raw public coordinates (y empty for Ed25519)
};

const char* AlgorithmName(Algorithm algorithm) {
  return algorithm == Algorithm::kEdDSA ? "EdDSA" : "ES256";
}

std::optional<Algorithm> AlgorithmFromName(std::string_view name) {
  if (name == "ES256") return Algorithm::kES256;
  if (name == "EdDSA") return Algorithm::kEdDSA;
  return std::nullopt;
}

namespace {

// Fills the public coordinates and the RFC 7638 thumbprint. False when the
// key's public part cannot be read.
bool Describe(KeyPair::Impl* impl);

}  // namespace

KeyPair::KeyPair(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

KeyPair KeyPair::Generate(Algorithm algorithm) {
  EVP_PKEY* raw = algorithm == Algorithm::kEdDSA
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (raw == nullptr) Die("key generation");
  auto impl = std::make_shared<Impl>();
  impl->key.reset(raw);
  impl->algorithm = algorithm;
  if (!Describe(impl.get())) Die("key generation");
  return KeyPair(std::move(impl));
}

Result<KeyPair> KeyPair::FromPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) Die("BIO_new_mem_buf");
  // No passphrase callback: an encrypted key is refused, not prompted for.
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr);
  if (raw == nullptr) {
    return Status(ErrorCode::kInvalidRequest,
                  "expected an unencrypted PEM private key (P-256 or "
                  "Ed25519), e.g. from: openssl genpkey -algorithm ed25519");
  }
  auto impl = std::make_shared<Impl>();
  impl->key.reset(raw);
  if (EVP_PKEY_get_base_id(raw) == EVP_PKEY_ED25519) {
    impl->algorithm = Algorithm::kEdDSA;
  } else if (IsP256(raw)) {
    impl->algorithm = Algorithm::kES256;
  } else {
    return Status(ErrorCode::kInvalidRequest,
                  "the key is neither a P-256 (ES256) nor an Ed25519 "
                  "(EdDSA) private key");
  }
  if (!Describe(impl.get())) {
    return Status(ErrorCode::kInvalidRequest,
                  "the key's public part cannot be read");
  }
  return KeyPair(std::move(impl));
}

namespace {

bool Describe(KeyPair::Impl* impl) {
  EVP_PKEY* key = impl->key.get();
  json thumbprint_input;
  if (impl->algorithm == Algorithm::kEdDSA) {
    std::string x(kEd25519PublicBytes, '\0');
    size_t length = x.size();
    if (EVP_PKEY_get_raw_public_key(
            key, reinterpret_cast<unsigned char*>(x.data()), &length) != 1 ||
        length != kEd25519PublicBytes) {
      return false;
    }
    impl->x = x;
    // RFC 7638: the required members, in lexicographic order, no spaces.
    thumbprint_input = {
        {"crv", "Ed25519"}, {"kty", "OKP"}, {"x", Base64UrlEncode(impl->x)}};
  } else {
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
      BN_free(x);
      BN_free(y);
      return false;
    }
    std::unique_ptr<BIGNUM, BnFree> x_owner(x), y_owner(y);
    impl->x = PaddedBignum(x, kP256CoordinateBytes);
    impl->y = PaddedBignum(y, kP256CoordinateBytes);
    if (impl->x.empty() || impl->y.empty()) return false;
    thumbprint_input = {{"crv", "P-256"},
                        {"kty", "EC"},
                        {"x", Base64UrlEncode(impl->x)},
                        {"y", Base64UrlEncode(impl->y)}};
  }
  // nlohmann's object is a std::map: keys come out sorted, as RFC 7638 asks.
  impl->kid = Base64UrlEncode(crypto::Sha256(thumbprint_input.dump()));
  return true;
}

}  // namespace

std::string KeyPair::PrivatePem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr,
                                       nullptr, 0, nullptr, nullptr) != 1) {
    Die("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

Algorithm KeyPair::algorithm() const { return impl_->algorithm; }

const std::string& KeyPair::kid() const { return impl_->kid; }

std::string KeyPair::PublicJwkJson() const {
  json jwk;
  if (impl_->algorithm == Algorithm::kEdDSA) {
    jwk = {
        {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", Base64UrlEncode(impl_->x)}};
  } else {
    jwk = {{"kty", "EC"},
           {"crv", "P-256"},
           {"x", Base64UrlEncode(impl_->x)},
           {"y", Base64UrlEncode(impl_->y)}};
  }
  jwk["kid"] = impl_->kid;
  jwk["alg"] = AlgorithmName(impl_->algorithm);
  jwk["use"] = "sig";
  return jwk.dump();
}

std::string KeyPair::Sign(std::string_view signing_input) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD* digest =
      impl_->algorithm == Algorithm::kEdDSA ? nullptr : EVP_sha256();
  size_t length = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, digest, nullptr,
                         impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, Bytes(signing_input),
                     signing_input.size()) != 1) {
    Die("EVP_DigestSign");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(
          ctx.get(), reinterpret_cast<unsigned char*>(signature.data()),
          &length, Bytes(signing_input), signing_input.size()) != 1) {
    Die("EVP_DigestSign");
  }
  signature.resize(length);
  if (impl_->algorithm == Algorithm::kEdDSA) return signature;
  // DER SEQUENCE { r INTEGER, s INTEGER } -> r || s, each 32 bytes.
  const unsigned char* der = Bytes(signature);
  std::unique_ptr<ECDSA_SIG, SigFree> sig(
      d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size())));
  if (!sig) Die("d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string jws = PaddedBignum(r, kP256CoordinateBytes) +
                    PaddedBignum(s, kP256CoordinateBytes);
  if (jws.size() != 2 * kP256CoordinateBytes) Die("ECDSA signature encoding");
  return jws;
}

bool KeyPair::Verify(std::string_view signing_input,
                     std::string_view signature) const {
  std::string der;
  if (impl_->algorithm == Algorithm::kES256) {
    if (signature.size() != 2 * kP256CoordinateBytes) return false;
    std::unique_ptr<ECDSA_SIG, SigFree> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(Bytes(signature), kP256CoordinateBytes, nullptr);
    BIGNUM* s = BN_bin2bn(Bytes(signature) + kP256CoordinateBytes,
                          kP256CoordinateBytes, nullptr);
    if (!sig || r == nullptr || s == nullptr ||
        ECDSA_SIG_set0(sig.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* out = nullptr;
    int length = i2d_ECDSA_SIG(sig.get(), &out);
    if (length <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(length));
    OPENSSL_free(out);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD* digest =
      impl_->algorithm == Algorithm::kEdDSA ? nullptr : EVP_sha256();
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, digest, nullptr,
                                   impl_->key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(),
                          Bytes(signing_input), signing_input.size()) == 1;
}

std::string Base64UrlEncode(std::string_view bytes) {
  return crypto::Base64UrlEncode(bytes);
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string standard;
  standard.reserve(text.size() + 3);
  for (char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9')) {
      standard += c;
    } else if (c == '-') {
      standard += '+';
    } else if (c == '_') {
      standard += '/';
    } else {
      return std::nullopt;  // padding, whitespace, anything else
    }
  }
  if (standard.size() % 4 == 1) return std::nullopt;
  while (standard.size() % 4 != 0) standard += '=';
  // crypto::Base64Decode refuses non-zero trailing bits, so every token has
  // exactly one accepted spelling.
  return crypto::Base64Decode(standard);
}

std::string Encode(const KeyPair& key, const std::string& claims_json) {
  json header = {{"alg", AlgorithmName(key.algorithm())},
                 {"kid", key.kid()},
                 {"typ", "JWT"}};
  std::string input =
      Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims_json);
  std::string signature = key.Sign(input);
  return input + "." + Base64UrlEncode(signature);
}

namespace {

Status Rejected(const char* why) {
  return Status(ErrorCode::kInvalidSession, std::string("token ") + why);
}

}  // namespace

Result<std::string> DecodeVerified(
    std::string_view token,
    const std::function<const KeyPair*(const std::string& kid)>& find_key) {
  // 8 KiB: our tokens are well under 1 KiB; more is not ours.
  constexpr size_t kMaxTokenBytes = 8192;
  if (token.size() > kMaxTokenBytes) return Rejected("is too long");
  const size_t first = token.find('.');
  if (first == std::string_view::npos) return Rejected("is malformed");
  const size_t second = token.find('.', first + 1);
  if (second == std::string_view::npos ||
      token.find('.', second + 1) != std::string_view::npos) {
    return Rejected("is malformed");
  }
  std::optional<std::string> header_text =
      Base64UrlDecode(token.substr(0, first));
  std::optional<std::string> claims_text =
      Base64UrlDecode(token.substr(first + 1, second - first - 1));
  std::optional<std::string> signature =
      Base64UrlDecode(token.substr(second + 1));
  if (!header_text || !claims_text || !signature) {
    return Rejected("is malformed");
  }
  json header = json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return Rejected("is malformed");
  auto alg = header.find("alg");
  auto kid = header.find("kid");
  auto typ = header.find("typ");
  if (alg == header.end() || !alg->is_string() || kid == header.end() ||
      !kid->is_string()) {
    return Rejected("header lacks alg or kid");
  }
  if (typ != header.end() && (!typ->is_string() || *typ != "JWT")) {
    return Rejected("is not a JWT");
  }
  // JWS "crit" names extensions the verifier must understand; we know none.
  if (header.contains("crit")) return Rejected("names unknown extensions");
  std::optional<Algorithm> algorithm =
      AlgorithmFromName(alg->get<std::string>());
  const KeyPair* key = find_key(kid->get<std::string>());
  if (key == nullptr) return Rejected("was signed by an unknown key");
  // The key decides the algorithm, never the token: "none" or another
  // algorithm named in the header is refused.
  if (!algorithm || *algorithm != key->algorithm()) {
    return Rejected("names the wrong algorithm");
  }
  if (!key->Verify(token.substr(0, second), *signature)) {
    return Rejected("signature does not verify");
  }
  json claims = json::parse(*claims_text, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return Rejected("claims are not a JSON object");
  return *claims_text;
}

}  // namespace wxsession::jwt
