// A strict parser for the Prometheus text exposition format (0.0.4), for
// tests: it accepts what a careful exporter writes and rejects anything a
// Prometheus server could misread.
//
// Checked: every line ends in '\n'; no blank lines; each family has exactly
// one # HELP and one # TYPE (known type), both before its samples; metric
// and label names are legal; label values are quoted with only \\ \" \n
// escapes; no label name repeats in a sample; values are floats or
// +Inf/-Inf/NaN; a family's samples are contiguous and no series repeats;
// counters are >= 0; histograms have only _bucket/_sum/_count samples, each
// label set has le buckets in increasing order with non-decreasing integer
// counts ending at le="+Inf", whose count equals _count, and a _sum.
#ifndef WXSESSION_TESTS_PROMETHEUS_TEXT_H_
#define WXSESSION_TESTS_PROMETHEUS_TEXT_H_

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace wxsession::testing_support {

struct PromSample {
  std::string name;  // full sample name, e.g. x_bucket
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromFamily {
  std::string name;
  std::string type;
  std::string help;
  std::vector<PromSample> samples;
};

struct PromText {
  std::map<std::string, PromFamily> families;
  std::vector<std::string> order;  // family names as they appeared
  std::string error;               // empty when the text is valid

  // The value of the sample `name` with exactly `labels`, if present.
  std::optional<double> Value(
      const std::string& name,
      const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [family_name, family] : families) {
      for (const PromSample& sample : family.samples) {
        if (sample.name == name && sample.labels == labels) return sample.value;
      }
    }
    return std::nullopt;
  }
};

namespace prom_detail {

inline bool IsMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool IsLabelName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline std::optional<double> ParseValue(const std::string& text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return NAN;
  if (text.empty()) return std::nullopt;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E')) {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

// Parses `name{labels} value` into `sample`; returns an error or "".
inline std::string ParseSampleLine(const std::string& line,
                                   PromSample* sample) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  sample->name = line.substr(0, i);
  if (!IsMetricName(sample->name)) return "bad metric name";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t eq = line.find('=', i);
      if (eq == std::string::npos) return "label without '='";
      std::string label = line.substr(i, eq - i);
      if (!IsLabelName(label)) return "bad label name '" + label + "'";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value not quoted";
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\') {
          if (i >= line.size()) return "dangling escape";
          char e = line[i++];
          if (e == '\\') {
            value += '\\';
          } else if (e == '"') {
            value += '"';
          } else if (e == 'n') {
            value += '\n';
          } else {
            return "bad escape";
          }
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return "unterminated label value";
      if (!sample->labels.emplace(label, value).second) {
        return "label '" + label + "' repeated";
      }
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') continue;
      return "expected ',' or '}' after a label";
    }
  }
  if (i >= line.size() || line[i] != ' ')
    return "expected one space before the value";
  ++i;
  std::string rest = line.substr(i);
  size_t space = rest.find(' ');
  std::string value_text = rest.substr(0, space);
  if (space != std::string::npos) {
    std::string timestamp = rest.substr(space + 1);
    if (timestamp.empty() ||
        timestamp.find_first_not_of("-0123456789") != std::string::npos) {
      return "bad timestamp";
    }
  }
  std::optional<double> value = ParseValue(value_text);
  if (!value) return "bad value '" + value_text + "'";
  sample->value = *value;
  return "";
}

// The family a sample belongs to, given the declared families.
inline std::string FamilyOf(const std::string& sample,
                            const std::map<std::string, PromFamily>& families) {
  if (families.count(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s = suffix;
    if (sample.size() > s.size() &&
        sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      std::string base = sample.substr(0, sample.size() - s.size());
      auto found = families.find(base);
      if (found != families.end() && found->second.type == "histogram") {
        return base;
      }
    }
  }
  return "";
}

inline std::string CheckHistogram(const PromFamily& family) {
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, count)
    std::optional<double> sum;
    std::optional<double> count;
  };
  std::map<std::map<std::string, std::string>, Series> series;
  for (const PromSample& sample : family.samples) {
    auto labels = sample.labels;
    if (sample.name == family.name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) return sample.name + " without le";
      std::optional<double> bound = ParseValue(le->second);
      if (!bound) return sample.name + " with bad le " + le->second;
      labels.erase(le);
      series[labels].buckets.emplace_back(*bound, sample.value);
    } else if (sample.name == family.name + "_sum") {
      if (labels.count("le")) return "_sum with le";
      series[labels].sum = sample.value;
    } else if (sample.name == family.name + "_count") {
      if (labels.count("le")) return "_count with le";
      series[labels].count = sample.value;
    } else {
      return "histogram " + family.name + " has sample " + sample.name;
    }
  }
  for (const auto& [labels, s] : series) {
    if (s.buckets.empty()) return family.name + ": series without buckets";
    if (!s.sum) return family.name + ": series without _sum";
    if (!s.count) return family.name + ": series without _count";
    double previous_bound = -HUGE_VAL;
    double previous_count = 0;
    for (const auto& [bound, count] : s.buckets) {
      if (!(bound > previous_bound)) return family.name + ": le not increasing";
      if (count < previous_count) return family.name + ": buckets decrease";
      if (count != std::floor(count) || count < 0) {
        return family.name + ": bucket count not a whole number";
      }
      previous_bound = bound;
      previous_count = count;
    }
    if (!std::isinf(s.buckets.back().first)) {
      return family.name + ": no le=\"+Inf\" bucket";
    }
    if (s.buckets.back().second != *s.count) {
      return family.name + ": +Inf bucket differs from _count";
    }
    if (*s.sum < 0) return family.name + ": negative _sum";
  }
  return "";
}

}  // namespace prom_detail

inline PromText ParsePrometheusText(const std::string& text) {
  using namespace prom_detail;
  PromText out;
  if (text.empty()) {
    out.error = "empty text";
    return out;
  }
  if (text.back() != '\n') {
    out.error = "the text does not end with a newline";
    return out;
  }
  std::set<std::string> finished;  // families whose samples have ended
  std::set<std::pair<std::string, std::map<std::string, std::string>>> seen;
  std::string current;  // family whose samples are being read
  size_t start = 0;
  int line_number = 0;
  auto fail = [&](const std::string& why, const std::string& line) {
    out.error =
        "line " + std::to_string(line_number) + ": " + why + ": " + line;
    return out;
  };
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.empty()) return fail("blank line", line);
    if (line[0] == '#') {
      std::string rest = line.substr(1);
      if (rest.rfind(" HELP ", 0) == 0 || rest.rfind(" TYPE ", 0) == 0) {
        bool help = rest.rfind(" HELP ", 0) == 0;
        std::string body = rest.substr(6);
        size_t space = body.find(' ');
        if (space == std::string::npos)
          return fail("no text after the name", line);
        std::string name = body.substr(0, space);
        std::string value = body.substr(space + 1);
        if (!IsMetricName(name)) return fail("bad metric name", line);
        if (finished.count(name) || (current == name)) {
          return fail("HELP/TYPE after the family's samples", line);
        }
        if (!current.empty()) finished.insert(current);
        current.clear();
        PromFamily& family = out.families[name];
        if (family.name.empty()) {
          family.name = name;
          out.order.push_back(name);
        }
        if (help) {
          if (!family.help.empty()) return fail("second HELP", line);
          if (value.empty()) return fail("empty HELP", line);
          family.help = value;
        } else {
          if (!family.type.empty()) return fail("second TYPE", line);
          static const std::set<std::string> kTypes = {
              "counter", "gauge", "histogram", "summary", "untyped"};
          if (!kTypes.count(value)) return fail("unknown type", line);
          if (family.help.empty()) return fail("TYPE before HELP", line);
          family.type = value;
        }
        continue;
      }
      continue;  // other comments are allowed by the format
    }
    PromSample sample;
    std::string error = ParseSampleLine(line, &sample);
    if (!error.empty()) return fail(error, line);
    std::string family_name = FamilyOf(sample.name, out.families);
    if (family_name.empty())
      return fail("sample of an undeclared family", line);
    PromFamily& family = out.families[family_name];
    if (family.type.empty()) return fail("sample before TYPE", line);
    if (finished.count(family_name))
      return fail("family samples not contiguous", line);
    if (current != family_name) {
      if (!current.empty()) finished.insert(current);
      current = family_name;
    }
    if (!seen.insert({sample.name, sample.labels}).second) {
      return fail("series repeated", line);
    }
    if (family.type == "counter" && !(sample.value >= 0)) {
      return fail("counter below zero", line);
    }
    family.samples.push_back(sample);
  }
  for (const auto& [name, family] : out.families) {
    if (family.type.empty()) {
      out.error = name + ": HELP without TYPE";
      return out;
    }
    if (family.type == "histogram") {
      std::string error = CheckHistogram(family);
      if (!error.empty()) {
        out.error = error;
        return out;
      }
    }
  }
  return out;
}

}  // namespace wxsession::testing_support

#endif  // WXSESSION_TESTS_PROMETHEUS_TEXT_H_
