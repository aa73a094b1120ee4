# syntax=docker/dockerfile:1
# One image for every agentnet process: `agentnet operator`, `agentnet agent`,
# `agentnet component NAME` (the entry point is `agentnet`).
#
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/agentnet/agentnet-runtime:0.1.0 .
#
# VERSION must equal agentnet_runtime.__version__ (the build fails otherwise),
# which is also the Helm chart's appVersion; `make e2e-kind` passes it.
# tests/test_chart.py reads this file's COPY lines and its `pip wheel` and
# `pip install` commands and runs them in a clean venv (no Docker needed).
#
# `make image` (scripts/image/build.sh) builds this same file with buildah, no
# Docker engine and no registry: PYTHON_IMAGE is then a Debian bookworm base made
# from Debian packages (python3.11 and a venv first on PATH), BUILD_PACKAGES adds
# python3.11-dev (python:3.11-slim carries Python's headers, Debian's python3.11
# does not), and the host's pip configuration and CA bundle come in as secrets.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: wheels of agentnet and every dependency; no build tools reach the final image
FROM ${PYTHON_IMAGE} AS build
ARG VERSION
# A C compiler: mypyc compiles the engine's hot modules into the agentnet wheel (setup.py).
ARG BUILD_PACKAGES="gcc libc6-dev"
RUN apt-get update && apt-get install -y --no-install-recommends ${BUILD_PACKAGES} && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY runtime runtime
COPY operator operator
RUN test -n "${VERSION}" || { echo "pass --build-arg VERSION=<agentnet_runtime.__version__>" >&2; exit 1; }; \
    actual="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' runtime/agentnet_runtime/__init__.py)"; \
    test "${actual}" = "${VERSION}" || { echo "VERSION=${VERSION} but the source says ${actual}" >&2; exit 1; }
# pip checks TLS against /etc/ssl/certs/ca-certificates.crt (PIP_CERT). Behind a
# TLS-intercepting proxy, `--secret id=ca-certificates.crt,src=...` and
# `--secret id=pip.conf,src=...` mount the host's CA bundle and pip configuration over it
# for this step only: secrets never become a layer. Without them (a plain `docker build`)
# the mounts are skipped and the image's own bundle is used. The cache mount keeps pip's
# downloads between builds, outside the image.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-certificates.crt,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels '.[operator,runtime]'

# --- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION
LABEL org.opencontainers.image.title="agentnet" \
      org.opencontainers.image.description="agentnet operator, agents and components (CRDT e-graph agent networks)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The wheels are bind-mounted from the build stage, so they never become a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'agentnet[operator,runtime]'
# The user the pods run as has a name: Python's getpass (kopf asks it for the operator's
# identity) fails for a user id /etc/passwd does not know.
RUN groupadd --gid 65532 agentnet && \
    useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin agentnet
# One BLAS thread: the topology's eigenvalue check is tiny, and multi-threaded
# BLAS on a busy node made it 60x slower. Bytecode was compiled at install time;
# the root filesystem is read-only in the cluster.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPENBLAS_NUM_THREADS=1
# Non-root, matching the restricted Pod Security Standard the chart and the
# operator apply (runAsUser 65532, read-only root filesystem).
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["agentnet"]
CMD ["--help"]
