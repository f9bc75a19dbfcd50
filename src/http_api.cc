// HTTP adapter: API v1 on cpp-httplib.
//
// Handlers parse, call SessionService / OpenDataService / the token centre,
// render. HttpStatusFor below is the one table from ErrorCode to HTTP
// status. Client-facing messages come from Status::message(), which modules
// keep free of secrets; operator detail goes to the log.
#include "wxsession/http_api.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "httplib_server.h"
#include "wxsession/crypto.h"

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
  }
  return 500;
}

namespace {

constexpr const char* kJsonType = "application/json";

// When the request started, for the access log; set by the pre-routing
// handler and read by the logger, both on the connection's thread.
thread_local std::chrono::steady_clock::time_point request_started;
thread_local std::string request_id;

void RenderJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Replacing ill-formed UTF-8 instead of throwing: decrypted open data and
  // upstream text end up in bodies.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  kJsonType);
}

void RenderError(httplib::Response& res, const Status& status) {
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
  char suffix[24];
  std::snprintf(suffix, sizeof(suffix), "-%llx",
                static_cast<unsigned long long>(counter.fetch_add(1) + 1));
  return prefix + suffix;
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
  out += '}';
  return out;
}

namespace {

// The credential from "Authorization: Bearer <credential>", or nullopt.
std::optional<std::string> BearerFrom(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  constexpr size_t kSchemeLength = 7;  // "Bearer "
  if (auth.size() > kSchemeLength) {
    std::string scheme = auth.substr(0, kSchemeLength);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
    if (scheme == "bearer ") {
      std::string id = auth.substr(kSchemeLength);
      while (!id.empty() && id.front() == ' ') id.erase(id.begin());
      while (!id.empty() && id.back() == ' ') id.pop_back();
      return id;
    }
  }
  return std::nullopt;
}

// The session id from "Authorization: Bearer <id>" or "X-WX-Session: <id>".
// Empty when neither is present.
std::string SessionIdFrom(const httplib::Request& req) {
  if (std::optional<std::string> id = BearerFrom(req)) return *id;
  return req.get_header_value("X-WX-Session");
}

Status MissingSession() {
  return Status(ErrorCode::kInvalidSession,
                "no session: send Authorization: Bearer <session_id> (or "
                "X-WX-Session) from POST /v1/login");
}

// Parses a JSON object body. Errors are kInvalidRequest naming the problem.
Result<json> ParseObject(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return Status(ErrorCode::kInvalidRequest, "the body is not valid JSON");
  }
  if (!body.is_object()) {
    return Status(ErrorCode::kInvalidRequest, "the body must be a JSON object");
  }
  return body;
}

// Reads an optional string field; kInvalidRequest when present but not a
// string, or when required and absent.
Result<std::string> StringField(const json& body, const char* name,
                                bool required) {
  auto found = body.find(name);
  if (found == body.end() || found->is_null()) {
    if (!required) return std::string();
    return Status(ErrorCode::kInvalidRequest,
                  std::string("missing field \"") + name + "\"");
  }
  if (!found->is_string()) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("field \"") + name + "\" must be a string");
  }
  return found->get<std::string>();
}

// cpp-httplib 0.11 reads a POST without Content-Length or chunked encoding
// until the peer closes the connection, so `curl -X POST` with no body would
// hold a thread for the whole read timeout and then get a 400. RFC 9112 says
// such a request has no body. POST routes therefore take the body through a
// content reader, and read it only when the request announces one.
using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

httplib::Server::HandlerWithContentReader WithBody(Handler handler) {
  return [handler](const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader) {
    httplib::Request with_body = req;
    if (req.has_header("Content-Length") ||
        req.has_header("Transfer-Encoding")) {
      bool read = reader([&with_body](const char* data, size_t length) {
        with_body.body.append(data, length);
        return with_body.body.size() <= HttpServer::kMaxBodyBytes;
      });
      if (!read || with_body.body.size() > HttpServer::kMaxBodyBytes) {
        // Part of the body may still be unread: this connection is done.
        res.set_header("Connection", "close");
        if (res.status == 413 ||
            with_body.body.size() > HttpServer::kMaxBodyBytes) {
          return RenderError(res, Status(ErrorCode::kPayloadTooLarge,
                                         "the body is larger than 64 KiB"));
        }
        return RenderError(res, Status(ErrorCode::kInvalidRequest,
                                       "the body could not be read"));
      }
    }
    handler(with_body, res);
  };
}

json OptionalString(const std::optional<std::string>& value) {
  return value ? json(*value) : json(nullptr);
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Config& c, SessionService& s, OpenDataService& o,
       AccessTokenCentre& t, Logger& l)
      : config(c),
        service(s),
        open_data(o),
        tokens(t),
        logger(l),
        admin_token_digest(crypto::Sha256(c.admin_token)) {}

  const Config& config;
  SessionService& service;
  OpenDataService& open_data;
  AccessTokenCentre& tokens;
  Logger& logger;
  // SHA-256 of the admin token: comparing digests takes the same time
  // whatever the presented token's length. Constant after construction.
  const std::string admin_token_digest;
  DeepBacklogServer server;

  void Configure();
  void RegisterRoutes();
  void RegisterFallbacks();

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
};

void HttpServer::Impl::Configure() {
  ApplyServerSettings(server, config.http_threads);
  server.set_payload_max_length(kMaxBodyBytes);

  server.set_pre_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        request_started = std::chrono::steady_clock::now();
        std::string incoming = req.get_header_value("X-Request-Id");
        request_id = IsSafeRequestId(incoming) ? incoming : NewRequestId();
        res.set_header("X-Request-Id", request_id);
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
    auto elapsed = std::chrono::steady_clock::now() - request_started;
    double ms =
        std::chrono::duration<double, std::milli>(elapsed).count();
    logger.Info("request", {{"request_id", request_id},
                            {"method", req.method},
                            {"path", req.path},
                            {"status", res.status},
                            {"duration_ms", ms}});
  });
}

void HttpServer::Impl::RegisterRoutes() {
  server.Post("/v1/login",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { Login(req, res); }));
  server.Get("/v1/session",
             [this](const httplib::Request& req, httplib::Response& res) {
               GetSession(req, res);
             });
  server.Post("/v1/logout",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { Logout(req, res); }));
  server.Get("/healthz",
             [this](const httplib::Request& req, httplib::Response& res) {
               Health(req, res);
             });
  server.Post("/v1/decrypt",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { Decrypt(req, res); }));
  server.Post("/v1/verify",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { Verify(req, res); }));
  server.Post("/v1/phone",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { Phone(req, res); }));
  server.Post("/v1/session/check",
              WithBody([this](const httplib::Request& req,
                              httplib::Response& res) { CheckSession(req, res); }));
  // Admin routes exist only with an admin token: without one they are
  // plain 404s, not a door with a missing lock.
  if (!config.admin_token.empty()) {
    server.Get("/v1/admin/access-token",
               [this](const httplib::Request& req, httplib::Response& res) {
                 AdminAccessToken(req, res);
               });
  }
}

// Registered after every route: a POST to an unknown path is answered 404
// without waiting for a body it may not announce (see WithBody).
void HttpServer::Impl::RegisterFallbacks() {
  server.Post(".*", [](const httplib::Request&, httplib::Response& res,
                       const httplib::ContentReader&) {
    res.set_header("Connection", "close");  // the body, if any, is unread
    RenderError(res, Status(ErrorCode::kNotFound, "no such route"));
  });
}

void HttpServer::Impl::Login(const httplib::Request& req,
                             httplib::Response& res) {
  Result<json> body = ParseObject(req);
  if (!body.ok()) return RenderError(res, body.status());
  Result<std::string> code = StringField(body.value(), "code", true);
  if (!code.ok()) return RenderError(res, code.status());
  Result<std::string> appid = StringField(body.value(), "appid", false);
  if (!appid.ok()) return RenderError(res, appid.status());

  Result<LoginResult> login = service.Login(appid.value(), code.value());
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
  Result<json> body = ParseObject(req);
  if (!body.ok()) return RenderError(res, body.status());
  Result<std::string> encrypted =
      StringField(body.value(), "encryptedData", true);
  if (!encrypted.ok()) return RenderError(res, encrypted.status());
  Result<std::string> iv = StringField(body.value(), "iv", true);
  if (!iv.ok()) return RenderError(res, iv.status());

  Result<std::string> data =
      open_data.Decrypt(id, encrypted.value(), iv.value());
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
  Result<json> body = ParseObject(req);
  if (!body.ok()) return RenderError(res, body.status());
  Result<std::string> raw_data = StringField(body.value(), "rawData", true);
  if (!raw_data.ok()) return RenderError(res, raw_data.status());
  Result<std::string> signature = StringField(body.value(), "signature", true);
  if (!signature.ok()) return RenderError(res, signature.status());

  Result<bool> valid =
      open_data.VerifySignature(id, raw_data.value(), signature.value());
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
  Result<json> body = ParseObject(req);
  if (!body.ok()) return RenderError(res, body.status());
  Result<std::string> code = StringField(body.value(), "code", true);
  if (!code.ok()) return RenderError(res, code.status());

  Result<PhoneNumber> phone = open_data.GetPhoneNumber(id, code.value());
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
  Result<AccessToken> token = tokens.Get(appid);
  if (!token.ok()) {
    LogFailure("access_token_failed", token.status());
    return RenderError(res, token.status());
  }
  RenderJson(
      res, 200,
      {{"access_token", token->token}, {"expires_at", token->expires_at}});
}

HttpServer::HttpServer(const Config& config, SessionService& service,
                       OpenDataService& open_data, AccessTokenCentre& tokens,
                       Logger& logger)
    : impl_(
          std::make_unique<Impl>(config, service, open_data, tokens, logger)) {
  impl_->Configure();
  impl_->RegisterRoutes();
  impl_->RegisterFallbacks();
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::Bind(const std::string& host, int port) {
  if (port == 0) {
    int bound = impl_->server.bind_to_any_port(host);
    if (bound <= 0) {
      return Status(ErrorCode::kInternal, "cannot listen on " + host + ":0");
    }
    impl_->server.DeepenBacklog();
    return bound;
  }
  if (!impl_->server.bind_to_port(host, port)) {
    return Status(ErrorCode::kInternal,
                  "cannot listen on " + host + ":" + std::to_string(port) +
                      " (in use, or not an address of this machine)");
  }
  impl_->server.DeepenBacklog();
  return port;
}

bool HttpServer::Serve() { return impl_->server.listen_after_bind(); }

void HttpServer::Stop() { impl_->server.stop(); }

}  // namespace wxsession
