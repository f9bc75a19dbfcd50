#include "ops/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "prometheus_text.h"

namespace wxsession {
namespace {

using testing_support::ParsePrometheusText;
using testing_support::PromText;

PromText Parse(const Metrics& metrics) {
  std::string text = metrics.RenderPrometheus();
  PromText parsed = ParsePrometheusText(text);
  EXPECT_EQ(parsed.error, "") << text;
  return parsed;
}

TEST(Metrics, AFreshRegistryIsValidTextWithPrefixedNamesAndBuildInfo) {
  Metrics metrics("1.2.3");
  PromText parsed = Parse(metrics);
  ASSERT_FALSE(parsed.families.empty());
  for (const auto& [name, family] : parsed.families) {
    EXPECT_EQ(name.rfind("wxsessiond_", 0), 0u) << name;
  }
  EXPECT_EQ(parsed.families["wxsessiond_build_info"].type, "gauge");
  EXPECT_EQ(parsed.Value("wxsessiond_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_EQ(parsed.families["wxsessiond_http_requests_total"].type, "counter");
  EXPECT_EQ(parsed.families["wxsessiond_http_request_duration_seconds"].type,
            "histogram");
  EXPECT_EQ(
      parsed.families["wxsessiond_upstream_request_duration_seconds"].type,
      "histogram");
  // Known series start at zero.
  EXPECT_EQ(parsed.Value("wxsessiond_logins_total", {{"result", "ok"}}), 0);
  EXPECT_EQ(
      parsed.Value("wxsessiond_sweeper_runs_total", {{"result", "error"}}), 0);
  EXPECT_EQ(parsed.Value("wxsessiond_sweeper_deleted_sessions_total"), 0);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_in_flight"), 0);
  EXPECT_GT(*parsed.Value("wxsessiond_process_start_time_seconds"), 1.6e9);
  // No source: the live gauge is left out rather than reported as 0.
  EXPECT_EQ(parsed.families.count("wxsessiond_live_sessions"), 0u);
}

TEST(Metrics, HttpRequestsAreCountedByRouteAndStatusWithADurationHistogram) {
  Metrics metrics("t");
  metrics.ObserveHttpRequest("/v1/session", 200, 0.003);
  metrics.ObserveHttpRequest("/v1/session", 200, 0.0002);
  metrics.ObserveHttpRequest("/v1/session", 401, 20.0);
  metrics.ObserveHttpRequest("/v1/login", 200, 0.2);
  PromText parsed = Parse(metrics);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/session"}, {"status", "200"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/session"}, {"status", "401"}}),
            1);
  const std::string h = "wxsessiond_http_request_duration_seconds";
  auto bucket = [&](const std::string& le) {
    return parsed.Value(h + "_bucket", {{"route", "/v1/session"}, {"le", le}});
  };
  EXPECT_EQ(bucket("0.0005"), 1);  // 0.0002
  EXPECT_EQ(bucket("0.0025"), 1);  // 0.003 is above
  EXPECT_EQ(bucket("0.005"), 2);
  EXPECT_EQ(bucket("10"), 2);  // 20 s only in +Inf
  EXPECT_EQ(bucket("+Inf"), 3);
  EXPECT_EQ(parsed.Value(h + "_count", {{"route", "/v1/session"}}), 3);
  EXPECT_NEAR(*parsed.Value(h + "_sum", {{"route", "/v1/session"}}), 20.0032,
              1e-9);
  EXPECT_EQ(parsed.Value(h + "_count", {{"route", "/v1/login"}}), 1);
}

TEST(Metrics, LoginsUpstreamCallsAndSweepsAreCounted) {
  Metrics metrics("t");
  metrics.CountLogin("ok");
  metrics.CountLogin("invalid_code");
  metrics.CountLogin("invalid_code");
  metrics.ObserveUpstreamCall("jscode2session", "ok", 0.05);
  metrics.ObserveUpstreamCall("jscode2session", "upstream_unavailable", 5.0);
  metrics.CountUpstreamRejected("jscode2session");
  metrics.AddUpstreamInFlight(3);
  metrics.AddUpstreamInFlight(-1);
  metrics.ObserveSweep(true, 40);
  metrics.ObserveSweep(true, 2);
  metrics.ObserveSweep(false, 0);
  PromText parsed = Parse(metrics);
  EXPECT_EQ(parsed.Value("wxsessiond_logins_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(
      parsed.Value("wxsessiond_logins_total", {{"result", "invalid_code"}}), 2);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_requests_total",
                         {{"api", "jscode2session"},
                          {"result", "ok"},
                          {"platform", "wechat"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_request_duration_seconds_count",
                         {{"api", "jscode2session"}, {"platform", "wechat"}}),
            2);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_rejected_total",
                         {{"api", "jscode2session"}, {"platform", "wechat"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_upstream_in_flight"), 2);
  EXPECT_EQ(parsed.Value("wxsessiond_sweeper_runs_total", {{"result", "ok"}}),
            2);
  EXPECT_EQ(
      parsed.Value("wxsessiond_sweeper_runs_total", {{"result", "error"}}), 1);
  EXPECT_EQ(parsed.Value("wxsessiond_sweeper_deleted_sessions_total"), 42);
}

TEST(Metrics, LiveSessionsComeFromTheSourceAndVanishWhenItCannotAnswer) {
  Metrics metrics("t");
  std::optional<int64_t> answer = 17;
  metrics.SetLiveSessionsSource([&] { return answer; });
  EXPECT_EQ(Parse(metrics).Value("wxsessiond_live_sessions"), 17);
  answer.reset();
  EXPECT_EQ(Parse(metrics).families.count("wxsessiond_live_sessions"), 0u);
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics metrics("v\"1\\\n");
  metrics.ObserveHttpRequest("a\"b\\c\nd", 200, 0.1);
  PromText parsed = Parse(metrics);
  EXPECT_EQ(parsed.Value("wxsessiond_build_info", {{"version", "v\"1\\\n"}}),
            1);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "a\"b\\c\nd"}, {"status", "200"}}),
            1);
}

TEST(Metrics, ConcurrentReportsAreAllCounted) {
  Metrics metrics("t");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.ObserveHttpRequest("/v1/session", 200, 0.001);
        if (i % 100 == 0) metrics.RenderPrometheus();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  PromText parsed = Parse(metrics);
  EXPECT_EQ(parsed.Value("wxsessiond_http_requests_total",
                         {{"route", "/v1/session"}, {"status", "200"}}),
            8000);
}

// The parser must be able to fail, or the tests above prove nothing.
TEST(PrometheusTextParser, RejectsMalformedText) {
  const std::string ok =
      "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"b\"} 1\n";
  EXPECT_EQ(ParsePrometheusText(ok).error, "");
  const std::vector<std::string> bad = {
      "# HELP x_total help\n# TYPE x_total counter\nx_total 1",  // no newline
      "# TYPE x_total counter\nx_total 1\n",                     // no HELP
      "# HELP x_total help\n# TYPE x_total counter\nx_total 1\nx_total 2\n",
      "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"\\t\"} 1\n",
      "# HELP x_total help\n# TYPE x_total counter\nx_total{a=b} 1\n",
      "# HELP x_total help\n# TYPE x_total counter\nx_total -1\n",
      "# HELP x_total help\n# TYPE x_total counter\nx_total one\n",
      "# HELP x_total help\n# TYPE x_total counter\ny_total 1\n",
      "# HELP x_total help\n# TYPE x_total counter\n\nx_total 1\n",
      "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"1\",a=\"2\"} "
      "1\n",
      // Histogram: decreasing buckets, no +Inf, +Inf != count, no sum.
      "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
      "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n"
      "h_count 1\n",
      "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
      "h_count 1\n",
      "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
      // Samples of one family split by another.
      "# HELP a help\n# TYPE a gauge\na{x=\"1\"} 1\n# HELP b help\n# TYPE b "
      "gauge\nb 1\na{x=\"2\"} 1\n",
  };
  for (const std::string& text : bad) {
    EXPECT_NE(ParsePrometheusText(text).error, "") << text;
  }
}

}  // namespace
}  // namespace wxsession
