#!/usr/bin/env bash
# Builds Prometheus and promtool from its Go module (through the Go module proxy) into
# ~/.cache/agentnet/prometheus/<key>/ and prints the path of the binary asked for:
#   build.sh            .../prometheus (the server)
#   build.sh promtool   .../promtool   (`promtool test rules` for the chart's alerts)
# <key> hashes version.env, this script and the Go version. Kept apart from the
# control plane's build so that neither invalidates the other's cache.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: Go >= 1.26 is needed to build Prometheus" >&2; exit 1; }
# shellcheck source=version.env
source "$here/version.env"

key=$( (cat "$here/version.env" "$here/build.sh"; go env GOVERSION) | sha256sum | cut -c1-16)
out=${AGENTNET_CACHE:-$HOME/.cache/agentnet}/prometheus/$key
binary=${1:-prometheus}
case $binary in prometheus | promtool) ;; *) echo "usage: build.sh [prometheus|promtool]" >&2; exit 2 ;; esac
if [ -x "$out/prometheus" ] && [ -x "$out/promtool" ]; then
  echo "$out/$binary"
  exit 0
fi

echo "[prometheus build] github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION (takes minutes, once)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `go install pkg@version` refuses a module whose go.mod has replace directives, so
# a throwaway module requires it and repeats its one replace (cloud.google.com/go).
upstream_mod=$(go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" |
               sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module agentnet.local/build/prometheus"
  echo "go $(sed -n 's/^go //p' "$upstream_mod")"
  echo "require github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION"
  sed -n 's#^replace \(\S*\) => \(\S*\) \(v\S*\)$#replace \1 => \2 \3#p' "$upstream_mod"
} > "$work/go.mod"
# A file importing the commands makes `go mod tidy` record everything they need.
printf 'package build\n\nimport (\n\t_ "github.com/prometheus/prometheus/cmd/prometheus"\n\t_ "github.com/prometheus/prometheus/cmd/promtool"\n)\n' > "$work/tools.go"
number=${PROMETHEUS_MODULE_VERSION#v0.}                     # 315.0
release="3.$(( ${number%%.*} - 300 )).${number#*.}"          # 3.15.0
(cd "$work" && GOFLAGS=-mod=mod go mod tidy >&2 &&
 for command in prometheus promtool; do
   CGO_ENABLED=0 go build -trimpath -o "$work/$command" \
     -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
     "github.com/prometheus/prometheus/cmd/$command" || exit 1
 done)
mkdir -p "$out"
mv "$work/prometheus" "$work/promtool" "$out/"
echo "$out/$binary"
