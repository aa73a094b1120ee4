"""Leader election's decision (pure) and its settings: who writes the Lease, and what."""

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from agentnet_operator.leader import Record, next_record
from agentnet_operator.main import operator_command
from agentnet_operator.settings import LeaseSettings

ME = "operator-a_1"
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
records = st.builds(Record, holder=st.sampled_from(["", ME, "operator-b_2", "operator-c_3"]),
                    duration_seconds=st.integers(1, 120), acquire_time=moments, renew_time=moments,
                    transitions=st.integers(0, 10_000))


@given(now=moments, duration=st.integers(1, 120))
def test_a_missing_lease_is_created_held_by_the_candidate(now, duration):
    assert next_record(None, ME, duration, now, expired=False) == Record(ME, duration, now, now, 0)


@given(current=records, now=moments, duration=st.integers(1, 120), expired=st.booleans())
def test_the_holder_renews_keeping_acquire_time_and_transitions(current, now, duration, expired):
    mine = Record(ME, current.duration_seconds, current.acquire_time, current.renew_time, current.transitions)
    renewed = next_record(mine, ME, duration, now, expired)
    assert renewed == Record(ME, duration, mine.acquire_time, now, mine.transitions)


@given(current=records, now=moments, duration=st.integers(1, 120), expired=st.booleans())
def test_another_holder_is_waited_out_then_taken_over_as_a_transition(current, now, duration, expired):
    if current.holder == ME:
        return  # the case above
    taken = next_record(current, ME, duration, now, expired)
    if current.holder and not expired:
        assert taken is None  # held by another and not expired: no write at all
    else:  # expired, or released (holder emptied): taken now
        assert taken == Record(ME, duration, now, now, current.transitions + 1)


def test_spec_round_trip_in_the_apis_micro_time():
    moment = datetime(2026, 12, 5, 9, 30, 0, 0, tzinfo=UTC)  # zero microseconds: still six digits
    spec = Record(ME, 15, moment, moment + timedelta(seconds=2), 3).to_spec()
    assert spec == {"holderIdentity": ME, "leaseDurationSeconds": 15, "acquireTime": "2026-12-05T09:30:00.000000Z",
                    "renewTime": "2026-12-05T09:30:02.000000Z", "leaseTransitions": 3}


def test_defaults_are_client_gos():
    lease = LeaseSettings(namespace="ops")
    assert (lease.name, lease.duration_seconds, lease.renew_deadline_seconds, lease.retry_period_seconds) == \
        ("agentnet-operator", 15, 10.0, 2.0)


@pytest.mark.parametrize(("flags", "message"), [
    (["--lease-duration-seconds=10", "--lease-renew-deadline-seconds=10"],
     "lease duration (10 s) must be greater than the renew deadline (10.0 s)"),
    (["--lease-renew-deadline-seconds=2", "--lease-retry-period-seconds=2"],
     "renew deadline (2.0 s) must be greater than 1.2 × the retry period (2.0 s)"),
    (["--lease-retry-period-seconds=0"], "--lease-retry-period-seconds: Input should be greater than 0"),
    (["--lease-name="], "--lease-name: String should have at least 1 character"),
])
def test_bad_lease_flags_are_refused_naming_the_flag_and_the_rule(flags, message):
    result = CliRunner().invoke(operator_command, ["--leader-elect", "--lease-namespace=ops", *flags])
    assert result.exit_code == 2 and message in result.output, result.output


def test_outside_a_pod_the_leases_namespace_must_be_given():
    result = CliRunner().invoke(operator_command, ["--leader-elect"])
    assert result.exit_code == 2
    assert "--lease-namespace is required with --leader-elect outside a pod" in result.output
