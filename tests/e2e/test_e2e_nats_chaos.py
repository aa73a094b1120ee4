"""NATS chaos on real pods: a network whose managed NATS is a cluster of three servers (TLS,
JetStream streams on all three, a claim each) keeps going while its servers are killed.

Under a steady load of work-queue messages and agent traffic, one NATS pod is killed, then
another once the first is back: every message JetStream acknowledged to the publisher is
processed, and the agents reach one digest. JetStream's rule for a work queue: a message is
delivered until a worker acknowledges it (at least once), so one whose acknowledgement died with
a server is delivered again; the stream keeps a message until it is acknowledged and then drops
it. So: processed >= published (nothing lost), and processed <= the consumer's deliveries
(nothing processed twice except what JetStream delivered again). Then every NATS pod is
restarted at once: the network is Ready again and no agent or component pod restarted. Last, a
client that speaks plain text to a server is refused."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import E2E, converged, get_network, in_pod, is_ready, pod_get, replaced
from rig import wait_for
from rig.controlplane import stop_process

pytestmark = [*E2E, pytest.mark.timeout(2400)]
NETWORK, AGENTS, MESSAGES, RATE = "chaos", 5, 300, 5.0  # a minute of work at 5 messages a second

# Run in the stream-red pod with the pod's own NATS URL list, credentials and CA (as the runtime reads them).
CONNECT = r"""
import asyncio, json, os, sys
from agentnet_runtime import natsclient
from agentnet_runtime.config import NatsAuth

async def connected():
    auth = NatsAuth.from_dir(os.environ["AGENTNET_NATS_CREDENTIALS_DIR"]).with_ca_file(os.environ["AGENTNET_NATS_CA_FILE"])
    return await natsclient.connect(os.environ["AGENTNET_NATS_URL"], auth, "e2e-chaos")
"""

# argv: count rate network agents. Publishes `count` distinct terms on stream-red's queue, each retried
# (same Nats-Msg-Id: the stream stores it once) until JetStream acknowledges it; every fifth, a term to an agent.
LOAD = CONNECT + r"""
import httpx

async def main(count, rate, network, agents):
    client = await connected()
    js = client.jetstream()
    acknowledged = retries = posted = 0
    async with httpx.AsyncClient(timeout=5) as http:
        for i in range(count):
            while True:
                try:
                    await js.publish("work.red", f"x{i}*(y+z)".encode(), headers={"Nats-Msg-Id": f"chaos-{i}"}, timeout=5)
                    acknowledged += 1
                    break
                except Exception:
                    retries += 1
                    await asyncio.sleep(0.2)
            if i % 5 == 0:
                agent = (i // 5) % agents
                url = f"http://{network}-agents-{agent}.{network}-agents:8080/agent/{agent}/message"
                try:
                    posted += (await http.post(url, json={"term": f"a{i}+(b+c)"})).status_code == 202
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(1 / rate)
    print(json.dumps({"acknowledged": acknowledged, "retries": retries, "posted": posted}))
    await client.close()

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
"""

# The work stream and stream-red's consumer: what waits, and how many deliveries the consumer made.
QUEUE = CONNECT + r"""
async def main():
    client = await connected()
    js = client.jetstream()
    stream = await js.stream_info(natsclient.WORK_STREAM)
    consumer = await js.consumer_info(natsclient.WORK_STREAM, natsclient.work_consumer("stream-red"))
    print(json.dumps({"messages": stream.state.messages, "replicas": stream.config.num_replicas,
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


def last_json(output: str) -> dict:
    """The last JSON line of a pod's output (asyncio's warnings about TLS come on the same stream)."""
    return json.loads(next(line for line in reversed(output.strip().splitlines()) if line.startswith("{")))


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
    processed_before = pod_get(k8s, ns, stream_pod, "/status")["processed"]
    unchanged = identities(core, ns)

    load = subprocess.Popen([str(rig_bin / "kubectl"), f"--kubeconfig={kubeconfig}", "exec", "-n", ns, worker, "--",
                             "python", "-c", LOAD, str(MESSAGES), str(RATE), NETWORK, str(AGENTS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        # One server killed, then another once the first is back: a majority of three is up throughout.
        for victim in nats_pods[:2]:
            wait_for(lambda: pod_get(k8s, ns, stream_pod, "/status")["processed"] > processed_before, 300,
                     "stream-red to be processing the load")
            old_uid = core.read_namespaced_pod(victim, ns).metadata.uid
            core.delete_namespaced_pod(victim, ns, grace_period_seconds=0)
            wait_for(lambda: replaced(core, ns, victim, old_uid), 300, f"{victim} back and Ready")
        output, _ = load.communicate(timeout=900)
    finally:
        stop_process(load, grace=5)
    assert load.returncode == 0, output
    published = last_json(output)
    assert published["acknowledged"] == MESSAGES and published["posted"] > 0, published

    def drained() -> dict | None:
        now = last_json(in_pod(kubectl, ns, worker, QUEUE))
        return now if now["messages"] == now["pending"] == now["unacknowledged"] == 0 else None

    after = wait_for(drained, 600, "stream-red to work the queue off", interval=2)
    processed = pod_get(k8s, ns, stream_pod, "/status")["processed"] - processed_before
    deliveries = after["deliveries"] - queue["deliveries"]
    assert MESSAGES <= processed <= deliveries, (processed, deliveries)
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

    # Plain text to a server: it requires TLS and never serves the client.
    host = names.nats_pod_host(NETWORK, ns, 0)
    plain = last_json(in_pod(kubectl, ns, worker, PLAIN, host, str(names.NATS_CLIENT_PORT)))
    assert plain == {"tls_required": True, "pong": False}
