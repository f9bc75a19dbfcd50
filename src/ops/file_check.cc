#include "ops/file_check.h"

#include <sys/stat.h>

#include <cstdio>

namespace wxsession {

std::vector<std::string> SensitiveFiles(const Config& config,
                                        const std::string& config_path) {
  std::vector<std::string> paths;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    paths.push_back(config.database + suffix);
  }
  bool inline_secret = false;
  for (const AppConfig& app : config.apps) {
    if (app.secret_file.empty()) {
      inline_secret = true;
    } else {
      paths.push_back(app.secret_file);
    }
  }
  if (inline_secret && !config_path.empty()) paths.push_back(config_path);
  if (!config.admin_token_file.empty()) {
    paths.push_back(config.admin_token_file);
  }
  if (!config.tls_key.empty()) paths.push_back(config.tls_key);
  if (!config.master_key_file.empty()) paths.push_back(config.master_key_file);
  for (const std::string& file : config.previous_master_key_files) {
    paths.push_back(file);
  }
  return paths;
}

std::vector<LooseFile> FindLooseFiles(const std::vector<std::string>& paths) {
  // Group or other may read or write (execute alone reveals nothing).
  constexpr unsigned kLooseBits = 0066;
  std::vector<LooseFile> loose;
  for (const std::string& path : paths) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) continue;
    unsigned mode = static_cast<unsigned>(info.st_mode) & 07777;
    if ((mode & kLooseBits) != 0) loose.push_back({path, mode});
  }
  return loose;
}

std::string FormatMode(unsigned mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", mode & 07777);
  return text;
}

}  // namespace wxsession
