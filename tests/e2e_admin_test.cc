// End to end (issue 15): users, sessions and bans over the admin API and
// the CLI, the per-user cap and the login hook, with the real binary
// against mock-wechat.
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/hmac.h>

#include <signal.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::ExpectError;
using testing_support::RunCommand;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

constexpr char kAdminToken[] = "admin-0123456789abcdef-must-never-leak";
constexpr char kHookSecret[] = "hook-secret-must-never-leak";

std::string AdminConfig(const TempDir& dir, const std::string& extra) {
  const std::string path = dir.File("admin_token");
  WriteFile(path, std::string(kAdminToken) + "\n");
  std::string config =
      R"("admin": {"token_file": ")" + path + R"("}, "expose_openid": true)";
  if (!extra.empty()) config += ",\n  " + extra;
  return config;
}

class AdminE2E : public ::testing::Test {
 protected:
  explicit AdminE2E(const std::string& extra = "")
      : fixture_(AdminConfig(admin_dir_, extra)) {}
  void SetUp() override { ASSERT_TRUE(fixture_.Start()); }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", fixture_.port());
    client.set_read_timeout(10, 0);
    return client;
  }
  httplib::Headers Admin() {
    return {{"Authorization", std::string("Bearer ") + kAdminToken}};
  }
  httplib::Result Login(const std::string& code) {
    return Client().Post("/v1/login", json{{"code", code}}.dump(),
                         "application/json");
  }
  // {session_id, openid} of a successful login.
  std::pair<std::string, std::string> LoginOk(const std::string& code) {
    auto res = Login(code);
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 200) << res->body;
    json body = json::parse(res->body, nullptr, false);
    return {body.value("session_id", ""), body.value("openid", "")};
  }
  int SessionStatus(const std::string& id) {
    auto res = Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
    return res ? res->status : -1;
  }
  std::string UserPath(const std::string& openid) {
    return std::string("/v1/admin/users/") + ServerFixture::kAppId + "/" +
           openid;
  }
  json GetJson(const std::string& path, int expected_status = 200) {
    auto res = Client().Get(path.c_str(), Admin());
    EXPECT_TRUE(res);
    if (!res) return json();
    EXPECT_EQ(res->status, expected_status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Cache-Control"), "no-store");
    return json::parse(res->body, nullptr, false);
  }
  std::string Metrics() {
    auto res = Client().Get("/metrics");
    return res ? res->body : "";
  }

  TempDir admin_dir_;  // before fixture_: it holds the admin token file
  ServerFixture fixture_;
};

TEST_F(AdminE2E, ListRevokeOneBanUnbanAndALapsedBan) {
  auto [first, openid] = LoginOk("alice.1");
  auto second = LoginOk("alice.2").first;
  auto third = LoginOk("alice.3").first;
  ASSERT_FALSE(openid.empty());

  json user = GetJson(UserPath(openid));
  EXPECT_EQ(user["appid"], ServerFixture::kAppId);
  EXPECT_EQ(user["openid"], openid);
  EXPECT_EQ(user["sessions"], 3);
  EXPECT_EQ(user["platform"], "wechat");
  EXPECT_TRUE(user["ban"].is_null());
  EXPECT_TRUE(user["created_at"].is_number_integer());
  EXPECT_TRUE(user["last_login_at"].is_number_integer());
  EXPECT_TRUE(user.contains("unionid"));

  json list = GetJson(UserPath(openid) + "/sessions");
  ASSERT_EQ(list["sessions"].size(), 3u);
  const std::string handle = crypto::HexEncode(crypto::Sha256(first));
  bool listed = false;
  for (const json& s : list["sessions"]) {
    listed = listed || s["handle"] == handle;
    EXPECT_TRUE(s["expires_at"].is_number_integer());
  }
  EXPECT_TRUE(listed);
  // Newest first: the third login leads (same second: login order).
  EXPECT_EQ(list["sessions"][0]["handle"],
            crypto::HexEncode(crypto::Sha256(third)));

  // Revoke one: that id is 401, the others live.
  auto revoked =
      Client().Delete(("/v1/admin/sessions/" + handle).c_str(), Admin());
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 204);
  EXPECT_EQ(SessionStatus(first), 401);
  EXPECT_EQ(SessionStatus(second), 200);
  EXPECT_EQ(SessionStatus(third), 200);
  ExpectError(
      Client().Delete(("/v1/admin/sessions/" + handle).c_str(), Admin()), 404,
      "not_found");
  ExpectError(Client().Delete("/v1/admin/sessions/ABC", Admin()), 400,
              "invalid_request");
  ExpectError(Client().Get(UserPath(openid).c_str()), 401, "unauthorized");
  ExpectError(Client().Get("/v1/admin/users/wxnotconfigured/o1", Admin()), 400,
              "unknown_app");
  ExpectError(Client().Get(UserPath("nobody").c_str(), Admin()), 404,
              "not_found");

  // Ban: every session ends, logins are refused, /v1/auth is 401.
  auto banned = Client().Put((UserPath(openid) + "/ban").c_str(), Admin(),
                             json{{"reason", "chargeback fraud"}}.dump(),
                             "application/json");
  ASSERT_TRUE(banned);
  ASSERT_EQ(banned->status, 200) << banned->body;
  json banned_user = json::parse(banned->body);
  EXPECT_EQ(banned_user["ban"]["reason"], "chargeback fraud");
  EXPECT_TRUE(banned_user["ban"]["until"].is_null());
  EXPECT_EQ(banned_user["sessions"], 0);
  EXPECT_EQ(SessionStatus(second), 401);
  EXPECT_EQ(SessionStatus(third), 401);
  auto auth = Client().Get("/v1/auth", {{"Authorization", "Bearer " + third}});
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->status, 401);
  auto refused = Login("alice.4");
  ExpectError(refused, 403, "user_banned");
  ASSERT_TRUE(refused);
  EXPECT_EQ(json::parse(refused->body)["message"], "this account is suspended");
  EXPECT_EQ(refused->body.find("chargeback"), std::string::npos);

  json bans =
      GetJson(std::string("/v1/admin/bans?appid=") + ServerFixture::kAppId);
  ASSERT_EQ(bans["bans"].size(), 1u);
  EXPECT_EQ(bans["bans"][0]["openid"], openid);
  EXPECT_EQ(bans["bans"][0]["reason"], "chargeback fraud");

  // Unban: logins work again.
  auto lifted = Client().Delete((UserPath(openid) + "/ban").c_str(), Admin());
  ASSERT_TRUE(lifted);
  EXPECT_EQ(lifted->status, 204);
  ExpectError(Client().Delete((UserPath(openid) + "/ban").c_str(), Admin()),
              404, "not_found");
  EXPECT_EQ(SessionStatus(LoginOk("alice.5").first), 200);

  // A ban whose until is past is accepted and lapsed at once.
  const int64_t past = static_cast<int64_t>(std::time(nullptr)) - 10;
  auto lapsed = Client().Put((UserPath(openid) + "/ban").c_str(), Admin(),
                             json{{"reason", "old"}, {"until", past}}.dump(),
                             "application/json");
  ASSERT_TRUE(lapsed);
  EXPECT_EQ(lapsed->status, 200) << lapsed->body;
  EXPECT_TRUE(json::parse(lapsed->body)["ban"].is_null());
  EXPECT_EQ(SessionStatus(LoginOk("alice.6").first), 200);

  // A ban on an openid that never logged in creates its user.
  auto fresh =
      Client().Put((UserPath("oNeverSeen") + "/ban").c_str(), Admin(),
                   json{{"reason", "pre-emptive"}}.dump(), "application/json");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->status, 200) << fresh->body;
  EXPECT_TRUE(json::parse(fresh->body)["last_login_at"].is_null());
  ExpectError(Client().Put((UserPath(openid) + "/ban").c_str(), Admin(),
                           json{{"until", 5}}.dump(), "application/json"),
              400, "invalid_request");

  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("wxsessiond_admin_actions_total{action=\"ban\"} 3"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("wxsessiond_logins_total{result=\"banned\"} 1"),
            std::string::npos);
  fixture_.StopServer(SIGTERM);
  const std::string log = fixture_.server()->Stderr();
  EXPECT_NE(log.find("\"event\":\"admin_action\""), std::string::npos);
  EXPECT_NE(log.find("\"action\":\"revoke_session\""), std::string::npos);
  EXPECT_NE(log.find("\"handle\":\"" + handle + "\""), std::string::npos);
  EXPECT_EQ(log.find(kAdminToken), std::string::npos);
}

TEST_F(AdminE2E, CliListsBansAndUnbansWhileTheServerRuns) {
  auto [id, openid] = LoginOk("carol.1");
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath(), args[0], "--config", fixture_.config_path()});
    args.erase(args.begin() + 4);
    return RunCommand(args);
  };
  auto sessions = cli({"sessions", "--openid", openid, "--json"});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.err;
  json listed = json::parse(sessions.out);
  ASSERT_EQ(listed["sessions"].size(), 1u);
  EXPECT_EQ(listed["sessions"][0]["handle"],
            crypto::HexEncode(crypto::Sha256(id)));
  auto table = cli({"sessions", "--openid", openid});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find(crypto::HexEncode(crypto::Sha256(id))),
            std::string::npos);

  auto ban = cli({"ban", "--openid", openid, "--reason", "abuse", "--appid",
                  ServerFixture::kAppId});
  ASSERT_EQ(ban.exit_code, 0) << ban.err;
  EXPECT_EQ(json::parse(ban.out)["ban"]["reason"], "abuse");
  // An admin action from the CLI writes its log line too (on stderr).
  EXPECT_NE(ban.err.find("\"event\":\"admin_action\""), std::string::npos)
      << ban.err;
  EXPECT_NE(ban.err.find("\"action\":\"ban\""), std::string::npos) << ban.err;
  EXPECT_EQ(SessionStatus(id), 401);
  ExpectError(Login("carol.2"), 403, "user_banned");

  auto unban = cli({"unban", "--openid", openid});
  ASSERT_EQ(unban.exit_code, 0) << unban.err;
  EXPECT_EQ(SessionStatus(LoginOk("carol.3").first), 200);
  EXPECT_EQ(cli({"unban", "--openid", openid}).exit_code, 1);
  EXPECT_EQ(cli({"ban", "--openid", openid}).exit_code, 2);  // no --reason
  EXPECT_EQ(cli({"ban", "--openid", "a b", "--reason", "x"}).exit_code, 1);
  EXPECT_EQ(
      cli({"sessions", "--openid", openid, "--appid", "wxnope"}).exit_code, 1);
}

class CapE2E : public AdminE2E {
 protected:
  CapE2E() : AdminE2E(R"("session": {"max_per_user": 2})") {}
};

TEST_F(CapE2E, ThreeLoginsLeaveTheTwoNewest) {
  auto first = LoginOk("dave.1").first;
  auto second = LoginOk("dave.2").first;
  auto [third, openid] = LoginOk("dave.3");
  EXPECT_EQ(SessionStatus(first), 401);
  EXPECT_EQ(SessionStatus(second), 200);
  EXPECT_EQ(SessionStatus(third), 200);
  EXPECT_EQ(GetJson(UserPath(openid))["sessions"], 2);
}

// A tiny hook server in the test: answers as `mode` says and checks each
// call's signature with OpenSSL's HMAC directly (not wxsessiond's code).
class HookServer {
 public:
  enum class Mode { kAllow, kDeny, kStall };

  HookServer() {
    server_.Post(
        "/hook", [this](const httplib::Request& req, httplib::Response& res) {
          {
            std::lock_guard<std::mutex> lock(mutex_);
            bodies_.push_back(req.body);
            signatures_ok_ = signatures_ok_ && SignatureHolds(req);
          }
          if (mode_ == Mode::kDeny) {
            res.status = 403;
            res.set_content(json{{"message", std::string(300, 'x')}}.dump(),
                            "application/json");
            return;
          }
          if (mode_ == Mode::kStall) {
            std::unique_lock<std::mutex> lock(mutex_);
            released_.wait(lock, [this] { return released; });
          }
          res.status = 204;
        });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~HookServer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released = true;
    }
    released_.notify_all();
    server_.stop();
    thread_.join();
  }

  static bool SignatureHolds(const httplib::Request& req) {
    const std::string header = req.get_header_value("X-WXS-Signature");
    const size_t comma = header.find(",v1=");
    if (header.rfind("t=", 0) != 0 || comma == std::string::npos) return false;
    const std::string t = header.substr(2, comma - 2);
    const long long age =
        static_cast<long long>(std::time(nullptr)) - std::stoll(t);
    if (age > 300 || age < -300) return false;
    const std::string signed_text = t + "." + req.body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), kHookSecret, static_cast<int>(strlen(kHookSecret)),
         reinterpret_cast<const unsigned char*>(signed_text.data()),
         signed_text.size(), mac, &length);
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
      hex += kDigits[mac[i] >> 4];
      hex += kDigits[mac[i] & 0xf];
    }
    return header.substr(comma + 4) == hex;
  }

  int port() const { return port_; }
  void set_mode(Mode mode) { mode_ = mode; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bodies_;
  }
  bool signatures_ok() {
    std::lock_guard<std::mutex> lock(mutex_);
    return signatures_ok_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<Mode> mode_{Mode::kAllow};
  std::mutex mutex_;
  std::condition_variable released_;  // with mutex_
  bool released = false;              // mutex_
  std::vector<std::string> bodies_;   // mutex_
  bool signatures_ok_ = true;         // mutex_
};

std::string HookConfig(const TempDir& dir, int port, const char* policy) {
  const std::string secret = dir.File("hook_secret");
  WriteFile(secret, std::string(kHookSecret) + "\n");
  return R"("hooks": {"login_url": "http://127.0.0.1:)" + std::to_string(port) +
         R"(/hook", "secret_file": ")" + secret +
         R"(", "timeout": "300ms", "on_failure": ")" + policy + R"("})";
}

class HookAllowE2E : public AdminE2E {
 protected:
  HookAllowE2E() : AdminE2E(HookConfig(hook_dir_, hook_.port(), "allow")) {}
  static TempDir hook_dir_;
  static HookServer hook_;
};
TempDir HookAllowE2E::hook_dir_;
HookServer HookAllowE2E::hook_;

TEST_F(HookAllowE2E, AllowsDeniesAndTimesOutOpen) {
  hook_.set_mode(HookServer::Mode::kAllow);
  auto [id, openid] = LoginOk("erin.1");
  EXPECT_EQ(SessionStatus(id), 200);
  // An idempotent retry of the same code does not call the hook again.
  auto again = Login("erin.1");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  std::vector<std::string> calls = hook_.bodies();
  ASSERT_EQ(calls.size(), 1u);
  json event = json::parse(calls[0]);
  EXPECT_EQ(event["event"], "login");
  EXPECT_EQ(event["appid"], ServerFixture::kAppId);
  EXPECT_EQ(event["openid"], openid);
  EXPECT_EQ(event["new_user"], true);
  EXPECT_EQ(event["client"], "127.0.0.1");
  EXPECT_EQ(event["platform"], "wechat");
  EXPECT_TRUE(event.contains("unionid"));
  LoginOk("erin.2");
  EXPECT_EQ(json::parse(hook_.bodies().back())["new_user"], false);
  EXPECT_TRUE(hook_.signatures_ok());

  hook_.set_mode(HookServer::Mode::kDeny);
  auto denied = Login("erin.3");
  ExpectError(denied, 403, "login_denied");
  ASSERT_TRUE(denied);
  EXPECT_EQ(json::parse(denied->body)["message"], std::string(200, 'x'));
  EXPECT_EQ(GetJson(UserPath(openid))["sessions"], 2);

  hook_.set_mode(HookServer::Mode::kStall);  // past hooks.timeout: allowed
  EXPECT_EQ(SessionStatus(LoginOk("erin.4").first), 200);

  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("wxsessiond_logins_total{result=\"denied\"} 1"),
            std::string::npos)
      << metrics;
  fixture_.StopServer(SIGTERM);
  EXPECT_EQ(fixture_.server()->Stderr().find(kHookSecret), std::string::npos);
}

class HookDenyE2E : public AdminE2E {
 protected:
  HookDenyE2E() : AdminE2E(HookConfig(hook_dir_, hook_.port(), "deny")) {}
  static TempDir hook_dir_;
  static HookServer hook_;
};
TempDir HookDenyE2E::hook_dir_;
HookServer HookDenyE2E::hook_;

TEST_F(HookDenyE2E, ATimeoutRefusesWithHookUnavailable) {
  hook_.set_mode(HookServer::Mode::kAllow);
  EXPECT_EQ(SessionStatus(LoginOk("frank.1").first), 200);
  hook_.set_mode(HookServer::Mode::kStall);
  ExpectError(Login("frank.2"), 503, "hook_unavailable");
  hook_.set_mode(HookServer::Mode::kDeny);
  ExpectError(Login("frank.3"), 403, "login_denied");
  EXPECT_TRUE(hook_.signatures_ok());
}

}  // namespace
}  // namespace wxsession
