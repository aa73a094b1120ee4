#!/usr/bin/env bash
# Builds the local control plane from Go modules (through the Go module proxy)
# into ~/.cache/agentnet/controlplane/<key>/bin and prints that directory
# (`build.sh --key` prints the <key> directory without building).
# <key> hashes versions.env, this script and the Go version, so a cached build
# is reused while they match and rebuilt when any of them changes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
command -v go >/dev/null || { echo "build.sh: Go >= 1.26 is needed to build the control plane (https://go.dev/dl)" >&2; exit 1; }
# shellcheck source=versions.env
source "$here/versions.env"

go_version=$(go env GOVERSION)
key=$( (cat "$here/versions.env" "$here/build.sh"; echo "$go_version") | sha256sum | cut -c1-16)
cache_root=${AGENTNET_CACHE:-$HOME/.cache/agentnet}/controlplane
out=$cache_root/$key
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm kubelet kube-proxy coredns)

if [ "${1:-}" = "--key" ]; then  # where a build for these versions lives, built or not
  echo "$out"
  exit 0
fi
if [ -f "$out/.complete" ]; then
  echo "$out/bin"
  exit 0
fi

log() { echo "[controlplane build] $*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# A throwaway module that requires $1@$2 and pins every module the upstream
# go.mod replaces with a local path (./staging/..., ../api) to its published
# release, because `go install pkg@version` refuses modules with replaces.
# $3 maps a replaced module path to its published version.
builder_module() {
  local module=$1 version=$2 sibling_version=$3 dir=$4
  mkdir -p "$dir"
  local upstream_mod
  upstream_mod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module agentnet.local/build/$(basename "$dir")"
    echo "go $(sed -n 's/^go //p' "$upstream_mod")"
    echo "require $module $version"
    sed -n 's#^\s*\(\S*\) => \.\{1,2\}/\S*$#replace \1 => \1 '"$sibling_version"'#p' "$upstream_mod"
  } > "$dir/go.mod"
}

build() {  # dir version ldflags packages... (all packages of the module at that version)
  local dir=$1 version=$2 ldflags=$3; shift 3
  (cd "$dir" && go get "${@/%/@$version}" >&2 &&
   go build -trimpath -ldflags "-s -w $ldflags" -o "$out/bin/" "$@")
}

log "kubernetes $KUBERNETES_VERSION"
k8s_minor=${KUBERNETES_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
staging_version=v0.${KUBERNETES_VERSION#v1.}
builder_module k8s.io/kubernetes "$KUBERNETES_VERSION" "$staging_version" "$work/kubernetes"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build "$work/kubernetes" "$KUBERNETES_VERSION" "$kube_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy

log "etcd $ETCD_VERSION"
builder_module go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" "$work/etcd"
build "$work/etcd" "$ETCD_VERSION" "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" go.etcd.io/etcd/server/v3
mv "$out/bin/server" "$out/bin/etcd"  # go names it after the package directory

log "kwok $KWOK_VERSION"
builder_module sigs.k8s.io/kwok "$KWOK_VERSION" "$KWOK_VERSION" "$work/kwok"
build "$work/kwok" "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
# The stages kwokctl uses by default: nodes initialise and keep a lease, pods become Ready at once.
kwok_src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
             pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  echo "---"; cat "$kwok_src/kustomize/stage/$stage.yaml"
done > "$out/kwok-stages.yaml"

log "coredns $COREDNS_VERSION"
builder_module github.com/coredns/coredns "$COREDNS_VERSION" "$COREDNS_VERSION" "$work/coredns"
build "$work/coredns" "$COREDNS_VERSION" "" github.com/coredns/coredns

log "helm $HELM_VERSION"
builder_module helm.sh/helm/v4 "$HELM_VERSION" "$HELM_VERSION" "$work/helm"
build "$work/helm" "$HELM_VERSION" "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" helm.sh/helm/v4/cmd/helm

for b in "${bins[@]}"; do [ -x "$out/bin/$b" ] || { log "missing $b"; exit 1; }; done
touch "$out/.complete"
# Builds for other versions are dead weight (~500 MB each).
find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
echo "$out/bin"
