"""Engine core benchmark: `python -m bench.bench_core [--quick]` -> bench/results/core.json.

Targets (issue 3): applying deltas >= 100,000 e-nodes/s on one core; joining two
10,000-node replicas <= 100 ms; saturating distinct small terms >= 2,000/s and
memo hits >= 100,000/s (egglog on the same terms and rules as the baseline);
a 1,000-agent Ramanujan topology < 1 s.
"""

import os

# The Ramanujan check is one dense eigenvalue solve: with BLAS threads fighting other
# work for the cores it gets slower, not faster. Pin one thread (as the runtime image should).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the BLAS setting, before numpy is imported)
import gc
import json
import random
import statistics
import string
import time
from collections import Counter

import networkx as nx

from agentnet_runtime.core import egraph as egraph_module
from agentnet_runtime.core.egraph import EGraph
from agentnet_runtime.core.rewrites import ALL_RULES, GREEN_RULES
from agentnet_runtime.core.saturate import Saturator
from agentnet_runtime.core.terms import Term, size
from agentnet_runtime.core.topology import build_topology
from agentnet_runtime.web import tune_collector

from . import egglog_math
from .common import entry, load_from_second_process, measure, report, significant

VARIABLES = "abcdefgh"


def random_term(rng: random.Random, leaves: int, variables: str = VARIABLES, number_chance: float = 0.15) -> Term:
    """A random +/* tree with `leaves` leaves (2*leaves - 1 nodes); some leaves are 0, 1 or 2."""
    if leaves == 1:
        return Term(rng.choice("012")) if rng.random() < number_chance else Term(rng.choice(variables))
    left = rng.randint(1, leaves - 1)
    operands = (
        random_term(rng, left, variables, number_chance),
        random_term(rng, leaves - left, variables, number_chance),
    )
    return Term(rng.choice("+*"), operands)


def distinct_terms(count: int, seed: int, max_leaves: int = 5, variables: str = "abcde") -> list[Term]:
    """`count` distinct terms of 3..(2*max_leaves - 1) nodes, deterministic for a seed."""
    rng, terms = random.Random(seed), set()
    while len(terms) < count:
        terms.add(random_term(rng, rng.randint(2, max_leaves), variables))
    return sorted(terms)


def grow(egraph: EGraph, nodes: int, seed: int, unions_per_term: float = 0.3):
    """Grow a replica the way an agent does, yielding after each event: one small term per
    event, and for some an equal variant (as a rewrite would find) united with it."""
    rng = random.Random(seed)
    while len(egraph) < nodes:
        term = random_term(rng, rng.randint(2, 8), string.ascii_lowercase)
        root = egraph.add_term(term)
        if rng.random() < unions_per_term:
            egraph.union(root, egraph.add_term(equal_variant(term, rng)))
        egraph.clock  # reading the clock closes the open batch: one event per term
        yield


def equal_variant(term: Term, rng: random.Random) -> Term:
    """A different term equal to `term`: its top operands swapped, or an identity wrapped round it."""
    choice = rng.randrange(3)
    if choice == 0 and term.args:
        return Term(term.op, term.args[::-1])
    return Term("*", (term, Term("1"))) if choice == 1 else Term("+", (term, Term("0")))


def replica_with(nodes: int, seed: int, replica: str) -> EGraph:
    egraph = EGraph(replica)
    for _ in grow(egraph, nodes, seed):
        pass
    egraph.rebuild()
    return egraph


def set_union_baseline(delta_rows: list[tuple]) -> None:
    """What any pure-Python grow-only set join must at least do: insert each row into a dict."""
    nodes: dict = {}
    for row in delta_rows:
        if row[0] not in nodes:
            nodes[row[0]] = row


# --- the benchmarks ---------------------------------------------------------------------------------


def bench_delta_apply(quick: bool) -> list[dict]:
    total = 20_000 if quick else 60_000
    # A stream of deltas, each what changed since the previous one (as a neighbour receives them).
    source, deltas, clock, rng = EGraph("source"), [], {}, random.Random(2)
    for count, _ in enumerate(grow(source, total, seed=1), start=1):
        if count % 20 == 0:
            deltas.append(source.delta_since(clock))
            clock = source.clock
    deltas.append(source.delta_since(clock))
    rows = [row for delta in deltas for batch in delta.batches for row in batch[2]]
    nodes = len(rows)

    def apply_stream():
        receiver = EGraph("receiver")
        for delta in deltas:
            receiver.join(delta)
        return receiver

    assert apply_stream().digest() == source.fork("check").digest()
    timing = measure(apply_stream, repeat=3 if quick else 5)
    baseline = measure(lambda: set_union_baseline(rows), repeat=5)
    wires = [delta.to_wire() for delta in deltas]
    shuffled = deltas[:]
    rng.shuffle(shuffled)

    def apply_wire(_):
        receiver = EGraph("receiver")
        for wire in wires:
            receiver.join(wire)

    def apply_shuffled():
        receiver = EGraph("receiver")
        for delta in shuffled:
            receiver.join(delta)

    # The engine remembers batches it checked lately (a batch reaches a replica along several paths);
    # forget them before each run, or repeats would measure the memo rather than the re-verification.
    wire_timing = measure(apply_wire, setup=egraph_module._CHECKED.clear, repeat=3)
    shuffled_timing = measure(apply_shuffled, repeat=3)
    common = dict(nodes=nodes, deltas=len(deltas), unions=sum(len(b[3]) for d in deltas for b in d.batches))
    return [
        entry(
            "apply deltas (in order)", nodes / timing.best, "e-nodes/s", 100_000, higher_is_better=True,
            baseline={"name": "plain dict set-union of the same rows", "value": nodes / baseline.best},
            median=round(nodes / timing.median), **common,
        ),
        entry(
            "apply deltas (shuffled order)", nodes / shuffled_timing.best, "e-nodes/s", 100_000, higher_is_better=True,
            baseline={"name": "in-order apply", "value": nodes / timing.best}, **common,
        ),
        entry(
            "apply deltas from wire dicts (ids re-verified)", nodes / wire_timing.best, "e-nodes/s", 100_000,
            higher_is_better=True, baseline={"name": "in-order apply", "value": nodes / timing.best}, **common,
        ),
    ]


def bench_join(quick: bool) -> list[dict]:
    a = replica_with(10_000, seed=3, replica="a")
    b = replica_with(10_000, seed=4, replica="b")
    rows = [row for batch in b.delta_since({}).batches for row in batch[2]]
    timing = measure(lambda replica: replica.join(b), setup=lambda: a.fork("a"), repeat=3 if quick else 7)
    baseline = measure(lambda: set_union_baseline(rows), repeat=5)
    joined = a.fork("a").join(b)
    assert joined.digest() == b.fork("b").join(a).digest()
    return [
        entry(
            "join two 10,000-node replicas", timing.best * 1000, "ms", 100, higher_is_better=False,
            baseline={"name": "plain dict set-union of the same rows", "value": baseline.best * 1000},
            median_ms=round(timing.median * 1000, 2), nodes=(len(a), len(b)), joined_nodes=len(joined),
        )
    ]


def saturate_all(terms: list[Term], reports: dict, saturator: Saturator | None = None) -> Saturator:
    saturator = saturator or Saturator()
    for term in terms:
        reports[term] = saturator.simplify(term)
    return saturator


def bench_saturation(quick: bool) -> list[dict]:
    terms = distinct_terms(300 if quick else 1000, seed=5)
    repeat = 2 if quick else 3
    reports: dict = {}
    timing = measure(lambda: saturate_all(terms, reports), repeat=repeat)
    # The same in a process that imports the engine from its source, not compiled (setup.py).
    from_source = load_from_second_process("bench.bench_core", {"terms": len(terms), "repeat": repeat}, from_source=True)
    stops = Counter(result.report.stop_reason.value for result in reports.values())
    ours = {term: result.term for term, result in reports.items()}
    results = []
    egglog_rate, egglog_sizes = _egglog_rate(terms)
    baseline = None
    if egglog_rate:
        baseline = {"name": "egglog 13.2 (Python bindings), same terms, rules and schedule, its own rationals", "value": egglog_rate}
    agree = None
    if egglog_sizes:
        agree = sum(size(ours[term]) == egglog_sizes[term] for term in terms) / len(terms)
    results.append(
        entry(
            "saturate distinct small terms (three families)", len(terms) / timing.best, "terms/s", 2_000,
            higher_is_better=True, baseline=baseline, terms=len(terms),
            term_nodes=f"{min(map(size, terms))}..{max(map(size, terms))}",
            stop_reasons=dict(stops), extracted_size_agrees_with_egglog=agree,
            engine_from_source={"value": significant(from_source["terms_per_second"]), "unit": "terms/s",
                                "compiled_ratio": significant(len(terms) / timing.best / from_source["terms_per_second"])},
        )
    )
    saturator = saturate_all(terms, {})
    lookups = terms * (20 if quick else 100)
    memo = measure(lambda: [saturator.simplify(term) for term in lookups], repeat=5)
    plain: dict = {term: reports[term] for term in terms}
    dict_baseline = measure(lambda: [plain.get(term) for term in lookups], repeat=5)
    results.append(
        entry(
            "repeated term answered from the memo", len(lookups) / memo.best, "terms/s", 100_000, higher_is_better=True,
            baseline={"name": "plain dict lookup of the term", "value": len(lookups) / dict_baseline.best},
            hit_rate=round(saturator.memo.hit_rate, 4),
        )
    )
    return results


def _egglog_rate(terms: list[Term]) -> tuple[float | None, dict]:
    """egglog on the same terms: identities first, then all rules, extraction after each phase."""
    try:
        from egglog import bindings
    except ImportError:
        return None, {}
    program = egglog_math.program({"green": GREEN_RULES, "all": ALL_RULES})
    sizes = {}

    def run_all():
        egraph = bindings.EGraph()
        egraph.run_program(*egraph.parse_program(program))
        for term in terms:
            text = egglog_math.sexp(term)
            for ruleset in ("green", "all"):
                commands = egraph.parse_program(f"(push)(let $t {text})(run {ruleset} 30)(extract $t)(pop)")
                extracted = egraph.run_program(*commands)[-1]
                text = extracted.termdag.to_string(extracted.term)
            sizes[term] = size(egglog_math.from_sexp(text))

    timing = measure(run_all, repeat=3)
    return len(terms) / timing.best, sizes


def bench_ramanujan(quick: bool) -> list[dict]:
    seeds = range(3 if quick else 8)
    results = []
    for degree in (3, 4, 6):
        walls, attempts = [], []
        for seed in seeds:
            start = time.perf_counter()
            graph = build_topology("ramanujan", 1000, degree=degree, seed=seed)
            walls.append(time.perf_counter() - start)
            attempts.append(graph.graph["attempts"])
        generate = measure(lambda: nx.random_regular_graph(degree, 1000, seed=0), repeat=5, cpu=False)
        results.append(
            entry(
                f"ramanujan topology, 1,000 agents, degree {degree} (worst of {len(seeds)} seeds)",
                max(walls),
                "s",
                1.0,
                higher_is_better=False,
                baseline={"name": "networkx random_regular_graph alone (unchecked)", "value": generate.best},
                mean_s=round(statistics.mean(walls), 4), attempts=attempts,
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # a second process: saturation alone, a JSON spec
    args = parser.parse_args()
    tune_collector()  # the engine runs in runtime processes, which all set the collector so (web.run_until_signal)
    if args.load:
        spec = json.loads(args.load)
        terms = distinct_terms(spec["terms"], seed=5)
        timing = measure(lambda: saturate_all(terms, {}), repeat=spec["repeat"])
        print(json.dumps({"terms_per_second": len(terms) / timing.best}))
        return
    entries = []
    for bench in (bench_delta_apply, bench_join, bench_saturation, bench_ramanujan):
        print(f"running {bench.__name__} ...", flush=True)
        gc.collect()  # each starts with no garbage of the one before (a late full collection skewed a topology figure)
        entries.extend(bench(args.quick))
    report(
        "core", entries, quick=args.quick,
        method="best of several repeats; CPU time (one core) except the topology entries (wall time)",
        collector=f"gc thresholds {gc.get_threshold()}, as in every runtime process (web.tune_collector)",
        blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"),
    )


if __name__ == "__main__":
    main()
