// Whether a certificate and private key serve HTTPS, checked without
// opening a socket (for `wxsessiond check-config`).
//
// Thread-safety: may be called from any thread.
#ifndef WXSESSION_TLS_CHECK_H_
#define WXSESSION_TLS_CHECK_H_

#include <string>

#include "wxsession/status.h"

namespace wxsession {

// Loads `cert_file` (a PEM chain) and `key_file` (its PEM private key) into a
// TLS server context, as the HTTPS server does at start-up. Errors
// (kInvalidRequest) name tls.cert or tls.key: not a certificate, not a key,
// or a key that does not match the certificate. Never quotes file content.
Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file);

}  // namespace wxsession

#endif  // WXSESSION_TLS_CHECK_H_
