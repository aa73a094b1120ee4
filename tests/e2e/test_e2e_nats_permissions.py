"""Least privilege on NATS subjects, on real pods: a small managed network (two agent pods of two
agents, two components, a 3-server TLS NATS cluster) converges with every pod on its own NATS user;
from inside those pods, with the credentials and CA their Secret volumes give them and the runtime's
own connection code:
- a connection without TLS is refused (the server requires it and never serves a plain client);
- wrong credentials are refused: a wrong password, and pod 0's password for pod 1's user;
- a subject outside an identity's grant is refused and logged, by the runtime and by the NATS
  servers: stream-red queueing stream-blue's work, agent pod 0 speaking as an agent of pod 1.
The network's own traffic is refused nothing."""

from __future__ import annotations

import json

import yaml
from kubernetes import client

from agentnet_operator import names
from e2e_support import E2E, agent_pod, example_network, get_network, in_pod, is_ready, pod_get, post_from_pod
from rig import wait_for

pytestmark = E2E
NETWORK, AGENTS, PER_POD = "ramanujan", 4, 2
NATS_SERVERS = 3
REFUSED = "NATS refused a subject to this process's user (its grant in permissions.py lacks it): "

# Runs in a pod: connect as the pod does (config.load_config from its environment and credentials), publish
# each subject given, and print what the runtime logged. "as:<identity>" connects with this pod's password
# under another identity instead, "password:<text>" with another password, and print whether the server
# refused it; "plain:<host>" speaks plain text to that server with the pod's credentials.
INTRUDER = """
import asyncio, json, logging, socket, sys
from dataclasses import replace
from agentnet_runtime import natsclient
from agentnet_runtime.config import load_config
records = []
class Keep(logging.Handler):
    def emit(self, record): records.append(record.getMessage())
logging.getLogger("agentnet.nats").addHandler(Keep())
def plain(host, auth):
    with socket.create_connection((host, 4222), timeout=10) as s:
        info = s.recv(4096)
        s.sendall(('CONNECT ' + json.dumps({"user": auth.user, "pass": auth.password}) + '\\r\\nPING\\r\\n').encode())
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except OSError as error:
            answer += repr(error).encode()
    return {"tls_required": b'"tls_required":true' in info, "served": b"PONG" in answer}
async def main(role, *subjects):
    config = load_config(agent_ids=(), component=role) if role != "agent" else load_config()
    first = subjects[0] if subjects else ""
    if first.startswith("plain:"):
        return {"user": config.nats_auth.user, **plain(first[6:], config.nats_auth)}
    if first.startswith(("as:", "password:")):
        kind, value = first.split(":", 1)
        auth = replace(config.nats_auth, **({"user": value, "inbox_prefix": None} if kind == "as" else {"password": value}))
        state = natsclient.NatsState()
        task = asyncio.create_task(natsclient.connect(config.nats_url, auth, "e2e-intruder", state=state))
        for _ in range(100):
            if state.refused or task.done():
                break
            await asyncio.sleep(0.1)
        task.cancel()
        return {"user": config.nats_auth.user, "refused": state.refused, "not_ready": state.not_ready()}
    nc = await asyncio.wait_for(natsclient.connect(config.nats_url, config.nats_auth, "e2e-intruder"), 60)
    for subject in subjects:
        await nc.publish(subject, b"{}")
    await nc.flush()
    await asyncio.sleep(2)
    await nc.close()
    return {"user": config.nats_auth.user, "logged": records}
print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
"""


def intrude(kubectl, namespace: str, target: str, role: str, *subjects: str) -> dict:
    return json.loads(in_pod(kubectl, namespace, target, INTRUDER, role, *subjects).strip().splitlines()[-1])


def refusals(outcome: dict) -> list[str]:
    return [line.removeprefix(REFUSED) for line in outcome["logged"] if "permissions violation" in line]


def nats_logs(kubectl, namespace: str) -> str:
    """Every NATS server's log (a client may be on any of them)."""
    return "\n".join(kubectl("logs", "-n", namespace, f"{names.nats_name(NETWORK)}-{k}") for k in range(NATS_SERVERS))


def learnt_one_thing(k8s, namespace: str) -> bool:
    """Every agent (pod k hosts agents 2k, 2k+1) holds e-nodes, and all hold one digest."""
    try:
        states = [pod_get(k8s, namespace, agent_pod(NETWORK, i // PER_POD), f"/agent/{i}/state") for i in range(AGENTS)]
    except (client.ApiException, ValueError):
        return False
    return all(s["egraph_nodes"] > 0 for s in states) and len({s["digest"] for s in states}) == 1


def test_each_pod_is_held_to_its_own_subjects(k8s, kubectl, installed_operator, real_namespace, runtime_image):
    ns = real_namespace
    body = example_network(runtime_image, agents=AGENTS, agentsPerPod=PER_POD, topology={"kind": "ring"},
                           components=[{"name": "stream-red"}, {"name": "agent-orchestrator"}],
                           nats={"managed": True, "replicas": NATS_SERVERS}, persistence={"enabled": False})  # fmt: skip
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 600, "the network to be Ready")
    orchestrator = f"deploy/{names.component_name(NETWORK, 'agent-orchestrator')}"
    agent_0 = f"http://{agent_pod(NETWORK, 0)}.{names.agents_name(NETWORK)}.{ns}.svc:8080/agent/0/message"
    assert post_from_pod(kubectl, ns, orchestrator, agent_0, {"term": "x*(y+z)"})["status"] == 202
    wait_for(lambda: learnt_one_thing(k8s, ns), 180, "a term sent to agent 0 to reach every agent of both pods")

    first_pod = f"pod/{agent_pod(NETWORK, 0)}"  # hosts agents 0 and 1; agent 2 (pod 1's) is agent 1's neighbour
    server = f"{names.nats_name(NETWORK)}-0.{names.nats_headless_name(NETWORK)}.{ns}.svc"
    plain = intrude(kubectl, ns, first_pod, "agent", f"plain:{server}")
    assert plain == {"user": "agents-0", "tls_required": True, "served": False}, plain

    spoken = intrude(kubectl, ns, first_pod, "agent", "agent.1.heartbeat", "agent.2.heartbeat")
    assert spoken["user"] == "agents-0"
    assert refusals(spoken) == ['nats: permissions violation for publish to "agent.2.heartbeat"'], spoken

    red = f"deploy/{names.component_name(NETWORK, 'stream-red')}"
    queued = intrude(kubectl, ns, red, "stream-red", "work.red", "work.blue")
    assert queued["user"] == "stream-red"
    assert refusals(queued) == ['nats: permissions violation for publish to "work.blue"'], queued

    for attempt in ("as:agents-1", "password:not-the-password-of-agents-0"):  # pod 0's password, pod 1's user
        outcome = intrude(kubectl, ns, first_pod, "agent", attempt)
        assert outcome["refused"] and outcome["not_ready"] == ["NATS authorization violation"], (attempt, outcome)

    logs = nats_logs(kubectl, ns)
    assert 'user:agents-0" - Publish Violation - Subject "agent.2.heartbeat"' in logs, logs[-3000:]
    assert 'user:stream-red" - Publish Violation - Subject "work.blue"' in logs, logs[-3000:]
    assert 'authentication error - User "agents-1"' in logs and 'authentication error - User "agents-0"' in logs, logs[-3000:]
    # The network's own traffic was refused nothing; the routes between the servers kept working.
    assert logs.count("Violation - Subject") == 2, logs[-3000:]
    assert learnt_one_thing(k8s, ns)
