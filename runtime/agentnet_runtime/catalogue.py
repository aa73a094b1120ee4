"""The eleven service components: the one place that names them.

The operator imports this (to validate `spec.components` and build children);
the runtime imports it (to mount routes). Routes and purposes follow the
deployment guides.
"""

from dataclasses import dataclass

# Every agentnet process (agent or component) serves HTTP and /metrics here,
HTTP_PORT = 8080
# with liveness (200 while the process runs) and readiness (200 when it can do its work, else 503 saying why).
HEALTH_PATH = "/health"
READY_PATH = "/ready"


@dataclass(frozen=True)
class Component:
    name: str
    route: str  # URL prefix the component serves, e.g. "/crdt"
    purpose: str
    work_queue: bool = False  # consumes a NATS JetStream work queue (autoscaled on its lag)
    # A request handler over the engine that is also built as a Spin (wasi:http) component, build/wasm/<name>.wasm
    # (agentnet_runtime.wasm serves its stateless routes); under `workload: SpinApp` only these run as SpinApps, the
    # NATS-bound and stateful ones stay Deployments.
    spin: bool = False


COMPONENTS: tuple[Component, ...] = (
    Component("stream-red", "/stream/red", "apply RED (forward, associative) rewrites to submitted terms", work_queue=True),
    Component("stream-blue", "/stream/blue", "apply BLUE (backward, distributive) rewrites to submitted terms", work_queue=True),
    Component("stream-green", "/stream/green", "apply GREEN (identity, verification) rewrites to submitted terms", work_queue=True),
    Component("crdt-service", "/crdt", "merge CRDT states and deltas, with a merge cache", spin=True),
    Component("egraph-service", "/egraph", "equality saturation under a time budget and extraction", spin=True),
    Component("skill-verification", "/verify", "K verifiers vote on a claim", spin=True),
    Component("agent-orchestrator", "/agents", "membership, heartbeats, sync rounds, network status"),
    Component("duck-colors", "/colors", "display palette and 3-colouring"),
    Component("transduction-2tdx", "/sync", "bidirectional delta sync with another network"),
    Component("interaction-timeline", "/timeline", "causally ordered event log in DuckDB"),
    Component("dashboard", "/dashboard", "live web page of the network"),
)

COMPONENT_NAMES: tuple[str, ...] = tuple(c.name for c in COMPONENTS)
BY_NAME: dict[str, Component] = {c.name: c for c in COMPONENTS}
SPIN_COMPONENTS: tuple[str, ...] = tuple(c.name for c in COMPONENTS if c.spin)
