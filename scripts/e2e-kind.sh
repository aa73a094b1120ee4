#!/usr/bin/env bash
# End to end on kind, for a machine with a Docker engine:
#   1. build the agentnet image (version = agentnet_runtime.__version__ = the chart's appVersion),
#   2. create a kind cluster (or reuse one of that name) and load the image into it,
#   3. helm install the chart with that image,
#   4. apply a network (default: examples/network.yaml) and wait for its Ready condition.
#
#   make e2e-kind                                      # or: bash scripts/e2e-kind.sh
#   KIND_CLUSTER=dev E2E_NETWORK=examples/ring.yaml bash scripts/e2e-kind.sh
#   E2E_CLEANUP=1 bash scripts/e2e-kind.sh            # delete the kind cluster afterwards
#
# Needs docker (with a running engine), kind, kubectl and helm on the PATH.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo}"

cluster="${KIND_CLUSTER:-agentnet}"
release="${HELM_RELEASE:-agentnet}"
operator_namespace="${OPERATOR_NAMESPACE:-agentnet-system}"
network_namespace="${NETWORK_NAMESPACE:-demo}"
network_file="${E2E_NETWORK:-examples/network.yaml}"
timeout="${E2E_TIMEOUT:-300s}"
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' runtime/agentnet_runtime/__init__.py)"
repository="${IMAGE_REPOSITORY:-ghcr.io/agentnet/agentnet-runtime}"
image="${repository}:${version}"
context="kind-${cluster}"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e-kind: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not on the PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"
[[ -n "${version}" ]] || die "could not read __version__ from runtime/agentnet_runtime/__init__.py"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/agentnet/Chart.yaml)"
[[ "${app_version}" == "${version}" ]] || die "chart appVersion ${app_version} != agentnet ${version}"
[[ -f "${network_file}" ]] || die "no such network manifest: ${network_file}"

cleanup() {
  if [[ "${E2E_CLEANUP:-0}" == "1" ]]; then
    log "deleting kind cluster ${cluster}"
    kind delete cluster --name "${cluster}"
  fi
}
trap cleanup EXIT

log "building ${image}"
DOCKER_BUILDKIT=1 docker build --build-arg "VERSION=${version}" --tag "${image}" .  # RUN --mount needs BuildKit

# grep without -q reads all of its input, so pipefail never sees kind killed by SIGPIPE.
if kind get clusters 2>/dev/null | grep -x -- "${cluster}" >/dev/null; then
  log "reusing kind cluster ${cluster}"
else
  log "creating kind cluster ${cluster}"
  kind create cluster --name "${cluster}" --wait 120s
fi

log "loading ${image} into ${cluster}"
kind load docker-image "${image}" --name "${cluster}"

log "installing the chart (release ${release} in ${operator_namespace})"
helm upgrade --install "${release}" charts/agentnet \
  --kube-context "${context}" \
  --namespace "${operator_namespace}" --create-namespace \
  --set-string "image.repository=${repository}" \
  --set-string "image.tag=${version}" \
  --set-string image.pullPolicy=IfNotPresent \
  --wait --timeout "${timeout}"
# Helm installs crds/ only when the CRD is absent: keep it current on a reused cluster.
kubectl --context "${context}" apply --server-side --force-conflicts -f charts/agentnet/crds/
kubectl --context "${context}" wait --for=condition=Established \
  crd/agentnetworks.agentnet.dev --timeout=60s

log "applying ${network_file} in namespace ${network_namespace}"
kubectl --context "${context}" create namespace "${network_namespace}" \
  --dry-run=client -o yaml | kubectl --context "${context}" apply -f -
# -o name prints e.g. agentnetwork.agentnet.dev/ramanujan
network="$(kubectl --context "${context}" -n "${network_namespace}" apply -f "${network_file}" -o name)"

log "waiting for ${network} to be Ready (up to ${timeout})"
if ! kubectl --context "${context}" -n "${network_namespace}" wait \
    --for=condition=Ready "${network}" --timeout="${timeout}"; then
  kubectl --context "${context}" -n "${network_namespace}" get "${network}" -o yaml || true
  kubectl --context "${context}" -n "${network_namespace}" get pods -o wide || true
  kubectl --context "${context}" -n "${operator_namespace}" logs --tail=100 \
    -l "app.kubernetes.io/instance=${release},app.kubernetes.io/component=operator" || true
  die "${network} did not become Ready"
fi
kubectl --context "${context}" -n "${network_namespace}" get agentnetworks
log "e2e on kind passed: ${network} is Ready"
