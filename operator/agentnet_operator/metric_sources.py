"""Reading autoscaling metrics (the I/O half of the autoscaler; autoscale.py decides).

Each source yields the value compared with `metric.target`, per replica:
- nats: pending messages of the component's JetStream work-queue consumer (waiting
  plus delivered-but-unacknowledged), divided by the current replicas;
- prometheus: the one number a PromQL instant query returns, as it is;
- pods: the named metric scraped from each ready pod's /metrics (summed over its
  label sets), averaged over the pods.
A source that cannot answer raises MetricError with the reason, which the operator
reports as Degraded while it keeps the current replicas.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agentnet_operator import names
from agentnet_operator.children import component_replicas, component_workload_ref, nats_url
from agentnet_operator.status import current_scale
from agentnet_runtime import natsclient, permissions
from agentnet_runtime.catalogue import HTTP_PORT
from agentnet_runtime.config import NatsAuth

TIMEOUT_SECONDS = 3.0


class MetricError(Exception):
    """A metric source could not give a value; the message says why."""


@dataclass(frozen=True)
class Reading:
    """One read of a component's metric: a value per replica, or why there is none."""

    time: datetime
    value: float | None = None
    error: str | None = None


# --- nats ------------------------------------------------------------------------------


class NatsLag:
    """Work-queue lag, over one kept connection per NATS server (url and credentials)."""

    def __init__(self) -> None:
        self._connections: dict[tuple, Any] = {}

    async def _client(self, url: str, auth: NatsAuth):
        key = (url, auth)
        nc = self._connections.get(key)
        if nc is None or nc.is_closed:
            nc = await asyncio.wait_for(natsclient.connect(url, auth, "agentnet-operator", retry_every=1.0), TIMEOUT_SECONDS)
            self._connections[key] = nc
        if not nc.is_connected:
            raise MetricError(f"not connected to NATS at {url} (reconnecting)")
        return nc

    async def pending(self, url: str, auth: NatsAuth, component: str) -> int:
        try:
            js = (await self._client(url, auth)).jetstream(timeout=TIMEOUT_SECONDS)
            return await natsclient.work_lag(js, component)
        except (asyncio.TimeoutError, OSError) as error:
            raise MetricError(f"NATS at {url} did not answer ({type(error).__name__})") from None
        except MetricError:
            raise
        except Exception as error:  # nats-py's own errors (no servers, permissions, ...)
            raise MetricError(f"NATS at {url}: {error or type(error).__name__}") from None

    async def close(self) -> None:
        for nc in self._connections.values():
            if not nc.is_closed:
                await nc.close()
        self._connections.clear()


# --- prometheus and pods ------------------------------------------------------------------


async def prometheus_value(session: aiohttp.ClientSession, url: str, query: str) -> float:
    """The single number an instant PromQL query returns."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        async with session.get(endpoint, params={"query": query}, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        raise MetricError(f"Prometheus at {url}: {error or type(error).__name__}") from None
    if body.get("status") != "success":
        raise MetricError(f"Prometheus at {url} refused the query: {body.get('error', body)}")
    data = body.get("data", {})
    result = data.get("result")
    if data.get("resultType") == "scalar":
        sample = result
    elif data.get("resultType") == "vector" and isinstance(result, list) and len(result) == 1:
        sample = result[0]["value"]
    else:
        count = len(result) if isinstance(result, list) else "no"
        raise MetricError(f"the query must return one number; it returned {count} series ({data.get('resultType')})")
    value = float(sample[1])
    if math.isnan(value) or math.isinf(value):
        raise MetricError(f"the query returned {sample[1]}")
    return value


def metric_total(text: str, name: str) -> float | None:
    """Sum of every sample of metric `name` in a Prometheus text exposition (None if absent)."""
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]
    return sum(values) if values else None


async def pods_average(session: aiohttp.ClientSession, urls: Iterable[str], name: str) -> float:
    """The metric's average over the pods' /metrics URLs; pods that do not answer are left out."""
    urls = list(urls)
    if not urls:
        raise MetricError("no ready pods to scrape")

    async def scrape(url: str) -> float | None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)) as response:
                return metric_total(await response.text(), name)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    values = [v for v in await asyncio.gather(*(scrape(u) for u in urls)) if v is not None]
    if not values:
        raise MetricError(f"none of {len(urls)} pods served metric {name}")
    return sum(values) / len(values)


def pod_metrics_urls(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """/metrics of every ready pod that has an IP."""
    urls = []
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        ip = status.get("podIP")
        if ready and ip:
            host = f"[{ip}]" if ":" in ip else ip  # IPv6
            urls.append(f"http://{host}:{HTTP_PORT}/metrics")
    return urls


# --- reading every autoscaled component of a network ---------------------------------------


class MetricReader:
    """Reads the metric of each autoscaled component of a network (kept connections)."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.nats = NatsLag()
        self._session: aiohttp.ClientSession | None = None

    async def read(self, network) -> dict[str, Reading]:
        components = [c for c in network.spec.effective_components if c.autoscaling is not None]
        values = await asyncio.gather(*(self._value(network, c) for c in components), return_exceptions=True)
        now = datetime.now(UTC)
        readings = {}
        for component, value in zip(components, values):
            if isinstance(value, MetricError):
                readings[component.name] = Reading(now, error=str(value))
            elif isinstance(value, BaseException):
                readings[component.name] = Reading(now, error=f"{type(value).__name__}: {value}")
            else:
                readings[component.name] = Reading(now, value=value)
        return readings

    async def _value(self, network, component) -> float:
        metric = component.autoscaling.metric
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if metric.source == "prometheus":
            return await prometheus_value(self._session, metric.url, metric.query)
        if metric.source == "pods":
            selector = names.selector_string(network.name, component.name)
            pods = await asyncio.to_thread(self.cluster.list, "v1", "Pod", network.namespace, selector)
            return await pods_average(self._session, pod_metrics_urls(pods), metric.name)
        current = current_replicas(self.cluster, network, component)
        url, auth = await asyncio.to_thread(nats_endpoint, self.cluster, network)
        return await self.nats.pending(url, auth, component.name) / max(1, current)

    async def close(self) -> None:
        await self.nats.close()
        if self._session is not None:
            await self._session.close()


def current_replicas(cluster, network, component) -> int:
    """Replicas the component's workload is asked to run now (as cached), else what the spec renders."""
    live = cluster.cached(component_workload_ref(network, component.name)) or {}
    return int(live.get("spec", {}).get("replicas", component_replicas(component, current_scale(network))))


def nats_endpoint(cluster, network) -> tuple[str, NatsAuth]:
    """URL and credentials of the network's NATS server, as its pods get them."""
    nats = network.spec.nats
    if nats.managed:
        secret_name = names.nats_name(network.name)
        secret = cluster.cached({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": {"namespace": network.namespace, "name": secret_name}})
    elif nats.credentials_secret:
        secret_name = nats.credentials_secret
        secret = cluster.get("v1", "Secret", network.namespace, secret_name)
    else:
        return nats_url(network), NatsAuth()
    if secret is None:
        raise MetricError(f"Secret {secret_name} with the NATS credentials does not exist")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if nats.managed:
        tls = cluster.cached({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"namespace": network.namespace, "name": names.nats_tls_name(network.name)}})
        ca = (tls or {}).get("data", {}).get(names.TLS_CA)
        if ca is None:
            raise MetricError(f"Secret {names.nats_tls_name(network.name)} with the NATS servers' CA does not exist")
        return nats_url(network), NatsAuth(user=permissions.OPERATOR, password=data.get(permissions.OPERATOR),
                                           inbox_prefix=permissions.inbox_prefix(permissions.OPERATOR),
                                           tls_ca=base64.b64decode(ca).decode())
    if names.NATS_SECRET_CREDS in data:
        raise MetricError("the autoscaler cannot use a .creds file yet: give the Secret user and password, or token")
    return nats_url(network), NatsAuth(user=data.get(names.NATS_SECRET_USER), password=data.get(names.NATS_SECRET_PASSWORD),
                                       token=data.get(names.NATS_SECRET_TOKEN))
