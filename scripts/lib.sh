# Shared by scripts/run, scripts/test and scripts/bench: installs the Debian
# packages the project needs (only what is missing) and builds with meson.
# Sourced, not run.

# What building wxsessiond needs (scripts/run, scripts/package).
WXS_BUILD_PACKAGES=(
  g++ meson ninja-build pkg-config python3
  libcpp-httplib-dev libsqlite3-dev libssl-dev nlohmann-json3-dev
  libhiredis-dev
)

# Everything a fresh Debian 12 machine needs to build and test wxsessiond.
WXS_PACKAGES=(
  "${WXS_BUILD_PACKAGES[@]}"
  libgtest-dev googletest
  sqlite3 ca-certificates
  # The concurrency suite is built with clang (ThreadSanitizer and the
  # thread-safety analysis of the GUARDED_BY/REQUIRES annotations).
  clang libclang-rt-14-dev
  # Running in production: the real nginx and Caddy the gateway tests run
  # the shipped configs in, and the openssl CLI that makes the TLS test's
  # certificate.
  nginx-light caddy openssl
  # Redis backend (issue 6): the servers the tests run.
  redis-server redis-sentinel
  nodejs  # the client SDK's tests (node --test; Debian 12 ships Node 18)
  # The package test runs scripts/package, which computes Depends with
  # dpkg-shlibdeps.
  dpkg-dev
)

wxs_log() { printf '==> %s\n' "$*" >&2; }

# Installs the packages in "$@" that are not installed yet.
wxs_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root or install them" >&2
    return 1
  fi
  wxs_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The client SDK's pinned development tools (TypeScript, acorn, the
# mini-program typings: client/package-lock.json) into client/node_modules,
# which the client_types, client_syntax and client_pack tests load. npm
# comes with NodeSource's nodejs; Debian's nodejs needs Debian's npm (the two
# conflict, so it is installed only when there is no npm at all). Skipped
# when node_modules is newer than the lockfile.
wxs_client_dev_deps() {
  if ! command -v npm >/dev/null 2>&1; then
    wxs_install npm || return 1
  fi
  if [ -f client/node_modules/.package-lock.json ] &&
     [ client/node_modules/.package-lock.json -nt client/package-lock.json ]; then
    return 0
  fi
  wxs_log "installing the client's development tools (npm ci in client/)"
  (cd client && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

# Configures (once) and builds the build directory $1 with meson options $2...
wxs_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    wxs_log "configuring $dir"
    meson setup "$dir" "$@" >/dev/null
  fi
  wxs_log "building $dir"
  # Two cores on the target machines; more jobs only add memory pressure.
  ninja -C "$dir" -j "$(nproc)" >/dev/null || ninja -C "$dir" -j 1
}
