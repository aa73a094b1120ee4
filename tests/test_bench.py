"""Every benchmark module imports and parses its command line: `make bench` runs them only
on request, so an import broken by a refactor would otherwise go unseen until then."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).parent.parent / "bench"
BENCHMARKS = sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def test_the_benchmarks_are_found():
    assert "bench_core" in BENCHMARKS and len(BENCHMARKS) >= 10


@pytest.mark.parametrize("module", BENCHMARKS)
def test_benchmark_imports_and_shows_its_help(module):
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", "--help"], cwd=BENCH_DIR.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
