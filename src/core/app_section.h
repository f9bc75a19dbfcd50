// The apps of the configuration, from its apps[] entries and the
// environment: each app's appid, platform and
// api_base, and the credentials its platform takes: a secret or secret_file,
// or for Alipay two RSA key files, checked to load (crypto::CheckRsa*Key)
// and never quoted. Part of LoadConfig (config.cc), apart because the rules
// differ by platform.
//
// Thread-safety: plain functions; they read the files the entries name.
#ifndef WXSESSION_CORE_APP_SECTION_H_
#define WXSESSION_CORE_APP_SECTION_H_

#include <optional>
#include <string>

#include "core/json_section.h"
#include "core/secret_file.h"
#include "wxsession/config.h"
#include "wxsession/status.h"

namespace wxsession {

// Appends the apps of root's "apps" array to config->apps (none when
// absent). kInvalidRequest "config: apps[i].<key>: ..." for the first bad
// entry, "config: apps[i].appid: duplicate appid ..." for a repeated appid.
Status ApplyApps(const Section& root, const SecretSource& secrets,
                 Config* config);

// The app the environment names: WXSESSIOND_APPID with WXSESSIOND_SECRET or
// WXSESSIOND_SECRET_FILE (read unless `without_secrets`). It replaces the
// secret of a configured app with that appid, or is appended.
// kInvalidRequest naming the variable for an incomplete or contradictory
// set.
Status ApplyEnvironmentApp(const GetEnv& env, bool without_secrets,
                           Config* config);

// The environment variable `name`, empty counting as unset: container
// tooling often exports empty variables for unset ones.
std::optional<std::string> NonEmptyEnv(const GetEnv& env,
                                       const std::string& name);

}  // namespace wxsession

#endif  // WXSESSION_CORE_APP_SECTION_H_
