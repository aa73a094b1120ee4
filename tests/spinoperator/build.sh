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
# shellcheck source=../gomodule.sh
source "$here/../gomodule.sh"

module=github.com/spinkube/spin-operator
src=$(module_source "$module" "$SPIN_OPERATOR_VERSION")
[ -d "$src/config/crd/bases" ] || { echo "build.sh: no config/crd/bases in $module@$SPIN_OPERATOR_VERSION" >&2; exit 1; }
if [ "${1:-}" = --crds ]; then
  echo "$src/config/crd/bases"
  exit 0
fi

use_cached spin-operator spin-operator "$here/version.env" "$here/build.sh" "$here/../gomodule.sh"

echo "[spin-operator build] $module $SPIN_OPERATOR_VERSION (takes minutes, once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The module has no replace directives: its own go.mod and go.sum pin every dependency.
cp -r "$src/." "$work/"
chmod -R u+w "$work"
(cd "$work" && CGO_ENABLED=0 go build -trimpath -o "$work/spin-operator" \
   -ldflags "-s -w -X github.com/prometheus/common/version.Version=${SPIN_OPERATOR_VERSION#v}" ./cmd) >&2
keep "$work/spin-operator"
