// Metrics in memory, rendered as Prometheus text (exposition format 0.0.4).
//
// Each family keeps its series in a std::map keyed by label values, so the
// render is sorted and stable (diffable scrapes, deterministic tests). One
// mutex guards everything: a report is a map lookup and a few additions, far
// cheaper than the request it describes, so contention is not a concern at
// the request rates one wxsessiond serves.
#include "ops/metrics.h"
#include "wxsession/thread_annotations.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace wxsession {
namespace {

using LabelValues = std::vector<std::string>;

// Seconds. HTTP answers are mostly sub-millisecond lookups, with logins
// bounded by the WeChat timeout (5 s by default), so the buckets span both.
const std::vector<double> kHttpBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,  0.1,    0.25,  0.5,
                                          1,      2.5,   5,      10};
// Seconds. WeChat answers in tens to hundreds of milliseconds when healthy;
// the top buckets catch timeouts.
const std::vector<double> kUpstreamBuckets = {0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,  1,     2.5,  5,   10};

struct CounterFamily {
  const char* name;
  const char* help;
  std::vector<std::string> label_names;
  std::map<LabelValues, double> series;
};

struct HistogramSeries {
  std::vector<uint64_t> per_bucket;  // not cumulative; summed when rendered
  uint64_t count = 0;
  double sum = 0;
};

struct HistogramFamily {
  const char* name;
  const char* help;
  std::vector<std::string> label_names;
  const std::vector<double>* bounds;
  std::map<LabelValues, HistogramSeries> series;
};

// Prometheus label values escape backslash, double quote and newline.
std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Shortest text that reads back as the same double; integers without a
// fraction. Infinities and NaN in Prometheus spelling.
std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[40];  // "%.17g" of any double fits in 25 characters
  // 2^53: integers below it print exactly with %.0f.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    std::snprintf(buffer, sizeof(buffer), "%.0f", value);
    return buffer;
  }
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

// {a="x",b="y"}, with `extra` (e.g. le="0.5") appended; "" when empty.
std::string LabelText(const std::vector<std::string>& names,
                      const LabelValues& values,
                      const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra;
  }
  if (!out.empty()) out += "}";
  return out;
}

void Header(std::string& out, const char* name, const char* help,
            const char* type) {
  out += std::string("# HELP ") + name + " " + help + "\n";
  out += std::string("# TYPE ") + name + " " + type + "\n";
}

void RenderCounter(std::string& out, const CounterFamily& family) {
  Header(out, family.name, family.help, "counter");
  for (const auto& [labels, value] : family.series) {
    out += family.name + LabelText(family.label_names, labels) + " " +
           FormatNumber(value) + "\n";
  }
}

void RenderHistogram(std::string& out, const HistogramFamily& family) {
  Header(out, family.name, family.help, "histogram");
  const std::string name = family.name;
  for (const auto& [labels, series] : family.series) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < family.bounds->size(); ++i) {
      cumulative += series.per_bucket[i];
      out += name + "_bucket" +
             LabelText(family.label_names, labels,
                       "le=\"" + FormatNumber((*family.bounds)[i]) + "\"") +
             " " + std::to_string(cumulative) + "\n";
    }
    out += name + "_bucket" +
           LabelText(family.label_names, labels, "le=\"+Inf\"") + " " +
           std::to_string(series.count) + "\n";
    out += name + "_sum" + LabelText(family.label_names, labels) + " " +
           FormatNumber(series.sum) + "\n";
    out += name + "_count" + LabelText(family.label_names, labels) + " " +
           std::to_string(series.count) + "\n";
  }
}

void Observe(HistogramFamily& family, const LabelValues& labels,
             double seconds) {
  HistogramSeries& series = family.series[labels];
  if (series.per_bucket.empty()) {
    series.per_bucket.assign(family.bounds->size(), 0);
  }
  if (!(seconds >= 0)) seconds = 0;  // a clock step backwards, or NaN
  for (size_t i = 0; i < family.bounds->size(); ++i) {
    if (seconds <= (*family.bounds)[i]) {
      ++series.per_bucket[i];
      break;
    }
  }
  ++series.count;
  series.sum += seconds;
}

}  // namespace

struct Metrics::Impl {
  const std::string version;        // constant after construction
  const double start_time_seconds;  // constant after construction

  mutable Mutex mutex;
  CounterFamily http_requests GUARDED_BY(mutex){
      "wxsessiond_http_requests_total",
      "HTTP requests answered, by route pattern and "
      "status.",
      {"route", "status"},
      {}};
  HistogramFamily http_duration GUARDED_BY(mutex){
      "wxsessiond_http_request_duration_seconds",
      "Time from reading a request to answering "
      "it, by route pattern.",
      {"route"},
      &kHttpBuckets,
      {}};
  CounterFamily logins GUARDED_BY(mutex){
      "wxsessiond_logins_total",
      "POST /v1/login outcomes: ok or the error code.",
      {"result"},
      {}};
  CounterFamily upstream_calls GUARDED_BY(mutex){
      "wxsessiond_upstream_requests_total",
      "Calls to WeChat, by API and outcome (ok or "
      "the error code).",
      {"api", "result", "platform"},
      {}};
  HistogramFamily upstream_duration GUARDED_BY(mutex){
      "wxsessiond_upstream_request_duration_seconds",
      "Duration of calls to WeChat, retries included, by API.",
      {"api", "platform"},
      &kUpstreamBuckets,
      {}};
  CounterFamily upstream_rejected GUARDED_BY(mutex){
      "wxsessiond_upstream_rejected_total",
      "Calls refused by the upstream bulkhead "
      "(wechat.max_concurrent) before reaching "
      "WeChat.",
      {"api", "platform"},
      {}};
  int64_t upstream_in_flight GUARDED_BY(mutex) = 0;
  CounterFamily sweeper_runs GUARDED_BY(mutex){"wxsessiond_sweeper_runs_total",
                                               "Sweeper runs, by result.",
                                               {"result"},
                                               {}};
  CounterFamily admin_actions GUARDED_BY(mutex){
      "wxsessiond_admin_actions_total",
      "Admin actions (HTTP or CLI) by action.",
      {"action"},
      {}};
  CounterFamily sweeper_deleted GUARDED_BY(mutex){
      "wxsessiond_sweeper_deleted_sessions_total",
      "Expired sessions deleted by the sweeper.",
      {},
      {}};
  std::function<std::optional<int64_t>()> live_sessions_source
      GUARDED_BY(mutex);
  CounterFamily tokens_issued GUARDED_BY(mutex){
      "wxsessiond_tokens_issued_total",
      "JWTs issued by POST /v1/token, by signing "
      "algorithm.",
      {"algorithm"},
      {}};
  CounterFamily introspections GUARDED_BY(mutex){
      "wxsessiond_introspections_total",
      "POST /v1/introspect answers: active, "
      "inactive or unauthorized.",
      {"result"},
      {}};

  Impl(std::string version_in, double start)
      : version(std::move(version_in)), start_time_seconds(start) {
    // Known series start at zero so rate() works from the first scrape and
    // dashboards show 0 rather than "no data".
    logins.series[{"ok"}] = 0;
    sweeper_runs.series[{"ok"}] = 0;
    sweeper_runs.series[{"error"}] = 0;
    sweeper_deleted.series[{}] = 0;
  }
};

Metrics::Metrics(const std::string& version)
    : impl_(std::make_unique<Impl>(
          version, std::chrono::duration<double>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count())) {}

Metrics::~Metrics() = default;

void Metrics::ObserveHttpRequest(const std::string& route, int status,
                                 double seconds) {
  MutexLock lock(impl_->mutex);
  impl_->http_requests.series[{route, std::to_string(status)}] += 1;
  Observe(impl_->http_duration, {route}, seconds);
}

void Metrics::CountLogin(const std::string& result) {
  MutexLock lock(impl_->mutex);
  impl_->logins.series[{result}] += 1;
}

void Metrics::CountAdminAction(const std::string& action) {
  MutexLock lock(impl_->mutex);
  impl_->admin_actions.series[{action}] += 1;
}

void Metrics::ObserveUpstreamCall(const std::string& api,
                                  const std::string& result, double seconds,
                                  const std::string& platform) {
  MutexLock lock(impl_->mutex);
  impl_->upstream_calls.series[{api, result, platform}] += 1;
  Observe(impl_->upstream_duration, {api, platform}, seconds);
}

void Metrics::CountUpstreamRejected(const std::string& api,
                                    const std::string& platform) {
  MutexLock lock(impl_->mutex);
  impl_->upstream_rejected.series[{api, platform}] += 1;
}

void Metrics::AddUpstreamInFlight(int delta) {
  MutexLock lock(impl_->mutex);
  impl_->upstream_in_flight += delta;
}

void Metrics::ObserveSweep(bool ok, int64_t deleted) {
  MutexLock lock(impl_->mutex);
  impl_->sweeper_runs.series[{ok ? "ok" : "error"}] += 1;
  if (ok) impl_->sweeper_deleted.series[{}] += static_cast<double>(deleted);
}

void Metrics::CountTokenIssued(const std::string& algorithm) {
  MutexLock lock(impl_->mutex);
  impl_->tokens_issued.series[{algorithm}] += 1;
}

void Metrics::CountIntrospection(const std::string& result) {
  MutexLock lock(impl_->mutex);
  impl_->introspections.series[{result}] += 1;
}

void Metrics::SetLiveSessionsSource(
    std::function<std::optional<int64_t>()> source) {
  MutexLock lock(impl_->mutex);
  impl_->live_sessions_source = std::move(source);
}

std::string Metrics::RenderPrometheus() const {
  // Asked outside the lock: the source queries the store, and reports from
  // request threads must not wait behind that.
  std::function<std::optional<int64_t>()> source;
  {
    MutexLock lock(impl_->mutex);
    source = impl_->live_sessions_source;
  }
  std::optional<int64_t> live;
  if (source) live = source();

  std::string out;
  Header(out, "wxsessiond_build_info",
         "Always 1; the labels name the running build.", "gauge");
  out += "wxsessiond_build_info" + LabelText({"version"}, {impl_->version}) +
         " 1\n";
  Header(out, "wxsessiond_process_start_time_seconds",
         "Start time of the process since the Unix epoch, in seconds.",
         "gauge");
  out += "wxsessiond_process_start_time_seconds " +
         FormatNumber(std::floor(impl_->start_time_seconds)) + "\n";
  if (live) {
    Header(out, "wxsessiond_live_sessions",
           "Sessions that have not expired, counted in the store.", "gauge");
    out += "wxsessiond_live_sessions " +
           FormatNumber(static_cast<double>(*live)) + "\n";
  }

  MutexLock lock(impl_->mutex);
  RenderCounter(out, impl_->http_requests);
  RenderHistogram(out, impl_->http_duration);
  RenderCounter(out, impl_->logins);
  RenderCounter(out, impl_->upstream_calls);
  RenderHistogram(out, impl_->upstream_duration);
  RenderCounter(out, impl_->upstream_rejected);
  Header(out, "wxsessiond_upstream_in_flight", "Calls to WeChat in progress.",
         "gauge");
  out += "wxsessiond_upstream_in_flight " +
         FormatNumber(static_cast<double>(impl_->upstream_in_flight)) + "\n";
  RenderCounter(out, impl_->sweeper_runs);
  RenderCounter(out, impl_->sweeper_deleted);
  RenderCounter(out, impl_->tokens_issued);
  RenderCounter(out, impl_->introspections);
  RenderCounter(out, impl_->admin_actions);
  return out;
}

}  // namespace wxsession
