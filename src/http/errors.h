// The one error table of the HTTP layer (adapter-internal): for each code of
// the closed set (wxsession/status.h), its HTTP status, the message a client
// sees when the Status carries none (a Fault), the Retry-After default, the
// challenge header, and the level its failures are logged at. Rendering
// (RenderError in http_api.cc) and logging (LogFailure) both read it, and
// nothing else in the server maps codes onto HTTP.
//
// Thread-safety: constant data.
#ifndef WXSESSION_HTTP_ERRORS_H_
#define WXSESSION_HTTP_ERRORS_H_

#include "ops/log.h"
#include "wxsession/status.h"

namespace wxsession {

struct HttpError {
  int http_status;
  // Sent when the Status's own message is empty (a Fault, whose detail is
  // for the operator). Never names a host, a file or a library.
  const char* client_message;
  // Whether the answer carries Retry-After, and its value in seconds when
  // the Status sets none (0: only when the Status sets one).
  bool retry_after;
  int default_retry_after_seconds;
  // WWW-Authenticate value, or nullptr.
  const char* challenge;
  // Failures with this code are logged (with the operator detail) at this
  // level; kDebug: only the access log line, unless log.level is debug.
  LogLevel log_level;
};

// The row for `code`; a value outside the enum gets kInternal's.
const HttpError& HttpErrorFor(ErrorCode code);

}  // namespace wxsession

#endif  // WXSESSION_HTTP_ERRORS_H_
