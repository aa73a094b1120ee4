# shellcheck shell=bash
# Sourced by the build.sh of a program the rig builds from one Go module (tests/spinoperator,
# tests/certmanager): the module's source, and the cache a build of it is kept in.

# module_source MODULE VERSION: the module's directory, downloaded through the Go module proxy
# (outside any module, so the download is just the module, read-only in GOMODCACHE).
module_source() {
  (cd / && go mod download -json "$1@$2" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
}

# use_cached NAME BINARY INPUT...: sets $out to the cache directory of a build from these inputs
# (and the Go version); when BINARY is built there already, prints its path and exits.
use_cached() {
  local name=$1 binary=$2 key
  shift 2
  key=$( (cat "$@"; go env GOVERSION) | sha256sum | cut -c1-16)
  cache_root=${AGENTNET_CACHE:-$HOME/.cache/agentnet}/$name
  out=$cache_root/$key
  if [ -x "$out/$binary" ]; then
    echo "$out/$binary"
    exit 0
  fi
}

# keep BUILT: moves the built binary into $out, drops builds for other inputs (dead weight) and
# prints its path.
keep() {
  mkdir -p "$out"
  mv "$1" "$out/"
  find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$(basename "$out")" -exec rm -rf {} +
  echo "$out/$(basename "$1")"
}
