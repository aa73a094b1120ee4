"""What the engine proves, and what its number analysis costs: `python -m bench.bench_identities [--quick]`
-> bench/results/identities.json.

- The share of true random polynomial identities proven within the default budget, by
  height 2, 3 and 4: a random term over + - * / ^ (x, y, z, 0, 1, 2, 3, 0.5; the oracle
  test's terms, tests/core/polynomials.py) against its expanded normal form. egglog,
  given the same rules, its own rational arithmetic (bench/egglog_math.py), the same
  schedule (identities, then every rule on the cheapest terms) and the same budget
  (30 iterations, 10,000 e-nodes, 1 s per phase), is the baseline.
- The cost of the analysis: saturating bench_core's distinct terms with every rule,
  against the same without the rules that read the analysis (folding, and the rules
  with a condition on a value), runs interleaved.
"""

import argparse
import gc
import random
import time

from agentnet_runtime.core.rewrites import ALL_RULES, GREEN_RULES, FoldRule
from agentnet_runtime.core.saturate import Budget, Saturator
from agentnet_runtime.core.terms import Term
from agentnet_runtime.web import tune_collector
from tests.core.polynomials import normal_form, polynomial_term, random_term

from . import egglog_math
from .bench_core import distinct_terms, saturate_all
from .common import entry, measure, report, significant

HEIGHTS = (2, 3, 4)


def identities(height: int, count: int, seed: int) -> list[tuple[Term, Term]]:
    """`count` true identities: a random term of this height and its expanded normal form."""
    rng, claims = random.Random(seed), []
    while len(claims) < count:
        term = random_term(rng, height)
        form = normal_form(term)
        if form is not None:
            claims.append((term, polynomial_term(form)))
    return claims


def egglog_proves(claims: list[tuple[Term, Term]], budget: Budget) -> tuple[list[bool], int]:
    """egglog's answer per claim (do both sides meet within the budget, as in Saturator.verify's schedule?),
    and how many claims it gave up on: its rationals are 64-bit, and an overflow is an error."""
    from egglog import bindings
    from egglog.bindings import EggSmolError

    rules = egglog_math.program({"green": GREEN_RULES, "all": ALL_RULES})
    answers, errors = [], 0
    for lhs, rhs in claims:
        egraph = bindings.EGraph()  # one per claim: an error leaves an e-graph in no known state
        egraph.run_program(*egraph.parse_program(rules))
        try:
            answers.append(_egglog_meet(egraph, [egglog_math.sexp(lhs), egglog_math.sexp(rhs)], budget))
        except EggSmolError:
            answers.append(False)
            errors += 1
    return answers, errors


def _egglog_meet(egraph, sides: list[str], budget: Budget) -> bool:
    from egglog.bindings import EggSmolError

    def run(command: str) -> list:
        return egraph.run_program(*egraph.parse_program(command))

    def met() -> bool:
        try:
            run("(check (= $a $b))")
            return True
        except EggSmolError:
            return False

    proven = False
    for ruleset in ("green", "all"):
        run(f"(push)(let $a {sides[0]})(let $b {sides[1]})")
        deadline = time.perf_counter() + budget.seconds
        for _ in range(budget.iterations):
            if met():
                break
            outputs = run(f"(run {ruleset} 1)(print-size)")
            nodes = sum(size for _, size in outputs[-1].sizes)
            if not outputs[0].report.updated or nodes > budget.nodes or time.perf_counter() > deadline:
                break
        proven = proven or met()
        extracted = run("(extract $a)(extract $b)")
        sides = [output.termdag.to_string(output.term) for output in extracted]
        run("(pop)")
    return proven


def bench_identities_proven(quick: bool) -> list[dict]:
    count = 30 if quick else 100
    budget = Budget()
    try:
        import egglog  # noqa: F401
    except ImportError:
        egglog = None
    results = []
    for height in HEIGHTS:
        claims = identities(height, count, seed=height)
        saturator = Saturator(budget=budget)
        start = time.process_time()
        ours = [saturator.verify(lhs, rhs).equal is True for lhs, rhs in claims]
        seconds = time.process_time() - start
        baseline = None
        if egglog is not None:
            start = time.process_time()
            theirs, errors = egglog_proves(claims, budget)
            baseline = {"name": "egglog 13.2, same rules (its own rationals), schedule and budget",
                        "value": sum(theirs) / count, "cpu_seconds": significant(time.process_time() - start),
                        "gave_up_on_overflow": errors}
        results.append(
            entry(
                f"true polynomial identities of height {height} proven (default budget)", sum(ours) / count, "share",
                None, higher_is_better=True, baseline=baseline, claims=count, cpu_seconds=significant(seconds),
            )
        )
    return results


def bench_analysis_cost(quick: bool) -> list[dict]:
    """Every rule, against the rules that do not read the analysis; same terms, interleaved runs."""
    terms = distinct_terms(300 if quick else 1000, seed=5)
    blind = tuple(rule for rule in ALL_RULES if not rule.conditions and not isinstance(rule, FoldRule))
    sizes: dict[str, int] = {}

    def run(rules, name):
        reports: dict = {}
        saturate_all(terms, reports, Saturator(rules))
        sizes[name] = sum(result.report.nodes for result in reports.values())

    best = {"with": float("inf"), "without": float("inf")}
    for _ in range(2 if quick else 3):
        best["with"] = min(best["with"], measure(lambda: run(ALL_RULES, "with"), repeat=1).best)
        best["without"] = min(best["without"], measure(lambda: run(blind, "without"), repeat=1).best)
    return [
        entry(
            "saturate distinct small terms with the number analysis", len(terms) / best["with"], "terms/s", None,
            higher_is_better=True, baseline={"name": "the same without the rules that read it", "value": len(terms) / best["without"]},
            terms=len(terms), rules_without=len(blind), rules_with=len(ALL_RULES),
            e_nodes_with=sizes["with"], e_nodes_without=sizes["without"],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer claims and terms (a smoke run)")
    args = parser.parse_args()
    tune_collector()
    entries = []
    for bench in (bench_identities_proven, bench_analysis_cost):
        print(f"running {bench.__name__} ...", flush=True)
        gc.collect()
        entries.extend(bench(args.quick))
    report("identities", entries, quick=args.quick, method="shares: one run; throughput: best of interleaved runs, CPU time")


if __name__ == "__main__":
    main()
