"""The container images the rig's real node runs, built with buildah by scripts/image/build.sh
(no Docker engine, no registry) or found in its cache, ~/.cache/agentnet/images/.

Each function returns an Image: the reference pods name, and an OCI archive whose index
carries that reference, so `ctr -n k8s.io images import ARCHIVE` keeps the name.

    runtime()         ghcr.io/agentnet/agentnet-runtime:<version>, the chart's default image
    pause()           localhost/agentnet/pause:<KUBERNETES_VERSION>, the pod sandbox
    coredns(binary)   localhost/agentnet/coredns:v<version> around a static coredns binary
    local_path_provisioner()  localhost/agentnet/local-path-provisioner:<version>, from its Go module
    busybox()         localhost/agentnet/busybox:<version>, a shell for the provisioner's helper pods
    base()            the runtime image's base: Debian bookworm, python3.11, a venv
    spin()            ghcr.io/agentnet/agentnet-spin:<version>, the Spin app image SpinApps run:
                      FROM scratch, /spin.toml and build/wasm's Spin components (`make wasm` first)

A cold runtime image takes minutes (debootstrap, pip, mypyc); a cached one well under a
second. Builds are serialised by a lock in the script, so parallel workers may all ask.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import NamedTuple

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "image" / "build.sh"
BUILD_TIMEOUT = 3600  # a cold base plus runtime image on a busy 2-core machine, with room to spare


class Image(NamedTuple):
    reference: str
    archive: Path


def compiled_engine_modules() -> list[str]:
    """The engine modules setup.py compiles with mypyc, sorted: what an install must load compiled."""
    setup = (Path(__file__).resolve().parents[2] / "setup.py").read_text()
    return sorted(re.findall(r"agentnet_runtime/core/(\w+)\.py", setup))


def _build(*args: str) -> Image:
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--archive", *args], capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/image/build.sh {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stderr[-4000:]}")
    reference, archive = result.stdout.splitlines()[-2:]
    return Image(reference, Path(archive))


def runtime() -> Image:
    return _build("runtime")


def base() -> Image:
    return _build("base")


def pause() -> Image:
    return _build("pause")


def local_path_provisioner() -> Image:
    return _build("local-path")


def busybox() -> Image:
    return _build("busybox")


def coredns(binary: Path) -> Image:
    return _build("coredns", str(binary))


def spin() -> Image:
    return _build("spin")


def buildah(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """buildah on the images' own storage (under the cache, never /var/lib/containers)."""
    return subprocess.run(["bash", str(BUILD_SCRIPT), "buildah", *args], capture_output=True, text=True,
                          timeout=timeout)
