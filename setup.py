"""Build hook: the engine's hot modules are compiled to C extensions with mypyc.

The e-graph and saturation stay plain, typed Python (read, test and debug them as
such); mypyc compiles that same source at install, which makes saturation about
twice as fast (bench_core measures both in one run). The rest of the build is in
pyproject.toml.

AGENTNET_PURE_PYTHON=1 installs them uncompiled (say, to step through them in a
debugger); tests/conftest.py refuses a compiled module older than its source.
"""

import os

from setuptools import setup

# Each is its own extension (separate=True), so it lands next to its source:
# a shared library of several would sit outside the package, where an editable
# install does not look.
COMPILED = [
    "runtime/agentnet_runtime/core/events.py",
    "runtime/agentnet_runtime/core/egraph.py",
    "runtime/agentnet_runtime/core/saturate.py",
    "runtime/agentnet_runtime/core/extract.py",
]


def compiled_modules() -> list:
    if os.environ.get("AGENTNET_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    return mypycify(COMPILED, opt_level="3", separate=True)


setup(ext_modules=compiled_modules())
