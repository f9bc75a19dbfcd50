// The layout's rules (ARCHITECTURE.md), checked on every #include of the
// source tree: the domain contract (include/) and its implementation
// (src/core/) name no third-party library, and each area includes only the
// areas below it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// What each area may include with "quotes": its own folder and those below
// it. src/cmd/ wires everything and may include anything.
const std::map<std::string, std::vector<std::string>>& AllowedAreas() {
  static const std::map<std::string, std::vector<std::string>> allowed = {
      {"include", {"wxsession/"}},
      {"ops", {"wxsession/", "ops/"}},
      {"crypto", {"wxsession/", "crypto/"}},
      {"core", {"wxsession/", "core/", "ops/"}},
      {"store", {"wxsession/", "core/", "ops/", "store/"}},
      {"wechat", {"wxsession/", "core/", "ops/", "wechat/"}},
      {"platforms", {"wxsession/", "core/", "ops/", "wechat/", "platforms/"}},
      {"http", {"wxsession/", "core/", "ops/", "http/"}},
      {"mock", {"wxsession/", "core/", "ops/", "http/", "platforms/", "mock/"}},
  };
  return allowed;
}

// The libraries the domain must not name: <httplib.h>, <sqlite3.h>,
// <hiredis/...>, <openssl/...>.
bool IsAdapterLibrary(const std::string& header) {
  return header == "httplib.h" || header == "sqlite3.h" ||
         header.rfind("hiredis/", 0) == 0 || header.rfind("openssl/", 0) == 0;
}

// The area of a path relative to the source root: "include" for the
// contract, the folder under src/ otherwise ("" for anything else).
std::string AreaOf(const std::string& path) {
  if (path.rfind("include/", 0) == 0) return "include";
  if (path.rfind("src/", 0) != 0) return "";
  const size_t slash = path.find('/', 4);
  return slash == std::string::npos ? "" : path.substr(4, slash - 4);
}

// Every breach of the rules in one file's text, one line each.
std::vector<std::string> LayeringBreaches(const std::string& path,
                                          const std::string& text) {
  std::vector<std::string> breaches;
  const std::string area = AreaOf(path);
  if (area.empty() || area == "cmd") return breaches;
  auto allowed = AllowedAreas().find(area);
  if (allowed == AllowedAreas().end()) {
    breaches.push_back(path + ": area src/" + area +
                       "/ has no rule in layering_test.cc");
    return breaches;
  }
  static const std::regex include_line(
      R"(^\s*#\s*include\s*([<"])([^>"]+)[>"])");
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::smatch match;
    if (!std::regex_search(line, match, include_line)) continue;
    const std::string header = match[2];
    const std::string where = path + ":" + std::to_string(number) + ": ";
    if (match[1] == "<") {
      if ((area == "include" || area == "core") && IsAdapterLibrary(header)) {
        breaches.push_back(where + "the domain includes <" + header + ">");
      }
      continue;
    }
    const std::vector<std::string>& prefixes = allowed->second;
    const bool ok = std::any_of(
        prefixes.begin(), prefixes.end(),
        [&](const std::string& p) { return header.rfind(p, 0) == 0; });
    if (!ok) {
      breaches.push_back(where + area + " includes \"" + header + "\"");
    }
  }
  return breaches;
}

std::string SourceRoot() {
  const char* root = std::getenv("WXSESSIOND_SOURCE_ROOT");
  return root ? root : "";
}

TEST(LayeringRules, FlagTheDomainNamingALibrary) {
  EXPECT_EQ(LayeringBreaches("src/core/service.cc",
                             "#include <openssl/evp.h>\n#include <vector>\n")
                .size(),
            1u);
  EXPECT_EQ(
      LayeringBreaches("include/wxsession/store.h", "#include <sqlite3.h>\n")
          .size(),
      1u);
  EXPECT_EQ(
      LayeringBreaches("src/core/x.cc", "  #  include <httplib.h>\n").size(),
      1u);
  EXPECT_EQ(LayeringBreaches("include/wxsession/x.h",
                             "#include <hiredis/hiredis.h>\n")
                .size(),
            1u);
  // Adapters are where the libraries belong.
  EXPECT_TRUE(LayeringBreaches("src/store/sqlite/sqlite_store.cc",
                               "#include <sqlite3.h>\n")
                  .empty());
}

TEST(LayeringRules, FlagAnAreaReachingOutward) {
  EXPECT_EQ(
      LayeringBreaches("src/core/config.cc", "#include \"http/client_ip.h\"\n")
          .size(),
      1u);
  EXPECT_EQ(LayeringBreaches("include/wxsession/service.h",
                             "#include \"ops/log.h\"\n")
                .size(),
            1u);
  EXPECT_EQ(
      LayeringBreaches("src/ops/log.cc", "#include \"core/clock.h\"\n").size(),
      1u);
  EXPECT_EQ(
      LayeringBreaches("src/http/api.cc", "#include \"store/factory.h\"\n")
          .size(),
      1u);
  EXPECT_EQ(LayeringBreaches("src/newarea/x.cc", "").size(), 1u);
  EXPECT_TRUE(LayeringBreaches("src/http/api.cc",
                               "#include \"core/rate_limit.h\"\n"
                               "#include \"wxsession/service.h\"\n")
                  .empty());
  EXPECT_TRUE(
      LayeringBreaches("src/cmd/main.cc", "#include \"store/factory.h\"\n")
          .empty());
}

TEST(Layering, TheTreeKeepsTheRules) {
  const std::string root = SourceRoot();
  ASSERT_FALSE(root.empty()) << "WXSESSIOND_SOURCE_ROOT is not set";
  std::vector<std::string> breaches;
  size_t files = 0;
  for (const char* top : {"include", "src"}) {
    for (const auto& entry :
         fs::recursive_directory_iterator(root + "/" + top)) {
      const std::string ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cc")) continue;
      const std::string relative =
          fs::relative(entry.path(), root).generic_string();
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      for (std::string& b : LayeringBreaches(relative, text.str())) {
        breaches.push_back(std::move(b));
      }
      ++files;
    }
  }
  EXPECT_GT(files, 60u) << "the walk found too few files under " << root;
  std::string all;
  for (const std::string& b : breaches) all += b + "\n";
  EXPECT_TRUE(breaches.empty()) << all;
}

}  // namespace
