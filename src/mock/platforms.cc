// The other platforms' routes of mock-wechat: see mock_platforms.h.
#include "mock/platforms.h"

#include <httplib.h>

#include <cstdlib>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "mock/wechat.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;

// Secret the mock answers with each platform's bad-credential error.
constexpr char kWrongSecret[] = "wrong-secret";
// Seconds the Alipay timestamp may be off from the mock's Beijing time.
constexpr int64_t kAlipayClockSkewSeconds = 600;
constexpr int64_t kBeijingOffsetSeconds = 8 * 3600;

void Reply(httplib::Response& res, const std::string& body, int status = 200) {
  res.status = status;
  res.set_content(body, "application/json;charset=utf-8");
}

void ReplyJson(httplib::Response& res, const json& body, int status = 200) {
  Reply(res, body.dump(), status);
}

std::string Param(const httplib::Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : std::string();
}

std::string UserOf(const std::string& code) {
  return code.substr(0, code.find('.'));
}

std::string UnionIdFor(const std::string& user) {
  return "u" +
         crypto::Base64UrlEncode(crypto::Sha256("union:" + user)).substr(0, 27);
}

// Parses "yyyy-MM-dd HH:mm:ss" read as Beijing time into unix seconds.
std::optional<int64_t> ParseBeijing(const std::string& text) {
  std::tm parts{};
  const char* end = strptime(text.c_str(), "%Y-%m-%d %H:%M:%S", &parts);
  if (end == nullptr || *end != '\0' || text.size() != 19) return std::nullopt;
  return static_cast<int64_t>(timegm(&parts)) - kBeijingOffsetSeconds;
}

class Routes {
 public:
  Routes(MockPlatformHooks hooks, std::shared_ptr<const MockAlipayKeys> keys)
      : hooks_(std::move(hooks)), keys_(std::move(keys)) {}

  // A successful login of `user` for `appid`: the openid and a new key of
  // `key_bytes` bytes. nullopt when the code was used before.
  struct Login {
    std::string openid;
    std::string session_key;
    std::optional<std::string> unionid;
  };
  std::optional<Login> Spend(const char* platform, const std::string& appid,
                             const std::string& code, size_t key_bytes) {
    if (!hooks_.spend_code(std::string(platform) + '\n' + appid + '\n' +
                           code)) {
      return std::nullopt;
    }
    Login login;
    const std::string user = UserOf(code);
    login.openid = MockWeChatServer::OpenIdFor(appid, user);
    if (key_bytes > 0) {
      login.session_key = crypto::Base64Encode(crypto::RandomBytes(key_bytes));
      hooks_.record_key(appid, login.openid, login.session_key);
    }
    if (user.rfind("union", 0) == 0) login.unionid = UnionIdFor(user);
    return login;
  }

  void Douyin(const httplib::Request& req, httplib::Response& res) {
    hooks_.delay();
    hooks_.count("douyin");
    const json body = json::parse(req.body, nullptr, false);
    const auto text = [&body](const char* key) {
      if (!body.is_object()) return std::string();
      const auto it = body.find(key);
      return it != body.end() && it->is_string() ? it->get<std::string>()
                                                 : std::string();
    };
    const auto error = [&res](int err_no, const char* tips) {
      ReplyJson(
          res, json{{"err_no", err_no}, {"err_tips", tips}, {"data", nullptr}});
    };
    const std::string appid = text("appid");
    const std::string code = text("code");
    if (appid.empty()) return error(40015, "bad appid");
    if (text("secret").empty() || text("secret") == kWrongSecret) {
      return error(40017, "bad secret");
    }
    if (code.empty()) return error(40020, "code or anonymous_code is required");
    if (code == "invalid") return error(40018, "bad code");
    if (code == "busy") return error(-1, "system error");
    if (code == "limit")
      return Reply(res, "{\"err_tips\":\"too many requests\"}", 429);
    if (code == "http:500") return Reply(res, "<html>error</html>", 500);
    std::optional<Login> login = Spend("douyin", appid, code, 16);
    if (!login) return error(40018, "bad code");
    json data{{"session_key", login->session_key},
              {"openid", login->openid},
              {"anonymous_openid", ""}};
    if (login->unionid) data["unionid"] = *login->unionid;
    ReplyJson(res,
              json{{"err_no", 0}, {"err_tips", "success"}, {"data", data}});
  }

  void Kuaishou(const httplib::Request& req, httplib::Response& res) {
    hooks_.delay();
    hooks_.count("kuaishou");
    const std::string appid = Param(req, "app_id");
    const std::string code = Param(req, "js_code");
    const auto error = [&res](long long result, const char* message) {
      ReplyJson(res, json{{"result", result}, {"error_msg", message}});
    };
    if (appid.empty()) return error(100200100, "app_id is required");
    const std::string secret = Param(req, "app_secret");
    if (secret.empty() || secret == kWrongSecret) {
      return error(100200101, "app_secret is wrong");
    }
    if (code.empty() || code == "invalid")
      return error(100200102, "js_code is invalid");
    if (code == "busy" || code == "http:500")
      return Reply(res, "<html>busy</html>", 502);
    if (code == "limit") return Reply(res, "{\"result\":0}", 429);
    std::optional<Login> login = Spend("kuaishou", appid, code, 16);
    if (!login) return error(100200102, "js_code is invalid");
    ReplyJson(res, json{{"result", 1},
                        {"open_id", login->openid},
                        {"session_key", login->session_key}});
  }

  void Baidu(const httplib::Request& req, httplib::Response& res) {
    hooks_.delay();
    hooks_.count("baidu");
    const std::string client_id = Param(req, "client_id");
    const std::string code = Param(req, "code");
    const auto error = [&res](const char* name, const char* description) {
      ReplyJson(res, json{{"errno", 1},
                          {"error", name},
                          {"error_description", description}});
    };
    const std::string sk = Param(req, "sk");
    if (client_id.empty() || sk.empty() || sk == kWrongSecret) {
      return error("invalid_client", "unknown client id or wrong sk");
    }
    if (code.empty() || code == "invalid")
      return error("invalid_grant", "invalid code");
    if (code == "busy" || code == "http:500")
      return Reply(res, "<html>busy</html>", 500);
    if (code == "limit") return Reply(res, "{}", 429);
    // AES-192: Baidu's session_key decodes to 24 bytes.
    std::optional<Login> login = Spend("baidu", client_id, code, 24);
    if (!login) return error("invalid_grant", "code has been used");
    ReplyJson(res, json{{"openid", login->openid},
                        {"session_key", login->session_key}});
  }

  // --- Alipay
  // `node_text` signed with the mock key, as {"<name>": node, "sign": ...}.
  std::string Signed(const char* name, const std::string& node_text) const {
    return std::string("{\"") + name + "\":" + node_text + ",\"sign\":\"" +
           keys_->mock_key.SignBase64(node_text) + "\"}";
  }
  void AlipayError(httplib::Response& res, const char* code, const char* msg,
                   const char* sub_code, const char* sub_msg) const {
    const json node{{"code", code},
                    {"msg", msg},
                    {"sub_code", sub_code},
                    {"sub_msg", sub_msg}};
    Reply(res, Signed("error_response", node.dump()));
  }

  void Alipay(const httplib::Request& req, httplib::Response& res) {
    hooks_.delay();
    hooks_.count("alipay");
    std::map<std::string, std::string> params;
    for (const auto& [name, value] : req.params) params[name] = value;
    const std::string appid = params["app_id"];
    const std::string code = params["code"];
    if (params["method"] != "alipay.system.oauth.token" || appid.empty() ||
        params["sign_type"] != "RSA2" || params["charset"] != "utf-8" ||
        params["version"] != "1.0" ||
        params["grant_type"] != "authorization_code") {
      return AlipayError(res, "40001", "Missing Required Arguments",
                         "isv.missing-method",
                         "method, app_id, sign_type=RSA2, charset=utf-8, "
                         "version=1.0 and grant_type are required");
    }
    const std::optional<int64_t> sent = ParseBeijing(params["timestamp"]);
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    if (!sent || std::llabs(*sent - now) > kAlipayClockSkewSeconds) {
      return AlipayError(res, "40002", "Invalid Arguments",
                         "isv.invalid-timestamp",
                         "timestamp is not Beijing time within 10 minutes");
    }
    if (!keys_->app_public_key.valid()) {
      return AlipayError(res, "40002", "Invalid Arguments",
                         "isv.missing-signature-config",
                         "the mock was given no app public key");
    }
    if (!keys_->app_public_key.VerifyBase64(alipay::SignContent(params),
                                            params["sign"])) {
      return AlipayError(res, "40002", "Invalid Arguments",
                         "isv.invalid-signature", "sign does not verify");
    }
    if (code.empty() || code == "invalid") {
      return AlipayError(res, "40002", "Invalid Arguments", "isv.code-invalid",
                         "auth code is invalid");
    }
    if (code == "nodeerror") {
      const json node{{"code", "40002"},
                      {"msg", "Invalid Arguments"},
                      {"sub_code", "isv.code-invalid"},
                      {"sub_msg", "auth code is invalid"}};
      return Reply(res,
                   Signed("alipay_system_oauth_token_response", node.dump()));
    }
    if (code == "busy") {
      return AlipayError(res, "20000", "Service Currently Unavailable",
                         "isp.unknow-error", "system busy");
    }
    if (code == "limit") {
      return AlipayError(res, "40004", "Business Failed",
                         "isv.app-call-limited", "call limited");
    }
    if (code == "http:500") return Reply(res, "<html>error</html>", 500);
    std::optional<Login> login = Spend("alipay", appid, code, 0);
    if (!login) {
      return AlipayError(res, "40002", "Invalid Arguments", "isv.code-invalid",
                         "auth code has been used");
    }
    const std::string user = UserOf(code);
    // A stable 2088... user_id per (appid, user), as Alipay's are 16 digits.
    const std::string digest =
        crypto::HexEncode(crypto::Sha256(appid + ":" + user));
    std::string user_id = "2088";
    for (size_t i = 0; user_id.size() < 16; ++i) {
      user_id += static_cast<char>('0' + (digest[i] % 10));
    }
    const std::string token =
        "authbseB" + crypto::Base64UrlEncode(crypto::RandomBytes(12));
    if (user == "spaced") {
      // Unusual layout: sign first, spaces everywhere, keys unsorted, an
      // escaped character; the sign covers these exact bytes.
      const std::string node = "{ \"open_id\" : \"" + login->openid +
                               "\" ,\n  \"user_id\":\"" + user_id +
                               "\",   \"expires_in\" : 1296000 , \"nick\" : "
                               "\"\\u652f\\/ \" , \"access_token\":\"" +
                               token + "\" }";
      return Reply(
          res, "{  \"sign\" :\"" + keys_->mock_key.SignBase64(node) +
                   "\" ,\n \"alipay_system_oauth_token_response\" :  " + node +
                   "\n}\n");
    }
    json node{{"user_id", user_id},
              {"access_token", token},
              {"expires_in", 1296000},
              {"re_expires_in", 2592000},
              {"refresh_token", "refresh" + token}};
    if (user != "legacy") node["open_id"] = login->openid;
    if (login->unionid) node["union_id"] = *login->unionid;
    const std::string text = node.dump();
    if (user == "badsign") {
      // Signed over other bytes: the client must refuse it.
      return Reply(res, "{\"alipay_system_oauth_token_response\":" + text +
                            ",\"sign\":\"" +
                            keys_->mock_key.SignBase64(text + " ") + "\"}");
    }
    Reply(res, Signed("alipay_system_oauth_token_response", text));
  }

 private:
  MockPlatformHooks hooks_;
  std::shared_ptr<const MockAlipayKeys> keys_;
};

}  // namespace

void RegisterMockPlatformRoutes(httplib::Server& server,
                                MockPlatformHooks hooks,
                                std::shared_ptr<const MockAlipayKeys> keys) {
  auto routes = std::make_shared<Routes>(std::move(hooks), std::move(keys));
  server.Post("/api/apps/v2/jscode2session",
              [routes](const httplib::Request& req, httplib::Response& res) {
                routes->Douyin(req, res);
              });
  server.Post("/oauth2/mp/code2session",
              [routes](const httplib::Request& req, httplib::Response& res) {
                routes->Kuaishou(req, res);
              });
  server.Post("/oauth/jscode2sessionkey",
              [routes](const httplib::Request& req, httplib::Response& res) {
                routes->Baidu(req, res);
              });
  server.Post("/gateway.do",
              [routes](const httplib::Request& req, httplib::Response& res) {
                routes->Alipay(req, res);
              });
}

}  // namespace wxsession
