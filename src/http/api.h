// HttpServer: the HTTP/JSON face of SessionService, OpenDataService and the
// access-token centre (API v1).
//
// Handlers are thin: parse the request, call the service, render. Admin
// routes (/v1/admin/...) exist only when Config::admin_token is set, and
// want "Authorization: Bearer <admin token>". This is
// the only module that knows HTTP status codes: HttpStatusFor is the one
// table from ErrorCode to status. Every error body is
// {"error": "<code>", "message": "<text>"}.
//
// Operations routes (see docs/API.md): GET /v1/auth answers 204 with
// X-WX-AppID / X-WX-OpenID / X-WX-UnionID for a live session, for proxies'
// auth_request / forward_auth; GET /metrics answers Prometheus text when a
// Metrics is given. Every answer is logged as one "request" line naming the
// route pattern (never the raw path), status, duration, client address and
// request id, and counted in the metrics by route and status. POST /v1/login
// is limited per client address (rate_limit.login_per_minute) with 429 and
// Retry-After; the client address is the TCP peer, or what X-Forwarded-For /
// X-Real-IP say when the peer is in trusted_proxies. With tls.cert and
// tls.key set, the server speaks HTTPS only.
//
// Thread-safety: Bind, Serve and Stop may be called from different threads;
// Stop closes the listening socket at once and makes a running Serve return
// after in-flight requests finish (their answers carry Connection: close);
// a Serve that starts after Stop returns at once.
#ifndef WXSESSION_HTTP_API_H_
#define WXSESSION_HTTP_API_H_

#include <memory>
#include <string>

#include "ops/log.h"
#include "ops/metrics.h"
#include "wxsession/access_token.h"
#include "wxsession/admin_service.h"
#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/open_data.h"
#include "wxsession/service.h"
#include "wxsession/status.h"
#include "wxsession/token_service.h"

namespace wxsession {

// The one ErrorCode -> HTTP status table.
int HttpStatusFor(ErrorCode code);

// The JSON body of GET /v1/session (exposed for tests).
std::string RenderSessionJson(const SessionInfo& info);

class HttpServer {
 public:
  static constexpr size_t kMaxBodyBytes = 64 * 1024;

  // Everything passed in must outlive the server. `clock` times the login
  // limiter. `metrics` may be null: then nothing is counted and /metrics is
  // 404.
  HttpServer(const Config& config, SessionService& service,
             OpenDataService& open_data, AccessTokenCentre& tokens,
             const Clock& clock, Logger& logger, Metrics* metrics = nullptr);
  ~HttpServer();

  // Serves the token routes (POST /v1/token, POST /v1/introspect, GET
  // /.well-known/jwks.json and /.well-known/openid-configuration) and lets
  // GET /v1/auth take a JWT. Call before Bind; `tokens` must outlive the
  // server. Without it (tokens.issuer unset) those routes answer 404.
  void EnableTokens(TokenService& tokens);

  // Binds host:port (port 0 = any free port). Returns the bound port, or
  // kInternal naming the address when it cannot bind, or naming tls.cert /
  // tls.key when they hold no usable certificate and key.
  Result<int> Bind(const std::string& host, int port);
  // Serves the user, session and ban routes under /v1/admin/ (issue 15)
  // through `admin`, when an admin token is configured (else does nothing).
  // Call before Serve; `admin` must outlive the server.
  void EnableAdmin(AdminService& admin);

  // Serves until Stop(). Returns false if the server could not run.
  bool Serve();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxsession

#endif  // WXSESSION_HTTP_API_H_
