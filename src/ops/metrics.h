// Metrics: wxsessiond's counters, gauges and histograms, rendered in the
// Prometheus text exposition format (version 0.0.4) for GET /metrics.
//
// Every family has fixed label names, and every label value comes from a
// closed set: a route pattern (never a raw path), an HTTP status, an
// error-code name, a WeChat API name, "ok"/"error". Nothing per-user (an
// openid, a session id, an address) is ever a label, so the number of series
// stays bounded whatever clients send.
//
// Who reports what: the HTTP layer reports requests and login outcomes, the
// WeChat client wrapper (wechat_guard.h) reports upstream calls and bulkhead
// rejections, main.cc feeds the sweeper's results and the live-session gauge.
//
// Thread-safety: every method may be called from any thread; each report
// takes one short internal lock.
#ifndef WXSESSION_METRICS_H_
#define WXSESSION_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace wxsession {

class Metrics {
 public:
  // The Content-Type of RenderPrometheus()'s text.
  static constexpr const char* kContentType =
      "text/plain; version=0.0.4; charset=utf-8";

  // `version` becomes the label of wxsessiond_build_info.
  explicit Metrics(const std::string& version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One HTTP request answered: wxsessiond_http_requests_total{route,status}
  // and wxsessiond_http_request_duration_seconds{route}. `route` must be a
  // route pattern or a fixed word such as "unmatched".
  void ObserveHttpRequest(const std::string& route, int status, double seconds);

  // One POST /v1/login outcome: wxsessiond_logins_total{result}, where
  // result is "ok", "banned" (user_banned), "denied" (login_denied) or
  // another error-code name (ErrorCodeName).
  void CountLogin(const std::string& result);

  // One admin action (users, sessions, bans): wxsessiond_admin_actions_total
  // {action}, e.g. "ban".
  void CountAdminAction(const std::string& action);

  // One call to WeChat (or another platform), whatever its outcome:
  // wxsessiond_upstream_requests_total{api,result,platform} and
  // wxsessiond_upstream_request_duration_seconds{api,platform}. `result` is
  // "ok" or an error-code name; `platform` a PlatformName.
  void ObserveUpstreamCall(const std::string& api, const std::string& result,
                           double seconds,
                           const std::string& platform = "wechat");

  // A call refused by the upstream bulkhead before reaching the platform:
  // wxsessiond_upstream_rejected_total{api,platform}.
  void CountUpstreamRejected(const std::string& api,
                             const std::string& platform = "wechat");

  // Calls to WeChat in progress (wxsessiond_upstream_in_flight).
  void AddUpstreamInFlight(int delta);

  // One sweeper run: wxsessiond_sweeper_runs_total{result} and, when it
  // succeeded, wxsessiond_sweeper_deleted_sessions_total.
  void ObserveSweep(bool ok, int64_t deleted);

  // One JWT issued (tokens.*): wxsessiond_tokens_issued_total{algorithm},
  // algorithm "ES256" or "EdDSA".
  void CountTokenIssued(const std::string& algorithm);

  // One POST /v1/introspect answer: wxsessiond_introspections_total{result},
  // result "active", "inactive" or "unauthorized".
  void CountIntrospection(const std::string& result);

  // Where wxsessiond_live_sessions comes from; asked on every render. A
  // source answering nullopt (the store did not answer) leaves the gauge out
  // of that render rather than reporting a wrong number.
  void SetLiveSessionsSource(std::function<std::optional<int64_t>()> source);

  // Every family, in a fixed order, each with # HELP and # TYPE lines and
  // its series sorted by labels.
  std::string RenderPrometheus() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxsession

#endif  // WXSESSION_METRICS_H_
