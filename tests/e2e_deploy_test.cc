// The deployment files: the systemd unit passes `systemd-analyze verify`
// and carries the hardening the issue asks for, and `meson install` puts
// the binary, the unit (pointing at the installed binary) and a working
// example config in place.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.h"
#include "wxsession/config.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
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
  auto verified =
      RunCommand({analyze, "verify", dir.File("wxsessiond.service")},
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
  std::string score_line = security.out.substr(
      score_at, security.out.find('\n', score_at) - score_at);
  std::cout << "[ measured ] " << score_line << "\n";
  size_t colon = score_line.find(": ");
  ASSERT_NE(colon, std::string::npos);
  double score = std::atof(score_line.c_str() + colon + 2);
  // 0 = fully locked down, 10 = unprotected; below 2 systemd calls "OK".
  EXPECT_LT(score, 2.0) << score_line;
}

// --- One version ------------------------------------------------------------

// The project version in meson.build: "version : 'X.Y.Z'".
std::string MesonVersion() {
  const std::string meson = ReadFile(SourceRoot() + "/meson.build");
  const std::string open = "version : '";
  size_t at = meson.find(open);
  EXPECT_NE(at, std::string::npos) << "meson.build changed shape";
  if (at == std::string::npos) return "";
  at += open.size();
  return meson.substr(at, meson.find('\'', at) - at);
}

TEST(Version, MesonBuildBinaryClientAndChangelogAgree) {
  const std::string version = MesonVersion();
  ASSERT_FALSE(version.empty());
  auto reported = RunCommand({BinaryPath(), "--version"});
  EXPECT_EQ(reported.exit_code, 0);
  EXPECT_EQ(reported.out, "wxsessiond " + version + "\n");
  json package = json::parse(ReadFile(SourceRoot() + "/client/package.json"),
                             nullptr, false);
  ASSERT_TRUE(package.is_object());
  EXPECT_EQ(package.value("version", ""), version);
  EXPECT_EQ(package.value("license", ""), "MIT");
  const std::string changelog = ReadFile(SourceRoot() + "/CHANGELOG.md");
  EXPECT_NE(changelog.find("\n## [" + version + "] - "), std::string::npos)
      << "CHANGELOG.md has no section for " << version;
  const std::string license = ReadFile(SourceRoot() + "/LICENSE");
  EXPECT_EQ(license.rfind("MIT License\n", 0), 0u);
}

// --- The proxy configurations: the same routes everywhere -------------------

std::string ShippedDeployFile(const std::string& name) {
  return ReadFile(SourceRoot() + "/scripts/deploy/" + name);
}

// The paths the mini-program SDK (client/wxsession.js) calls on wxsessiond,
// directly or through WxSession.request.
const std::set<std::string> kSdkPaths = {
    "/v1/login", "/v1/logout",  "/v1/session", "/v1/session/check",
    "/v1/phone", "/v1/decrypt", "/v1/verify"};

// nginx.conf: the alternatives of the one regex location that proxies to
// wxsessiond, "location ~ ^/v1/(a|b|...)$".
std::set<std::string> NginxPaths(const std::string& conf) {
  std::set<std::string> paths;
  const std::string open = "location ~ ^/v1/(";
  size_t at = conf.find(open);
  EXPECT_NE(at, std::string::npos) << "nginx.conf changed shape";
  if (at == std::string::npos) return paths;
  EXPECT_EQ(conf.find(open, at + 1), std::string::npos);
  at += open.size();
  size_t close = conf.find(")$", at);
  std::string alternatives = conf.substr(at, close - at);
  size_t start = 0;
  while (start <= alternatives.size()) {
    size_t bar = alternatives.find('|', start);
    if (bar == std::string::npos) bar = alternatives.size();
    paths.insert("/v1/" + alternatives.substr(start, bar - start));
    start = bar + 1;
  }
  return paths;
}

// Caddyfile: the "@wxsessiond path ..." matcher.
std::set<std::string> CaddyPaths(const std::string& conf) {
  std::set<std::string> paths;
  const std::string open = "@wxsessiond path ";
  size_t at = conf.find(open);
  EXPECT_NE(at, std::string::npos) << "Caddyfile changed shape";
  if (at == std::string::npos) return paths;
  at += open.size();
  std::istringstream words(conf.substr(at, conf.find('\n', at) - at));
  for (std::string word; words >> word;) paths.insert(word);
  return paths;
}

// traefik.yml: every Path(`...`) in the wxsessiond router's rule, which runs
// from "rule:" to the router's "service:" line.
std::set<std::string> TraefikPaths(const std::string& conf) {
  std::set<std::string> paths;
  size_t router = conf.find("\n    wxsessiond:\n");
  EXPECT_NE(router, std::string::npos) << "traefik.yml changed shape";
  if (router == std::string::npos) return paths;
  size_t end = conf.find("service:", router);
  const std::string rule = conf.substr(router, end - router);
  EXPECT_EQ(rule.find("PathPrefix"), std::string::npos) << rule;
  const std::string open = "Path(`";
  for (size_t at = rule.find(open); at != std::string::npos;
       at = rule.find(open, at)) {
    at += open.size();
    size_t close = rule.find("`)", at);
    paths.insert(rule.substr(at, close - at));
  }
  return paths;
}

TEST(ProxyConfigs, EveryShippedProxyRoutesTheSdkPathsToWxsessiond) {
  const std::string nginx = ShippedDeployFile("nginx.conf");
  const std::string caddy = ShippedDeployFile("Caddyfile");
  const std::string traefik = ShippedDeployFile("traefik.yml");
  ASSERT_FALSE(nginx.empty());
  ASSERT_FALSE(caddy.empty());
  ASSERT_FALSE(traefik.empty());
  // nginx.conf is run with the SDK in e2e_gateway; the others must route
  // exactly what it routes.
  EXPECT_EQ(NginxPaths(nginx), kSdkPaths);
  EXPECT_EQ(TraefikPaths(traefik), NginxPaths(nginx));
  EXPECT_EQ(CaddyPaths(caddy), NginxPaths(nginx));
  // And every one asks GET /v1/auth about everything else.
  EXPECT_NE(nginx.find("proxy_pass http://wxsessiond/v1/auth;"),
            std::string::npos);
  EXPECT_NE(caddy.find("uri /v1/auth"), std::string::npos);
  EXPECT_NE(traefik.find("address: \"http://127.0.0.1:8080/v1/auth\""),
            std::string::npos);
}

TEST(ProxyConfigs, NginxSendsTheClientAddressEverywhereItProxies) {
  const std::string nginx = ShippedDeployFile("nginx.conf");
  // Every proxy_pass's location sets X-Real-IP and appends to
  // X-Forwarded-For (wxsessiond counts under the right-most untrusted
  // address of it).
  int locations = 0;
  for (size_t at = nginx.find("proxy_pass "); at != std::string::npos;
       at = nginx.find("proxy_pass ", at + 1)) {
    size_t begin = nginx.rfind("location ", at);
    size_t end = nginx.find("\n    }", at);
    const std::string block = nginx.substr(begin, end - begin);
    EXPECT_NE(block.find("proxy_set_header X-Real-IP $remote_addr;"),
              std::string::npos)
        << block;
    EXPECT_NE(block.find("proxy_set_header X-Forwarded-For "
                         "$proxy_add_x_forwarded_for;"),
              std::string::npos)
        << block;
    ++locations;
  }
  EXPECT_EQ(locations, 3);  // wxsessiond's routes, the auth check, the API
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
  EXPECT_NE(
      unit_text.find("\nExecStartPre=" + installed_path + " check-config "),
      std::string::npos)
      << unit_text;

  // The example config loads as the unit would run it: the secret comes
  // from the credentials directory.
  TempDir credentials;
  WriteFile(credentials.File("appsecret"), "example-secret\n");
  auto config =
      LoadConfig(example,
                 [&](const std::string& name) -> std::optional<std::string> {
                   if (name == "CREDENTIALS_DIRECTORY")
                     return credentials.path();
                   return std::nullopt;
                 },
                 {});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->apps.at(0).secret, "example-secret");
  EXPECT_EQ(config->database, "/var/lib/wxsessiond/sessions.db");
}

// --- The Debian package (scripts/package) -----------------------------------
// Built here from this build's binary (--build-dir), so the suite needs no
// second compile; installing it needs a second root and is checked by hand
// (docs/DEPLOY.md, "Checking a package").

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(DebianPackage, HoldsTheFilesWithRuntimeDependsOnlyAndStartsNothing) {
  const char* build = std::getenv("WXSESSIOND_BUILD_ROOT");
  ASSERT_NE(build, nullptr) << "WXSESSIOND_BUILD_ROOT is set by meson";
  const std::string dpkg_deb = FindProgram("dpkg-deb");
  ASSERT_FALSE(dpkg_deb.empty()) << "dpkg-deb not found";
  TempDir out;
  // Compressing a sanitizer build's binary with xz takes over 30 s beside
  // other tests: 150 s, inside meson's 180 s for the whole test.
  auto built = RunCommand({SourceRoot() + "/scripts/package", "--build-dir",
                           build, "--out", out.path()},
                          {}, 150000);
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  const std::string version = MesonVersion();
  const std::string arch =
      RunCommand({FindProgram("dpkg"), "--print-architecture"}).out;
  const std::string deb = out.File("wxsessiond_" + version + "_" +
                                   arch.substr(0, arch.find('\n')) + ".deb");
  ASSERT_EQ(built.out, deb + "\n");

  // The control fields: meson.build's version, Depends on libraries only.
  auto field = [&](const std::string& name) {
    std::string value = RunCommand({dpkg_deb, "-f", deb, name}).out;
    return value.substr(0, value.find('\n'));
  };
  EXPECT_EQ(field("Package"), "wxsessiond");
  EXPECT_EQ(field("Version"), version);
  const std::string depends = field("Depends");
  for (const char* library : {"libc6", "libstdc++6", "libssl3", "libsqlite3-0",
                              "libhiredis0.14", "libcpp-httplib0.11"}) {
    EXPECT_TRUE(Contains(depends, std::string(library) + " ")) << depends;
  }
  // Each dependency's package name: no compiler, no -dev package, no
  // server the tests use.
  std::istringstream alternatives(depends);
  for (std::string item; std::getline(alternatives, item, ',');) {
    std::istringstream words(item);
    std::string name;
    words >> name;
    EXPECT_FALSE(name.size() > 4 && name.substr(name.size() - 4) == "-dev")
        << depends;
    for (const char* build_or_test :
         {"g++", "gcc", "g++-12", "gcc-12", "meson", "ninja-build",
          "redis-server", "nginx-light", "nginx", "caddy", "nodejs",
          "googletest", "systemd"}) {
      EXPECT_NE(name, build_or_test) << depends;
    }
  }

  // The files, owned by root, the config root-only.
  const std::string listing = RunCommand({dpkg_deb, "-c", deb}).out;
  for (const char* entry : {"-rwxr-xr-x root/root", "./usr/bin/wxsessiond\n",
                            "./lib/systemd/system/wxsessiond.service\n",
                            "./usr/share/wxsessiond/nginx.conf\n",
                            "./usr/share/wxsessiond/Caddyfile\n",
                            "./usr/share/wxsessiond/traefik.yml\n",
                            "./usr/share/wxsessiond/config.example.json\n",
                            "./usr/share/doc/wxsessiond/copyright\n",
                            "./usr/share/doc/wxsessiond/README.md\n",
                            "./usr/share/doc/wxsessiond/CHANGELOG.md\n",
                            "./usr/share/doc/wxsessiond/docs/DEPLOY.md\n"}) {
    EXPECT_TRUE(Contains(listing, entry)) << entry << "\n" << listing;
  }
  size_t config_line = listing.find("./etc/wxsessiond/config.json\n");
  ASSERT_NE(config_line, std::string::npos) << listing;
  const std::string config_entry =
      listing.substr(listing.rfind('\n', config_line) + 1,
                     config_line - listing.rfind('\n', config_line) - 1);
  EXPECT_EQ(config_entry.rfind("-rw-r----- root/root", 0), 0u) << config_entry;
  EXPECT_FALSE(Contains(listing, "/usr/local/")) << listing;

  TempDir tree;
  ASSERT_EQ(RunCommand({dpkg_deb, "-x", deb, tree.path()}).exit_code, 0);
  ASSERT_EQ(RunCommand({dpkg_deb, "-e", deb, tree.File("DEBIAN")}).exit_code,
            0);
  EXPECT_EQ(ReadFile(tree.File("DEBIAN/conffiles")),
            "/etc/wxsessiond/config.json\n");
  auto version_of_packaged =
      RunCommand({tree.File("usr/bin/wxsessiond"), "--version"});
  EXPECT_EQ(version_of_packaged.out, "wxsessiond " + version + "\n");
  const std::string unit =
      ReadFile(tree.File("lib/systemd/system/wxsessiond.service"));
  EXPECT_TRUE(Contains(unit,
                       "\nExecStartPre=/usr/bin/wxsessiond check-config "
                       "--config %d/config.json\n"))
      << unit;
  EXPECT_TRUE(Contains(unit,
                       "\nExecStart=/usr/bin/wxsessiond serve --config "
                       "%d/config.json\n"))
      << unit;
  EXPECT_TRUE(Contains(
      unit, "\nLoadCredential=config.json:/etc/wxsessiond/config.json\n"));
  const std::string copyright =
      ReadFile(tree.File("usr/share/doc/wxsessiond/copyright"));
  EXPECT_TRUE(Contains(copyright, "License: Expat\n")) << copyright;
  EXPECT_TRUE(Contains(copyright, " Permission is hereby granted"))
      << copyright;
  // The shipped config as the unit runs it (credentials directory).
  TempDir credentials;
  WriteFile(credentials.File("appsecret"), "packaged-secret\n");
  auto loaded =
      LoadConfig(tree.File("etc/wxsessiond/config.json"),
                 [&](const std::string& name) -> std::optional<std::string> {
                   if (name == "CREDENTIALS_DIRECTORY")
                     return credentials.path();
                   return std::nullopt;
                 },
                 {});
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();

  // Installing starts and enables nothing: the app is not configured yet.
  // (The note it prints names `systemctl enable --now`; the commands it
  // runs are the lines starting with systemctl.)
  std::istringstream postinst(ReadFile(tree.File("DEBIAN/postinst")));
  for (std::string line; std::getline(postinst, line);) {
    line.erase(0, line.find_first_not_of(" \t"));
    EXPECT_FALSE(Contains(line, "deb-systemd-")) << line;
    if (line.rfind("systemctl ", 0) != 0) continue;
    EXPECT_FALSE(Contains(line, " start ") || Contains(line, " enable "))
        << line;
  }
  // Removing keeps the sessions; purging deletes them. The maintainer
  // scripts run against a scratch root through DPKG_ROOT.
  TempDir system_root;
  const std::string state = system_root.File("var/lib/wxsessiond");
  std::filesystem::create_directories(state);
  std::filesystem::create_directories(
      system_root.File("var/lib/private/wxsessiond"));
  WriteFile(state + "/sessions.db", "sessions");
  const std::map<std::string, std::string> env = {
      {"DPKG_ROOT", system_root.path()}};
  auto postrm = [&](const char* action) {
    return RunCommand({"/bin/sh", tree.File("DEBIAN/postrm"), action}, env)
        .exit_code;
  };
  EXPECT_EQ(RunCommand(
                {"/bin/sh", tree.File("DEBIAN/postinst"), "configure", ""}, env)
                .exit_code,
            0);
  EXPECT_EQ(postrm("remove"), 0);
  EXPECT_EQ(ReadFile(state + "/sessions.db"), "sessions");
  EXPECT_EQ(postrm("purge"), 0);
  EXPECT_FALSE(std::filesystem::exists(state));
  EXPECT_FALSE(
      std::filesystem::exists(system_root.File("var/lib/private/wxsessiond")));
}

}  // namespace
}  // namespace wxsession
