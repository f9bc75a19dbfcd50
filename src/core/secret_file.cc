// Secret files: see secret_file.h.
#include "core/secret_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "core/json_section.h"

namespace wxsession {
namespace {

std::string TrimTrailingWhitespace(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' ||
                           text.back() == ' ' || text.back() == '\t')) {
    text.pop_back();
  }
  return text;
}

// The reason `token` cannot be a bearer token (it travels in an
// Authorization header), or "" when it can. Never quotes the token.
std::string TokenProblem(const std::string& token, const char* visible) {
  for (char c : token) {
    if (c < 0x21 || c > 0x7E) return visible;
  }
  if (token.size() < kMinTokenChars) {
    return "the token is shorter than " + std::to_string(kMinTokenChars) +
           " characters (make one with: openssl rand -hex 32)";
  }
  return "";
}

}  // namespace

Result<std::string> ReadWholeFile(const std::string& path, size_t max_bytes) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("cannot read: ") + std::strerror(errno));
  }
  std::string content;
  char buffer[4096];  // one page per read
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, n);
    if (content.size() > max_bytes) {
      std::fclose(file);
      return Status(
          ErrorCode::kInvalidRequest,
          "cannot read: larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  // fread reports errors such as EISDIR (a directory opens fine) only here.
  int read_errno = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) {
    return Status(ErrorCode::kInvalidRequest,
                  std::string("cannot read: ") + std::strerror(read_errno));
  }
  return content;
}

Result<std::string> ExpandCredentialsPath(const std::string& path,
                                          const std::string& key_path,
                                          const GetEnv& env) {
  for (const char* prefix :
       {"$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"}) {
    const std::string text = prefix;
    if (path.compare(0, text.size(), text) != 0) continue;
    std::optional<std::string> directory = env("CREDENTIALS_DIRECTORY");
    if (!directory || directory->empty()) {
      return ConfigError(key_path,
                         "$CREDENTIALS_DIRECTORY is not set (it is set by "
                         "systemd for a unit with LoadCredential=)");
    }
    return *directory + "/" + path.substr(text.size());
  }
  return path;
}

Result<std::string> ReadSecretFile(const std::string& file,
                                   const std::string& key_path) {
  Result<std::string> content = ReadWholeFile(file, kMaxSecretFileBytes);
  if (!content.ok()) {
    return ConfigError(key_path,
                       file + ": " + content.status().operator_text());
  }
  std::string secret = TrimTrailingWhitespace(std::move(content).value());
  if (secret.empty()) return ConfigError(key_path, file + ": file is empty");
  return secret;
}

Result<std::string> ReadTokenFile(const std::string& file,
                                  const std::string& key_path) {
  Result<std::string> read = ReadSecretFile(file, key_path);
  if (!read.ok()) return read.status();
  std::string token = std::move(read).value();
  token.erase(0, token.find_first_not_of(" \t\r\n"));
  std::string problem = TokenProblem(
      token, "the token must be one line of visible ASCII characters");
  if (!problem.empty()) return ConfigError(key_path, file + ": " + problem);
  return token;
}

Result<std::vector<std::string>> ReadTokenListFile(
    const std::string& file, const std::string& key_path) {
  Result<std::string> read = ReadWholeFile(file, kMaxSecretFileBytes);
  if (!read.ok()) {
    return ConfigError(key_path, file + ": " + read.status().message());
  }
  const std::string& text = read.value();
  std::vector<std::string> tokens;
  size_t start = 0;
  for (int line_number = 1; start <= text.size(); ++line_number) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    if (line[0] == '#') continue;
    std::string problem =
        TokenProblem(line, "a token must be visible ASCII characters");
    if (!problem.empty()) {
      std::string message = file;
      message += ": line ";
      message += std::to_string(line_number);
      message += ": ";
      message += problem;
      return ConfigError(key_path, message);
    }
    tokens.push_back(std::move(line));
  }
  return tokens;
}

}  // namespace wxsession
