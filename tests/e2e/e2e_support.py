"""Helpers for the tests on real pods: reading networks, pods and agents through the
API server, running code inside a pod, and port-forwarding as a user would."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentnet_operator import names
from rig import wait_for
from rig.controlplane import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "network.yaml"
OPERATOR_NAMESPACE, RELEASE = "agentnet-system", "agentnet"
# The chart's default: one leads, the other stands by.
OPERATOR_REPLICAS = yaml.safe_load((REPO / "charts" / "agentnet" / "values.yaml").read_text())["replicaCount"]
# Every module here: cluster tests that run in turn on one worker (see conftest.py).
E2E = [pytest.mark.cluster, pytest.mark.xdist_group("real-node")]


def example_network(image: str, **spec: Any) -> dict:
    """examples/network.yaml with the image under test (and `spec` merged in)."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"]["image"] = image
    body["spec"].update(spec)
    return body


def get_network(k8s: client.ApiClient, namespace: str, name: str) -> dict:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, name)


def condition(network: dict, kind: str) -> dict:
    return next((c for c in (network.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


def is_ready(network: dict) -> bool:
    return condition(network, "Ready").get("status") == "True"


def deployed(k8s: client.ApiClient, namespace: str, name: str, revision: int) -> dict | None:
    """The network once `revision` runs Ready as its current revision, else None."""
    body = get_network(k8s, namespace, name)
    return body if is_ready(body) and body["status"].get("currentRevision") == revision else None


def stored_revisions(k8s: client.ApiClient, namespace: str, name: str) -> list[tuple[int, str]]:
    """The network's ControllerRevisions: (number, object name), by number."""
    selector = names.selector_string(name, names.ROLE_REVISION)
    found = client.AppsV1Api(k8s).list_namespaced_controller_revision(namespace, label_selector=selector).items
    return sorted((r.revision, r.metadata.name) for r in found)


def ready_pod(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pods_ready(core: client.CoreV1Api, namespace: str, selector: str, count: int) -> bool:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return len(pods) == count and all(ready_pod(p) for p in pods)


def replaced(core: client.CoreV1Api, ns: str, name: str, old_uid: str) -> bool:
    """A pod of that name, not the deleted one, is Ready (between the two there may be none)."""
    try:
        pod = core.read_namespaced_pod(name, ns)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return pod.metadata.uid != old_uid and ready_pod(pod)


def agent_pod(network: str, agent: int) -> str:
    return f"{names.agents_name(network)}-{agent}"


def pod_get(k8s: client.ApiClient, namespace: str, pod: str, path: str, port: int = 8080) -> Any:
    """GET a pod's HTTP route through the API server's pod proxy, as JSON."""
    text = client.CoreV1Api(k8s).connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:{port}", namespace, path.lstrip("/"), _preload_content=False).data
    return json.loads(text)


def agent_states(k8s: client.ApiClient, namespace: str, network: str, agents: int) -> dict[int, dict]:
    return {i: pod_get(k8s, namespace, agent_pod(network, i), f"/agent/{i}/state") for i in range(agents)}


def converged(k8s: client.ApiClient, namespace: str, network: str, agents: int) -> dict[int, dict] | None:
    """Every agent's state once all hold one digest, else None."""
    try:
        states = agent_states(k8s, namespace, network, agents)
    except (client.ApiException, ValueError):
        return None
    return states if len({s["digest"] for s in states.values()}) == 1 else None


def in_pod(kubectl: Callable[..., str], namespace: str, target: str, code: str, *args: str) -> str:
    """Run Python inside a pod of the network (`target`: pod/NAME or deploy/NAME); `args` are its sys.argv[1:]."""
    return kubectl("exec", "-n", namespace, target, "--", "python", "-c", code, *args)


def last_json(output: str) -> dict:
    """The last line of a pod's output that is a JSON object (asyncio's TLS warnings and other log lines share
    its stream)."""
    for line in reversed(output.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    raise AssertionError(f"no JSON line in the pod's output:\n{output[-3000:]}")


# For code run in a pod: the process's NATS connection as a component of the pod makes it (its own URL list,
# credentials and CA, read by the runtime's load_config), so the test follows however the runtime connects.
POD_NATS = """
import asyncio
import nats.errors, nats.js.errors
from agentnet_runtime import natsclient
from agentnet_runtime.config import load_config

async def pod_nats(name, component):
    # As the component whose pod this runs in: its own NATS user, with that component's grant (permissions.py).
    config = load_config(agent_ids=(), component=component)
    return await natsclient.connect(config.nats_url, config.nats_auth, name)

async def settled(call, patience=60):
    # A JetStream API call, made again while nobody answers it: a stream electing a leader after its
    # server died, or a server recovering its store, answers nothing (timeout) or 503 for a while.
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        try:
            return await call()
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)
"""

POD_TOKEN = "-"  # post_from_pod's default: the network's API token, as the pod has it (AGENTNET_API_TOKEN)


def post_from_pod(kubectl: Callable[..., str], namespace: str, target: str, url: str, body: dict,
                  token: str = POD_TOKEN) -> dict:
    """POST JSON to `url` from inside a pod (cluster DNS and Services, as the network sees them), with `token` as
    the bearer token ("": none); the answer's status, JSON body and WWW-Authenticate challenge."""
    code = ("import httpx, json, os, sys; token = os.environ.get('AGENTNET_API_TOKEN') if sys.argv[3] == '-' else sys.argv[3]; "
            "headers = {'Authorization': 'Bearer ' + token} if token else {}; "
            "r = httpx.post(sys.argv[1], json=json.loads(sys.argv[2]), headers=headers, timeout=30); "
            "print(json.dumps({'status': r.status_code, 'body': r.json(), 'challenge': r.headers.get('www-authenticate')}))")
    return json.loads(in_pod(kubectl, namespace, target, code, url, json.dumps(body), token).strip().splitlines()[-1])


def service_ready(kubectl: Callable[..., str], namespace: str, service: str) -> bool:
    """Whether a component's Service answers GET /ready with 200 from inside one of its pods. A network Ready
    again says its pods are; the Service routes to them once kube-proxy has their endpoints, a moment later
    (until then a connection is refused)."""
    code = ("import httpx, sys\n"
            "try: print(httpx.get(f'http://{sys.argv[1]}:8080/ready', timeout=10).status_code)\n"
            "except httpx.TransportError as error: print(repr(error))")
    return in_pod(kubectl, namespace, f"deploy/{service}", code, service).strip().splitlines()[-1] == "200"


# Queues terms through a stream component's Service, from inside the network, `batch` to a POST.
QUEUE_TERMS = """
import httpx, os, sys
service, shape, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
token = os.environ.get("AGENTNET_API_TOKEN")  # the network's, as its pods have it where POSTs need one
headers = {"Authorization": "Bearer " + token} if token else {}
queued = 0
for start in range(0, count, batch):
    terms = [shape.format(i=i) for i in range(start, min(start + batch, count))]
    reply = httpx.post(f"http://{service}:8080/terms", json={"terms": terms}, headers=headers, timeout=60)
    assert reply.status_code == 202, reply.text
    queued += reply.json()["queued"]
print(queued)
"""


def queue_terms(kubectl: Callable[..., str], namespace: str, deployment: str, count: int,
                shape: str = "a{i}*(b{i}+c{i})", batch: int = 10_000) -> int:
    """Queue `count` distinct terms (`shape` formatted with i) on the work queue of the component `deployment`
    through its Service (same name), once that routes (service_ready: a network just Ready may not route yet,
    and a refused connection failed the failover test in CI); how many it accepted."""
    wait_for(lambda: service_ready(kubectl, namespace, deployment), 60, f"{deployment}'s Service to route to a ready pod")
    return int(in_pod(kubectl, namespace, f"deploy/{deployment}", QUEUE_TERMS, deployment, shape, str(count),
                      str(batch)).strip().splitlines()[-1])


@contextmanager
def port_forward(kubectl_bin: Path, kubeconfig: Path, namespace: str, target: str, remote: int) -> Iterator[int]:
    """`kubectl port-forward` to `target` (e.g. svc/NAME); yields the local port."""
    local = free_port()
    process = subprocess.Popen([str(kubectl_bin), f"--kubeconfig={kubeconfig}", "port-forward", "-n", namespace,
                                target, f"{local}:{remote}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            assert process.poll() is None, f"kubectl port-forward exited: {process.stdout.read().decode()}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", local)) == 0
        wait_for(listening, 30, f"port-forward to {namespace}/{target}")
        yield local
    finally:
        stop_process(process, grace=5)
