// End to end: secrets at rest (storage.master_key_file, `wxsessiond rekey`)
// and the start-up check of file permissions, against the real binary.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mock/wechat.h"
#include "test_support.h"
#include "wxsession/crypto.h"

namespace wxsession {
namespace {

using json = nlohmann::json;
using testing_support::BinaryPath;
using testing_support::ReadFile;
using testing_support::RunCommand;
using testing_support::ServerFixture;
using testing_support::TempDir;
using testing_support::WriteFile;

// Writes a fresh key file (hex, as `openssl rand -hex 32` makes) with `mode`.
std::string NewKeyFile(TempDir& dir, const std::string& name,
                       unsigned mode = 0600) {
  std::string path = dir.File(name);
  WriteFile(path, crypto::HexEncode(crypto::RandomBytes(32)) + "\n");
  ::chmod(path.c_str(), mode);
  return path;
}

std::string StorageConfig(const std::string& key,
                          const std::vector<std::string>& previous = {}) {
  std::string text = R"("storage": {"master_key_file": ")" + key + "\"";
  if (!previous.empty()) {
    text += R"(, "previous_master_key_files": [)";
    for (size_t i = 0; i < previous.size(); ++i) {
      text += (i ? ", \"" : "\"") + previous[i] + "\"";
    }
    text += "]";
  }
  return text + "}";
}

// Replaces the "storage" member of the fixture's config file (or adds one).
void SetStorage(ServerFixture& fixture, const std::string& storage) {
  std::string config = ReadFile(fixture.config_path());
  size_t start = config.find("\"storage\"");
  if (start != std::string::npos) {
    size_t end = config.find('}', start);
    // Drop the member and the ",\n  " before it.
    size_t from = config.rfind(',', start);
    config.erase(from, end + 1 - from);
  }
  size_t close = config.rfind('}');
  if (!storage.empty()) config.insert(close, ",\n  " + storage + "\n");
  WriteFile(fixture.config_path(), config);
}

// Every users.session_key exactly as stored in the file.
std::vector<std::string> StoredKeys(const std::string& database) {
  std::vector<std::string> keys;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT session_key FROM users", -1, &stmt,
                           nullptr) == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        keys.emplace_back(
            reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
      }
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return keys;
}

class E2ESealed : public ::testing::Test {
 protected:
  E2ESealed()
      : key1_(NewKeyFile(keys_, "key1")),
        key2_(NewKeyFile(keys_, "key2")),
        fixture_(StorageConfig(key1_)) {}

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", fixture_.port());
    client.set_read_timeout(10, 0);
    return client;
  }

  std::string LoginOk(const std::string& code) {
    auto res = Client().Post("/v1/login", json({{"code", code}}).dump(),
                             "application/json");
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no answer");
    if (!res || res->status != 200) return "";
    return json::parse(res->body)["session_id"];
  }

  int SessionStatus(const std::string& id) {
    auto res = Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
    return res ? res->status : -1;
  }

  void Restart() {
    fixture_.StopServer(SIGTERM);
    ASSERT_EQ(fixture_.WaitServer(10000), std::optional<int>(0));
    ASSERT_TRUE(fixture_.Start());
  }

  // The newest session_key the mock issued to `user`, in the clear.
  std::string IssuedKey(const std::string& user) {
    httplib::Client mock("127.0.0.1", fixture_.mock_port());
    std::string openid =
        MockWeChatServer::OpenIdFor(ServerFixture::kAppId, user);
    auto res = mock.Get(
        ("/mock/session_key?appid=" + std::string(ServerFixture::kAppId) +
         "&openid=" + openid)
            .c_str());
    EXPECT_TRUE(res && res->status == 200);
    return res ? json::parse(res->body).value("session_key", "") : "";
  }

  TempDir keys_;
  std::string key1_;
  std::string key2_;
  ServerFixture fixture_;
};

TEST_F(E2ESealed, TheDatabaseNeverHoldsASessionKeyInTheClear) {
  ASSERT_TRUE(fixture_.Start());
  std::vector<std::string> users = {"amy", "ben", "cat"};
  for (const std::string& user : users) {
    std::string id = LoginOk(user + ".1");
    EXPECT_EQ(SessionStatus(id), 200);
  }
  std::string files;
  for (const char* suffix : {"", "-wal"}) {
    files += ReadFile(fixture_.database() + suffix);
  }
  for (const std::string& user : users) {
    std::string key = IssuedKey(user);
    ASSERT_EQ(key.size(), 24u);
    EXPECT_EQ(files.find(key), std::string::npos) << user;
  }
  for (const std::string& stored : StoredKeys(fixture_.database())) {
    EXPECT_EQ(stored.rfind("wxs1:", 0), 0u) << stored;
  }
  std::string log = fixture_.server()->Stderr();
  EXPECT_NE(log.find("\"event\":\"sealing\""), std::string::npos) << log;
  EXPECT_EQ(log.find(ReadFile(key1_).substr(0, 64)), std::string::npos);
}

TEST_F(E2ESealed, AWrongKeyAnswers503NeverLogsUsersOut) {
  ASSERT_TRUE(fixture_.Start());
  std::string id = LoginOk("dan.1");
  SetStorage(fixture_, StorageConfig(key2_));
  Restart();
  auto res = Client().Get("/v1/session", {{"Authorization", "Bearer " + id}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(json::parse(res->body)["error"], "store_unavailable");
  // With the right key back, the session is there.
  SetStorage(fixture_, StorageConfig(key1_));
  Restart();
  EXPECT_EQ(SessionStatus(id), 200);
}

TEST_F(E2ESealed, AnUnreadableOrMalformedKeyFileStopsStartUp) {
  WriteFile(key1_, "too short\n");
  auto bad =
      RunCommand({BinaryPath(), "serve", "--config", fixture_.config_path()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("config: storage.master_key_file: " + key1_),
            std::string::npos)
      << bad.err;
  EXPECT_EQ(bad.err.find("too short"), std::string::npos) << bad.err;
  ::unlink(key1_.c_str());
  auto missing =
      RunCommand({BinaryPath(), "serve", "--config", fixture_.config_path()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

// docs/SECURITY.md, "Rotating the master key", the online procedure.
TEST_F(E2ESealed, OnlineRotationLosesNoSession) {
  ASSERT_TRUE(fixture_.Start());
  std::string before = LoginOk("eve.1");
  // 1. The new key seals, the old one still opens.
  SetStorage(fixture_, StorageConfig(key2_, {key1_}));
  Restart();
  EXPECT_EQ(SessionStatus(before), 200);
  std::string during = LoginOk("fay.1");
  // 2. Re-seal the remaining rows while the server runs.
  auto rekey = RunCommand({BinaryPath(), "rekey", "--config",
                           fixture_.config_path(), "--new-key-file", key2_});
  ASSERT_EQ(rekey.exit_code, 0) << rekey.err;
  json counts = json::parse(rekey.out);
  EXPECT_EQ(counts["users"], 2);
  EXPECT_EQ(counts["resealed"], 1);  // fay's row was already under key2
  EXPECT_EQ(rekey.err.find("note:"), std::string::npos) << rekey.err;
  EXPECT_EQ(SessionStatus(before), 200);
  EXPECT_EQ(SessionStatus(during), 200);
  // 3. Retire the old key.
  SetStorage(fixture_, StorageConfig(key2_));
  Restart();
  EXPECT_EQ(SessionStatus(before), 200);
  EXPECT_EQ(SessionStatus(during), 200);
  // Nothing left to do.
  auto again = RunCommand({BinaryPath(), "rekey", "--config",
                           fixture_.config_path(), "--new-key-file", key2_});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out)["resealed"], 0);
}

TEST_F(E2ESealed, RekeyRefusesRowsItCannotOpenAndChangesNothing) {
  ASSERT_TRUE(fixture_.Start());
  std::string id = LoginOk("gus.1");
  std::vector<std::string> stored = StoredKeys(fixture_.database());
  // A config that names neither the key the rows are under...
  std::string stranger = NewKeyFile(keys_, "stranger");
  SetStorage(fixture_, StorageConfig(stranger));
  auto rekey = RunCommand({BinaryPath(), "rekey", "--config",
                           fixture_.config_path(), "--new-key-file", key2_});
  EXPECT_EQ(rekey.exit_code, 1);
  EXPECT_NE(rekey.err.find("not among the configured keys"), std::string::npos)
      << rekey.err;
  EXPECT_EQ(StoredKeys(fixture_.database()), stored);
  auto usage =
      RunCommand({BinaryPath(), "rekey", "--config", fixture_.config_path()});
  EXPECT_EQ(usage.exit_code, 2);
}

// Turning sealing on for a database that already has users: offline.
TEST(E2ESealing, FirstTimeSealingOfAnExistingDatabase) {
  TempDir keys;
  std::string key = NewKeyFile(keys, "key");
  ServerFixture fixture;
  ASSERT_TRUE(fixture.Start());
  httplib::Client client("127.0.0.1", fixture.port());
  auto login =
      client.Post("/v1/login", R"({"code":"hal.1"})", "application/json");
  ASSERT_TRUE(login && login->status == 200);
  std::string id = json::parse(login->body)["session_id"];
  ASSERT_EQ(StoredKeys(fixture.database()).front().size(), 24u);  // clear

  fixture.StopServer(SIGTERM);
  ASSERT_EQ(fixture.WaitServer(10000), std::optional<int>(0));
  auto rekey = RunCommand({BinaryPath(), "rekey", "--config",
                           fixture.config_path(), "--new-key-file", key});
  ASSERT_EQ(rekey.exit_code, 0) << rekey.err;
  EXPECT_EQ(json::parse(rekey.out)["resealed"], 1);
  // The config does not name the key yet: rekey says what to do next.
  EXPECT_NE(rekey.err.find("point it at " + key), std::string::npos)
      << rekey.err;
  EXPECT_EQ(StoredKeys(fixture.database()).front().rfind("wxs1:", 0), 0u);

  SetStorage(fixture, StorageConfig(key));
  ASSERT_TRUE(fixture.Start());
  httplib::Client again("127.0.0.1", fixture.port());
  auto session = again.Get("/v1/session", {{"Authorization", "Bearer " + id}});
  ASSERT_TRUE(session);
  EXPECT_EQ(session->status, 200) << session->body;
}

// --- File permissions --------------------------------------------------------

TEST(E2EFilePermissions, LooseSecretFilesAreReportedAtStartUp) {
  TempDir keys;
  std::string key = NewKeyFile(keys, "key", 0640);
  ServerFixture fixture(StorageConfig(key));
  std::string secret = fixture.dir().File("secret");
  ::chmod(secret.c_str(), 0644);
  ASSERT_TRUE(fixture.Start());
  std::vector<std::string> reports;
  std::string log = fixture.server()->Stderr();
  for (size_t at = 0;
       (at = log.find("loose_file_permissions", at)) != std::string::npos;) {
    size_t end = log.find('\n', at);
    reports.push_back(log.substr(at, end - at));
    at = end;
  }
  for (const auto& [path, mode] :
       std::vector<std::pair<std::string, std::string>>{{secret, "0644"},
                                                        {key, "0640"}}) {
    int found = 0;
    for (const std::string& line : reports) {
      if (line.find("\"" + path + "\"") == std::string::npos) continue;
      ++found;
      EXPECT_NE(line.find("\"" + mode + "\""), std::string::npos) << line;
    }
    EXPECT_EQ(found, 1) << path << " not reported once in:\n" << log;
  }
  // The database wxsessiond created itself is owner-only: not reported.
  EXPECT_EQ(reports.size(), 2u) << log;
}

TEST(E2EFilePermissions, OwnerOnlyFilesAreNotReported) {
  TempDir keys;
  std::string key = NewKeyFile(keys, "key", 0600);
  ServerFixture fixture(StorageConfig(key));
  ASSERT_TRUE(fixture.Start());
  EXPECT_EQ(fixture.server()->Stderr().find("loose_file_permissions"),
            std::string::npos)
      << fixture.server()->Stderr();
}

}  // namespace
}  // namespace wxsession
