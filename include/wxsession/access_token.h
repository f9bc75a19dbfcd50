// AccessTokenCentre: one WeChat access_token per app, shared by every thread
// and every process that uses the same store.
//
// WeChat's server APIs (phone number, checksession, subscribe messages, QR
// codes) need an access_token. When several processes fetch their own they
// step on each other, so the token lives in the store (SessionStore::
// GetAccessToken / PutAccessToken): every process on the host reads the same
// one, and it survives restarts. Tokens come from WeChat's stable_token API,
// never the legacy /cgi-bin/token.
//
// Refreshing. A cached token is used until kRefreshMarginSeconds before it
// expires. Then one caller refreshes it:
//   - in this process, concurrent callers share one refresh (single flight);
//   - across processes, the refresher holds the store's refresh lease
//     (TryLockTokenRefresh); a process that finds the lease taken uses the
//     cached token while it is still valid, or else polls the store every
//     poll_interval_ms until the new token appears, taking the lease itself
//     once the holder's lease runs out (a crashed holder), and gives up with
//     kUpstreamUnavailable after wait_ms.
// So 100 concurrent callers with no cached token cause one upstream call.
// While a cached token still works, a failed refresh is not an error: the
// old token is answered and the refresh is tried again after
// kRetryIntervalSeconds.
//
// A rejected token (WeChat answered 40001/42001 to a call that used it) is
// replaced with force_refresh, once: callers that report the same token
// share one forced refresh, and a token someone else has already replaced
// is simply handed out.
//
// Time: expiry and the lease use the injected Clock's wall time (whole
// seconds; leases in the store are those seconds in milliseconds, comparable
// across processes); waiting for another process counts polls of
// poll_interval_ms, each a Clock::SleepFor, which a ManualClock passes at
// once.
//
// Thread-safety: every method may be called concurrently.
#ifndef WXSESSION_ACCESS_TOKEN_H_
#define WXSESSION_ACCESS_TOKEN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "wxsession/clock.h"
#include "wxsession/config.h"
#include "wxsession/status.h"
#include "wxsession/store.h"
#include "wxsession/thread_annotations.h"
#include "wxsession/wechat.h"

namespace wxsession {

class AccessTokenCentre final : public AccessTokenSource {
 public:
  // Seconds before expiry at which a token is refreshed. stable_token hands
  // out a new token only in the last 5 minutes (300 s) of the old one's
  // life; refreshing at 240 s lands inside that window, so the refresh
  // really gets a new token, and leaves 4 minutes for a failing refresh to
  // be retried while the old token still works.
  static constexpr int64_t kRefreshMarginSeconds = 240;
  // Seconds between refresh attempts while the cached token still works:
  // a failing (or not yet rotating) WeChat is asked at most this often per
  // process instead of on every request.
  static constexpr int64_t kRetryIntervalSeconds = 10;
  // Seconds between two forced refreshes of one app: WeChat allows
  // force_refresh 20 times a day, 30 s apart.
  static constexpr int64_t kMinForceIntervalSeconds = 30;
  // Milliseconds a refresh lease lasts at least. A refresh is one
  // stable_token call, retried once at most, at the default 5 s timeout:
  // 10 s plus a store write. 30 s covers that with room, and is the longest
  // a crashed holder can hold the other processes back.
  static constexpr int64_t kMinLeaseMs = 30'000;
  // Milliseconds between looks at the store while another process
  // refreshes. A refresh is one WeChat round trip (tens to hundreds of ms),
  // so this adds little delay; each look is one indexed read.
  static constexpr int64_t kPollIntervalMs = 50;

  struct Options {
    int64_t lease_ms = kMinLeaseMs;
    int64_t poll_interval_ms = kPollIntervalMs;
    // How long a caller waits for another process's refresh before
    // kUpstreamUnavailable: the holder's whole lease, then one refresh of
    // our own.
    int64_t wait_ms = 2 * kMinLeaseMs;
  };

  // Options for a WeChat client with `wechat_timeout_ms` per call: the
  // lease outlasts two tries with room (3 x timeout), never below
  // kMinLeaseMs.
  static Options OptionsFor(int64_t wechat_timeout_ms);

  // `config`, `store`, `wechat` and `clock` must outlive the centre.
  AccessTokenCentre(const Config& config, SessionStore& store,
                    WeChatClient& wechat, const Clock& clock, Options options);
  AccessTokenCentre(const Config& config, SessionStore& store,
                    WeChatClient& wechat, const Clock& clock)
      : AccessTokenCentre(config, store, wechat, clock, Options()) {}
  ~AccessTokenCentre() override;

  // A token for `appid` (may be empty when exactly one app is configured)
  // that is valid now, refreshed as described above. Errors: kInvalidRequest
  // (appid empty among several apps), kUnknownApp, kStoreUnavailable,
  // kUpstreamUnavailable (WeChat unreachable, or another process's refresh
  // did not finish within wait_ms), and what WeChatClient::StableToken
  // answers.
  Result<AccessToken> Get(const std::string& appid);

  // AccessTokenSource: Get(appid)'s token.
  Result<std::string> AccessTokenFor(const std::string& appid) override;
  // AccessTokenSource: a token other than `rejected`. Errors as Get, plus
  // kUpstreamError when WeChat rejected a token this process force-refreshed
  // less than kMinForceIntervalSeconds ago.
  Result<std::string> ReplaceRejectedAccessToken(
      const std::string& appid, const std::string& rejected) override;

 private:
  struct AppState;

  // Get and ReplaceRejectedAccessToken: `rejected` empty for a plain Get.
  Result<AccessToken> Obtain(const std::string& appid,
                             const std::string& rejected);
  // One round of Obtain. Sets *again when a forced caller waited for a
  // plain refresh that did not replace the rejected token.
  Result<AccessToken> ObtainRound(const AppConfig& app,
                                  const std::string& rejected, bool* again);
  // The answer when this process forced a refresh moments ago: the token
  // that refresh stored, if it is acceptable.
  Result<AccessToken> AfterRecentForce(const std::string& appid,
                                       const std::string& rejected);
  // Runs the process's one refresh of `app`, which began at `now`, and
  // records it in `state`.
  Result<AccessToken> LeadRefresh(const AppConfig& app,
                                  const std::string& rejected, int64_t now,
                                  AppState* state);
  // Refreshes under the store's lease (or waits for whoever holds it).
  // Sets *called_with_force when it called stable_token with force_refresh.
  Result<AccessToken> RefreshAcrossProcesses(const AppConfig& app,
                                             const std::string& rejected,
                                             bool* called_with_force);
  // RefreshAcrossProcesses' work once it holds the store's lease.
  Result<AccessToken> RefreshUnderLease(const AppConfig& app,
                                        const std::string& rejected,
                                        bool* called_with_force);
  // What the store holds for an app at one look: `token` (kNotFound when
  // none), and `done` when that alone answers the caller: a token that can
  // be answered as it is, or a store failure to pass on.
  struct StoredToken {
    Result<AccessToken> token;
    bool done = false;
  };
  StoredToken ReadStored(const std::string& appid, int64_t now,
                         const std::string& rejected) const;
  // Whether `token` can be answered without a refresh.
  bool Acceptable(const AccessToken& token, int64_t now,
                  const std::string& rejected) const;

  const Config& config_;   // constant after construction
  SessionStore& store_;    // thread-safe by contract
  WeChatClient& wechat_;   // thread-safe by contract
  const Clock& clock_;     // thread-safe by contract
  const Options options_;  // constant after construction
  // Names this process in the store's lease. Constant after construction.
  const std::string lease_owner_;

  Mutex mutex_;
  // appid -> refresh state.
  std::map<std::string, std::unique_ptr<AppState>> apps_ GUARDED_BY(mutex_);
};

}  // namespace wxsession

#endif  // WXSESSION_ACCESS_TOKEN_H_
