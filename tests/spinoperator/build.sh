#!/usr/bin/env bash
# The real spin-operator (SpinKube), from its Go module through the Go module proxy:
#   build.sh          builds it into ~/.cache/agentnet/spin-operator/<key>/spin-operator (minutes,
#                     once) and prints that path
#   build.sh --crds   prints the module's CRD directory (core.spinkube.dev_spinapps.yaml and
#                     core.spinkube.dev_spinappexecutors.yaml), downloading the module only
# <key> hashes version.env, this script and the Go version, so a cached build is reused
# while they match. Kept apart from the control plane's build so neither invalidates the other.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: Go >= 1.26 is needed for spin-operator" >&2; exit 1; }
# shellcheck source=version.env
source "$here/version.env"

module=github.com/spinkube/spin-operator
# Outside any module, so the download is just the module (cached in GOMODCACHE, read-only).
src=$(cd / && go mod download -json "$module@$SPIN_OPERATOR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$src/config/crd/bases" ] || { echo "build.sh: no config/crd/bases in $module@$SPIN_OPERATOR_VERSION" >&2; exit 1; }
if [ "${1:-}" = --crds ]; then
  echo "$src/config/crd/bases"
  exit 0
fi

key=$( (cat "$here/version.env" "$here/build.sh"; go env GOVERSION) | sha256sum | cut -c1-16)
cache_root=${AGENTNET_CACHE:-$HOME/.cache/agentnet}/spin-operator
out=$cache_root/$key
if [ -x "$out/spin-operator" ]; then
  echo "$out/spin-operator"
  exit 0
fi

echo "[spin-operator build] $module $SPIN_OPERATOR_VERSION (takes minutes, once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The module has no replace directives: its own go.mod and go.sum pin every dependency.
cp -r "$src/." "$work/"
chmod -R u+w "$work"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$work/spin-operator" \
   -ldflags "-s -w -X github.com/prometheus/common/version.Version=${SPIN_OPERATOR_VERSION#v}" ./cmd) >&2
mkdir -p "$out"
mv "$work/spin-operator" "$out/"
# Builds for other versions are dead weight.
find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
echo "$out/spin-operator"
