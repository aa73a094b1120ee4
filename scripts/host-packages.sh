#!/usr/bin/env bash
# Installs the Debian packages the rig's real node and the image build need,
# unless they are there already (`make host-packages`):
#   containerd, runc, the CNI plugins, iptables, nftables and conntrack: the real node;
#   buildah and debootstrap: the images, built with no Docker engine and no registry;
#   shellcheck: the tests lint the shell scripts users run (scripts/e2e-kind.sh).
# Needs root and Debian 12 (bookworm), or a distribution with the same package names.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables nftables conntrack buildah debootstrap shellcheck)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" -eq 0 ] || { echo "host-packages: installing ${missing[*]} needs root" >&2; exit 1; }
echo "[host-packages] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' init scripts must not start a system containerd: the rig runs its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
