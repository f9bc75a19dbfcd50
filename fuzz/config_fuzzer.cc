// Fuzzes the config loader with arbitrary file contents. The environment is
// empty, so the file alone decides. Run with stdin at /dev/null (scripts/fuzz
// does): a secret_file of /dev/stdin must not block.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "wxsession/config.h"

namespace {

std::string ConfigPath() {
  const char* base = std::getenv("TMPDIR");
  return std::string(base ? base : "/tmp") + "/wxs-config-fuzz-" +
         std::to_string(::getpid()) + ".json";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ConfigPath();
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  wxsession::GetEnv no_env = [](const std::string&) {
    return std::optional<std::string>();
  };
  wxsession::Result<wxsession::Config> config =
      wxsession::LoadConfig(path, no_env, {});
  if (config.ok()) {
    // What validation promises.
    if (config->apps.empty()) std::abort();
    if (config->session_ttl < 1) std::abort();
    if (config->listen_port < 0 || config->listen_port > 65535) std::abort();
    if (config->wechat_timeout_ms < 1) std::abort();
  } else if (config.status().message().rfind("config: ", 0) != 0) {
    std::abort();  // every error names where it comes from
  }
  return 0;
}
