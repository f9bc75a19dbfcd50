#include "http/tls_check.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

namespace wxsession {

Status CheckTlsFiles(const std::string& cert_file,
                     const std::string& key_file) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(
      SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  if (!context) {
    return Status::Fault(ErrorCode::kInternal,
                         "tls: cannot create a TLS context");
  }
  Status result = Status::Ok();
  if (SSL_CTX_use_certificate_chain_file(context.get(), cert_file.c_str()) !=
      1) {
    result = Status(
        ErrorCode::kInvalidRequest,
        "config: tls.cert: " + cert_file + ": not a PEM certificate (chain)");
  } else if (SSL_CTX_use_PrivateKey_file(context.get(), key_file.c_str(),
                                         SSL_FILETYPE_PEM) != 1) {
    result = Status(ErrorCode::kInvalidRequest,
                    "config: tls.key: " + key_file + ": not a PEM private key");
  } else if (SSL_CTX_check_private_key(context.get()) != 1) {
    result = Status(ErrorCode::kInvalidRequest,
                    "config: tls.key: " + key_file +
                        ": does not match the certificate in tls.cert");
  }
  // OpenSSL's error queue is per thread: leave it empty for whoever is next.
  ERR_clear_error();
  return result;
}

}  // namespace wxsession
