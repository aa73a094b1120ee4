"""Build hook: the engine's hot modules are compiled to C extensions with mypyc.

The e-graph and saturation stay plain, typed Python (read, test and debug them as
such); mypyc compiles that same source at install, which makes saturation about
twice as fast (bench_core measures both in one run). The rest of the build is in
pyproject.toml.

The built-in rewrite rules' search and apply (Python source that rewrites.py generates
from the rules) are written to a module here and compiled with them: as bytecode they were
the interpreter's largest cost in saturation.

AGENTNET_PURE_PYTHON=1 installs them uncompiled (say, to step through them in a
debugger) with no rules module; tests/conftest.py refuses a compiled module older
than its source.
"""

import os
import sys
from pathlib import Path

from setuptools import setup

# Each is its own extension (separate=True), so it lands next to its source:
# a shared library of several would sit outside the package, where an editable
# install does not look.
RULES = "runtime/agentnet_runtime/core/generated_rules.py"  # written here (write_rules); rewrites._native_rules loads it
COMPILED = [
    "runtime/agentnet_runtime/core/clock.py",  # merged and compared on every message: O(agents) each, at 1,000 agents a third of a burst
    "runtime/agentnet_runtime/core/events.py",
    "runtime/agentnet_runtime/core/egraph.py",
    "runtime/agentnet_runtime/core/saturate.py",
    "runtime/agentnet_runtime/core/extract.py",
    RULES,
]


def write_rules() -> None:
    """Write the built-in rules' search and apply to their module (rewrites.native_module)."""
    sys.path.insert(0, "runtime")
    try:
        from agentnet_runtime.core.rewrites import ALL_RULES, native_module
    finally:
        sys.path.pop(0)
    Path(RULES).write_text(native_module(ALL_RULES))


def compiled_modules() -> list:
    if os.environ.get("AGENTNET_PURE_PYTHON") == "1":
        Path(RULES).unlink(missing_ok=True)  # one an earlier build wrote would load as plain Python
        return []
    from mypyc.build import mypycify

    write_rules()
    return mypycify(COMPILED, opt_level="3", separate=True)


setup(ext_modules=compiled_modules())
