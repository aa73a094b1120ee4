"""skill-verification's votes on a term claim as functions of a request: the one place the claim's checks,
the verifiers' evidence and the tally are made, whether the Python process answers (skill_verification.py,
which adds its network replica's evidence, metrics and a worker thread) or a Spin component does
(agentnet_runtime.wasm: no NATS there, so no replica: evaluation and each verifier's own saturation).

How verifiers judge and how votes are tallied is described in skill_verification.py.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter as Tally
from dataclasses import dataclass
from typing import Any

from agentnet_runtime.core.counterexample import Counterexample, refute
from agentnet_runtime.core.rewrites import ALL_RULES
from agentnet_runtime.core.saturate import VERDICTS, Budget, Saturator
from agentnet_runtime.core.terms import Term, size
from agentnet_runtime.request_checks import RequestError, only_fields, term_field

MAX_TERM_SIZE = 200  # operators in one side of a claim: bounds the work of 17 saturations
SCORES = {"equal": 1.0, "unknown": 0.5, "unequal": 0.0}

Judgement = tuple[str, str, "Counterexample | None"]  # (vote, what decided it, the counterexample of an "unequal")


def tally(votes: list[str], scores: list[float], quorum: float, undecided: str = "unknown") -> dict[str, Any]:
    """Verdict (the most common vote, if more than `quorum` of all cast it), agreement, variance."""
    counts = Tally(votes)
    top, top_count = counts.most_common(1)[0]
    agreement = top_count / len(votes)
    return {
        "verdict": top if agreement > quorum else undecided,
        "agreement": round(agreement, 4),
        "variance": float(f"{statistics.pvariance(scores):.6g}") if scores else None,
        "votes": dict(counts),
        "verifiers": len(votes),
        "quorum": round(quorum, 4),
    }


@dataclass
class TermVerifier:
    index: int
    saturator: Saturator

    def judge(self, lhs: Term, rhs: Term, network_equal: bool) -> Judgement:
        counterexample = refute(lhs, rhs, seed=self.index)
        if counterexample is not None:
            return "unequal", "evaluation", counterexample
        if network_equal:
            return "equal", "network", None
        verdict = self.saturator.verify(lhs, rhs)
        if verdict.equal is None:
            return "unknown", "saturated" if verdict.report.saturated else "budget", None
        return verdict.verdict, "saturation" if verdict.equal else "evaluation", verdict.counterexample


def verifier(k: int, iterations: int, nodes: int, seconds: float) -> TermVerifier:
    """Verifier k, with its own share (seeded by k) of the saturation budget."""
    share = random.Random(k).uniform(0.5, 1.0)
    budget = Budget(iterations=max(1, math.ceil(iterations * share)), nodes=max(1, math.ceil(nodes * share)), seconds=seconds * share)
    return TermVerifier(k, Saturator(ALL_RULES, budget, memo_size=1_000))


def claim_term(body: dict, field: str) -> Term:
    term = term_field(body.get(field), field)
    if size(term) > MAX_TERM_SIZE:
        raise RequestError(f"{field} has {size(term)} operators", field=field, rule=f"at most {MAX_TERM_SIZE} operators")
    return term


def term_claim(body: dict[str, Any]) -> tuple[Term, Term]:
    """The (lhs, rhs) of a POST /terms body."""
    only_fields(body, ("lhs", "rhs"))
    return claim_term(body, "lhs"), claim_term(body, "rhs")


def judge_all(verifiers: list[TermVerifier], lhs: Term, rhs: Term, network_equal: bool) -> list[Judgement]:
    return [v.judge(lhs, rhs, network_equal) for v in verifiers]


def terms_answer(lhs: Term, rhs: Term, judged: list[Judgement], quorum: float) -> dict[str, Any]:
    """POST /terms's answer from the verifiers' judgements."""
    votes = [vote for vote, _, _ in judged]
    result = tally(votes, [SCORES[vote] for vote in votes], quorum)
    counterexample = next((example for _, _, example in judged if example is not None), None)
    return {
        "claim": {"kind": "terms", "lhs": str(lhs), "rhs": str(rhs)},
        **result,
        "equal": {word: equal for equal, word in VERDICTS.items()}[result["verdict"]],
        **({"counterexample": counterexample.to_json()} if counterexample is not None else {}),
        "decided_by": dict(Tally(reason for _, reason, _ in judged)),
        "ballots": [{"verifier": k, "vote": vote, "by": reason} for k, (vote, reason, _) in enumerate(judged)],
    }
