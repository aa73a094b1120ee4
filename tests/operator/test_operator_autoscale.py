"""The autoscaler's arithmetic, checked against the HorizontalPodAutoscaler's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentnet_operator.autoscale import (
    REASON_AT_BOUND, REASON_OUT_OF_BOUNDS, REASON_RATE_LIMITED, REASON_SCALE_DOWN, REASON_SCALE_UP,
    REASON_STABILISING, REASON_WITHIN_TOLERANCE, decide, proposal, step)
from agentnet_operator.model import Autoscaling, ComponentStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def autoscaling(**behavior) -> Autoscaling:
    return Autoscaling.model_validate({"minReplicas": 1, "maxReplicas": 20, "metric": {"source": "nats", "target": 100},
                                       "behavior": behavior})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("current, value, expected", [
    (1, 100, 1), (4, 109, 4), (4, 91, 4),  # within 10 %: no change
    (1, 350, 4), (3, 250, 8), (4, 50, 2), (4, 0, 0), (10, 111, 12),
])
def test_a_metric_proposes_ceil_of_current_times_ratio(current, value, expected):
    assert proposal(current, value, 100) == expected


def test_several_metrics_take_the_largest_proposal():
    decision = decide(autoscaling(scaleUp={"policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}]}),
                      2, [3, 9, 5], [], [], T0)
    assert decision.desired == 9 and decision.proposal == 9


def test_default_scale_up_doubles_or_adds_four_whichever_is_more():
    rules = autoscaling()
    first = decide(rules, 1, [20], [], [], at(0))
    assert (first.desired, first.reason) == (5, REASON_RATE_LIMITED)  # max(1*2, 1+4)
    # within the same 15 s period the limit counts from the period's start (1 replica)
    again = decide(rules, 5, [20], first.recommendations, first.events, at(5))
    assert again.desired == 5
    later = decide(rules, 5, [20], again.recommendations, again.events, at(16))
    assert (later.desired, later.reason) == (10, REASON_RATE_LIMITED)  # max(5*2, 5+4)
    last = decide(rules, 10, [20], later.recommendations, later.events, at(32))
    assert (last.desired, last.reason) == (20, REASON_SCALE_UP)


def test_scale_down_waits_for_the_stabilisation_window():
    rules = autoscaling(scaleDown={"stabilizationWindowSeconds": 60})
    high = decide(rules, 8, [8], [], [], at(0))
    low = decide(rules, 8, [2], high.recommendations, high.events, at(30))
    assert (low.desired, low.reason) == (8, REASON_STABILISING)  # 8 was asked for within the last 60 s
    still = decide(rules, 8, [2], low.recommendations, low.events, at(59))
    assert still.desired == 8
    down = decide(rules, 8, [2], still.recommendations, still.events, at(91))
    assert (down.desired, down.reason) == (2, REASON_SCALE_DOWN)


def test_scale_up_stabilisation_takes_the_lowest_recent_recommendation():
    rules = autoscaling(scaleUp={"stabilizationWindowSeconds": 30,
                                 "policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}]})
    spike = decide(rules, 2, [2], [], [], at(0))
    spike = decide(rules, 2, [9], spike.recommendations, spike.events, at(10))
    assert spike.desired == 2  # 2 was still recommended within the window
    held = decide(rules, 2, [9], spike.recommendations, spike.events, at(41))
    assert held.desired == 9


def test_rate_policies_select_min_or_are_disabled():
    pods_or_percent = [{"type": "Pods", "value": 1, "periodSeconds": 60}, {"type": "Percent", "value": 50, "periodSeconds": 60}]
    cautious = autoscaling(scaleUp={"selectPolicy": "Min", "policies": pods_or_percent})
    assert decide(cautious, 4, [20], [], [], T0).desired == 5  # min(4+1, ceil(4*1.5))
    eager = autoscaling(scaleUp={"selectPolicy": "Max", "policies": pods_or_percent})
    assert decide(eager, 4, [20], [], [], T0).desired == 6
    frozen = autoscaling(scaleUp={"selectPolicy": "Disabled"})
    assert decide(frozen, 4, [20], [], [], T0).desired == 4
    no_down = autoscaling(scaleDown={"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0})
    assert decide(no_down, 4, [1], [], [], T0).desired == 4
    slow_down = autoscaling(scaleDown={"stabilizationWindowSeconds": 0,
                                       "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]})
    first = decide(slow_down, 10, [1], [], [], T0)
    assert first.desired == 8
    assert decide(slow_down, 8, [1], first.recommendations, first.events, at(10)).desired == 8  # same period
    assert decide(slow_down, 8, [1], first.recommendations, first.events, at(31)).desired == 6


def test_bounds():
    rules = autoscaling(scaleDown={"stabilizationWindowSeconds": 0})
    top = decide(rules, 15, [500], [], [], T0)
    assert (top.desired, top.reason) == (20, REASON_AT_BOUND)
    bottom = decide(rules, 3, [0], [], [], T0)
    assert (bottom.desired, bottom.reason) == (1, REASON_AT_BOUND)
    outside = decide(rules, 30, [30], [], [], T0)
    assert (outside.desired, outside.reason) == (20, REASON_OUT_OF_BOUNDS)
    steady = decide(rules, 3, [3], [], [], T0)
    assert (steady.desired, steady.reason) == (3, REASON_WITHIN_TOLERANCE)


def test_a_steady_metric_leaves_the_kept_state_unchanged():
    """Recommendations are kept run-length, so a quiet component writes nothing new to status."""
    rules = autoscaling()
    before = step(rules, ComponentStatus(), 3, 100.0, at(0))
    after = step(rules, before, 3, 100.0, at(1))
    assert after == before and before.desired == 3 and len(before.recommendations) == 1
    busier = step(rules, after, 3, 200.0, at(2))
    assert busier.desired == 6 and busier.last_scale_time == at(2) and [e.change for e in busier.scale_events] == [3]
    assert busier.metric == 200.0 and busier.reason == REASON_SCALE_UP and "3 -> 6" in busier.message


def test_old_state_is_forgotten_outside_the_windows():
    rules = autoscaling(scaleDown={"stabilizationWindowSeconds": 60})
    state = ComponentStatus()
    for second, value in enumerate([100, 300, 100, 500, 100]):
        state = step(rules, state, 1, value, at(second))
    state = step(rules, state, 1, 100, at(1000))
    assert [r.replicas for r in state.recommendations] == [1]
    assert state.scale_events is None  # no change of replicas within the policies' periods
