#include "ops/file_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "test_support.h"

namespace wxsession {
namespace {

using testing_support::TempDir;
using testing_support::WriteFile;

bool Contains(const std::vector<std::string>& paths, const std::string& path) {
  return std::find(paths.begin(), paths.end(), path) != paths.end();
}

TEST(SensitiveFiles, NamesTheDatabaseSecretsKeysAndAnInlineSecretConfig) {
  Config config;
  config.database = "/var/lib/x/s.db";
  config.apps.push_back({"wx1", "secret-a", "/etc/x/secret-a"});
  config.master_key_file = "/etc/x/master.key";
  config.previous_master_key_files = {"/etc/x/old.key"};
  config.admin_token_file = "/etc/x/admin_token";
  config.tls_cert = "/etc/x/cert.pem";
  config.tls_key = "/etc/x/key.pem";
  std::vector<std::string> paths = SensitiveFiles(config, "/etc/x/config.json");
  for (const char* path :
       {"/var/lib/x/s.db", "/var/lib/x/s.db-wal", "/var/lib/x/s.db-shm",
        "/etc/x/secret-a", "/etc/x/master.key", "/etc/x/old.key",
        "/etc/x/admin_token", "/etc/x/key.pem"}) {
    EXPECT_TRUE(Contains(paths, path)) << path;
  }
  // A certificate is public; the config file holds no secret while every
  // secret is in a file.
  EXPECT_FALSE(Contains(paths, "/etc/x/cert.pem"));
  EXPECT_FALSE(Contains(paths, "/etc/x/config.json"));
  config.apps.push_back({"wx2", "inline-secret"});
  EXPECT_TRUE(Contains(SensitiveFiles(config, "/etc/x/config.json"),
                       "/etc/x/config.json"));
  // Never the secret itself.
  for (const std::string& path : SensitiveFiles(config, "")) {
    EXPECT_EQ(path.find("inline-secret"), std::string::npos);
  }
}

TEST(FindLooseFiles, ReportsGroupOrOtherReadOrWriteOnly) {
  TempDir dir;
  struct Case {
    const char* name;
    unsigned mode;
    bool loose;
  } cases[] = {{"owner-only", 0600, false}, {"owner-exec", 0700, false},
               {"read-only", 0400, false},  {"world-read", 0604, true},
               {"group-read", 0640, true},  {"group-write", 0620, true},
               {"usual-644", 0644, true},   {"exec-only", 0711, false}};
  std::vector<std::string> paths;
  for (const Case& c : cases) {
    WriteFile(dir.File(c.name), "x");
    ASSERT_EQ(::chmod(dir.File(c.name).c_str(), c.mode), 0);
    paths.push_back(dir.File(c.name));
  }
  paths.push_back(dir.File("does-not-exist"));
  ASSERT_EQ(::symlink(dir.File("usual-644").c_str(), dir.File("link").c_str()),
            0);
  paths.push_back(dir.File("link"));

  std::vector<LooseFile> loose = FindLooseFiles(paths);
  for (const Case& c : cases) {
    auto found = std::find_if(
        loose.begin(), loose.end(),
        [&](const LooseFile& f) { return f.path == dir.File(c.name); });
    EXPECT_EQ(found != loose.end(), c.loose) << c.name;
    if (found != loose.end()) {
      EXPECT_EQ(found->mode, c.mode) << c.name;
    }
  }
  // A link is judged by its target's mode.
  EXPECT_TRUE(std::any_of(loose.begin(), loose.end(), [&](const LooseFile& f) {
    return f.path == dir.File("link") && f.mode == 0644;
  }));
  EXPECT_EQ(loose.size(), 5u);
  EXPECT_EQ(FormatMode(0644), "0644");
  EXPECT_EQ(FormatMode(0100600), "0600");
}

}  // namespace
}  // namespace wxsession
