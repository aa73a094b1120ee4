"""Autoscaling against a real API server and a real nats-server: stream-red scales up
while a generator fills its JetStream work queue faster than the real stream-red
component drains it, keeps its replicas across an operator restart, and scales back
down once the queue is empty and the stabilisation window has passed — once reading
the lag from NATS, once from a real Prometheus (built from its Go module) scraping the
component. A metric source that cannot be read keeps the replicas and says why. The
pods source is exercised against real component processes' /metrics: kwok's pods
have no process behind their IPs."""

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster_support import apply, condition, network, wait_ready

from agentnet_operator import names
from agentnet_operator.metric_sources import MetricError, prometheus_value, pods_average
from agentnet_runtime import natsclient
from agentnet_runtime.local.up import network_document_from
from agentnet_runtime.natsbin import free_port
from rig import wait_for
from rig.controlplane import stop_process
from rig.operator import RunningOperator
from rig.prometheus import RunningPrometheus

pytestmark = pytest.mark.cluster

MAX_REPLICAS = 4
TARGET = 20  # pending messages per replica
LOAD_SECONDS = 12  # the generator stops by itself
AUTOSCALED = {
    "name": "stream-red",
    "autoscaling": {
        "minReplicas": 1, "maxReplicas": MAX_REPLICAS, "metric": {"source": "nats", "target": TARGET},
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1}]},
                     "scaleDown": {"stabilizationWindowSeconds": 3,
                                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]}},
    },
}


def manifest(nats_url: str, *components: dict) -> dict:
    return {"apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": "load"},
            "spec": {"agents": 4, "topology": {"kind": "ring"}, "nats": {"url": nats_url},
                     "components": list(components)}}


def replicas(kubectl, namespace: str, component: str) -> int:
    deployment = json.loads(kubectl("-n", namespace, "get", "deployment", f"load-{component}", "-o", "json"))
    return deployment["spec"]["replicas"]


def scalings(operator: RunningOperator, direction: str) -> None:
    """Until the operator has counted a scaling of stream-red in `direction`: it counts once the reconcile
    that applied the replicas is over, which can be a moment after the Deployment shows them."""
    wait_for(lambda: operator.metric("agentnet_operator_scalings_total", component="stream-red", direction=direction),
             10, f"agentnet_operator_scalings_total{{direction={direction}}} to count the scaling")


def replicas_asked(kubectl, namespace: str) -> list[int]:
    """What the metric asked for at each scale-up, as the ScaleUp Events say."""
    events = json.loads(kubectl("-n", namespace, "get", "events", "--field-selector", "reason=ScaleUp", "-o", "json"))
    return [int(re.search(r"metric asks for (\d+) replicas", event["message"])[1]) for event in events["items"]]


def generate_load(url: str, stop: threading.Event) -> threading.Thread:
    """Publish terms to work.red as fast as JetStream takes them, until `stop` or LOAD_SECONDS."""

    async def publish() -> None:
        nc = await natsclient.connect(url)
        js = nc.jetstream()
        await natsclient.ensure_work_stream(js)
        deadline = time.monotonic() + LOAD_SECONDS
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            acks = [await js.publish_async(natsclient.work_subject("RED"), f"(a{n + i} + b) * c".encode()) for i in range(200)]
            await asyncio.gather(*acks)
            n += 200
        await nc.close()

    thread = threading.Thread(target=asyncio.run, args=(publish(),), daemon=True)
    thread.start()
    return thread


def queue_lag(url: str) -> int:
    """What waits for stream-red in the work queue now."""

    async def read() -> int:
        nc = await natsclient.connect(url)
        try:
            return await natsclient.work_lag(nc.jetstream(), "stream-red")
        finally:
            await nc.close()

    return asyncio.run(read())


def start_stream_red(tmp_path: Path, manifest_body: dict, nats_url: str) -> tuple[subprocess.Popen, int]:
    """The real stream-red component, on this machine, draining the queue the pods would drain."""
    config = tmp_path / "network.json"
    config.write_text(json.dumps(network_document_from(manifest_body)))
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("agentnet")), "component", "stream-red", "--config", str(config),
         "--nats-url", nats_url, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "stream-red.log").open("wb"))
    return process, port


@pytest.mark.parametrize("source", ["nats", "prometheus"])
def test_stream_red_follows_its_queue_up_and_down(source, agentnet_crd, kubeconfig, kubectl, k8s, namespace,
                                                 nats_server, tmp_path, request):
    """nats: the operator reads the consumer's lag from NATS; prometheus: a real Prometheus scrapes the
    stream-red process's lag gauge and the operator queries it."""
    autoscaled = json.loads(json.dumps(AUTOSCALED))
    body = manifest(nats_server.url, autoscaled, {"name": "crdt-service", "replicas": 2})
    worker, port = start_stream_red(tmp_path, body, nats_server.url)
    prometheus = None
    if source == "prometheus":
        prometheus = RunningPrometheus(request.getfixturevalue("prometheus_bin"), [f"127.0.0.1:{port}"],
                                       tmp_path / "prometheus")
        autoscaled["autoscaling"]["metric"] = {"source": "prometheus", "url": prometheus.url,
                                               "query": "sum(agentnet_stream_lag)", "target": TARGET}
    operator = RunningOperator(kubeconfig, tmp_path / "operator.log", namespace=namespace, resync_seconds=5.0)
    stop = threading.Event()
    try:
        apply(kubectl, namespace, body)
        wait_ready(kubectl, namespace, "load")
        assert replicas(kubectl, namespace, "stream-red") == 1

        load = generate_load(nats_server.url, stop)
        wait_for(lambda: replicas(kubectl, namespace, "stream-red") == MAX_REPLICAS, 30, "stream-red scaled up")
        status = network(k8s, namespace, "load")["status"]["components"]["stream-red"]
        assert status["desired"] == MAX_REPLICAS and status["lastScaleTime"]
        scalings(operator, "up")
        # The metric as the decisions to scale up read it: status shows the latest read, and the one worker
        # may have caught up meanwhile (the stabilisation window keeps the replicas then).
        wait_for(lambda: any(asked >= MAX_REPLICAS for asked in replicas_asked(kubectl, namespace)), 10,
                 "a ScaleUp Event whose metric asks for the maximum")  # kopf posts Events from a queue of its own

        # An operator restarted under load keeps the replicas it decided on.
        operator.stop()
        operator = RunningOperator(kubeconfig, tmp_path / "operator-2.log", namespace=namespace, resync_seconds=5.0)
        # Until the new operator has reconciled with a metric it read itself (the queue is still far
        # behind): two reconciles after its first read, as one may have begun before the read.
        wait_for(lambda: operator.metric("agentnet_operator_autoscale_metric", component="stream-red") > 0, 30,
                 "the restarted operator's first read of the lag")
        reconciles = operator.metric("agentnet_operator_reconciles_total")
        wait_for(lambda: operator.metric("agentnet_operator_reconciles_total") >= reconciles + 2, 30,
                 "two reconciles after that read")
        assert replicas(kubectl, namespace, "stream-red") == MAX_REPLICAS
        assert operator.metric("agentnet_operator_scalings_total", component="stream-red") == 0  # nothing to redo

        stop.set()
        load.join(LOAD_SECONDS + 5)
        # The real component drains the queue, as fast as this machine lets it (what the generator
        # published in its seconds took a loaded CI run over 90 s); after the 3 s window the replicas
        # come back down.
        wait_for(lambda: queue_lag(nats_server.url) == 0, 300, "the real stream-red to drain the queue", interval=1)
        wait_for(lambda: replicas(kubectl, namespace, "stream-red") == 1, 60, "stream-red scaled back down")
        status = network(k8s, namespace, "load")["status"]["components"]["stream-red"]
        assert status["desired"] == 1 and status["metric"] == 0
        scalings(operator, "down")
        # No autoscaling: the spec's replicas stood throughout.
        assert replicas(kubectl, namespace, "crdt-service") == 2
        wait_ready(kubectl, namespace, "load")
    finally:
        stop.set()
        operator.stop()
        stop_process(worker)
        if prometheus is not None:
            prometheus.stop()
        print(f"operator log (tail):\n{operator.log.read_text()[-3000:]}")


def test_a_metric_that_cannot_be_read_keeps_the_replicas_and_says_why(agentnet_crd, kubeconfig, kubectl, k8s,
                                                                     namespace, nats_server, tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    component = {"name": "egraph-service", "replicas": 2, "autoscaling": {
        "minReplicas": 1, "maxReplicas": 5, "metric": {"source": "prometheus", "url": unreachable, "query": "up", "target": 1}}}
    operator = RunningOperator(kubeconfig, tmp_path / "operator.log", namespace=namespace, resync_seconds=5.0)
    try:
        apply(kubectl, namespace, manifest(nats_server.url, component))

        def degraded():
            body = network(k8s, namespace, "load")
            found = condition(body, "Degraded") if body.get("status") else None
            return found if found and found["reason"] == "MetricUnavailable" else None

        found = wait_for(degraded, 30, "Degraded MetricUnavailable")
        assert "egraph-service: prometheus metric" in found["message"] and "keeping the current replicas" in found["message"]
        wait_ready(kubectl, namespace, "load")  # a metric problem does not make the network unready
        # Two more failed reads (each one enqueues a reconcile) and the replicas still stand.
        errors = operator.metric("agentnet_operator_autoscale_metric_errors_total", component="egraph-service")
        assert errors >= 1
        wait_for(lambda: operator.metric("agentnet_operator_autoscale_metric_errors_total", component="egraph-service")
                 >= errors + 2, 30, "two more failed reads")
        assert replicas(kubectl, namespace, "egraph-service") == 2
    finally:
        operator.stop()


async def test_metric_sources_read_real_metrics_endpoints(nats_server, prometheus_bin, tmp_path):
    """The pods source scrapes real component processes' /metrics; the prometheus source queries a real
    Prometheus scraping them, and refuses a query that is not one number."""
    import aiohttp

    worker, port = start_stream_red(tmp_path, manifest(nats_server.url, AUTOSCALED), nats_server.url)
    prometheus = RunningPrometheus(prometheus_bin, [f"127.0.0.1:{port}"], tmp_path / "prometheus")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session:
            async def lag_metric_served():
                try:
                    return await pods_average(session, [url], "agentnet_stream_lag")
                except MetricError:
                    return None

            deadline = time.monotonic() + 20
            value = await lag_metric_served()
            while value is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                value = await lag_metric_served()
            assert value == 0.0  # nothing queued
            with pytest.raises(MetricError, match="none of 2 pods served"):
                await pods_average(session, [url, f"http://127.0.0.1:{free_port()}/metrics"], "no_such_metric")
            async def scraped_lag():  # not `up`: a scrape before the component first set its gauge has up 1, no lag
                try:
                    return await prometheus_value(session, prometheus.url, "sum(agentnet_stream_lag)")
                except MetricError:
                    return None

            deadline = time.monotonic() + 30
            while (lag := await scraped_lag()) is None:
                assert time.monotonic() < deadline, "Prometheus never scraped the component's lag"
                await asyncio.sleep(0.5)
            assert lag == 0.0
            assert await prometheus_value(session, prometheus.url, "scalar(vector(3))") == 3.0
            with pytest.raises(MetricError, match="one number; it returned 2 series"):
                await prometheus_value(session, prometheus.url, 'up or label_replace(up, "x", "y", "", "")')
            with pytest.raises(MetricError, match="refused the query"):
                await prometheus_value(session, prometheus.url, "sum(")
            with pytest.raises(MetricError, match="Prometheus at"):
                await prometheus_value(session, f"http://127.0.0.1:{free_port()}", "up")
    finally:
        prometheus.stop()
        stop_process(worker)
