"""Leader election against a real API server: two `agentnet operator` processes on the host
share one coordination.k8s.io Lease. Only the holder reconciles; the other keeps its caches
warm and takes over when the holder is killed (after the Lease's duration), exits cleanly (it
releases the Lease) or loses the Lease to another holder (it stops at once)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from cluster_support import apply, network, small_network, wait_ready
from conftest import RESYNC_SECONDS
from rig import wait_for
from rig.operator import RunningOperator

pytestmark = pytest.mark.cluster

LEASE_NAME = "agentnet-operator"
DURATION, RENEW_DEADLINE, RETRY = 4, 3.0, 0.5  # short, so a takeover after expiry is quick


def election_args(namespace: str, duration: int = DURATION) -> tuple[str, ...]:
    return ("--leader-elect", f"--lease-namespace={namespace}", f"--lease-duration-seconds={duration}",
            f"--lease-renew-deadline-seconds={RENEW_DEADLINE}", f"--lease-retry-period-seconds={RETRY}")


@pytest.fixture
def elected(agentnet_crd, kubeconfig, kubectl, namespace, tmp_path):
    """Starts two operators sharing a Lease, with the network `ha` Ready (unless told not to); returns
    (leader, standby)."""
    started: list[RunningOperator] = []

    def start(duration: int = DURATION, with_network: bool = True) -> tuple[RunningOperator, RunningOperator]:
        pair = [RunningOperator(kubeconfig, tmp_path / f"operator-{i}.log", namespace=namespace,
                                resync_seconds=RESYNC_SECONDS, args=election_args(namespace, duration))
                for i in range(2)]
        started.extend(pair)
        if with_network:
            apply(kubectl, namespace, small_network("ha"))
            wait_ready(kubectl, namespace, "ha")
        leader = wait_for(lambda: the_leader(pair), 30, "one operator to lead")
        return leader, next(r for r in pair if r is not leader)

    yield start
    for i, running in enumerate(started):
        running.stop()
        print(f"operator {i} log (tail):\n{running.log.read_text()[-3000:]}")  # shown when the test failed


def the_leader(pair: list[RunningOperator]) -> RunningOperator | None:
    """The one running process that says it leads, when exactly one does."""
    leading = [r for r in pair if r.process.poll() is None and r.metric("agentnet_operator_leader") == 1]
    return leading[0] if len(leading) == 1 else None


def lease(k8s, namespace: str) -> client.V1LeaseSpec:
    return client.CoordinationV1Api(k8s).read_namespaced_lease(LEASE_NAME, namespace).spec


def usurp(k8s, namespace: str) -> datetime | None:
    """Write another holder into the Lease; None when the leader's renewal came first (a conflict)."""
    leases = client.CoordinationV1Api(k8s)
    current = leases.read_namespaced_lease(LEASE_NAME, namespace)
    now = datetime.now(UTC)
    current.spec.holder_identity = "intruder"
    current.spec.acquire_time = current.spec.renew_time = now
    current.spec.lease_transitions += 1
    try:
        leases.replace_namespaced_lease(LEASE_NAME, namespace, current)
    except client.ApiException as error:
        if error.status == 409:
            return None
        raise
    return now


def reconciles(running: RunningOperator) -> float:
    return running.metric("agentnet_operator_reconciles_total")


def scale_agents(kubectl, namespace: str, name: str, agents: int) -> None:
    kubectl("-n", namespace, "patch", "anet", name, "--type=merge", "-p", json.dumps({"spec": {"agents": agents}}))


def reconciled(k8s, namespace: str, name: str, generation: int) -> bool:
    body = network(k8s, namespace, name)
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in body.get("status", {}).get("conditions", []))
    return body["status"].get("observedGeneration") == generation and ready


def test_one_leads_before_any_network_exists(elected, k8s, namespace):
    """Election starts with the operators, not with the first network's watch event: on a fresh install
    the Lease already says which pod leads (the chart's two pods once waited, both unelected, for one)."""
    leader, standby = elected(with_network=False)
    assert lease(k8s, namespace).holder_identity and standby.metric("agentnet_operator_leader") == 0
    assert reconciles(leader) == 0


def test_one_reconciles_and_the_other_takes_over_when_it_is_killed(elected, k8s, kubectl, namespace):
    leader, standby = pair = elected()
    held = lease(k8s, namespace)
    assert held.holder_identity and held.lease_duration_seconds == DURATION and held.lease_transitions == 0
    assert held.acquire_time <= held.renew_time
    # Only the leader reconciled; the standby sent the API no write at all.
    assert reconciles(leader) > 0 and reconciles(standby) == 0 and standby.writes() == 0

    leader.process.kill()  # no chance to release the Lease: the standby waits for it to expire
    leader.process.wait()
    scale_agents(kubectl, namespace, "ha", 6)
    wait_for(lambda: the_leader(pair) is standby, 60, "the standby to take over")
    taken = lease(k8s, namespace)
    assert taken.holder_identity != held.holder_identity and taken.lease_transitions == 1
    assert taken.acquire_time > held.renew_time
    wait_for(lambda: reconciled(k8s, namespace, "ha", 2), 60, "the new leader to reconcile the change")
    assert reconciles(standby) > 0


def test_a_leader_that_exits_releases_the_lease(elected, k8s, kubectl, namespace):
    # A Lease of 120 s: a takeover within the 60 s waited below can only come from the release.
    leader, standby = pair = elected(duration=120)
    held = lease(k8s, namespace)

    leader.stop()  # SIGTERM: kopf's cleanup finishes the reconciles under way, then releases
    assert leader.process.returncode == 0
    wait_for(lambda: the_leader(pair) is standby, 60, "the standby to take the released Lease")
    taken = lease(k8s, namespace)
    assert taken.holder_identity not in ("", held.holder_identity) and taken.lease_transitions == 1
    assert "not released" not in leader.log.read_text()
    scale_agents(kubectl, namespace, "ha", 6)
    wait_for(lambda: reconciled(k8s, namespace, "ha", 2), 60, "the new leader to reconcile the change")


def test_a_leader_that_loses_the_lease_stops_at_once(elected, k8s, kubectl, namespace):
    leader, _ = pair = elected()

    # Another holder writes itself into the Lease (as a partitioned leader's successor would):
    # the leader sees it at its next renewal and stops, without waiting for its renew deadline.
    now = wait_for(lambda: usurp(k8s, namespace), 10, "the Lease written by another holder")
    wait_for(lambda: all(r.metric("agentnet_operator_leader") == 0 for r in pair), 30, "both to stand by")
    assert leader.metric("agentnet_operator_leader_transitions_total", event="stopped") == 1
    assert "lost to another holder" in leader.log.read_text()

    # The intruder never renews: after the Lease's duration one of the two takes it back.
    scale_agents(kubectl, namespace, "ha", 6)
    wait_for(lambda: the_leader(pair), 60, "one operator to take the expired Lease")
    back = lease(k8s, namespace)
    assert back.holder_identity != "intruder" and back.lease_transitions == 2
    assert back.acquire_time >= now + timedelta(seconds=DURATION)
    wait_for(lambda: reconciled(k8s, namespace, "ha", 2), 60, "the leader to reconcile the change")
