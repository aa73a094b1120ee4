#!/usr/bin/env bash
# The real cert-manager, from its Go module through the Go module proxy:
#   build.sh          builds its controllers (controller/main.go, inside a copy of the module) into
#                     ~/.cache/agentnet/cert-manager/<key>/cert-manager (minutes, once) and prints that path
#   build.sh --crds   prints the module's CRD directory (deploy/crds), downloading the module only
# <key> hashes version.env, this script, main.go and the Go version, so a cached build is reused
# while they match.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: Go >= 1.26 is needed for cert-manager" >&2; exit 1; }
# shellcheck source=version.env
source "$here/version.env"
# shellcheck source=../gomodule.sh
source "$here/../gomodule.sh"

module=github.com/cert-manager/cert-manager
src=$(module_source "$module" "$CERT_MANAGER_VERSION")
[ -d "$src/deploy/crds" ] || { echo "build.sh: no deploy/crds in $module@$CERT_MANAGER_VERSION" >&2; exit 1; }
if [ "${1:-}" = --crds ]; then
  echo "$src/deploy/crds"
  exit 0
fi

use_cached cert-manager cert-manager "$here/version.env" "$here/build.sh" "$here/../gomodule.sh" \
  "$here/controller/main.go"

echo "[cert-manager build] $module $CERT_MANAGER_VERSION (takes minutes, once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Built as a command of the module itself: its go.mod and go.sum pin every dependency.
cp -r "$src/." "$work/"
chmod -R u+w "$work"
mkdir -p "$work/cmd/agentnet-cert-manager"
cp "$here/controller/main.go" "$work/cmd/agentnet-cert-manager/"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$work/cert-manager" \
   -ldflags "-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION" \
   ./cmd/agentnet-cert-manager) >&2
keep "$work/cert-manager"
