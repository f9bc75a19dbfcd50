// Start-up checks of the files that hold wxsessiond's secrets: the session
// database, the app secret files, the admin token file, the TLS private key,
// the master key files, and the config file when it holds a secret inline. Any
// of them readable or writable by group or others is reported, so the operator
// hears of it in the first log lines rather than after a leak. Nothing is
// changed: the operator decides.
//
// Thread-safety: pure functions over the file system.
#ifndef WXSESSION_FILE_CHECK_H_
#define WXSESSION_FILE_CHECK_H_

#include <string>
#include <vector>

#include "wxsession/config.h"

namespace wxsession {

struct LooseFile {
  std::string path;
  unsigned mode = 0;  // permission bits, e.g. 0644
};

// The files of `config` that hold secrets or sessions (see above).
// `config_path` (may be empty) is included when an app's secret is written
// inline in it. The database's -wal and -shm files are included (they hold the
// same data).
std::vector<std::string> SensitiveFiles(const Config& config,
                                        const std::string& config_path);

// Those of `paths` that exist and whose mode lets group or others read or
// write them (mode & 066). Symbolic links are followed: the target's mode is
// what protects the data. Paths that do not exist are skipped.
std::vector<LooseFile> FindLooseFiles(const std::vector<std::string>& paths);

// "0644"-style text of permission bits, for log lines.
std::string FormatMode(unsigned mode);

}  // namespace wxsession

#endif  // WXSESSION_FILE_CHECK_H_
