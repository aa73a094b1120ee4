"""`python -m bench.from_source MODULE ARG...`: run a benchmark module with the engine's
compiled modules (setup.py) imported from their Python source instead.

A benchmark runs this as a second process to measure the compiled engine against
its own source in the same run.
"""

import importlib.util
import runpy
import sys
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, SourceFileLoader


def prefer_source(package: str) -> None:
    """Import the modules of `package` from .py files even where a compiled one sits beside them."""
    (directory,) = importlib.util.find_spec(package).submodule_search_locations
    source_only = FileFinder.path_hook((SourceFileLoader, SOURCE_SUFFIXES))

    def hook(path: str) -> FileFinder:
        if path != directory:
            raise ImportError  # any other directory: the usual finders
        return source_only(path)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.pop(directory, None)


if __name__ == "__main__":
    prefer_source("agentnet_runtime.core")
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
