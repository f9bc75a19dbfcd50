// Files the configuration names that hold secrets (app secrets, tokens,
// passwords, keys): where they are and how they are read. Messages name the
// file and the key that named it, never the content.
//
// Thread-safety: plain functions; they read the file system each call.
#ifndef WXSESSION_CORE_SECRET_FILE_H_
#define WXSESSION_CORE_SECRET_FILE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "wxsession/config.h"
#include "wxsession/status.h"

namespace wxsession {

// 64 KiB: a WeChat secret is 32 characters; more is the wrong file.
constexpr size_t kMaxSecretFileBytes = size_t{64} << 10;
// A bearer token shorter than this is guessable; `openssl rand -hex 32`
// makes 64.
constexpr size_t kMinTokenChars = 16;

// How the configuration resolves paths to secrets (env, for
// $CREDENTIALS_DIRECTORY) and whether it reads the secrets only `serve`
// needs (skip: ConfigOverrides::without_secrets, for admin commands).
struct SecretSource {
  const GetEnv& env;
  bool skip;
};

// A whole file of at most `max_bytes`. kInvalidRequest "cannot read:
// <reason>" (missing, unreadable, a directory, too large).
Result<std::string> ReadWholeFile(const std::string& path, size_t max_bytes);

// Replaces a leading "$CREDENTIALS_DIRECTORY/" or
// "${CREDENTIALS_DIRECTORY}/" with that environment variable, which systemd
// sets for a unit with LoadCredential=. Other paths come back unchanged.
// kInvalidRequest naming `key_path` when the path needs the variable and it
// is unset or empty.
Result<std::string> ExpandCredentialsPath(const std::string& path,
                                          const std::string& key_path,
                                          const GetEnv& env);

// A secret file's content with trailing whitespace trimmed. kInvalidRequest
// "config: <key_path>: <file>: cannot read: ..." or "...: file is empty".
Result<std::string> ReadSecretFile(const std::string& file,
                                   const std::string& key_path);

// One bearer token (admin.token_file): trimmed of surrounding whitespace,
// one line of visible ASCII, at least kMinTokenChars long.
Result<std::string> ReadTokenFile(const std::string& file,
                                  const std::string& key_path);

// A list of bearer tokens, one a line (tokens.introspection_tokens_file):
// each trimmed, blank lines and '#' comments skipped, each as ReadTokenFile
// requires. Errors name the line number, never its content.
Result<std::vector<std::string>> ReadTokenListFile(const std::string& file,
                                                   const std::string& key_path);

}  // namespace wxsession

#endif  // WXSESSION_CORE_SECRET_FILE_H_
