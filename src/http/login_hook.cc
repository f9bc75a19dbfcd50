// LoginHook over cpp-httplib: see login_hook.h.
#include "wxsession/login_hook.h"

#include "ops/log.h"

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "wxsession/crypto.h"

namespace wxsession {

using json = nlohmann::json;

std::string LoginHookBody(const LoginHookEvent& event) {
  json body = {
      {"event", "login"},
      {"appid", event.appid},
      {"openid", event.openid},
      {"unionid", event.unionid ? json(*event.unionid) : json(nullptr)},
      {"platform", event.platform},
      {"new_user", event.new_user},
      {"client", event.client}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string LoginHookSignature(const std::string& secret, int64_t t,
                               const std::string& body) {
  const std::string stamp = std::to_string(t);
  return "t=" + stamp +
         ",v1=" + crypto::HmacSha256Hex(secret, stamp + "." + body);
}

namespace {

constexpr const char* kDefaultDenial = "this login was refused";

// The client message of a denying answer: its {"message"}, at most
// kMaxMessageChars characters (UTF-8 kept whole), or a default.
std::string DenialMessage(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return kDefaultDenial;
  auto message = parsed.find("message");
  if (message == parsed.end() || !message->is_string()) return kDefaultDenial;
  const std::string text = message->get<std::string>();
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < text.size() && chars < LoginHook::kMaxMessageChars;) {
    size_t length = 1;
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead >= 0xF0) {
      length = 4;
    } else if (lead >= 0xE0) {
      length = 3;
    } else if (lead >= 0xC0) {
      length = 2;
    }
    out.append(text, i, length);
    i += length;
    ++chars;
  }
  return out.empty() ? kDefaultDenial : out;
}

class HttpLoginHook final : public LoginHook {
 public:
  HttpLoginHook(const Config& config, const Clock& clock, Logger* logger)
      : secret_(config.hook_secret),
        timeout_(config.hook_timeout_ms),
        clock_(clock),
        logger_(logger) {
    // "https://host:port/path?query" -> "https://host:port" and "/path?query".
    const std::string& url = config.hook_login_url;
    const size_t scheme_end = url.find("://") + 3;
    const size_t path_start = url.find('/', scheme_end);
    base_ = path_start == std::string::npos ? url : url.substr(0, path_start);
    path_ = path_start == std::string::npos ? "/" : url.substr(path_start);
  }

  Status Check(const LoginHookEvent& event) override {
    Status verdict = Ask(event);
    if (!verdict.ok() && logger_ != nullptr) {
      logger_->Warn("login_hook", {{"appid", event.appid},
                                   {"openid", event.openid},
                                   {"error", ErrorCodeName(verdict.code())},
                                   {"detail", verdict.message()}});
    }
    return verdict;
  }

 private:
  Status Ask(const LoginHookEvent& event) {
    const std::string body = LoginHookBody(event);
    httplib::Headers headers = {
        {"X-WXS-Signature", LoginHookSignature(secret_, clock_.Now(), body)}};
    // One client per call: hooks are one call per new session, and a fresh
    // connection keeps a slow hook from holding others back.
    httplib::Client client(base_);
    client.set_connection_timeout(timeout_);
    client.set_read_timeout(timeout_);
    client.set_write_timeout(timeout_);
    httplib::Result res =
        client.Post(path_.c_str(), headers, body, "application/json");
    if (!res) {
      return Status::Fault(
          ErrorCode::kHookUnavailable,
          "login hook unavailable: " + httplib::to_string(res.error()));
    }
    if (res->status >= 200 && res->status < 300) return Status::Ok();
    if (res->status == 403) {
      return Status(ErrorCode::kLoginDenied, DenialMessage(res->body));
    }
    return Status::Fault(ErrorCode::kHookUnavailable,
                         "login hook unavailable: it answered HTTP " +
                             std::to_string(res->status));
  }

  const std::string secret_;                 // never logged
  const std::chrono::milliseconds timeout_;  // constant after construction
  const Clock& clock_;
  Logger* const logger_;  // thread-safe; may be null
  std::string base_;      // constant after construction
  std::string path_;      // constant after construction
};

}  // namespace

std::unique_ptr<LoginHook> NewHttpLoginHook(const Config& config,
                                            const Clock& clock,
                                            Logger* logger) {
  if (config.hook_login_url.empty()) return nullptr;
  return std::make_unique<HttpLoginHook>(config, clock, logger);
}

}  // namespace wxsession
