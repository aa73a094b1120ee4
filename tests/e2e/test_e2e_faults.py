"""Faults on real pods lose nothing: the network's claims are bound by the rig's
local-path provisioner on the real node; an agent pod deleted comes back and
catches up from its neighbours; every agent pod deleted at once comes back with
the digest and size it had (its snapshot, on its claim); the NATS pod deleted
keeps every acknowledged JetStream message (its store is on a claim), and the
network is Ready again without a component pod restarting; the operator pod
deleted in the middle of a rollout is replaced and finishes it with no duplicate
revision; deleting the network deletes its claims."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import (E2E, OPERATOR_NAMESPACE, OPERATOR_REPLICAS, POD_NATS, RELEASE, agent_pod, agent_states,
                         converged, deployed, get_network, in_pod, is_ready, pod_get, post_from_pod, pods_ready,
                         ready_pod, replaced, stored_revisions)
from rig import storage, wait_for

# Every fault in turn, then a rollout finished by new operator pods: over 10 minutes under CI's load.
pytestmark = [*E2E, pytest.mark.timeout(1800)]
NETWORK, AGENTS = "faults", 5


def faults_network(image: str) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
            "spec": {"agents": AGENTS, "topology": {"kind": "ring"}, "image": image,
                     "components": [{"name": "stream-red"}],
                     "nats": {"managed": True, "replicas": 1}}}  # one server: its loss is the fault (a cluster's: test_e2e_nats_chaos)


def pods_by_name(core: client.CoreV1Api, ns: str, role: str) -> dict[str, client.V1Pod]:
    selector = f"{names.LABEL_INSTANCE}={NETWORK},{names.LABEL_COMPONENT}={role}"
    return {p.metadata.name: p for p in core.list_namespaced_pod(ns, label_selector=selector).items}


def identities(pods: dict[str, client.V1Pod]) -> dict[str, tuple[str, int]]:
    """Each pod's uid and its container's restart count: unchanged when nothing restarted."""
    return {name: (p.metadata.uid, p.status.container_statuses[0].restart_count) for name, p in pods.items()}


# Run in a pod of stream-red, as stream-red (its NATS user may queue work.red and look at the work queue's
# stream, nothing else: permissions.py). `write` queues three terms on the work queue (each acknowledged by
# the server as stored) and prints their sequence numbers; `read` prints the stream's last sequence number,
# which a server that lost its store starts again from 0 (stream-red then makes the stream anew).
DURABLE_STREAM = POD_NATS + r"""
import json, sys

async def main():
    client = await pod_nats("e2e-faults-stream", "stream-red")
    js = client.jetstream()
    if sys.argv[1] == "write":
        acks = [await js.publish(natsclient.work_subject("RED"), term.encode()) for term in ("a*1", "b*1", "c*1")]
        print(json.dumps([ack.seq for ack in acks]))
    else:
        print(json.dumps((await settled(lambda: js.stream_info(natsclient.WORK_STREAM))).state.last_seq))
    await client.close()

asyncio.run(main())
"""


def claims(core: client.CoreV1Api, ns: str) -> list[client.V1PersistentVolumeClaim]:
    return core.list_namespaced_persistent_volume_claim(ns, label_selector=f"{names.LABEL_INSTANCE}={NETWORK}").items


def test_agent_nats_and_operator_pods_deleted(k8s, kubectl, installed_operator, real_namespace, runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    stream_red = f"deploy/{names.component_name(NETWORK, 'stream-red')}"
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(faults_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network to be Ready")

    # A claim per agent pod and one for NATS, each bound to a volume the rig's provisioner made on the real node.
    bound = claims(core, ns)
    pods = [agent_pod(NETWORK, i) for i in range(AGENTS)] + [f"{names.nats_name(NETWORK)}-0"]
    assert sorted(c.metadata.name for c in bound) == sorted(f"{names.VOLUME_DATA}-{pod}" for pod in pods)
    for claim in bound:
        assert claim.status.phase == "Bound", claim.metadata.name
        volume = core.read_persistent_volume(claim.spec.volume_name)
        assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == storage.PROVISIONER
        assert volume.spec.host_path.path.startswith(storage.VOLUMES_DIR)
    for agent, term in enumerate(["x*(y+z)", "a+(b+c)", "p*(q*r)"]):
        url = f"http://{agent_pod(NETWORK, agent)}.{names.agents_name(NETWORK)}:8080/agent/{agent}/message"
        assert post_from_pod(kubectl, ns, stream_red, url, {"term": term})["status"] == 202
    before = wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 120, "the agents to converge")

    # An agent pod deleted: a new pod, an empty replica, filled again by its neighbours.
    victim = agent_pod(NETWORK, 2)
    old_uid = core.read_namespaced_pod(victim, ns).metadata.uid
    core.delete_namespaced_pod(victim, ns)
    wait_for(lambda: replaced(core, ns, victim, old_uid), 120, "agent 2's pod back and Ready")
    after = wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 120, "agent 2 to catch up")
    assert after[2]["digest"] == before[0]["digest"] and after[2]["egraph_nodes"] == before[2]["egraph_nodes"]

    # Every agent pod deleted at once: no neighbour is left to catch up from, so what each agent
    # holds when its new pod is Ready comes from its snapshot, on its claim.
    agents_selector = f"{names.LABEL_INSTANCE}={NETWORK},{names.LABEL_COMPONENT}={names.ROLE_AGENT}"
    old_uids = {name: p.metadata.uid for name, p in pods_by_name(core, ns, names.ROLE_AGENT).items()}
    core.delete_collection_namespaced_pod(ns, label_selector=agents_selector)
    wait_for(lambda: all(replaced(core, ns, name, uid) for name, uid in old_uids.items()), 180,
             "every agent pod back and Ready")
    restored = agent_states(k8s, ns, NETWORK, AGENTS)
    assert {i: (s["digest"], s["egraph_nodes"]) for i, s in restored.items()} == \
        {i: (s["digest"], s["egraph_nodes"]) for i, s in before.items()}

    # The NATS pod deleted: JetStream's store is on its claim, so what it acknowledged is there after.
    acknowledged = json.loads(in_pod(kubectl, ns, stream_red, DURABLE_STREAM, "write").strip().splitlines()[-1])
    assert len(acknowledged) == 3 and acknowledged == sorted(acknowledged), acknowledged
    workers = {**pods_by_name(core, ns, "stream-red"), **pods_by_name(core, ns, names.ROLE_AGENT)}
    unchanged = identities(workers)
    nats_pod = f"{names.nats_name(NETWORK)}-0"
    old_uid = core.read_namespaced_pod(nats_pod, ns).metadata.uid
    core.delete_namespaced_pod(nats_pod, ns)
    wait_for(lambda: not is_ready(get_network(k8s, ns, NETWORK)), 60, "the network to notice NATS is gone")
    wait_for(lambda: replaced(core, ns, nats_pod, old_uid), 120, "a new NATS pod")
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 120, "the network Ready again")
    last = json.loads(in_pod(kubectl, ns, stream_red, DURABLE_STREAM, "read").strip().splitlines()[-1])
    assert last >= acknowledged[-1], (last, acknowledged)  # the stream's store came back from the claim
    (worker,) = pods_by_name(core, ns, "stream-red")
    processed = pod_get(k8s, ns, worker, "/status")["processed"]

    def queue_through_service() -> dict | None:
        """POST a term to stream-red's Service, as a client would, retrying what a client retries.
        Readiness lags the process by up to a probe period or two each way: the Service may have no
        endpoint yet (connection refused), or still route to a pod that has not reconnected to NATS
        yet, which answers 503 and says so."""
        url = f"http://{names.component_name(NETWORK, 'stream-red')}:8080/terms"
        try:
            answer = post_from_pod(kubectl, ns, stream_red, url, {"term": "u*(v+w)"})
        except AssertionError as error:
            if "Connection refused" in str(error):
                return None
            raise
        if answer["status"] == 503:
            assert answer["body"]["field"] == "nats", answer
            return None
        return answer

    queued = wait_for(queue_through_service, 60, "stream-red's Service to take work again")
    assert queued["status"] == 202, queued
    wait_for(lambda: pod_get(k8s, ns, worker, "/status")["processed"] > processed, 60, "the new term rewritten")
    now = identities({**pods_by_name(core, ns, "stream-red"), **pods_by_name(core, ns, names.ROLE_AGENT)})
    assert now == unchanged, "a component or agent pod was restarted or replaced"

    # The operator pod deleted mid-rollout: its replacement finishes revision 2, once.
    operator = f"app.kubernetes.io/instance={RELEASE}"
    kubectl("-n", ns, "patch", "anet", NETWORK, "--type=merge", "-p",
            json.dumps({"spec": {"components": [{"name": "stream-red"}, {"name": "duck-colors"}]}}))
    wait_for(lambda: (get_network(k8s, ns, NETWORK).get("status") or {}).get("updateRevision") == 2, 60,
             "revision 2 to begin")
    core.delete_collection_namespaced_pod(OPERATOR_NAMESPACE, label_selector=operator)
    wait_for(lambda: pods_ready(core, OPERATOR_NAMESPACE, operator, OPERATOR_REPLICAS), 120, "new operator pods")

    # Both operator pods start again, elect a leader and roll revision 2 out: minutes on a loaded 2-core machine.
    done = wait_for(lambda: deployed(k8s, ns, NETWORK, 2), 600,
                    lambda: f"revision 2 Ready; status: {get_network(k8s, ns, NETWORK).get('status')}")
    assert [(h["revision"], h["result"]) for h in done["status"]["history"]] == [(2, "Deployed"), (1, "Superseded")]
    stored = stored_revisions(k8s, ns, NETWORK)
    assert [n for n, _ in stored] == [1, 2] and len({name for _, name in stored}) == 2
    assert ready_pod(next(iter(pods_by_name(core, ns, "duck-colors").values())))

    # Deleting the network deletes its claims (and so the volumes: the class reclaims them).
    kubectl("-n", ns, "delete", "anet", NETWORK, "--wait=false")
    wait_for(lambda: not claims(core, ns), 180, "the network's claims to be deleted with it")
