"""AgentNetwork specs that must be refused, and how.

One table, two consumers: test_operator_model.py checks that the pydantic
models refuse each one naming the field; the cluster test submits each one to
a real API server (with the CRD from crds/ installed) and checks the same
field and message come back.

`field` is the path the API server names (and the pydantic error location,
written the same way); `message` a fragment of the API server's message;
`model_message` pydantic's fragment where its wording differs (built-in
constraint errors: the CEL rules share one message with the model).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

VALID_SPEC: dict[str, Any] = {"agents": 9, "topology": {"kind": "ramanujan", "degree": 4}}
RING: dict[str, Any] = {"agents": 8, "topology": {"kind": "ring"}}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(copy.deepcopy(changes))
    return out


@dataclass(frozen=True)
class InvalidSpec:
    name: str
    spec: dict[str, Any]
    field: str
    message: str
    model_message: str | None = None
    metadata_name: str = "invalid"

    @property
    def expected_model_message(self) -> str:
        return self.model_message if self.model_message is not None else self.message

    def manifest(self, namespace: str | None = None) -> dict[str, Any]:
        """The whole object, ready to submit."""
        metadata: dict[str, Any] = {"name": self.metadata_name}
        if namespace:
            metadata["namespace"] = namespace
        return {
            "apiVersion": "agentnet.dev/v1alpha1",
            "kind": "AgentNetwork",
            "metadata": metadata,
            "spec": copy.deepcopy(self.spec),
        }


INVALID_SPECS: tuple[InvalidSpec, ...] = (
    InvalidSpec(
        "agents-zero",
        _with(RING, agents=0),
        "spec.agents",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "agents-missing",
        {"topology": {"kind": "ring"}},
        "spec.agents",
        "Required value",
        model_message="Field required",
    ),
    InvalidSpec(
        "ramanujan-odd-product",
        _with(VALID_SPEC, topology={"kind": "ramanujan", "degree": 3}),
        "spec.topology.degree",
        "ramanujan topology needs agents*degree to be even",
    ),
    InvalidSpec(
        "ramanujan-degree-not-below-agents",
        _with(VALID_SPEC, agents=4, topology={"kind": "ramanujan", "degree": 4}),
        "spec.topology.degree",
        "ramanujan topology needs degree < agents",
    ),
    InvalidSpec(
        "ramanujan-without-degree",
        _with(VALID_SPEC, topology={"kind": "ramanujan"}),
        "spec.topology.degree",
        "ramanujan topology needs a degree",
    ),
    InvalidSpec(
        "ramanujan-degree-2",
        _with(VALID_SPEC, agents=8, topology={"kind": "ramanujan", "degree": 2}),
        "spec.topology.degree",
        "greater than or equal to 3",
    ),
    InvalidSpec(
        "degree-on-ring",
        _with(RING, topology={"kind": "ring", "degree": 4}),
        "spec.topology.degree",
        "degree applies only to the ramanujan topology",
    ),
    InvalidSpec(
        "unknown-topology-kind",
        _with(RING, topology={"kind": "mesh"}),
        "spec.topology.kind",
        'Unsupported value: "mesh"',
        model_message="Input should be 'ring', 'torus', 'complete' or 'ramanujan'",
    ),
    InvalidSpec(
        "torus-dimensions-4",
        _with(RING, agents=16, topology={"kind": "torus", "dimensions": 4}),
        "spec.topology.dimensions",
        "Unsupported value: 4",
        model_message="Input should be 2 or 3",
    ),
    InvalidSpec(
        "complete-too-large",
        _with(RING, agents=200, topology={"kind": "complete"}),
        "spec.agents",
        "complete topology supports at most 128 agents",
    ),
    InvalidSpec(
        "unknown-component",
        _with(VALID_SPEC, components=[{"name": "stream-purple"}]),
        "spec.components[0].name",
        'Unsupported value: "stream-purple"',
        model_message="Input should be 'stream-red'",
    ),
    InvalidSpec(
        "duplicate-component",
        _with(VALID_SPEC, components=[{"name": "stream-red"}, {"name": "stream-red", "replicas": 2}]),
        "spec.components[1]",
        "Duplicate value",
    ),
    InvalidSpec(
        "negative-replicas",
        _with(VALID_SPEC, components=[{"name": "stream-red", "replicas": -1}]),
        "spec.components[0].replicas",
        "greater than or equal to 0",
    ),
    InvalidSpec(
        "min-above-max-replicas",
        _with(
            VALID_SPEC,
            components=[
                {
                    "name": "stream-red",
                    "autoscaling": {"minReplicas": 5, "maxReplicas": 2, "metric": {"source": "nats", "target": 100}},
                }
            ],
        ),
        "spec.components[0].autoscaling.minReplicas",
        "minReplicas must be less than or equal to maxReplicas",
    ),
    InvalidSpec(
        "metric-target-zero",
        _with(
            VALID_SPEC,
            components=[{"name": "stream-red", "autoscaling": {"maxReplicas": 3, "metric": {"target": 0}}}],
        ),
        "spec.components[0].autoscaling.metric.target",
        "greater than 0",
    ),
    InvalidSpec(
        "prometheus-without-query",
        _with(
            VALID_SPEC,
            components=[
                {
                    "name": "egraph-service",
                    "autoscaling": {
                        "maxReplicas": 3,
                        "metric": {"source": "prometheus", "url": "http://prometheus:9090", "target": 1},
                    },
                }
            ],
        ),
        "spec.components[0].autoscaling.metric",
        "metric source prometheus needs url and query",
    ),
    InvalidSpec(
        "pods-without-metric-name",
        _with(
            VALID_SPEC,
            components=[
                {"name": "egraph-service", "autoscaling": {"maxReplicas": 3, "metric": {"source": "pods", "target": 1}}}
            ],
        ),
        "spec.components[0].autoscaling.metric.name",
        "metric source pods needs the metric name",
    ),
    InvalidSpec(
        "nats-metric-without-work-queue",
        _with(
            VALID_SPEC,
            components=[{"name": "crdt-service", "autoscaling": {"maxReplicas": 3, "metric": {"target": 10}}}],
        ),
        "spec.components[0].autoscaling.metric.source",
        "metric source nats needs a component with a NATS work queue",
    ),
    InvalidSpec(
        "empty-image",
        _with(VALID_SPEC, image=""),
        "spec.image",
        "at least 1 chars long",
        model_message="at least 1 character",
    ),
    InvalidSpec(
        "nats-managed-and-url",
        _with(VALID_SPEC, nats={"managed": True, "url": "nats://nats:4222"}),
        "spec.nats",
        "nats needs exactly one of managed: true or url",
    ),
    InvalidSpec(
        "nats-neither-managed-nor-url",
        _with(VALID_SPEC, nats={}),
        "spec.nats",
        "nats needs exactly one of managed: true or url",
    ),
    InvalidSpec(
        "nats-url-scheme",
        _with(VALID_SPEC, nats={"url": "http://nats:4222"}),
        "spec.nats.url",
        "should match",
    ),
    InvalidSpec(
        "nats-credentials-with-managed",
        _with(VALID_SPEC, nats={"managed": True, "credentialsSecret": "creds"}),
        "spec.nats.credentialsSecret",
        "credentialsSecret applies only to an external url",
    ),
    InvalidSpec(
        "agents-per-pod-zero",
        _with(VALID_SPEC, agentsPerPod=0),
        "spec.agentsPerPod",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "rollback-revision-zero",
        _with(VALID_SPEC, rollbackTo={"revision": 0}),
        "spec.rollbackTo.revision",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "unknown-workload",
        _with(VALID_SPEC, workload="Knative"),
        "spec.workload",
        'Unsupported value: "Knative"',
        model_message="Input should be 'Deployment' or 'SpinApp'",
    ),
    InvalidSpec(
        "persistence-size-zero",
        _with(VALID_SPEC, persistence={"agents": {"size": "0"}}),
        "spec.persistence.agents.size",
        "should match",
        model_message="String should match pattern",
    ),
    InvalidSpec(
        "retention-budget-below-minimum",
        _with(VALID_SPEC, retention={"maxNodes": 999}),
        "spec.retention.maxNodes",
        "greater than or equal to 1000",
    ),
    InvalidSpec(
        "timeline-replicas-on-one-claim",
        _with(VALID_SPEC, components=[{"name": "interaction-timeline", "replicas": 2}]),
        "spec.components",
        "at most 1 replica while persistence is enabled",
    ),
    InvalidSpec(
        "env-overrides-an-operator-variable",
        _with(VALID_SPEC, components=[{"name": "crdt-service", "env": [{"name": "AGENTNET_NATS_URL", "value": "x"}]}]),
        "spec.components[0].env[0].name",
        "name is set by the operator and cannot be overridden",
    ),
    InvalidSpec(
        "env-sets-log-level-instead-of-spec-logging",
        _with(VALID_SPEC, components=[{"name": "crdt-service", "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}]),
        "spec.components[0].env[0].name",
        "LOG_LEVEL and LOG_FORMAT come from spec.logging",
    ),
    InvalidSpec(
        "env-name-given-twice",
        _with(
            VALID_SPEC,
            components=[{"name": "crdt-service", "env": [{"name": "CACHE_SIZE_MB", "value": "1"},
                                                         {"name": "CACHE_SIZE_MB", "value": "2"}]}],
        ),
        "spec.components[0].env[1]",
        "Duplicate value",
    ),
    InvalidSpec(
        "env-name-not-an-identifier",
        _with(VALID_SPEC, components=[{"name": "crdt-service", "env": [{"name": "1=2", "value": "x"}]}]),
        "spec.components[0].env[0].name",
        "should match",
        model_message="String should match pattern",
    ),
    InvalidSpec(
        "env-on-a-spinapp",
        _with(VALID_SPEC, workload="SpinApp", components=[{"name": "crdt-service", "env": [{"name": "A", "value": "1"}]}]),
        "spec.components",
        "need a Deployment: under workload SpinApp, crdt-service, egraph-service",
    ),
    InvalidSpec(
        "scheduling-on-a-spinapp",
        _with(VALID_SPEC, workload="SpinApp",
              components=[{"name": "egraph-service", "scheduling": {"nodeSelector": {"disk": "ssd"}}}]),
        "spec.components",
        "run as SpinApps, which have neither",
    ),
    InvalidSpec(
        "logging-level-unknown",
        _with(VALID_SPEC, logging={"level": "TRACE"}),
        "spec.logging.level",
        'Unsupported value: "TRACE"',
        model_message="Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
    ),
    InvalidSpec(
        "toleration-exists-with-a-value",
        _with(VALID_SPEC, agentScheduling={"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "spec.agentScheduling.tolerations[0].value",
        "a toleration with operator Exists has no value",
    ),
    InvalidSpec(
        "toleration-seconds-without-no-execute",
        _with(VALID_SPEC, agentScheduling={"tolerations": [{"key": "k", "value": "v", "effect": "NoSchedule",
                                                            "tolerationSeconds": 30}]}),
        "spec.agentScheduling.tolerations[0].tolerationSeconds",
        "tolerationSeconds applies only to effect NoExecute",
    ),
    InvalidSpec(
        "spread-when-unsatisfiable-unknown",
        _with(
            VALID_SPEC,
            components=[{"name": "dashboard", "scheduling": {"topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Sometimes"}]}}],
        ),
        "spec.components[0].scheduling.topologySpreadConstraints[0].whenUnsatisfiable",
        'Unsupported value: "Sometimes"',
        model_message="Input should be 'DoNotSchedule' or 'ScheduleAnyway'",
    ),
    InvalidSpec(
        "affinity-weight-zero",
        _with(VALID_SPEC, nats={"managed": True, "scheduling": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}]}}}}),
        "spec.nats.scheduling.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "label-selector-in-without-values",
        _with(VALID_SPEC, agentScheduling={"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}]}}}),
        "spec.agentScheduling.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        ".labelSelector.matchExpressions[0].values",
        "values must be non-empty for operator In or NotIn",
    ),
    InvalidSpec(
        "priority-class-name-not-dns",
        _with(VALID_SPEC, agentScheduling={"priorityClassName": "High Priority"}),
        "spec.agentScheduling.priorityClassName",
        "should match",
        model_message="String should match pattern",
    ),
    InvalidSpec(
        "name-too-long",
        VALID_SPEC,
        "",
        "metadata.name must be a DNS-1035 label",
        metadata_name="n" * 43,
    ),
    InvalidSpec(
        "name-not-dns-1035",
        VALID_SPEC,
        "",
        "metadata.name must be a DNS-1035 label",
        metadata_name="9lives",
    ),
)
