// AccessTokenCentre: see access_token.h for the algorithm.
#include "wxsession/access_token.h"
#include "wxsession/thread_annotations.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <utility>

#include "wxsession/crypto.h"

namespace wxsession {

// What this process knows about one app's refreshes.
struct AccessTokenCentre::AppState {
  // The refresh this process is running for the app; valid() while one
  // runs. Callers that arrive meanwhile share its outcome.
  std::shared_future<Result<AccessToken>> flight;
  // Unix seconds; while the cached token still works, no refresh starts
  // before this (see kRetryIntervalSeconds).
  int64_t next_attempt_at = 0;
  // Whether, and when (unix seconds), this process last called
  // stable_token with force_refresh for the app.
  bool forced_before = false;
  int64_t last_forced_at = 0;
};

namespace {

// Seconds a client should wait when another process's refresh is late:
// refreshes take a WeChat round trip, so a second is plenty.
constexpr int kWaitRetryAfterSeconds = 1;

// Bytes of randomness in a lease owner name: enough that two processes never
// pick the same one.
constexpr size_t kLeaseOwnerRandomBytes = 8;

}  // namespace

AccessTokenCentre::Options AccessTokenCentre::OptionsFor(
    int64_t wechat_timeout_ms) {
  Options options;
  options.lease_ms = std::max<int64_t>(kMinLeaseMs, 3 * wechat_timeout_ms);
  options.wait_ms = 2 * options.lease_ms;
  return options;
}

AccessTokenCentre::AccessTokenCentre(const Config& config, SessionStore& store,
                                     WeChatClient& wechat, const Clock& clock,
                                     Options options)
    : config_(config),
      store_(store),
      wechat_(wechat),
      clock_(clock),
      options_(options),
      lease_owner_(
          "pid" + std::to_string(::getpid()) + "-" +
          crypto::HexEncode(crypto::RandomBytes(kLeaseOwnerRandomBytes))) {}

AccessTokenCentre::~AccessTokenCentre() = default;

Result<AccessToken> AccessTokenCentre::Get(const std::string& appid) {
  return Obtain(appid, "");
}

Result<std::string> AccessTokenCentre::AccessTokenFor(
    const std::string& appid) {
  Result<AccessToken> token = Obtain(appid, "");
  if (!token.ok()) return token.status();
  return std::move(token.value().token);
}

Result<std::string> AccessTokenCentre::ReplaceRejectedAccessToken(
    const std::string& appid, const std::string& rejected) {
  if (rejected.empty()) {
    return Status::Fault(ErrorCode::kInternal,
                         "no rejected access_token given");
  }
  Result<AccessToken> token = Obtain(appid, rejected);
  if (!token.ok()) return token.status();
  return std::move(token.value().token);
}

bool AccessTokenCentre::Acceptable(const AccessToken& token, int64_t now,
                                   const std::string& rejected) const {
  if (!rejected.empty()) {
    // Any working token but the rejected one will do: refreshing again
    // would only spend a forced refresh.
    return token.token != rejected && token.expires_at > now;
  }
  return token.expires_at - now > kRefreshMarginSeconds;
}

Result<AccessToken> AccessTokenCentre::Obtain(const std::string& requested,
                                              const std::string& rejected) {
  Result<const AppConfig*> found = config_.AppFor(requested);
  if (!found.ok()) return found.status();
  const AppConfig* app = found.value();

  // A forced caller may find a plain refresh already running here. It waits
  // for that one and, if it did not replace the rejected token, runs its
  // own: hence two rounds.
  for (int round = 0; round < 2; ++round) {
    bool again = false;
    Result<AccessToken> outcome = ObtainRound(*app, rejected, &again);
    if (!again) return outcome;
  }
  return Status::Fault(
      ErrorCode::kUpstreamError,
      "WeChat keeps rejecting the access_token of " + app->appid);
}

Result<AccessToken> AccessTokenCentre::ObtainRound(const AppConfig& app,
                                                   const std::string& rejected,
                                                   bool* again) {
  const std::string& appid = app.appid;
  const bool forced = !rejected.empty();
  const int64_t now = clock_.Now();
  StoredToken look = ReadStored(appid, now, rejected);
  if (look.done) return std::move(look.token);
  const Result<AccessToken>& cached = look.token;
  // Inside the refresh margin but not expired: it may still be answered
  // while a refresh is under way or failing.
  const bool still_works = !forced && cached.ok() && cached->expires_at > now;

  AppState* state = nullptr;
  bool recently_forced = false;
  std::promise<Result<AccessToken>> promise;
  std::shared_future<Result<AccessToken>> running;
  {
    MutexLock lock(mutex_);
    std::unique_ptr<AppState>& slot = apps_[appid];
    if (!slot) slot = std::make_unique<AppState>();
    state = slot.get();
    if (state->flight.valid()) {
      if (still_works) return cached;
      running = state->flight;
    } else {
      if (still_works && now < state->next_attempt_at) return cached;
      if (forced && state->forced_before &&
          now - state->last_forced_at < kMinForceIntervalSeconds) {
        recently_forced = true;
      } else {
        state->flight = promise.get_future().share();
      }
    }
  }

  if (recently_forced) return AfterRecentForce(appid, rejected);
  if (running.valid()) {
    Result<AccessToken> shared = running.get();
    if (!forced) return shared;
    if (shared.ok() && shared->token != rejected) return shared;
    *again = true;
    return shared;
  }

  // This caller refreshes; everyone else in the process waits for it.
  Result<AccessToken> refreshed = LeadRefresh(app, rejected, now, state);
  if (!refreshed.ok() && still_works) refreshed = cached;
  promise.set_value(refreshed);
  return refreshed;
}

AccessTokenCentre::StoredToken AccessTokenCentre::ReadStored(
    const std::string& appid, int64_t now, const std::string& rejected) const {
  StoredToken stored{store_.GetAccessToken(appid)};
  const Result<AccessToken>& token = stored.token;
  stored.done = token.ok() ? Acceptable(token.value(), now, rejected)
                           : token.status().code() != ErrorCode::kNotFound;
  return stored;
}

Result<AccessToken> AccessTokenCentre::AfterRecentForce(
    const std::string& appid, const std::string& rejected) {
  // Another caller's forced refresh may have finished between our read
  // of the store and taking the lock: its token is the answer.
  Result<AccessToken> latest = store_.GetAccessToken(appid);
  if (latest.ok() && Acceptable(latest.value(), clock_.Now(), rejected)) {
    return latest;
  }
  return Status::Fault(ErrorCode::kUpstreamError,
                       "WeChat rejected the access_token of " + appid +
                           " that was force-refreshed moments ago; not "
                           "forcing another (WeChat allows one per 30 s)");
}

Result<AccessToken> AccessTokenCentre::LeadRefresh(const AppConfig& app,
                                                   const std::string& rejected,
                                                   int64_t now,
                                                   AppState* state) {
  bool called_with_force = false;
  Result<AccessToken> refreshed =
      Status::Fault(ErrorCode::kInternal, "access token refresh did not run");
  try {
    refreshed = RefreshAcrossProcesses(app, rejected, &called_with_force);
  } catch (...) {
    // Only allocation failure can get here; followers must still be
    // released.
    refreshed =
        Status::Fault(ErrorCode::kInternal,
                      "unexpected error while refreshing the access_token");
  }
  MutexLock lock(mutex_);
  state->flight = {};
  state->next_attempt_at = now + kRetryIntervalSeconds;
  if (called_with_force) {
    state->forced_before = true;
    state->last_forced_at = now;
  }
  return refreshed;
}

Result<AccessToken> AccessTokenCentre::RefreshAcrossProcesses(
    const AppConfig& app, const std::string& rejected,
    bool* called_with_force) {
  const std::string& appid = app.appid;
  const bool forced = !rejected.empty();
  const int64_t poll_ms = std::max<int64_t>(1, options_.poll_interval_ms);
  const int64_t max_polls = std::max<int64_t>(1, options_.wait_ms / poll_ms);
  for (int64_t poll = 0;; ++poll) {
    const int64_t now = clock_.Now();
    // Another process may have finished a refresh since the last look.
    StoredToken look = ReadStored(appid, now, rejected);
    if (look.done) return std::move(look.token);
    const Result<AccessToken>& cached = look.token;

    Result<bool> taken = store_.TryLockTokenRefresh(
        appid, lease_owner_, now * 1000, options_.lease_ms);
    if (!taken.ok()) return taken.status();
    if (taken.value()) {
      Result<AccessToken> outcome =
          RefreshUnderLease(app, rejected, called_with_force);
      // A failed release is harmless: the lease runs out by itself.
      (void)store_.UnlockTokenRefresh(appid, lease_owner_);
      return outcome;
    }

    // Another process is refreshing.
    if (!forced && cached.ok() && cached->expires_at > now) return cached;
    if (poll + 1 >= max_polls) {
      return Status::Fault(ErrorCode::kUpstreamUnavailable,
                           "another wxsessiond process is refreshing the "
                           "access_token of " +
                               appid + " and has not finished in " +
                               std::to_string(options_.wait_ms) + " ms")
          .set_retry_after(kWaitRetryAfterSeconds);
    }
    clock_.SleepFor(poll_ms);
  }
}

Result<AccessToken> AccessTokenCentre::RefreshUnderLease(
    const AppConfig& app, const std::string& rejected,
    bool* called_with_force) {
  const std::string& appid = app.appid;
  // The holder before us may have stored a new token between our read
  // and taking the lease.
  Result<AccessToken> latest = store_.GetAccessToken(appid);
  if (!latest.ok() && latest.status().code() != ErrorCode::kNotFound) {
    return latest.status();
  }
  if (latest.ok() && Acceptable(latest.value(), clock_.Now(), rejected)) {
    return latest;
  }
  *called_with_force = !rejected.empty();
  Result<StableAccessToken> fetched =
      wechat_.StableToken(appid, app.secret, !rejected.empty());
  if (!fetched.ok()) return fetched.status();
  AccessToken token{appid, fetched->access_token,
                    clock_.Now() + fetched->expires_in};
  // Unstored, every later call would fetch again; better a clear
  // store error than a stream of upstream calls.
  Status stored = store_.PutAccessToken(token);
  if (!stored.ok()) return stored;
  return token;
}

}  // namespace wxsession
