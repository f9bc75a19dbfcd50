// The deployment files: the systemd unit passes `systemd-analyze verify`
// and carries the hardening the issue asks for, and `meson install` puts
// the binary, the unit (pointing at the installed binary) and a working
// example config in place.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "test_support.h"
#include "wxsession/config.h"

namespace wxsession {
namespace {

using testing_support::BinaryPath;
using testing_support::FindProgram;
using testing_support::ReadFile;
using testing_support::RunCommand;
using testing_support::TempDir;
using testing_support::WriteFile;

std::string SourceRoot() {
  const char* root = std::getenv("WXSESSIOND_SOURCE_ROOT");
  return root ? root : ".";
}

std::string ShippedUnit() {
  return ReadFile(SourceRoot() + "/scripts/deploy/wxsessiond.service");
}

TEST(SystemdUnit, CarriesTheRequiredHardening) {
  const std::string unit = ShippedUnit();
  ASSERT_FALSE(unit.empty());
  for (const char* line :
       {"Type=notify\n", "DynamicUser=yes\n", "StateDirectory=wxsessiond\n",
        "ProtectSystem=strict\n", "NoNewPrivileges=yes\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
        "SystemCallFilter=@system-service\n",
        "LoadCredential=appsecret:/etc/wxsessiond/appsecret\n",
        "LoadCredential=config.json:/etc/wxsessiond/config.json\n",
        "ExecStartPre=/usr/local/bin/wxsessiond check-config --config "
        "%d/config.json\n",
        "ExecStart=/usr/local/bin/wxsessiond serve --config "
        "%d/config.json\n"}) {
    EXPECT_NE(unit.find(std::string("\n") + line), std::string::npos)
        << "missing: " << line;
  }
}

TEST(SystemdUnit, PassesSystemdAnalyzeVerify) {
  const std::string analyze = FindProgram("systemd-analyze");
  if (analyze.empty()) {
    GTEST_SKIP() << "systemd-analyze not found: the unit was NOT verified. "
                    "Install Debian's systemd package to check it.";
  }
  TempDir dir;
  std::string unit = ShippedUnit();
  // verify checks that ExecStartPre and ExecStart exist: point them at the
  // binary under test.
  const std::string shipped_binary = "/usr/local/bin/wxsessiond";
  int replaced = 0;
  for (size_t at = unit.find(shipped_binary); at != std::string::npos;
       at = unit.find(shipped_binary, at)) {
    unit.replace(at, shipped_binary.size(), BinaryPath());
    ++replaced;
  }
  EXPECT_EQ(replaced, 2);
  WriteFile(dir.File("wxsessiond.service"), unit);
  auto verified = RunCommand({analyze, "verify", dir.File("wxsessiond.service")},
                             {{"SYSTEMD_LOG_COLOR", "0"}});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // Unknown keys and bad values are only warnings; none is acceptable.
  EXPECT_EQ(verified.out + verified.err, "") << "systemd-analyze complained";

  // And the exposure score systemd computes from the sandboxing settings.
  auto security = RunCommand({analyze, "security", "--offline=true",
                              "--no-pager", dir.File("wxsessiond.service")},
                             {{"SYSTEMD_LOG_COLOR", "0"}});
  size_t score_at = security.out.find("Overall exposure level");
  ASSERT_NE(score_at, std::string::npos) << security.out << security.err;
  std::string score_line =
      security.out.substr(score_at, security.out.find('\n', score_at) - score_at);
  std::cout << "[ measured ] " << score_line << "\n";
  size_t colon = score_line.find(": ");
  ASSERT_NE(colon, std::string::npos);
  double score = std::atof(score_line.c_str() + colon + 2);
  // 0 = fully locked down, 10 = unprotected; below 2 systemd calls "OK".
  EXPECT_LT(score, 2.0) << score_line;
}

TEST(MesonInstall, InstallsBinaryUnitAndExampleConfig) {
  const char* build = std::getenv("WXSESSIOND_BUILD_ROOT");
  ASSERT_NE(build, nullptr) << "WXSESSIOND_BUILD_ROOT is set by meson";
  const std::string meson = FindProgram("meson");
  ASSERT_FALSE(meson.empty()) << "meson not found in PATH";
  TempDir dest;
  auto installed = RunCommand({meson, "install", "-C", build, "--no-rebuild",
                               "--destdir", dest.path()});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;

  // Find what landed where, whatever the prefix.
  std::string binary, unit, example;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(dest.path())) {
    std::string path = entry.path().string();
    auto ends_with = [&](const std::string& tail) {
      return path.size() >= tail.size() &&
             path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends_with("/bin/wxsessiond")) binary = path;
    if (ends_with("/systemd/system/wxsessiond.service")) unit = path;
    if (ends_with("/share/wxsessiond/config.example.json")) example = path;
  }
  ASSERT_FALSE(binary.empty()) << installed.out;
  ASSERT_FALSE(unit.empty()) << installed.out;
  ASSERT_FALSE(example.empty()) << installed.out;
  EXPECT_EQ(::access(binary.c_str(), X_OK), 0);
  for (const char* snippet : {"nginx.conf", "Caddyfile", "traefik.yml"}) {
    std::string path = example.substr(0, example.rfind('/') + 1) + snippet;
    EXPECT_EQ(::access(path.c_str(), R_OK), 0) << path;
  }

  // The installed unit starts the installed binary.
  const std::string installed_path = binary.substr(dest.path().size());
  std::string unit_text = ReadFile(unit);
  EXPECT_NE(unit_text.find("\nExecStart=" + installed_path + " serve "),
            std::string::npos)
      << unit_text;
  EXPECT_NE(unit_text.find("\nExecStartPre=" + installed_path +
                           " check-config "),
            std::string::npos)
      << unit_text;

  // The example config loads as the unit would run it: the secret comes
  // from the credentials directory.
  TempDir credentials;
  WriteFile(credentials.File("appsecret"), "example-secret\n");
  auto config = LoadConfig(
      example,
      [&](const std::string& name) -> std::optional<std::string> {
        if (name == "CREDENTIALS_DIRECTORY") return credentials.path();
        return std::nullopt;
      },
      {});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->apps.at(0).secret, "example-secret");
  EXPECT_EQ(config->database, "/var/lib/wxsessiond/sessions.db");
}

}  // namespace
}  // namespace wxsession
