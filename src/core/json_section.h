// Reading one JSON object of the configuration, key by key, with the checks
// every key needs written once: the unknown-key check, integer ranges,
// durations, timeouts, enumerations, paths and paths to secrets.
//
// Every failure is kInvalidRequest with one line "config: <key path>: <what
// is wrong>" (ConfigError), so an operator finds the offending key at once.
// No message quotes a value: a secret with the wrong type is still a secret.
// A getter leaves its output untouched when the key is absent, so outputs
// hold their defaults beforehand.
//
// Thread-safety: a Section is a view of a JSON value it does not own (the
// value must outlive it); const methods may run on any thread.
#ifndef WXSESSION_CORE_JSON_SECTION_H_
#define WXSESSION_CORE_JSON_SECTION_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wxsession/config.h"
#include "wxsession/status.h"

namespace wxsession {

// The one shape of a configuration error: "config: <key_path>: <what>".
Status ConfigError(const std::string& key_path, const std::string& what);

// Parses a configuration file's text (comments allowed). Errors name `path`
// and where the text stops being JSON (byte, line, column), never the text.
Status ParseConfigText(const std::string& path, const std::string& text,
                       nlohmann::json* out);

// Seconds from a non-negative JSON integer (or integral float) or a duration
// string (ParseDuration). nullopt on anything else.
std::optional<int64_t> DurationFromJson(const nlohmann::json& value);

// A path to a file that holds a secret, from `value`: a non-empty string
// (`what` otherwise), with a leading $CREDENTIALS_DIRECTORY (systemd's
// LoadCredential=) replaced from `env`; an error naming `key_path` when the
// path needs the variable and it is unset.
Status SecretPathFromJson(const nlohmann::json& value,
                          const std::string& key_path, const GetEnv& env,
                          std::string* out,
                          const char* what = "expected a non-empty path");

// Checks a base URL (http:// or https://, no whitespace) and drops trailing
// slashes, so callers can append "/sns/jscode2session" without "//".
Status NormalizeBaseUrl(const std::string& text, const std::string& key_path,
                        std::string* out);

class Section {
 public:
  // `object` is the JSON object found at `path` ("" for the top level,
  // "session", "apps[0]", ...).
  Section(const nlohmann::json& object, std::string path);

  // The key path of `key` inside this section: "session.ttl", or "listen" at
  // the top level.
  std::string PathOf(std::string_view key) const;
  const std::string& path() const { return path_; }
  // The value at `key`; nullptr when absent.
  const nlohmann::json* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  size_t size() const { return object_->size(); }
  // ConfigError(PathOf(key), what).
  Status Error(std::string_view key, const std::string& what) const;

  // Refuses the first key not in `allowed` ("unknown key (expected one of
  // a, b)"): a misspelt key would otherwise be ignored and its default used.
  Status CheckKnownKeys(const std::vector<const char*>& allowed) const;

  // The object at `key`, its keys checked against `allowed`. Absent: *out is
  // nullopt. Not an object: "<key>: expected an object".
  Status Object(std::string_view key, const std::vector<const char*>& allowed,
                std::optional<Section>* out) const;

  // An integer in [min, max]: "expected an integer from <min> (<meaning>) to
  // <max>"; `min_meaning` (e.g. "no limit") may be null.
  Status Int(std::string_view key, int64_t min, int64_t max, int64_t* out,
             const char* min_meaning = nullptr) const;
  Status Int(std::string_view key, int min, int max, int* out,
             const char* min_meaning = nullptr) const;
  // A duration of at least `min_seconds` and at most 3650 days.
  Status Duration(std::string_view key, int64_t min_seconds,
                  int64_t* out) const;
  // A timeout: a duration, a fractional number of seconds (0.5) or "<n>ms".
  // In milliseconds, from 1 to an hour.
  Status Timeout(std::string_view key, int64_t* out_ms) const;
  Status Bool(std::string_view key, bool* out) const;
  // A non-empty string; `what` is the message otherwise.
  Status String(std::string_view key, std::string* out,
                const char* what = "expected a non-empty string") const;
  Status Path(std::string_view key, std::string* out,
              const char* what = "expected a non-empty path") const;
  // A path to a file that holds a secret (SecretPathFromJson).
  Status SecretPath(std::string_view key, const GetEnv& env, std::string* out,
                    const char* what = "expected a non-empty path") const;
  // An array of such paths; "expected an array of paths" otherwise, and
  // each element named "<key>[i]" in its errors.
  Status SecretPaths(std::string_view key, const GetEnv& env,
                     std::vector<std::string>* out) const;
  // SecretPath, then the file read into *content (ReadSecretFile: trailing
  // whitespace trimmed, never empty). Absent: both untouched.
  Status SecretFile(std::string_view key, const GetEnv& env, std::string* path,
                    std::string* content,
                    const char* what = "expected a non-empty path") const;
  // A base URL (NormalizeBaseUrl).
  Status BaseUrl(std::string_view key, std::string* out) const;

  // One of a fixed set of strings: "expected \"a\", \"b\" or \"c\"".
  template <typename T>
  Status Enum(std::string_view key,
              std::initializer_list<std::pair<const char*, T>> choices,
              T* out) const {
    std::vector<const char*> names;
    for (const auto& choice : choices) names.push_back(choice.first);
    size_t index = names.size();
    if (Status s = Choice(key, names, &index); !s.ok()) return s;
    if (index < names.size()) *out = (choices.begin() + index)->second;
    return Status::Ok();
  }

 private:
  // The index of the value at `key` in `names`; unchanged when absent.
  Status Choice(std::string_view key, const std::vector<const char*>& names,
                size_t* index) const;

  const nlohmann::json* object_;  // not owned
  std::string path_;
};

}  // namespace wxsession

#endif  // WXSESSION_CORE_JSON_SECTION_H_
