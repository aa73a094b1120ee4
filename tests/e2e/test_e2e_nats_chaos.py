"""NATS chaos on real pods: a network whose managed NATS is a cluster of three servers (TLS,
JetStream streams on all three, a claim each) keeps going while its servers are killed.

Under a steady load of work-queue messages and agent traffic (each POST with the network's API token,
as the pod running the load has it), the NATS pod leading the work stream is killed, then the pod leading
it next once the first is back: every message JetStream acknowledged to the publisher is processed, and
the agents reach one digest.

JetStream's rules this test relies on (stream-red's consumer: a durable pull consumer, explicit acks,
AckWait 30 s and MaxDeliver unlimited, the server's defaults; the work stream: work-queue retention,
duplicate window 2 min):
- a publish is acknowledged once the stream's replicas hold it (a majority of three); the publisher
  retries one that got no acknowledgement with the same Nats-Msg-Id, and the stream stores it once
  (the retry's acknowledgement says `duplicate`), so the stream stores exactly the messages published;
- a stored message is delivered until a worker acknowledges it (at least once): one whose worker
  failed (nak) or whose acknowledgement died with a server is delivered again, and every delivery,
  first or again, advances the consumer's delivered sequence; an acknowledged message leaves the stream.
So: published <= processed (nothing lost) and processed <= deliveries (nothing processed twice except
what JetStream delivered again). Then every NATS pod is restarted at once: the network is Ready again
and no agent or component pod restarted. Last, a client that speaks plain text to a server is refused.
Every wait is bounded, and the test's timeout bounds the whole."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import (E2E, POD_NATS, converged, get_network, in_pod, is_ready, last_json, pod_get, queue_terms,
                         replaced)
from rig import wait_for
from rig.controlplane import stop_process

pytestmark = [*E2E, pytest.mark.timeout(2400)]
NETWORK, AGENTS, RATE = "chaos", 5, 5.0  # work-queue messages a second
POST_EVERY = 5  # every fifth message, a term POSTed to an agent too
POST_PATIENCE = 60  # seconds a POST is retried (an agent reconnecting to NATS is briefly not Ready: not in DNS)
MOST = 5_000  # messages the load publishes at most (a quarter of an hour at RATE), should the test not stop it
STEADY = 25  # messages stream-red works before each kill and before the load stops (5 s of load)
STOP_FILE = f"{names.TMP_DIR}/chaos-load-stop"  # the load stops once this file exists in its pod

# argv: rate network agents every patience most stop-file. Until `stop-file` exists, publishes distinct terms
# on stream-red's queue at `rate`, each retried (same Nats-Msg-Id: the stream stores it once) until JetStream
# acknowledges it; and, apart, at rate/every, terms to the agents in turn through their pods' DNS names, with the
# network's API token as the pod has it, each retried until accepted. Prints what it did as one JSON line.
LOAD = POD_NATS + r"""
import asyncio, json, os, sys, time
from collections import Counter
import httpx

AUTHORIZATION = {"Authorization": "Bearer " + os.environ["AGENTNET_API_TOKEN"]}
rate, network, agents, every, patience, most, stop_file = float(sys.argv[1]), sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
done = Counter()
refusals = Counter()

async def publish(js):
    for i in range(most):
        if os.path.exists(stop_file):
            return "asked"
        while True:
            try:
                ack = await js.publish("work.red", f"x{i}*(y+z)".encode(), headers={"Nats-Msg-Id": f"chaos-{i}"}, timeout=5)
                done["acknowledged"] += 1
                done["duplicates"] += bool(ack.duplicate)
                break
            except Exception:
                done["retries"] += 1
                await asyncio.sleep(0.2)
        await asyncio.sleep(1 / rate)
    return "most"

async def post(http, url, term):
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            reply = await http.post(url, json={"term": term}, headers=AUTHORIZATION)
            if reply.status_code == 202:
                return True
            refusals[str(reply.status_code)] += 1
        except httpx.HTTPError as error:
            refusals[type(error).__name__] += 1
        await asyncio.sleep(0.5)
    return False

async def posts():
    async with httpx.AsyncClient(timeout=5) as http:
        for j in range(most):
            if os.path.exists(stop_file):
                return
            url = f"http://{network}-agents-{j % agents}.{network}-agents:8080/agent/{j % agents}/message"
            done["posts"] += 1
            done["accepted"] += await post(http, url, f"a{j}+(b+c)")
            await asyncio.sleep(every / rate)

async def main():
    start = time.monotonic()
    client = await pod_nats("e2e-chaos-load", "stream-red")
    stopped, _ = await asyncio.gather(publish(client.jetstream()), posts())
    await client.close()
    print(json.dumps({**done, "refusals": refusals, "stopped": stopped, "seconds": round(time.monotonic() - start, 1)}))

asyncio.run(main())
"""

# The work stream and stream-red's consumer: what waits, how many deliveries the consumer made, and which
# server leads the stream (server names are pod names).
QUEUE = POD_NATS + r"""
import asyncio, json

async def main():
    client = await pod_nats("e2e-chaos-queue", "stream-red")
    js = client.jetstream()
    stream = await settled(lambda: js.stream_info(natsclient.WORK_STREAM))
    consumer = await settled(lambda: js.consumer_info(natsclient.WORK_STREAM, natsclient.work_consumer("stream-red")))
    print(json.dumps({"messages": stream.state.messages, "stored": stream.state.last_seq,
                      "replicas": stream.config.num_replicas, "leader": stream.cluster.leader,
                      "pending": consumer.num_pending, "unacknowledged": consumer.num_ack_pending,
                      "deliveries": consumer.delivered.consumer_seq}))
    await client.close()

asyncio.run(main())
"""

# argv: host port. Speaks plain text to a server: prints its INFO's tls_required and whether it ever answered PONG.
PLAIN = r"""
import json, socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    info = json.loads(s.recv(65536).decode().split(" ", 1)[1])
    s.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
    answer = b""
    try:
        while chunk := s.recv(4096):
            answer += chunk
    except OSError:
        pass
print(json.dumps({"tls_required": info.get("tls_required"), "pong": b"PONG" in answer}))
"""


def chaos_network(image: str) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": NETWORK},
            "spec": {"agents": AGENTS, "topology": {"kind": "ring"}, "image": image,
                     "components": [{"name": "stream-red"}], "nats": {"managed": True, "replicas": 3}}}


def pods(core: client.CoreV1Api, ns: str, role: str) -> dict[str, client.V1Pod]:
    selector = f"{names.LABEL_INSTANCE}={NETWORK},{names.LABEL_COMPONENT}={role}"
    return {p.metadata.name: p for p in core.list_namespaced_pod(ns, label_selector=selector).items}


def identities(core: client.CoreV1Api, ns: str) -> dict[str, tuple[str, int]]:
    """Each agent and component pod's uid and restart count: unchanged when none restarted."""
    workers = {**pods(core, ns, names.ROLE_AGENT), **pods(core, ns, "stream-red")}
    return {name: (p.metadata.uid, p.status.container_statuses[0].restart_count) for name, p in workers.items()}


def processed(k8s: client.ApiClient, ns: str, pod: str) -> int:
    """Terms stream-red has processed since it started (each delivery it worked, again ones too)."""
    return pod_get(k8s, ns, pod, "/status")["processed"]


def test_nats_servers_killed_under_load_lose_nothing(k8s, kubectl, rig_bin, kubeconfig, installed_operator,
                                                     real_namespace, runtime_image):
    ns, core = real_namespace, client.CoreV1Api(k8s)
    worker = f"deploy/{names.component_name(NETWORK, 'stream-red')}"
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(chaos_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 600, "the network to be Ready")
    nats_pods = [f"{names.nats_name(NETWORK)}-{k}" for k in range(3)]
    assert sorted(pods(core, ns, names.ROLE_NATS)) == nats_pods
    claims = {c.metadata.name: c.status.phase for c in core.list_namespaced_persistent_volume_claim(ns).items}
    assert all(claims.get(f"{names.VOLUME_DATA}-{pod}") == "Bound" for pod in nats_pods), claims
    (stream_pod,) = pods(core, ns, "stream-red")
    queue = last_json(in_pod(kubectl, ns, worker, QUEUE))
    assert queue["replicas"] == 3
    processed_before = processed(k8s, ns, stream_pod)
    unchanged = identities(core, ns)

    load = subprocess.Popen([str(rig_bin / "kubectl"), f"--kubeconfig={kubeconfig}", "exec", "-n", ns, f"pod/{stream_pod}",
                             "--", "python", "-c", LOAD, str(RATE), NETWORK, str(AGENTS), str(POST_EVERY),
                             str(POST_PATIENCE), str(MOST), STOP_FILE],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        # The server leading the work stream killed, then the one leading it next once the first is back: the
        # stream elects a leader under load twice, and a majority of three is up throughout. Before each kill and
        # before the load stops, stream-red works STEADY more messages of the load.
        killed: list[str] = []
        since = processed_before
        for step in range(3):
            since = wait_for(lambda: (now := processed(k8s, ns, stream_pod)) >= since + STEADY and now, 300,
                             "stream-red to be working the load")
            if step == 2:
                break
            leader = wait_for(lambda: last_json(in_pod(kubectl, ns, worker, QUEUE))["leader"], 60, "a stream leader")
            victim = leader if leader not in killed else next(pod for pod in nats_pods if pod not in killed)
            old_uid = core.read_namespaced_pod(victim, ns).metadata.uid
            core.delete_namespaced_pod(victim, ns, grace_period_seconds=0)
            killed.append(victim)
            wait_for(lambda: replaced(core, ns, victim, old_uid), 300, f"{victim} back and Ready")
        assert load.poll() is None, f"the load ended before the test stopped it: {load.communicate()[0]}"
        in_pod(kubectl, ns, f"pod/{stream_pod}", "import sys; open(sys.argv[1], 'x').close()", STOP_FILE)
        output, _ = load.communicate(timeout=POST_PATIENCE + 120)
    finally:
        stop_process(load, grace=5)
    assert load.returncode == 0, output
    load_did = last_json(output)
    published = load_did["acknowledged"]
    assert load_did["stopped"] == "asked" and published > 0 and 0 < load_did["posts"] == load_did["accepted"], load_did

    def drained() -> dict | None:
        now = last_json(in_pod(kubectl, ns, worker, QUEUE))
        return now if now["messages"] == now["pending"] == now["unacknowledged"] == 0 else None

    after = wait_for(drained, 600, "stream-red to work the queue off", interval=2)
    assert after["stored"] - queue["stored"] == published, (after, queue, load_did)  # each stored once
    worked = processed(k8s, ns, stream_pod) - processed_before
    deliveries = after["deliveries"] - queue["deliveries"]
    assert published <= worked <= deliveries, (published, worked, deliveries, load_did)
    print("chaos figures:", {**load_did, "processed": worked, "deliveries": deliveries, "killed": killed})  # shown with -rP
    wait_for(lambda: converged(k8s, ns, NETWORK, AGENTS), 300, "the agents to reach one digest")
    assert identities(core, ns) == unchanged, "an agent or component pod restarted during the chaos"

    # Every NATS pod at once: the network is Ready again, with the same agent and component pods.
    old = {name: p.metadata.uid for name, p in pods(core, ns, names.ROLE_NATS).items()}
    core.delete_collection_namespaced_pod(ns, label_selector=f"{names.LABEL_INSTANCE}={NETWORK},"
                                                             f"{names.LABEL_COMPONENT}={names.ROLE_NATS}")
    wait_for(lambda: all(replaced(core, ns, name, uid) for name, uid in old.items()), 300, "every NATS pod back")
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 300, "the network Ready again")
    assert identities(core, ns) == unchanged, "an agent or component pod restarted with NATS"
    assert last_json(in_pod(kubectl, ns, worker, QUEUE))["replicas"] == 3  # the stream outlived its servers
    before = processed(k8s, ns, stream_pod)  # and work flows again: terms queued through stream-red's POST /terms
    stream_red = names.component_name(NETWORK, "stream-red")
    assert queue_terms(kubectl, ns, stream_red, 10, "after{i}*(y+z)") == 10
    wait_for(lambda: processed(k8s, ns, stream_pod) >= before + 10, 120, "stream-red to work terms queued after it")

    # Plain text to a server: it requires TLS and never serves the client.
    host = names.nats_pod_host(NETWORK, ns, 0)
    plain = last_json(in_pod(kubectl, ns, worker, PLAIN, host, str(names.NATS_CLIENT_PORT)))
    assert plain == {"tls_required": True, "pong": False}
