"""Benchmarks: `python -m bench.bench_core` etc.; results land in bench/results/*.json."""
