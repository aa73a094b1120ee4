"""The images `make image` builds (scripts/image/build.sh: buildah, no Docker engine, no
registry), checked on the real archives the rig imports into containerd:

- the runtime image names the chart's default reference, runs `agentnet` as user 65532,
  carries the engine compiled by mypyc, and holds no compiler, no headers, no pip
  configuration and no copy of this host's CA bundle (the build mounts those as secrets);
  its size is recorded (`pytest tests/test_image.py -rP` prints it);
- the pause image is Kubernetes' pause.c, static, alone in the image;
- the CoreDNS image runs the control plane build's coredns as user 65532;
- the Spin app image holds /spin.toml and the Spin components' wasm files, nothing else.

Cached images make this quick (a few seconds, mostly reading the runtime image's layers);
a cold runtime image is built first, which takes minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import tomli_w

from agentnet_operator import model, names, spin
from agentnet_runtime import __version__
from agentnet_runtime.catalogue import SPIN_COMPONENTS
from rig import images

REPO = Path(__file__).resolve().parent.parent
CONTROLPLANE_BUILD = REPO / "tests" / "controlplane" / "build.sh"
# What the build mounts as secrets for pip (scripts/image/runtime.sh): none may end in a layer.
HOST_PIP_CONF = Path(os.environ.get("PIP_CONFIG_FILE", "/etc/pip.conf"))
HOST_CA_BUNDLE = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
# The runtime image measured 511 MB uncompressed; this catches a build stage leaking in.
SIZE_CEILING_MB = 650

# Building needs buildah and root (`make host-packages`); build.sh says so when either is missing.
pytestmark = pytest.mark.timeout(images.BUILD_TIMEOUT)  # a cold runtime image is built in the first test's setup


class Entry(NamedTuple):
    layer: int
    path: str  # without a leading "./" or "/"
    size: int
    sha256: str | None  # for regular files of a size worth comparing, else None


class Archive(NamedTuple):
    reference: str  # org.opencontainers.image.ref.name: the name `ctr images import` gives it
    image_id: str  # the config's digest, which is the image's ID in buildah's store
    config: dict[str, Any]
    entries: list[Entry]
    layer_bytes: int  # uncompressed


def read_archive(archive: Path, hash_sizes: frozenset[int] = frozenset()) -> Archive:
    """An OCI archive's index, config and every layer's entries (hashing files of `hash_sizes` bytes)."""
    with tarfile.open(archive) as outer:
        def blob(digest: str):
            return outer.extractfile(f"blobs/{digest.replace(':', '/')}")

        (descriptor,) = json.load(outer.extractfile("index.json"))["manifests"]
        manifest = json.load(blob(descriptor["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        entries, layer_bytes = [], 0
        for index, layer in enumerate(manifest["layers"]):
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r|*") as tar:
                for member in tar:
                    layer_bytes += member.size
                    digest = None
                    if member.isfile() and member.size in hash_sizes:
                        digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
                    entries.append(Entry(index, member.name.removeprefix("./").lstrip("/"), member.size, digest))
    return Archive(descriptor["annotations"]["org.opencontainers.image.ref.name"],
                   manifest["config"]["digest"].removeprefix("sha256:"), config, entries, layer_bytes)


def buildah(*args: str) -> str:
    result = images.buildah(*args)
    assert result.returncode == 0, f"buildah {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


@contextmanager
def working_container(image: images.Image, image_id: str) -> Iterator[str]:
    """A buildah working container of exactly the archived image (by its ID), removed afterwards."""
    found = images.buildah("from", "--quiet", "--pull=never", image_id)
    name = found.stdout.strip() if found.returncode == 0 else \
        buildah("from", "--quiet", f"oci-archive:{image.archive}").strip()  # the store was cleared
    try:
        yield name
    finally:
        images.buildah("rm", name)


def run_in(container: str, *command: str) -> str:
    """The command's output, run as the image's own user with no network."""
    return buildah("run", "--network", "none", container, "--", *command)


# --- the runtime image ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runtime_image() -> images.Image:
    return images.runtime()


@pytest.fixture(scope="module")
def runtime_archive(runtime_image) -> Archive:
    sizes = frozenset(path.stat().st_size for path in (HOST_PIP_CONF, HOST_CA_BUNDLE) if path.is_file())
    return read_archive(runtime_image.archive, sizes)


@pytest.fixture(scope="module")
def runtime_container(runtime_image, runtime_archive) -> Iterator[str]:
    with working_container(runtime_image, runtime_archive.image_id) as name:
        yield name


def test_runtime_archive_carries_the_charts_default_image_reference(runtime_image, runtime_archive):
    assert runtime_image.reference == runtime_archive.reference == model.DEFAULT_IMAGE \
        == f"ghcr.io/agentnet/agentnet-runtime:{__version__}"
    config = runtime_archive.config["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["agentnet"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert "/opt/venv/bin" in next(e for e in config["Env"] if e.startswith("PATH="))
    assert not [e for e in config["Env"] if e.startswith("PIP_")]  # the build stage's PIP_CERT stays there


def test_agentnet_runs_in_the_image_as_user_65532(runtime_container):
    assert run_in(runtime_container, "id", "-u").strip() == "65532"
    # A named user: kopf takes the operator's identity from getpass, which fails for an unknown id.
    assert run_in(runtime_container, "python", "-c", "import getpass; print(getpass.getuser())").strip() == "agentnet"
    assert run_in(runtime_container, "agentnet", "--version").strip() == f"agentnet, version {__version__}"
    usage = run_in(runtime_container, "agentnet", "--help")
    assert "operator" in usage and "component" in usage
    assert "--liveness-port" in run_in(runtime_container, "agentnet", "operator", "--help")


def test_the_engine_in_the_image_is_compiled_by_mypyc(runtime_container):
    loaded = run_in(runtime_container, "python", "-c",
                    "import agentnet_runtime.core.egraph as e, agentnet_runtime.core.saturate as s; "
                    "from agentnet_runtime.core import compiled_modules; "
                    "print(*sorted(compiled_modules())); print(e.__file__); print(s.__file__)").split()
    modules = images.compiled_engine_modules()
    assert loaded[: len(modules)] == modules
    assert all(path.endswith(".cpython-311-x86_64-linux-gnu.so") for path in loaded[len(modules) :]), loaded


def test_the_final_stage_has_no_compiler_headers_or_build_tools(runtime_archive, runtime_container):
    paths = {entry.path for entry in runtime_archive.entries}
    assert not {p for p in paths if p.startswith(("usr/bin/gcc", "usr/bin/cc", "usr/bin/x86_64-linux-gnu-gcc"))}
    assert not {p for p in paths if p.endswith(("/cc1", "/cc1plus", "/Python.h", "/stdio.h"))}
    assert not {p for p in paths if p.startswith(("usr/include/python3.11/", "usr/lib/gcc/"))}
    assert not {p for p in paths if p.startswith("wheels/")}  # bind-mounted from the build stage, never a layer
    installed = run_in(runtime_container, "dpkg-query", "-W", "-f", "${Package}\\n").split()
    assert not {"gcc", "cpp", "libc6-dev", "python3.11-dev", "libpython3.11-dev"} & set(installed)
    # mypy (mypyc) was a build requirement only; no test tools either.
    assert run_in(runtime_container, "python", "-c", "import importlib.util as u; "
                  "print([m for m in ('mypy', 'pytest', 'setuptools_scm') if u.find_spec(m)])").strip() == "[]"


def test_no_pip_configuration_or_host_ca_bundle_in_any_layer(runtime_archive):
    pip_configs = [e for e in runtime_archive.entries
                   if e.path.endswith(("pip.conf", "pip.ini")) or e.path.startswith("run/secrets/")]
    assert not pip_configs, f"pip configuration in the image: {pip_configs}"
    host_files = {hashlib.sha256(path.read_bytes()).hexdigest(): path
                  for path in (HOST_PIP_CONF, HOST_CA_BUNDLE) if path.is_file()}
    leaked = [(e.path, host_files[e.sha256]) for e in runtime_archive.entries if e.sha256 in host_files]
    assert not leaked, f"files identical to this host's secrets: {leaked}"
    # The image's own bundle is Debian's, from the base's ca-certificates package.
    assert any(e.path == "etc/ssl/certs/ca-certificates.crt" for e in runtime_archive.entries)
    # debootstrap copies the host's name and DNS server; the base empties them.
    assert not [e for e in runtime_archive.entries if e.path in ("etc/resolv.conf", "etc/hostname") and e.size]


def test_runtime_image_size_is_recorded(runtime_image, runtime_archive, record_property):
    uncompressed_mb = runtime_archive.layer_bytes / 1e6
    archive_mb = runtime_image.archive.stat().st_size / 1e6
    record_property("runtime_image_uncompressed_mb", round(uncompressed_mb, 1))
    record_property("runtime_image_archive_mb", round(archive_mb, 1))
    print(f"{runtime_image.reference}: {uncompressed_mb:.0f} MB uncompressed, {archive_mb:.0f} MB archive "
          f"({len(runtime_archive.config['rootfs']['diff_ids'])} layers) at {runtime_image.archive}")
    assert uncompressed_mb < SIZE_CEILING_MB, "the runtime image grew: did build tools reach the final stage?"


# --- the node's other images ----------------------------------------------------------------------

def test_pause_image_is_kubernetes_pause_alone():
    image = images.pause()
    archive = read_archive(image.archive)
    versions = (REPO / "tests" / "controlplane" / "versions.env").read_text()
    kubernetes = next(line.split("=", 1)[1] for line in versions.splitlines() if line.startswith("KUBERNETES_VERSION="))
    assert image.reference == archive.reference == f"localhost/agentnet/pause:{kubernetes}"
    assert archive.config["config"]["Entrypoint"] == ["/pause"]
    assert archive.config["config"]["User"] == "65535:65535"
    assert [e.path for e in archive.entries if e.size] == ["pause"]
    with working_container(image, archive.image_id) as name:
        # Static: it runs in an image with nothing else in it.
        assert run_in(name, "/pause", "-v").startswith("pause.c v")


def test_coredns_image_runs_the_control_planes_coredns():
    key_dir = Path(subprocess.run(["bash", str(CONTROLPLANE_BUILD), "--key"], capture_output=True, text=True,
                                  check=True).stdout.strip())
    if not (key_dir / ".complete").exists():
        pytest.skip("the control plane (with coredns) is not built yet: `make controlplane`")
    image = images.coredns(key_dir / "bin" / "coredns")
    archive = read_archive(image.archive)
    assert image.reference == archive.reference
    assert archive.config["config"]["Entrypoint"] == ["/coredns"]
    assert archive.config["config"]["User"] == "65532:65532"
    with working_container(image, archive.image_id) as name:
        assert run_in(name, "/coredns", "-version").startswith(f"CoreDNS-{image.reference.rsplit(':v', 1)[1]}")


# --- the Spin app image ---------------------------------------------------------------------------

def test_spin_app_image_has_the_layout_spinkubes_shim_reads():
    """FROM scratch: /spin.toml (manifest version 2, as agentnet_operator.spin renders it) at the
    root and beside it every component's `source`, byte for byte build/wasm's (`make wasm`)."""
    manifest_text = tomli_w.dumps(spin.manifest()).encode()
    wasm = {c: REPO / "build" / "wasm" / spin.wasm_file(c) for c in SPIN_COMPONENTS}
    image = images.spin()
    archive = read_archive(image.archive, frozenset([len(manifest_text), *(p.stat().st_size for p in wasm.values())]))
    assert image.reference == archive.reference == names.SPIN_IMAGE == model.Spin().image
    files = {e.path: e for e in archive.entries if e.path and not e.path.endswith("/")}
    assert set(files) == {"spin.toml", *(spin.wasm_file(c) for c in SPIN_COMPONENTS)}  # nothing else
    assert files["spin.toml"].sha256 == hashlib.sha256(manifest_text).hexdigest()
    toml = tomllib.loads(manifest_text.decode())
    assert toml["spin_manifest_version"] == 2
    assert {t["component"] for t in toml["trigger"]["http"]} == set(toml["component"]) == set(SPIN_COMPONENTS)
    for component, part in toml["component"].items():
        assert files[part["source"]].sha256 == hashlib.sha256(wasm[component].read_bytes()).hexdigest()
