// Configuration sections: see json_section.h. The value parsers config.h
// declares (ParseDuration, ParseHostPort) live here too, beside the getters
// that use them.
#include "core/json_section.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/secret_file.h"

namespace wxsession {
namespace {

using nlohmann::json;

// 10 years: keeps now + ttl far from int64 overflow and catches unit typos.
constexpr int64_t kMaxDurationSeconds = int64_t{3650} * 86400;
constexpr int64_t kMaxTimeoutMs = 3600 * 1000;  // an hour: surely a typo
// Stands for "anything above the limit", so the message says so.
constexpr int64_t kTimeoutTooLarge = kMaxTimeoutMs + 1;

constexpr int kMaxPort = 65535;

constexpr char kUrlHint[] = "expected a URL starting with http:// or https://";
constexpr char kDurationHint[] =
    "expected a duration like 30d, 12h, 15m, 90s or a number of seconds";

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Collects where a JSON text stops being valid. Used only after the
// non-throwing parse failed, because json::parse(..., false) reports no
// position.
class ParseErrorFinder : public nlohmann::json_sax<json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    found = true;
    byte = position;
    detail = ex.what();
    return false;
  }

  bool found = false;
  size_t byte = 0;
  std::string detail;
};

Status JsonSyntaxError(const std::string& path, const std::string& text) {
  ParseErrorFinder finder;
  json::sax_parse(text, &finder, json::input_format_t::json, /*strict=*/true,
                  /*ignore_comments=*/true);
  if (!finder.found) return ConfigError(path, "invalid JSON");
  // nlohmann's text is "[json.exception.parse_error.101] parse error at line
  // L, column C: syntax error ... ; last read: '<token>'". Keep the part from
  // "syntax error" and drop the token text: it may be part of a secret.
  std::string detail = finder.detail;
  size_t start = detail.find("syntax error");
  detail = start == std::string::npos ? "syntax error" : detail.substr(start);
  size_t token = detail.find("; last read:");
  if (token != std::string::npos) detail.erase(token);
  size_t line = 1;
  size_t column = 0;
  for (size_t i = 0; i < finder.byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 0;
    } else {
      ++column;
    }
  }
  column = std::max<size_t>(column, 1);  // an empty file fails at column 1
  return ConfigError(path, "invalid JSON at byte " +
                               std::to_string(finder.byte) + " (line " +
                               std::to_string(line) + ", column " +
                               std::to_string(column) + "): " + detail);
}

// Milliseconds from a timeout value (see Section::Timeout); kTimeoutTooLarge
// for anything over an hour, nullopt for no timeout at all.
std::optional<int64_t> TimeoutMsFromJson(const json& value) {
  std::string text = value.is_string() ? value.get<std::string>() : "";
  if (value.is_number_float()) {
    double seconds = value.get<double>();
    if (!std::isfinite(seconds) || seconds < 0) return std::nullopt;
    return seconds * 1000 > kMaxTimeoutMs
               ? kTimeoutTooLarge
               : static_cast<int64_t>(std::llround(seconds * 1000));
  }
  if (text.size() > 2 && text.compare(text.size() - 2, 2, "ms") == 0) {
    std::string_view digits(text.data(), text.size() - 2);
    // At most 7 digits: no overflow, and anything longer is over the limit.
    if (!AllDigits(digits)) return std::nullopt;
    return digits.size() > 7 ? kTimeoutTooLarge
                             : std::stoll(std::string(digits));
  }
  std::optional<int64_t> seconds = DurationFromJson(value);
  if (!seconds) return std::nullopt;
  return *seconds > kMaxTimeoutMs / 1000 ? kTimeoutTooLarge : *seconds * 1000;
}

}  // namespace

Status ConfigError(const std::string& key_path, const std::string& what) {
  return Status(ErrorCode::kInvalidRequest,
                "config: " + key_path + ": " + what);
}

Status ParseConfigText(const std::string& path, const std::string& text,
                       json* out) {
  *out = json::parse(text, nullptr, /*allow_exceptions=*/false,
                     /*ignore_comments=*/true);
  if (out->is_discarded()) return JsonSyntaxError(path, text);
  if (!out->is_object()) {
    return ConfigError(path, "expected a JSON object at the top level");
  }
  return Status::Ok();
}

std::optional<int64_t> DurationFromJson(const json& value) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {  // signed: only reached when negative
    int64_t v = value.get<int64_t>();
    if (v < 0) return std::nullopt;
    return v;
  }
  if (value.is_number_float()) {
    double v = value.get<double>();
    // 2^62: comfortably inside int64 and far above kMaxDurationSeconds.
    if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 4.6e18) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  if (value.is_string()) return ParseDuration(value.get<std::string>());
  return std::nullopt;
}

std::optional<int64_t> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::string_view digits(text);
  int64_t unit = 1;
  switch (text.back()) {
    case 'd':
      unit = 86400;
      break;  // seconds per day
    case 'h':
      unit = 3600;
      break;  // seconds per hour
    case 'm':
      unit = 60;
      break;  // seconds per minute
    case 's':
      unit = 1;
      break;
    default:
      unit = 0;  // no suffix: plain seconds
  }
  if (unit != 0) {
    digits.remove_suffix(1);
  } else {
    unit = 1;
  }
  if (!AllDigits(digits)) return std::nullopt;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t value = 0;
  for (char c : digits) {
    int digit = c - '0';
    if (value > (kMax - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (value > kMax / unit) return std::nullopt;
  return value * unit;
}

Status NormalizeBaseUrl(const std::string& text, const std::string& key_path,
                        std::string* out) {
  std::string base = text;
  while (!base.empty() && base.back() == '/') base.pop_back();
  size_t scheme_end = std::string::npos;
  if (base.rfind("http://", 0) == 0) scheme_end = 7;   // strlen("http://")
  if (base.rfind("https://", 0) == 0) scheme_end = 8;  // strlen("https://")
  if (scheme_end == std::string::npos || base.size() <= scheme_end) {
    return ConfigError(key_path, kUrlHint);
  }
  if (base.find_first_of(" \t\r\n") != std::string::npos) {
    return ConfigError(key_path, "must not contain whitespace");
  }
  *out = base;
  return Status::Ok();
}

Status SecretPathFromJson(const json& value, const std::string& key_path,
                          const GetEnv& env, std::string* out,
                          const char* what) {
  if (!value.is_string() || value.get<std::string>().empty()) {
    return ConfigError(key_path, what);
  }
  Result<std::string> expanded =
      ExpandCredentialsPath(value.get<std::string>(), key_path, env);
  if (!expanded.ok()) return expanded.status();
  *out = std::move(expanded).value();
  return Status::Ok();
}

std::optional<std::pair<std::string, int>> ParseHostPort(
    const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    // "[v6addr]:port"; the brackets keep the address's colons apart from the
    // port separator.
    size_t close = text.find(']');
    if (close == std::string::npos || close == 1 || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string::npos) return std::nullopt;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An unbracketed IPv6 address is ambiguous: is "::1:80" port 80?
    if (host.find(':') != std::string::npos) return std::nullopt;
  }
  if (host.find_first_of(" \t\r\n[]/") != std::string::npos) {
    return std::nullopt;
  }
  // At most 5 digits: 65535 fits, and no overflow while converting.
  if (!AllDigits(port) || port.size() > 5) return std::nullopt;
  int number = std::atoi(port.c_str());
  if (number > kMaxPort) return std::nullopt;
  return std::make_pair(host, number);
}

Section::Section(const json& object, std::string path)
    : object_(&object), path_(std::move(path)) {}

std::string Section::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const json* Section::Find(std::string_view key) const {
  auto it = object_->find(std::string(key));
  return it == object_->end() ? nullptr : &*it;
}

Status Section::Error(std::string_view key, const std::string& what) const {
  return ConfigError(PathOf(key), what);
}

Status Section::CheckKnownKeys(const std::vector<const char*>& allowed) const {
  for (auto it = object_->begin(); it != object_->end(); ++it) {
    bool known = false;
    for (const char* name : allowed) known = known || it.key() == name;
    if (known) continue;
    std::string list;
    for (const char* name : allowed) {
      if (!list.empty()) list += ", ";
      list += name;
    }
    return Error(it.key(), "unknown key (expected one of " + list + ")");
  }
  return Status::Ok();
}

Status Section::Object(std::string_view key,
                       const std::vector<const char*>& allowed,
                       std::optional<Section>* out) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_object()) return Error(key, "expected an object");
  out->emplace(*value, PathOf(key));
  return (*out)->CheckKnownKeys(allowed);
}

Status Section::Int(std::string_view key, int64_t min, int64_t max,
                    int64_t* out, const char* min_meaning) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_number_integer() || value->get<int64_t>() < min ||
      value->get<int64_t>() > max) {
    std::string from = std::to_string(min);
    if (min_meaning != nullptr) from += std::string(" (") + min_meaning + ")";
    return Error(
        key, "expected an integer from " + from + " to " + std::to_string(max));
  }
  *out = value->get<int64_t>();
  return Status::Ok();
}

Status Section::Int(std::string_view key, int min, int max, int* out,
                    const char* min_meaning) const {
  int64_t wide = *out;
  if (Status s = Int(key, int64_t{min}, int64_t{max}, &wide, min_meaning);
      !s.ok()) {
    return s;
  }
  *out = static_cast<int>(wide);  // in [min, max], so it fits
  return Status::Ok();
}

Status Section::Duration(std::string_view key, int64_t min_seconds,
                         int64_t* out) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  std::optional<int64_t> seconds = DurationFromJson(*value);
  if (!seconds) return Error(key, kDurationHint);
  if (*seconds < min_seconds) {
    return Error(key, "must be at least " + std::to_string(min_seconds) + "s");
  }
  if (*seconds > kMaxDurationSeconds)
    return Error(key, "must be at most 3650d");
  *out = *seconds;
  return Status::Ok();
}

Status Section::Timeout(std::string_view key, int64_t* out_ms) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  std::optional<int64_t> ms = TimeoutMsFromJson(*value);
  if (!ms) {
    return Error(key,
                 "expected a timeout like 5s, 500ms or a number of "
                 "seconds");
  }
  if (*ms < 1) return Error(key, "must be greater than 0");
  if (*ms > kMaxTimeoutMs) return Error(key, "must be at most 1h");
  *out_ms = *ms;
  return Status::Ok();
}

Status Section::Bool(std::string_view key, bool* out) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_boolean()) return Error(key, "expected true or false");
  *out = value->get<bool>();
  return Status::Ok();
}

Status Section::String(std::string_view key, std::string* out,
                       const char* what) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_string() || value->get<std::string>().empty()) {
    return Error(key, what);
  }
  *out = value->get<std::string>();
  return Status::Ok();
}

Status Section::Path(std::string_view key, std::string* out,
                     const char* what) const {
  return String(key, out, what);
}

Status Section::SecretPath(std::string_view key, const GetEnv& env,
                           std::string* out, const char* what) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  return SecretPathFromJson(*value, PathOf(key), env, out, what);
}

Status Section::SecretPaths(std::string_view key, const GetEnv& env,
                            std::vector<std::string>* out) const {
  const json* values = Find(key);
  if (values == nullptr) return Status::Ok();
  if (!values->is_array()) return Error(key, "expected an array of paths");
  for (size_t i = 0; i < values->size(); ++i) {
    std::string path;
    Status s = SecretPathFromJson(
        (*values)[i], PathOf(key) + "[" + std::to_string(i) + "]", env, &path);
    if (!s.ok()) return s;
    out->push_back(std::move(path));
  }
  return Status::Ok();
}

Status Section::SecretFile(std::string_view key, const GetEnv& env,
                           std::string* path, std::string* content,
                           const char* what) const {
  std::string file;
  if (Status s = SecretPath(key, env, &file, what); !s.ok() || file.empty()) {
    return s;
  }
  Result<std::string> read = ReadSecretFile(file, PathOf(key));
  if (!read.ok()) return read.status();
  *path = file;
  *content = std::move(read).value();
  return Status::Ok();
}

Status Section::BaseUrl(std::string_view key, std::string* out) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  if (!value->is_string()) return Error(key, kUrlHint);
  return NormalizeBaseUrl(value->get<std::string>(), PathOf(key), out);
}

Status Section::Choice(std::string_view key,
                       const std::vector<const char*>& names,
                       size_t* index) const {
  const json* value = Find(key);
  if (value == nullptr) return Status::Ok();
  const std::string text = value->is_string() ? value->get<std::string>() : "";
  for (size_t i = 0; i < names.size(); ++i) {
    if (text == names[i]) {
      *index = i;
      return Status::Ok();
    }
  }
  std::string expected = "expected ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) expected += i + 1 == names.size() ? " or " : ", ";
    expected += std::string("\"") + names[i] + "\"";
  }
  return Error(key, expected);
}

}  // namespace wxsession
