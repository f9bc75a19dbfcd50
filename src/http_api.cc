// HTTP adapter: API v1 on cpp-httplib.
//
// Handlers parse, call SessionService / OpenDataService / the token centre,
// render. HttpStatusFor below is the one table from ErrorCode to HTTP
// status. Client-facing messages come from Status::message(), which modules
// keep free of secrets; operator detail goes to the log.
#include "wxsession/http_api.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "http_connections.h"
#include "httplib_server.h"
#include "request_parsing.h"
#include "wxsession/client_ip.h"
#include "wxsession/crypto.h"
#include "wxsession/rate_limit.h"

namespace wxsession {

using json = nlohmann::json;

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidRequest: return 400;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kUnknownApp: return 400;
    case ErrorCode::kInvalidSession: return 401;
    case ErrorCode::kUnauthorized: return 401;
    case ErrorCode::kInvalidCode: return 400;
    case ErrorCode::kLoginBlocked: return 403;
    case ErrorCode::kRateLimited: return 429;
    case ErrorCode::kUpstreamUnavailable: return 503;
    case ErrorCode::kUpstreamError: return 502;
    case ErrorCode::kStoreUnavailable: return 503;
    case ErrorCode::kDecryptFailed: return 422;
    case ErrorCode::kWatermarkMismatch: return 422;
    case ErrorCode::kWatermarkExpired: return 422;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kInternal: return 500;
    case ErrorCode::kUnsupportedForPlatform: return 400;
  }
  return 500;
}

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

void RenderError(httplib::Response& res, const Status& status) {
  request_error = ErrorCodeName(status.code());
  json body = {{"error", ErrorCodeName(status.code())},
               {"message", status.message()}};
  res.status = HttpStatusFor(status.code());
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  kJsonType);
  if (status.code() == ErrorCode::kInvalidSession) {
    res.set_header("WWW-Authenticate",
                   "Bearer realm=\"wxsessiond\", error=\"invalid_token\"");
  }
  if (status.code() == ErrorCode::kUnauthorized) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"wxsessiond-admin\"");
  }
  std::optional<int> retry = status.retry_after();
  if (!retry && (status.code() == ErrorCode::kStoreUnavailable ||
                 status.code() == ErrorCode::kUpstreamUnavailable)) {
    retry = 1;  // seconds: outages here are expected to be short
  }
  if (retry && (status.code() == ErrorCode::kRateLimited ||
                status.code() == ErrorCode::kUpstreamUnavailable ||
                status.code() == ErrorCode::kStoreUnavailable)) {
    res.set_header("Retry-After", std::to_string(*retry));
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
  for (const char* singleton : {"Authorization", "X-WX-Session",
                                "Content-Type", "X-Request-Id"}) {
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
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
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

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

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

}  // namespace

struct HttpServer::Impl {
  Impl(const Config& c, SessionService& s, OpenDataService& o,
       AccessTokenCentre& t, Logger& l, Metrics* m)
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
          static_cast<double>(c.login_rate_burst), SteadyMillis());
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
  std::string tls_error;  // set by NewServer when TLS cannot be set up
  std::unique_ptr<GuardedServer> owned_server;  // HTTP or HTTPS
  GuardedServer& server;                        // *owned_server
  TrustedProxies trusted_proxies;                 // constant after construction
  std::unique_ptr<RateLimiter> login_limiter;     // null: no limit; thread-safe
  std::atomic<bool> stopping{false};

  void Configure();
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
  void Auth(const httplib::Request& req, httplib::Response& res);
  void ServeMetrics(const httplib::Request& req, httplib::Response& res);
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
        request_started = std::chrono::steady_clock::now();
        request_prerouted = true;
        request_route.clear();
        request_error.clear();
        std::string incoming = req.get_header_value("X-Request-Id");
        request_id = IsSafeRequestId(incoming) ? incoming : NewRequestId();
        res.set_header("X-Request-Id", request_id);
        request_client = trusted_proxies.ClientAddress(
            req.remote_addr, ForwardedFor(req),
            req.get_header_value("X-Real-IP"));
        // Tell clients not to send more on this connection: it closes after
        // this answer.
        if (stopping.load()) res.set_header("Connection", "close");
        if (Status framing = CheckSingletonFields(req); !framing.ok()) {
          CloseConnection(res);
          RenderError(res, framing);
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      });

  // httplib answers some errors itself (no route, body too large, a request
  // it cannot parse) with an empty body: give them the JSON error shape.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
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
  }));

  server.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res,
             std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          if (error) std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        logger.Error("handler_exception",
                     {{"path", req.path}, {"error", what}});
        RenderError(res, Status(ErrorCode::kInternal, "internal error"));
      });

  server.set_logger([this](const httplib::Request& req,
                           const httplib::Response& res) {
    LogRequest(req, res);
  });
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
  std::vector<LogField> fields = {{"request_id", request_id},
                                  {"method", req.method},
                                  {"route", route},
                                  {"status", res.status},
                                  DurationMillis(micros),
                                  {"client", request_client}};
  if (!request_error.empty()) fields.emplace_back("error", request_error);
  logger.Info("request", fields);
  if (metrics) {
    metrics->ObserveHttpRequest(route, res.status, seconds);
    if (route == "/v1/login") {
      metrics->CountLogin(res.status < 300 ? "ok"
                          : request_error.empty() ? "internal"
                                                  : request_error);
    }
  }
  request_route.clear();
  request_error.clear();
  request_client.clear();
  request_prerouted = false;
}

void HttpServer::Impl::Get(const std::string& pattern, Handler handler) {
  server.Get(pattern, [pattern, handler](const httplib::Request& req,
                                         httplib::Response& res) {
    request_route = pattern;
    handler(req, res);
  });
}

void HttpServer::Impl::Post(const std::string& pattern, Handler handler) {
  server.Post(pattern, [pattern, handler](const httplib::Request& req,
                                          httplib::Response& res) {
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
  Get("/v1/session",
      [this](const httplib::Request& req, httplib::Response& res) {
        GetSession(req, res);
      });
  Post("/v1/logout",
       [this](const httplib::Request& req, httplib::Response& res) {
         Logout(req, res);
       });
  Get("/healthz",
      [this](const httplib::Request& req, httplib::Response& res) {
        Health(req, res);
      });
  Post("/v1/decrypt",
       [this](const httplib::Request& req, httplib::Response& res) {
         Decrypt(req, res);
       });
  Post("/v1/verify",
       [this](const httplib::Request& req, httplib::Response& res) {
         Verify(req, res);
       });
  Post("/v1/phone",
       [this](const httplib::Request& req, httplib::Response& res) {
         Phone(req, res);
       });
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
      service.Login(request->appid, request->code);
  if (!login.ok()) {
    const Status& status = login.status();
    if (status.code() != ErrorCode::kInvalidRequest) {
      logger.Warn("login_failed", {{"request_id", request_id},
                                   {"error", ErrorCodeName(status.code())},
                                   {"detail", status.message()}});
    }
    return RenderError(res, status);
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

void HttpServer::Impl::Health(const httplib::Request&,
                              httplib::Response& res) {
  Status status = service.Health();
  if (!status.ok()) {
    logger.Warn("health_failed", {{"detail", status.message()}});
    return RenderJson(res, 503,
                      {{"status", "unavailable"},
                       {"error", ErrorCodeName(status.code())}});
  }
  RenderJson(res, 200, {{"status", "ok"}});
}

void HttpServer::Impl::LogFailure(const char* event, const Status& status) {
  switch (status.code()) {
    case ErrorCode::kRateLimited:
    case ErrorCode::kUpstreamUnavailable:
    case ErrorCode::kUpstreamError:
    case ErrorCode::kStoreUnavailable:
    case ErrorCode::kInternal:
      logger.Warn(event, {{"request_id", request_id},
                          {"error", ErrorCodeName(status.code())},
                          {"detail", status.message()}});
      break;
    default:
      break;
  }
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
    Get("/metrics",
        [this](const httplib::Request& req, httplib::Response& res) {
          ServeMetrics(req, res);
        });
  }
}

// The subrequest target of nginx auth_request, Caddy forward_auth and
// Traefik ForwardAuth: the proxy copies these headers onto the request it
// passes to the team's backend, overwriting any a client sent.
void HttpServer::Impl::Auth(const httplib::Request& req,
                            httplib::Response& res) {
  std::string id = SessionIdFrom(req);
  if (id.empty()) return RenderError(res, MissingSession());
  Result<SessionInfo> info = service.Lookup(id);
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

HttpServer::HttpServer(const Config& config, SessionService& service,
                       OpenDataService& open_data, AccessTokenCentre& tokens,
                       Logger& logger, Metrics* metrics)
    : impl_(std::make_unique<Impl>(config, service, open_data, tokens, logger,
                                   metrics)) {
  impl_->Configure();
  impl_->RegisterRoutes();
  impl_->RegisterOperationsRoutes();
}

HttpServer::~HttpServer() = default;

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
