"""The autoscaler's arithmetic, as the HorizontalPodAutoscaler does it (pure: no I/O).

One step takes the component's current replicas, a metric value per metric, the
recommendations and scale events of the recent past (kept in status, so an operator
restart loses nothing) and the HPA v2 `behavior`, and returns the replicas to run:

1. each metric proposes ceil(current × value / target), or current within the tolerance;
   several metrics: the largest proposal wins;
2. stabilisation: scaling up takes the lowest recommendation of the up window, scaling
   down the highest of the down window (so a dip or a spike does not flap replicas);
   a recommendation counts in a window while it was the latest within it;
3. rate policies: the change within each policy's period is limited (Pods or Percent,
   selected by Max/Min, or Disabled), then minReplicas/maxReplicas bound the result.

The steps and their edge cases follow the HPA controller (pkg/controller/podautoscaler:
stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentnet_operator.model import (
    MAX_SCALE_HISTORY, Autoscaling, ComponentStatus, ReplicaRecommendation, ScaleDownRules, ScaleRecord, ScaleUpRules)

TOLERANCE = 0.1  # as the HPA's --horizontal-pod-autoscaler-tolerance


# Reasons, as status and Events show them.
REASON_WITHIN_TOLERANCE = "WithinTolerance"
REASON_SCALE_UP = "ScaleUp"
REASON_SCALE_DOWN = "ScaleDown"
REASON_STABILISING = "Stabilising"
REASON_RATE_LIMITED = "RateLimited"
REASON_AT_BOUND = "AtBound"
REASON_OUT_OF_BOUNDS = "OutOfBounds"


@dataclass(frozen=True)
class Recommendation:
    time: datetime
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    time: datetime
    change: int  # replicas added (> 0) or removed (< 0)


@dataclass(frozen=True)
class Decision:
    desired: int
    proposal: int  # what the metrics asked for, before stabilisation and rate limits
    reason: str
    message: str
    recommendations: tuple[Recommendation, ...]  # to keep for the next step
    events: tuple[ScaleEvent, ...]


def proposal(current: int, value: float, target: float, tolerance: float = TOLERANCE) -> int:
    """Replicas one metric asks for: ceil(current × value / target), or current within tolerance."""
    ratio = value / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(current * ratio)


def _in_force(past: Sequence[Recommendation], now: datetime) -> Iterable[tuple[Recommendation, datetime]]:
    """Each past recommendation with the time it stopped being the latest."""
    for position, r in enumerate(past):
        yield r, past[position + 1].time if position + 1 < len(past) else now


def _stabilise(current: int, raw: int, past: Sequence[Recommendation], up: ScaleUpRules, down: ScaleDownRules,
               now: datetime) -> int:
    up_from = now - timedelta(seconds=up.stabilization_window_seconds)
    down_from = now - timedelta(seconds=down.stabilization_window_seconds)
    up_limit = down_limit = raw
    for r, until in _in_force(past, now):
        if until > up_from:
            up_limit = min(up_limit, r.replicas)
        if until > down_from:
            down_limit = max(down_limit, r.replicas)
    replicas = current
    if replicas < up_limit:
        replicas = up_limit
    if replicas > down_limit:
        replicas = down_limit
    return replicas


def _period_start(current: int, events: Iterable[ScaleEvent], since: datetime) -> int:
    """Replicas at the start of a policy period: current minus what was added, plus what was removed."""
    return current - sum(e.change for e in events if e.time > since)


def scale_up_limit(current: int, events: Sequence[ScaleEvent], rules: ScaleUpRules, now: datetime) -> int:
    if rules.select_policy == "Disabled":
        return current
    limits = []
    for policy in rules.policies:
        start = _period_start(current, events, now - timedelta(seconds=policy.period_seconds))
        if policy.type == "Pods":
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
    return (min if rules.select_policy == "Min" else max)(limits)


def scale_down_limit(current: int, events: Sequence[ScaleEvent], rules: ScaleDownRules, now: datetime) -> int:
    if rules.select_policy == "Disabled":
        return current
    limits = []
    for policy in rules.policies:
        start = _period_start(current, events, now - timedelta(seconds=policy.period_seconds))
        if policy.type == "Pods":
            limits.append(start - policy.value)
        else:
            limits.append(math.floor(start * (1 - policy.value / 100)))
    # "Max" picks the policy allowing the largest change: for scaling down, the lowest limit.
    return (max if rules.select_policy == "Min" else min)(limits)


def decide(
    autoscaling: Autoscaling,
    current: int,
    proposals: Sequence[int],
    past: Sequence[Recommendation],
    events: Sequence[ScaleEvent],
    now: datetime,
) -> Decision:
    """One autoscaling step for a component running `current` replicas."""
    up, down = autoscaling.behavior.scale_up, autoscaling.behavior.scale_down
    low, high = autoscaling.min_replicas, autoscaling.max_replicas
    raw = max(proposals)
    # Recommendations are kept run-length: a new one only when it differs from the last,
    # so a steady metric changes nothing in status.
    keep_from = now - timedelta(seconds=max(up.stabilization_window_seconds, down.stabilization_window_seconds))
    recommendations = tuple(r for r, until in _in_force(past, now) if until > keep_from)
    if not recommendations or recommendations[-1].replicas != raw:
        recommendations = (*recommendations, Recommendation(now, raw))[-MAX_SCALE_HISTORY:]

    if current > high or current < low:
        desired = min(high, max(low, current))
        reason, message = REASON_OUT_OF_BOUNDS, f"{current} replicas is outside {low}..{high}"
    else:
        stabilised = _stabilise(current, raw, past, up, down, now)
        desired = stabilised
        if stabilised > current:
            allowed = min(high, max(current, scale_up_limit(current, events, up, now)))
            desired = min(stabilised, allowed)
            reason = REASON_SCALE_UP if desired == stabilised else (REASON_AT_BOUND if desired == high else REASON_RATE_LIMITED)
        elif stabilised < current:
            allowed = max(low, min(current, scale_down_limit(current, events, down, now)))
            desired = max(stabilised, allowed)
            reason = REASON_SCALE_DOWN if desired == stabilised else (REASON_AT_BOUND if desired == low else REASON_RATE_LIMITED)
        else:
            reason = REASON_STABILISING if raw != current else REASON_WITHIN_TOLERANCE
        message = _message(current, raw, desired, reason, low, high)

    longest_period = max(p.period_seconds for p in (*up.policies, *down.policies))
    events_from = now - timedelta(seconds=longest_period)
    kept = tuple(e for e in events if e.time > events_from)
    if desired != current:
        kept = (*kept, ScaleEvent(now, desired - current))[-MAX_SCALE_HISTORY:]
    return Decision(desired, raw, reason, message, recommendations, kept)


def _message(current: int, raw: int, desired: int, reason: str, low: int, high: int) -> str:
    if reason in (REASON_SCALE_UP, REASON_SCALE_DOWN):
        return f"metric asks for {raw} replicas: {current} -> {desired}"
    if reason == REASON_RATE_LIMITED:
        return f"metric asks for {raw} replicas; the scaling policy allows {desired} now"
    if reason == REASON_AT_BOUND:
        return f"metric asks for {raw} replicas; bounded to {desired} (minReplicas {low}, maxReplicas {high})"
    if reason == REASON_STABILISING:
        return f"metric asks for {raw} replicas; keeping {current} within the stabilisation window"
    return f"metric is within {TOLERANCE:.0%} of its target: keeping {current} replicas"


# ------------------------------------------------------------------------------------
# one component, from status to status
# ------------------------------------------------------------------------------------


def step(
    autoscaling: Autoscaling, before: ComponentStatus, current: int, value: float, now: datetime
) -> ComponentStatus:
    """The component's autoscaler state after one reading of its metric (`value` per replica)."""
    past = [Recommendation(r.time, r.replicas) for r in before.recommendations or ()]
    events = [ScaleEvent(e.time, e.change) for e in before.scale_events or ()]
    decision = decide(autoscaling, current, [proposal(current, value, autoscaling.metric.target)], past, events, now)
    return before.model_copy(update={
        "desired": decision.desired,
        "metric": round(value, 6),
        "reason": decision.reason,
        "message": decision.message,
        "last_scale_time": now if decision.desired != current else before.last_scale_time,
        "recommendations": [ReplicaRecommendation(time=r.time, replicas=r.replicas) for r in decision.recommendations],
        "scale_events": [ScaleRecord(time=e.time, change=e.change) for e in decision.events] or None,
    })  # fmt: skip
