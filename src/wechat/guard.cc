#include "wechat/guard.h"

#include <chrono>
#include <string>

#include "wechat/bulkhead.h"

namespace wxsession {
namespace {

// The API label of each call, as WeChat names the endpoint.
constexpr char kStableTokenApi[] = "stable_token";
constexpr char kPhoneNumberApi[] = "getuserphonenumber";
constexpr char kCheckSessionApi[] = "checksession";

// Seconds a refused caller should wait: places free up as soon as WeChat
// answers, which is sub-second when it is healthy.
constexpr int kBulkheadRetryAfterSeconds = 1;

class GuardedWeChatClient final : public WeChatClient {
 public:
  GuardedWeChatClient(WeChatClient& inner, const UpstreamGuardOptions& options,
                      Metrics* metrics)
      : inner_(inner),
        bulkhead_(options.max_concurrent, options.max_waiting),
        max_wait_(options.max_wait_ms),
        metrics_(metrics),
        platform_of_(options.platform_of) {}

  Result<WeChatSession> Code2Session(const std::string& appid,
                                     const std::string& secret,
                                     const std::string& code) override {
    const Platform platform = PlatformFor(appid);
    return Guarded<WeChatSession>(
        LoginApiName(platform),
        [&] { return inner_.Code2Session(appid, secret, code); }, platform);
  }

  Result<StableAccessToken> StableToken(const std::string& appid,
                                        const std::string& secret,
                                        bool force_refresh) override {
    return Guarded<StableAccessToken>(
        kStableTokenApi,
        [&] { return inner_.StableToken(appid, secret, force_refresh); },
        PlatformFor(appid));
  }

  // A phone or checksession call that finds the cached access_token stale
  // fetches a new one (through StableToken above) while holding its own
  // place: with the bulkhead full, that fetch waits at most max_wait_ms and
  // the calls fail with 503 rather than deadlock. Refreshes are rare (one per
  // token lifetime, single-flighted), so this costs nothing in practice.
  Result<PhoneNumber> GetPhoneNumber(AccessTokenSource& tokens,
                                     const std::string& appid,
                                     const std::string& code,
                                     const std::string& openid) override {
    return Guarded<PhoneNumber>(
        kPhoneNumberApi,
        [&] { return inner_.GetPhoneNumber(tokens, appid, code, openid); },
        PlatformFor(appid));
  }

  Result<bool> CheckSessionKey(AccessTokenSource& tokens,
                               const std::string& appid,
                               const std::string& openid,
                               const std::string& session_key) override {
    return Guarded<bool>(
        kCheckSessionApi,
        [&] {
          return inner_.CheckSessionKey(tokens, appid, openid, session_key);
        },
        PlatformFor(appid));
  }

 private:
  // Runs `call` inside the bulkhead and reports it. New WeChatClient
  // methods forward through here with their own API name.
  Platform PlatformFor(const std::string& appid) const {
    return platform_of_ ? platform_of_(appid) : Platform::kWeChat;
  }

  template <typename T, typename Call>
  Result<T> Guarded(const char* api, Call call, Platform platform) {
    const char* platform_name = PlatformName(platform);
    if (!bulkhead_.Enter(max_wait_)) {
      if (metrics_) metrics_->CountUpstreamRejected(api, platform_name);
      return Status::Fault(
                 ErrorCode::kUpstreamUnavailable,
                 std::string("too many calls to WeChat in progress (") +
                     "wechat.max_concurrent is " +
                     std::to_string(bulkhead_.max_concurrent()) +
                     "); try again shortly")
          .set_retry_after(kBulkheadRetryAfterSeconds);
    }
    if (metrics_) metrics_->AddUpstreamInFlight(1);
    const auto started = std::chrono::steady_clock::now();
    Result<T> result = call();
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - started)
                               .count();
    bulkhead_.Leave();
    if (metrics_) {
      metrics_->AddUpstreamInFlight(-1);
      metrics_->ObserveUpstreamCall(
          api, result.ok() ? "ok" : ErrorCodeName(result.status().code()),
          seconds, platform_name);
    }
    return result;
  }

  WeChatClient& inner_;
  Bulkhead bulkhead_;                         // guards itself
  const std::chrono::milliseconds max_wait_;  // constant after construction
  Metrics* const metrics_;                    // thread-safe; may be null
  // Constant after construction; may be empty (all WeChat).
  const std::function<Platform(const std::string&)> platform_of_;
};

}  // namespace

std::unique_ptr<WeChatClient> NewGuardedWeChatClient(
    WeChatClient& inner, const UpstreamGuardOptions& options,
    Metrics* metrics) {
  return std::make_unique<GuardedWeChatClient>(inner, options, metrics);
}

}  // namespace wxsession
