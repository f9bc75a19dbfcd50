// Fuzzes the config loader with arbitrary file contents. The environment is
// empty, so the file alone decides. Run with stdin at /dev/null (scripts/fuzz
// does): a secret_file of /dev/stdin must not block. The "file" is a memfd
// read through /proc/self/fd, so no disk write slows each run.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "wxsession/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = ::memfd_create("wxs-config-fuzz", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ::ftruncate(fd, 0) != 0) std::abort();
  if (size > 0 && ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::abort();
  }
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
