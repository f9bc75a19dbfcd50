// HTTP adapter: API v1 on cpp-httplib.
//
// Handlers parse, call SessionService / OpenDataService / the token centre,
// render. http_errors.h is the one table from ErrorCode to HTTP status,
// client message, headers and log level. Client-facing messages come from
// Status::message() (modules keep it free of secrets and internal detail);
// Status::detail() goes to the log only.
#include "http/api.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/rate_limit.h"
#include "http/client_ip.h"
#include "http/connections.h"
#include "http/errors.h"
#include "http/httplib_server.h"
#include "http/request_parsing.h"
#include "wxsession/admin_service.h"
#include "wxsession/crypto.h"

namespace wxsession {

using json = nlohmann::json;

int HttpStatusFor(ErrorCode code) { return HttpErrorFor(code).http_status; }

namespace {

constexpr const char* kJsonType = "application/json";

// When the request started, for the access log; set by the pre-routing
// handler and read by the logger, both on the connection's thread.
thread_local std::chrono::steady_clock::time_point request_started;
thread_local std::string request_id;
// The route pattern that served the request (set by Impl::Get/Post), the
// error code it was answered with, and the client's address; read by the
// logger, cleared after each answer.
thread_local std::string request_route;
thread_local std::string request_error;
thread_local std::string request_client;
// False for a request httplib refused before routing (unparsable): the
// fields above then describe nothing.
thread_local bool request_prerouted = false;

void RenderJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Replacing ill-formed UTF-8 instead of throwing: decrypted open data and
  // upstream text end up in bodies.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  kJsonType);
}

// The error body, status and headers, all from the one table
// (http_errors.h): the Status's message, or the table's for a Fault; its
// detail never leaves the server.
void RenderError(httplib::Response& res, const Status& status) {
  const HttpError& row = HttpErrorFor(status.code());
  request_error = ErrorCodeName(status.code());
  json body = {{"error", ErrorCodeName(status.code())},
               {"message", status.message().empty() ? row.client_message
                                                    : status.message()}};
  res.status = row.http_status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  kJsonType);
  if (row.challenge != nullptr)
    res.set_header("WWW-Authenticate", row.challenge);
  if (row.retry_after) {
    const int seconds =
        status.retry_after().value_or(row.default_retry_after_seconds);
    if (seconds > 0) res.set_header("Retry-After", std::to_string(seconds));
  }
}

// The connection closes after this response: part of the request may be
// left unread, and must not be taken for the next request.
void CloseConnection(httplib::Response& res) {
  res.set_header("Connection", "close");
  GuardedServer::CloseAfterResponse();
}

// Fields that must appear once (RFC 9110): with two, a proxy and this
// server could each act on a different one. (How a request is framed, and
// Host, is checked by the connection layer: http_framing.h.)
Status CheckSingletonFields(const httplib::Request& req) {
  for (const char* singleton :
       {"Authorization", "X-WX-Session", "Content-Type", "X-Request-Id"}) {
    if (req.get_header_value_count(singleton) > 1) {
      return Status(ErrorCode::kInvalidRequest,
                    std::string("send at most one ") + singleton + " header");
    }
  }
  return Status::Ok();
}

bool IsSafeRequestId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

// A request id unique within this process's life and, by its random prefix,
// across processes: "<8 random hex>-<counter>". Ids only correlate log lines
// with client reports, so they need uniqueness, not secrecy, and a counter
// spares every request a CSPRNG call.
std::string NewRequestId() {
  static const std::string prefix = crypto::HexEncode(crypto::RandomBytes(4));
  static std::atomic<uint64_t> counter{0};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = counter.fetch_add(1) + 1;
  char digits[16];
  int count = 0;
  do {
    digits[count++] = kHex[n & 0xF];
    n >>= 4;
  } while (n != 0);
  std::string id = prefix;
  id += '-';
  while (count > 0) id += digits[--count];
  return id;
}

// The access log's duration_ms, e.g. 1.234, written from whole microseconds
// with no printf (formatting a double showed in the lookup profile).
LogField DurationMillis(long long micros) {
  if (micros < 0) micros = 0;
  const long long fraction = micros % 1000;
  std::string text = std::to_string(micros / 1000);
  text += '.';
  text += static_cast<char>('0' + fraction / 100);
  text += static_cast<char>('0' + fraction / 10 % 10);
  text += static_cast<char>('0' + fraction % 10);
  LogField field("duration_ms", std::move(text));
  field.numeric = true;
  return field;
}

// Appends `text` as a JSON string literal. Values rendered on the lookup path
// (appid, openid, unionid) come from WeChat and the config, so they are
// escaped all the same; bytes >= 0x80 pass through (UTF-8 stays UTF-8).
void AppendJsonString(std::string& out, const std::string& text) {
  out += '"';
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace

// GET /v1/session's body, rendered without building a JSON DOM: every API
// request a mini program makes goes through a lookup.
std::string RenderSessionJson(const SessionInfo& info) {
  std::string out;
  out.reserve(192);  // bytes: a typical body, so one allocation suffices
  out += "{\"appid\":";
  AppendJsonString(out, info.appid);
  out += ",\"openid\":";
  AppendJsonString(out, info.openid);
  out += ",\"unionid\":";
  if (info.unionid) {
    AppendJsonString(out, *info.unionid);
  } else {
    out += "null";
  }
  out += ",\"created_at\":" + std::to_string(info.created_at);
  out += ",\"last_seen_at\":" + std::to_string(info.last_seen_at);
  out += ",\"expires_at\":" + std::to_string(info.expires_at);
  out += ",\"platform\":";
  AppendJsonString(out, info.platform);
  out += '}';
  return out;
}

namespace {

// The credential from "Authorization: Bearer <credential>", or nullopt.
// (The parsing lives in request_parsing.cc, where a fuzz target reaches it.)
std::optional<std::string> BearerFrom(const httplib::Request& req) {
  return BearerCredential(req.get_header_value("Authorization"));
}

// The session id from "Authorization: Bearer <id>" or "X-WX-Session: <id>".
// Empty when neither is present.
std::string SessionIdFrom(const httplib::Request& req) {
  return SessionIdFromHeaders(req.get_header_value("Authorization"),
                              req.get_header_value("X-WX-Session"));
}

Status MissingSession() {
  return Status(ErrorCode::kInvalidSession,
                "no session: send Authorization: Bearer <session_id> (or "
                "X-WX-Session) from POST /v1/login");
}

using Handler =
    std::function<void(const httplib::Request&, httplib::Response&)>;

json OptionalString(const std::optional<std::string>& value) {
  return value ? json(*value) : json(nullptr);
}

// The one connection layer (http_connections.h), over TLS when tls.cert is
// set. A TLS setup OpenSSL refuses leaves `*tls_error` set; Bind reports it.
std::unique_ptr<GuardedServer> NewServer(const Config& config,
                                         std::string* tls_error) {
  auto server = std::make_unique<GuardedServer>();
  if (!config.tls_cert.empty() &&
      !server->EnableTls(config.tls_cert, config.tls_key, tls_error) &&
      tls_error->empty()) {
    *tls_error = "cannot set up TLS";
  }
  return server;
}

// Every X-Forwarded-For header, in order, joined with ','.
std::string ForwardedFor(const httplib::Request& req) {
  std::string joined;
  auto range = req.headers.equal_range("X-Forwarded-For");
  for (auto it = range.first; it != range.second; ++it) {
    if (!joined.empty()) joined += ',';
    joined += it->second;
  }
  return joined;
}

// httplib answers some errors itself (no route, body too large, a request
// it cannot parse) with an empty body: this gives them the JSON error shape.
httplib::Server::HandlerResponse RenderHttplibError(const httplib::Request&,
                                                    httplib::Response& res) {
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
  switch (res.status) {
    case 404:
      RenderError(res, Status(ErrorCode::kNotFound, "no such route"));
      break;
    case 413:
      RenderError(res, Status(ErrorCode::kPayloadTooLarge,
                              "the body is larger than 64 KiB"));
      break;
    case 500:
      RenderError(res, Status(ErrorCode::kInternal, "internal error"));
      break;
    default:
      if (res.status >= 400 && res.status < 500) {
        json body = {{"error", "invalid_request"},
                     {"message", "the HTTP request could not be parsed"}};
        res.set_content(body.dump(), kJsonType);
      }
      break;
  }
  return httplib::Server::HandlerResponse::Handled;
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Config& c, SessionService& s, OpenDataService& o,
       AccessTokenCentre& t, const Clock& clock, Logger& l, Metrics* m)
      : config(c),
        service(s),
        open_data(o),
        tokens(t),
        logger(l),
        admin_token_digest(crypto::Sha256(c.admin_token)),
        metrics(m),
        owned_server(NewServer(c, &tls_error)),
        server(*owned_server) {
    auto proxies = TrustedProxies::Parse(c.trusted_proxies);
    // LoadConfig has checked every entry; a Config built in code is trusted
    // to be right too, and a bad one trusts nobody rather than everybody.
    if (proxies.ok()) trusted_proxies = proxies.value();
    if (c.login_rate_per_minute > 0) {
      login_limiter = std::make_unique<RateLimiter>(
          static_cast<double>(c.login_rate_per_minute),
          static_cast<double>(c.login_rate_burst), clock);
    }
  }

  const Config& config;
  SessionService& service;
  OpenDataService& open_data;
  AccessTokenCentre& tokens;
  Logger& logger;
  // SHA-256 of the admin token: comparing digests takes the same time
  // whatever the presented token's length. Constant after construction.
  const std::string admin_token_digest;
  Metrics* const metrics;  // thread-safe; may be null
  std::string tls_error;   // set by NewServer when TLS cannot be set up
  std::unique_ptr<GuardedServer> owned_server;  // HTTP or HTTPS
  GuardedServer& server;                        // *owned_server
  TrustedProxies trusted_proxies;               // constant after construction
  std::unique_ptr<RateLimiter> login_limiter;   // null: no limit; thread-safe
  std::atomic<bool> stopping{false};
  AdminService* admin = nullptr;  // set once by EnableAdmin, before serving

  void Configure();
  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req,
                                            httplib::Response& res);
  void RegisterRoutes();
  void RegisterOperationsRoutes();
  // Register a route; its pattern labels the request's log line and
  // metrics. Routes registered on `server` directly are labelled "other".
  void Get(const std::string& pattern, Handler handler);
  void Post(const std::string& pattern, Handler handler);
  void LogRequest(const httplib::Request& req, const httplib::Response& res);
  // The log line and metrics of a request the connection layer refused.
  void LogRefusal(int status, const std::string& error,
                  const std::string& remote_ip);

  void Login(const httplib::Request& req, httplib::Response& res);
  void GetSession(const httplib::Request& req, httplib::Response& res);
  void Logout(const httplib::Request& req, httplib::Response& res);
  void Health(const httplib::Request& req, httplib::Response& res);
  void Decrypt(const httplib::Request& req, httplib::Response& res);
  void Verify(const httplib::Request& req, httplib::Response& res);
  void Phone(const httplib::Request& req, httplib::Response& res);
  void CheckSession(const httplib::Request& req, httplib::Response& res);
  void AdminAccessToken(const httplib::Request& req, httplib::Response& res);

  // Logs a failure the operator may need to act on (WeChat, the store, a
  // bug); client mistakes are left to the access log.
  void LogFailure(const char* event, const Status& status);
  bool AdminAuthorized(const httplib::Request& req) const;
  // The user, session and ban routes (issue 15); see RegisterAdminRoutes.
  void RegisterAdminRoutes();
  void AdminRoute(const std::string& method, const std::string& pattern,
                  Handler handler);
  void BanUser(const httplib::Request& req, httplib::Response& res);
  void Auth(const httplib::Request& req, httplib::Response& res);
  void ServeMetrics(const httplib::Request& req, httplib::Response& res);

  // Signed tokens (issue 16); routes exist only after EnableTokens.
  TokenService* token_service = nullptr;  // set before Bind, then constant
  // SHA-256 of each tokens.introspection_tokens_file line. Constant after
  // EnableTokens.
  std::vector<std::string> introspection_token_digests;
  void RegisterTokenRoutes();
  void IssueToken(const httplib::Request& req, httplib::Response& res);
  void Introspect(const httplib::Request& req, httplib::Response& res);
  bool IntrospectionAuthorized(const httplib::Request& req) const;
  void ServeDiscovery(const httplib::Request& req, httplib::Response& res,
                      bool jwks);
};

void HttpServer::Impl::Configure() {
  ApplyServerSettings(server, config.http_threads);
  server.set_payload_max_length(kMaxBodyBytes);
  server.set_refusal_observer([this](int status, const std::string& error,
                                     const std::string& remote_ip) {
    LogRefusal(status, error, remote_ip);
  });

  server.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        return PreRoute(req, res);
      });

  server.set_error_handler(
      httplib::Server::HandlerWithResponse(RenderHttplibError));

  server.set_exception_handler([this](const httplib::Request& req,
                                      httplib::Response& res,
                                      const std::exception_ptr& error) {
    std::string what = "unknown exception";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    logger.Error("handler_exception", {{"path", req.path}, {"error", what}});
    RenderError(res, Status(ErrorCode::kInternal, "internal error"));
  });

  server.set_logger(
      [this](const httplib::Request& req, const httplib::Response& res) {
        LogRequest(req, res);
      });
}

// Before routing: the request's id, client address and timing start, and
// the refusal of a request with a repeated singleton header.
httplib::Server::HandlerResponse HttpServer::Impl::PreRoute(
    const httplib::Request& req, httplib::Response& res) {
  request_started = std::chrono::steady_clock::now();
  request_prerouted = true;
  request_route.clear();
  request_error.clear();
  std::string incoming = req.get_header_value("X-Request-Id");
  request_id = IsSafeRequestId(incoming) ? incoming : NewRequestId();
  res.set_header("X-Request-Id", request_id);
  request_client = trusted_proxies.ClientAddress(
      req.remote_addr, ForwardedFor(req), req.get_header_value("X-Real-IP"));
  // Tell clients not to send more on this connection: it closes after
  // this answer.
  if (stopping.load()) res.set_header("Connection", "close");
  if (Status framing = CheckSingletonFields(req); !framing.ok()) {
    CloseConnection(res);
    RenderError(res, framing);
    return httplib::Server::HandlerResponse::Handled;
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

// One line and one metrics sample per answer. The raw path is never logged
// or used as a label: a client could put anything there, a session id
// included.
void HttpServer::Impl::LogRequest(const httplib::Request& req,
                                  const httplib::Response& res) {
  if (!request_prerouted) {
    request_started = std::chrono::steady_clock::now();
    request_id = "-";
    request_client = req.remote_addr;
  }
  auto elapsed = std::chrono::steady_clock::now() - request_started;
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  // No handler ran: httplib found no route (404), refused the request
  // before routing (unparsable, body too large), or a handler registered
  // without Impl::Get/Post served it.
  const std::string route = !request_route.empty() ? request_route
                            : res.status == 404    ? "unmatched"
                            : req.matches.empty()  ? "unrouted"
                                                   : "other";
  std::vector<LogField> fields = {
      {"request_id", request_id}, {"method", req.method},
      {"route", route},           {"status", res.status},
      DurationMillis(micros),     {"client", request_client}};
  if (!request_error.empty()) fields.emplace_back("error", request_error);
  logger.Info("request", fields);
  if (metrics) {
    metrics->ObserveHttpRequest(route, res.status, seconds);
    if (route == "/v1/login") {
      metrics->CountLogin(res.status < 300                  ? "ok"
                          : request_error.empty()           ? "internal"
                          : request_error == "user_banned"  ? "banned"
                          : request_error == "login_denied" ? "denied"
                                                            : request_error);
    }
  }
  request_route.clear();
  request_error.clear();
  request_client.clear();
  request_prerouted = false;
}

void HttpServer::Impl::Get(const std::string& pattern, Handler handler) {
  server.Get(pattern, [pattern, handler = std::move(handler)](
                          const httplib::Request& req, httplib::Response& res) {
    request_route = pattern;
    handler(req, res);
  });
}

void HttpServer::Impl::Post(const std::string& pattern, Handler handler) {
  server.Post(pattern,
              [pattern, handler = std::move(handler)](
                  const httplib::Request& req, httplib::Response& res) {
                request_route = pattern;
                handler(req, res);
              });
}

void HttpServer::Impl::LogRefusal(int status, const std::string& error,
                                  const std::string& remote_ip) {
  logger.Info("request", {{"request_id", "-"},
                          {"method", "-"},
                          {"route", "unrouted"},
                          {"status", status},
                          {"client", remote_ip},
                          {"error", error}});
  if (metrics) metrics->ObserveHttpRequest("unrouted", status, 0.0);
}

void HttpServer::Impl::RegisterRoutes() {
  Post("/v1/login", [this](const httplib::Request& req,
                           httplib::Response& res) { Login(req, res); });
  Get("/v1/session", [this](const httplib::Request& req,
                            httplib::Response& res) { GetSession(req, res); });
  Post("/v1/logout", [this](const httplib::Request& req,
                            httplib::Response& res) { Logout(req, res); });
  Get("/healthz", [this](const httplib::Request& req, httplib::Response& res) {
    Health(req, res);
  });
  Post("/v1/decrypt", [this](const httplib::Request& req,
                             httplib::Response& res) { Decrypt(req, res); });
  Post("/v1/verify", [this](const httplib::Request& req,
                            httplib::Response& res) { Verify(req, res); });
  Post("/v1/phone", [this](const httplib::Request& req,
                           httplib::Response& res) { Phone(req, res); });
  Post("/v1/session/check",
       [this](const httplib::Request& req, httplib::Response& res) {
         CheckSession(req, res);
       });
  // Admin routes exist only with an admin token: without one they are
  // plain 404s, not a door with a missing lock.
  if (!config.admin_token.empty()) {
    Get("/v1/admin/access-token",
        [this](const httplib::Request& req, httplib::Response& res) {
          AdminAccessToken(req, res);
        });
  }
}

void HttpServer::Impl::Login(const httplib::Request& req,
                             httplib::Response& res) {
  if (login_limiter) {
    RateLimiter::Decision decision =
        login_limiter->Take(RateLimitKeyFor(request_client));
    if (!decision.allowed) {
      return RenderError(
          res, Status(ErrorCode::kRateLimited,
                      "too many logins from this address; retry in " +
                          std::to_string(decision.retry_after_seconds) + " s")
                   .set_retry_after(decision.retry_after_seconds));
    }
  }
  Result<LoginRequest> request = ParseLoginRequest(req.body);
  if (!request.ok()) return RenderError(res, request.status());

  Result<LoginResult> login =
      service.Login(request->appid, request->code, request_client);
  if (!login.ok()) {
    LogFailure("login_failed", login.status());
    return RenderError(res, login.status());
  }
  json out = {{"session_id", login->session_id},
              {"expires_in", login->expires_in},
              {"expires_at", login->expires_at}};
  if (config.expose_openid) {
    out["openid"] = login->openid;
    out["unionid"] = OptionalString(login->unionid);
  }
  RenderJson(res, 200, out);
}

void HttpServer::Impl::GetSession(const httplib::Request& req,
                                  httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<SessionInfo> info = service.Lookup(id);
  if (!info.ok()) return RenderError(res, info.status());
  res.status = 200;
  res.set_content(RenderSessionJson(info.value()), kJsonType);
}

void HttpServer::Impl::Logout(const httplib::Request& req,
                              httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Status status = service.Logout(id);
  if (!status.ok()) return RenderError(res, status);
  res.status = 204;
}

void HttpServer::Impl::Health(const httplib::Request&, httplib::Response& res) {
  Status status = service.Health();
  if (!status.ok()) {
    logger.Warn("health_failed", {{"detail", status.operator_text()}});
    return RenderJson(
        res, 503,
        {{"status", "unavailable"}, {"error", ErrorCodeName(status.code())}});
  }
  RenderJson(res, 200, {{"status", "ok"}});
}

void HttpServer::Impl::LogFailure(const char* event, const Status& status) {
  logger.Log(HttpErrorFor(status.code()).log_level, event,
             {{"request_id", request_id},
              {"error", ErrorCodeName(status.code())},
              {"detail", status.operator_text()}});
}

void HttpServer::Impl::Decrypt(const httplib::Request& req,
                               httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<DecryptRequest> request = ParseDecryptRequest(req.body);
  if (!request.ok()) return RenderError(res, request.status());

  Result<std::string> data =
      open_data.Decrypt(id, request->encrypted_data, request->iv);
  if (!data.ok()) {
    LogFailure("decrypt_failed", data.status());
    return RenderError(res, data.status());
  }
  // OpenDataService checked that this is a JSON object.
  json object = json::parse(data.value(), nullptr, /*allow_exceptions=*/false);
  if (!object.is_object()) {
    return RenderError(res, Status(ErrorCode::kInternal, "internal error"));
  }
  RenderJson(res, 200, {{"data", std::move(object)}});
}

void HttpServer::Impl::Verify(const httplib::Request& req,
                              httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<VerifyRequest> request = ParseVerifyRequest(req.body);
  if (!request.ok()) return RenderError(res, request.status());

  Result<bool> valid =
      open_data.VerifySignature(id, request->raw_data, request->signature);
  if (!valid.ok()) {
    LogFailure("verify_failed", valid.status());
    return RenderError(res, valid.status());
  }
  RenderJson(res, 200, {{"valid", valid.value()}});
}

void HttpServer::Impl::Phone(const httplib::Request& req,
                             httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<PhoneRequest> request = ParsePhoneRequest(req.body);
  if (!request.ok()) return RenderError(res, request.status());

  Result<PhoneNumber> phone = open_data.GetPhoneNumber(id, request->code);
  if (!phone.ok()) {
    LogFailure("phone_failed", phone.status());
    return RenderError(res, phone.status());
  }
  RenderJson(res, 200,
             {{"phoneNumber", phone->phone_number},
              {"purePhoneNumber", phone->pure_phone_number},
              {"countryCode", phone->country_code}});
}

void HttpServer::Impl::CheckSession(const httplib::Request& req,
                                    httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<bool> valid = open_data.CheckSessionKey(id);
  if (!valid.ok()) {
    LogFailure("session_check_failed", valid.status());
    return RenderError(res, valid.status());
  }
  RenderJson(res, 200, {{"session_key_valid", valid.value()}});
}

bool HttpServer::Impl::AdminAuthorized(const httplib::Request& req) const {
  std::optional<std::string> presented = BearerFrom(req);
  if (!presented) return false;
  return crypto::ConstantTimeEquals(crypto::Sha256(*presented),
                                    admin_token_digest);
}

void HttpServer::Impl::AdminAccessToken(const httplib::Request& req,
                                        httplib::Response& res) {
  // Tokens are credentials: no cache on the way may keep one.
  res.set_header("Cache-Control", "no-store");
  if (!AdminAuthorized(req)) {
    logger.Warn("admin_unauthorized",
                {{"request_id", request_id}, {"path", req.path}});
    return RenderError(
        res, Status(ErrorCode::kUnauthorized,
                    "admin routes want Authorization: Bearer <admin token> "
                    "(the content of admin.token_file)"));
  }
  const std::string appid =
      req.has_param("appid") ? req.get_param_value("appid") : "";
  // The access-token centre is WeChat-only (docs/PLATFORMS.md).
  if (Result<const AppConfig*> app = config.AppFor(appid);
      app.ok() && app.value()->platform != Platform::kWeChat) {
    return RenderError(
        res, Status(ErrorCode::kUnsupportedForPlatform,
                    "the access-token centre is WeChat-only; app " +
                        app.value()->appid + " is a " +
                        PlatformName(app.value()->platform) + " app"));
  }
  Result<AccessToken> token = tokens.Get(appid);
  if (!token.ok()) {
    LogFailure("access_token_failed", token.status());
    return RenderError(res, token.status());
  }
  RenderJson(
      res, 200,
      {{"access_token", token->token}, {"expires_at", token->expires_at}});
}

// --- Operations routes: the proxy auth gateway and metrics.

void HttpServer::Impl::RegisterOperationsRoutes() {
  Get("/v1/auth", [this](const httplib::Request& req, httplib::Response& res) {
    Auth(req, res);
  });
  if (metrics) {
    Get("/metrics", [this](const httplib::Request& req,
                           httplib::Response& res) { ServeMetrics(req, res); });
  }
}

// The subrequest target of nginx auth_request, Caddy forward_auth and
// Traefik ForwardAuth: the proxy copies these headers onto the request it
// passes to the team's backend, overwriting any a client sent.
void HttpServer::Impl::Auth(const httplib::Request& req,
                            httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  // A JWT from POST /v1/token (three dot-separated parts; a session id has
  // no dot): verified locally, then its session checked live.
  Result<SessionInfo> info =
      token_service != nullptr && id.find('.') != std::string::npos
          ? token_service->Authenticate(id)
          : service.Lookup(id);
  if (!info.ok()) return RenderError(res, info.status());
  res.status = 204;
  res.set_header("X-WX-AppID", info->appid);
  res.set_header("X-WX-OpenID", info->openid);
  if (info->unionid) res.set_header("X-WX-UnionID", *info->unionid);
  res.set_header("X-WX-Platform", info->platform);
  // Proxies may cache auth answers; a session can end at any moment.
  res.set_header("Cache-Control", "no-store");
}

void HttpServer::Impl::ServeMetrics(const httplib::Request&,
                                    httplib::Response& res) {
  res.status = 200;
  res.set_content(metrics->RenderPrometheus(), Metrics::kContentType);
}

// --- Users, sessions and bans (issue 15): thin handlers over AdminService.

// Registers an admin route: no cache may keep the answer, and nothing runs
// without the admin token.
void HttpServer::Impl::AdminRoute(const std::string& method,
                                  const std::string& pattern, Handler handler) {
  Handler guarded = [this, pattern, handler = std::move(handler)](
                        const httplib::Request& req, httplib::Response& res) {
    request_route = pattern;
    res.set_header("Cache-Control", "no-store");
    if (!AdminAuthorized(req)) {
      logger.Warn("admin_unauthorized",
                  {{"request_id", request_id}, {"route", pattern}});
      return RenderError(
          res, Status(ErrorCode::kUnauthorized,
                      "admin routes want Authorization: Bearer <admin token> "
                      "(the content of admin.token_file)"));
    }
    handler(req, res);
  };
  if (method == "GET") server.Get(pattern, guarded);
  if (method == "PUT") server.Put(pattern, guarded);
  if (method == "DELETE") server.Delete(pattern, guarded);
}

void HttpServer::Impl::RegisterAdminRoutes() {
  constexpr const char* kUser = R"(/v1/admin/users/([^/]+)/([^/]+))";
  const std::string user = kUser;
  auto render = [](httplib::Response& res, const std::string& body) {
    res.status = 200;
    res.set_content(body, kJsonType);
  };
  AdminRoute(
      "GET", user,
      [this, render](const httplib::Request& req, httplib::Response& res) {
        Result<UserRecord> found =
            admin->GetUser(req.matches[1], req.matches[2]);
        if (!found.ok()) return RenderError(res, found.status());
        render(res, UserJson(found.value(), config));
      });
  AdminRoute(
      "GET", user + "/sessions",
      [this, render](const httplib::Request& req, httplib::Response& res) {
        auto list = admin->ListSessions(req.matches[1], req.matches[2]);
        if (!list.ok()) return RenderError(res, list.status());
        render(res, SessionsJson(list.value()));
      });
  AdminRoute("DELETE", user + "/sessions",
             [this](const httplib::Request& req, httplib::Response& res) {
               Result<int64_t> ended =
                   admin->RevokeUserSessions(req.matches[1], req.matches[2]);
               if (!ended.ok()) return RenderError(res, ended.status());
               RenderJson(res, 200, {{"revoked", ended.value()}});
             });
  AdminRoute("DELETE", R"(/v1/admin/sessions/([^/]+))",
             [this](const httplib::Request& req, httplib::Response& res) {
               Status ended = admin->RevokeSession(req.matches[1]);
               if (!ended.ok()) return RenderError(res, ended);
               res.status = 204;
             });
  AdminRoute("PUT", user + "/ban",
             [this](const httplib::Request& req, httplib::Response& res) {
               BanUser(req, res);
             });
  AdminRoute("DELETE", user + "/ban",
             [this](const httplib::Request& req, httplib::Response& res) {
               Status lifted = admin->UnbanUser(req.matches[1], req.matches[2]);
               if (!lifted.ok()) return RenderError(res, lifted);
               res.status = 204;
             });
  AdminRoute(
      "GET", "/v1/admin/bans",
      [this, render](const httplib::Request& req, httplib::Response& res) {
        const std::string appid =
            req.has_param("appid") ? req.get_param_value("appid") : "";
        Result<std::vector<Ban>> bans = admin->ListBans(appid);
        if (!bans.ok()) return RenderError(res, bans.status());
        render(res, BansJson(bans.value()));
      });
}

// PUT /v1/admin/users/{appid}/{openid}/ban: {"reason": ..., "until": ...}.
void HttpServer::Impl::BanUser(const httplib::Request& req,
                               httplib::Response& res) {
  Result<json> body = ParseJsonObject(req.body);
  if (!body.ok()) return RenderError(res, body.status());
  auto reason = body->find("reason");
  if (reason == body->end() || !reason->is_string()) {
    return RenderError(
        res, Status(ErrorCode::kInvalidRequest, "reason must be a string"));
  }
  std::optional<int64_t> until;
  if (auto it = body->find("until"); it != body->end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      return RenderError(
          res, Status(ErrorCode::kInvalidRequest,
                      "until must be a unix time in seconds (an integer), "
                      "or absent for ever"));
    }
    until = it->get<int64_t>();
  }
  Result<UserRecord> banned = admin->BanUser(req.matches[1], req.matches[2],
                                             reason->get<std::string>(), until);
  if (!banned.ok()) return RenderError(res, banned.status());
  res.status = 200;
  res.set_content(UserJson(banned.value(), config), kJsonType);
}

void HttpServer::EnableAdmin(AdminService& admin) {
  // Without an admin token the routes do not exist, as for access-token.
  if (impl_->config.admin_token.empty() || impl_->admin != nullptr) return;
  impl_->admin = &admin;
  impl_->RegisterAdminRoutes();
}

HttpServer::HttpServer(const Config& config, SessionService& service,
                       OpenDataService& open_data, AccessTokenCentre& tokens,
                       const Clock& clock, Logger& logger, Metrics* metrics)
    : impl_(std::make_unique<Impl>(config, service, open_data, tokens, clock,
                                   logger, metrics)) {
  impl_->Configure();
  impl_->RegisterRoutes();
  impl_->RegisterOperationsRoutes();
}

HttpServer::~HttpServer() = default;

// --- Signed tokens (issue 16): JWTs, JWKS, discovery, introspection.

void HttpServer::EnableTokens(TokenService& tokens) {
  impl_->token_service = &tokens;
  for (const std::string& token : impl_->config.tokens.introspection_tokens) {
    impl_->introspection_token_digests.push_back(crypto::Sha256(token));
  }
  impl_->RegisterTokenRoutes();
}

void HttpServer::Impl::RegisterTokenRoutes() {
  Post("/v1/token", [this](const httplib::Request& req,
                           httplib::Response& res) { IssueToken(req, res); });
  Post("/v1/introspect",
       [this](const httplib::Request& req, httplib::Response& res) {
         Introspect(req, res);
       });
  Get("/.well-known/jwks.json",
      [this](const httplib::Request& req, httplib::Response& res) {
        ServeDiscovery(req, res, /*jwks=*/true);
      });
  Get("/.well-known/openid-configuration",
      [this](const httplib::Request& req, httplib::Response& res) {
        ServeDiscovery(req, res, /*jwks=*/false);
      });
}

void HttpServer::Impl::IssueToken(const httplib::Request& req,
                                  httplib::Response& res) {
  // A token is a credential: no cache on the way may keep one.
  res.set_header("Cache-Control", "no-store");
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<IssuedToken> issued = token_service->Issue(id);
  if (!issued.ok()) {
    LogFailure("token_failed", issued.status());
    return RenderError(res, issued.status());
  }
  RenderJson(res, 200,
             {{"access_token", issued->access_token},
              {"token_type", "Bearer"},
              {"expires_in", issued->expires_in}});
}

bool HttpServer::Impl::IntrospectionAuthorized(
    const httplib::Request& req) const {
  std::optional<std::string> presented = BearerFrom(req);
  if (!presented) return false;
  const std::string digest = crypto::Sha256(*presented);
  // Every comparison runs, so the time taken does not tell which matched.
  bool matched = !config.admin_token.empty() &&
                 crypto::ConstantTimeEquals(digest, admin_token_digest);
  for (const std::string& allowed : introspection_token_digests) {
    matched = crypto::ConstantTimeEquals(digest, allowed) || matched;
  }
  return matched;
}

// RFC 7662: a form body token=...&token_type_hint=...; the answer says
// whether the token is active, and never is an error for a bad token.
void HttpServer::Impl::Introspect(const httplib::Request& req,
                                  httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  if (!IntrospectionAuthorized(req)) {
    if (metrics) metrics->CountIntrospection("unauthorized");
    logger.Warn("introspect_unauthorized", {{"request_id", request_id}});
    return RenderError(
        res, Status(ErrorCode::kUnauthorized,
                    "introspection wants Authorization: Bearer <a line of "
                    "tokens.introspection_tokens_file, or the admin token>"));
  }
  if (!req.has_param("token") || req.get_param_value_count("token") != 1) {
    return RenderError(
        res, Status(ErrorCode::kInvalidRequest,
                    "send one token as an application/x-www-form-urlencoded "
                    "body: token=<JWT or session id>"));
  }
  Result<std::string> answer =
      token_service->Introspect(req.get_param_value("token"));
  if (!answer.ok()) {
    LogFailure("introspect_failed", answer.status());
    return RenderError(res, answer.status());
  }
  if (metrics) {
    metrics->CountIntrospection(
        answer.value() == "{\"active\":false}" ? "inactive" : "active");
  }
  res.status = 200;
  res.set_content(answer.value(), kJsonType);
}

void HttpServer::Impl::ServeDiscovery(const httplib::Request&,
                                      httplib::Response& res, bool jwks) {
  // Public keys and metadata: caches may keep them five minutes. The JWKS
  // changes only on a rotation, and JWT libraries fetch it again when a
  // token names a kid they do not know.
  res.set_header("Cache-Control", "public, max-age=300");
  res.status = 200;
  res.set_content(
      jwks ? token_service->JwksJson() : token_service->DiscoveryJson(),
      kJsonType);
}

Result<int> HttpServer::Bind(const std::string& host, int port) {
  if (!impl_->tls_error.empty()) {
    return Status(ErrorCode::kInternal,
                  "tls.cert / tls.key: " + impl_->tls_error);
  }
  return impl_->server.BindListener(host, port);
}

bool HttpServer::Serve() { return impl_->server.listen_after_bind(); }

void HttpServer::Stop() {
  impl_->stopping.store(true);
  impl_->server.CloseListener();
}

}  // namespace wxsession
