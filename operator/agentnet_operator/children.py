"""The Kubernetes objects an AgentNetwork owns, as pure functions of the spec.

`desired_children(network, ...)` returns every child as a plain dict ready for
server-side apply: same input, byte-identical output (JSON with sorted keys,
lists in a fixed order), so applying an unchanged spec writes nothing.

| for | objects |
|---|---|
| topology & config | ConfigMap `<net>-config` (network.json: neighbours, colour and display colour of every agent, component URLs and settings) |
| agents | StatefulSet + headless Service `<net>-agents` (pod k runs agent ids k*agentsPerPod ...), a claim `data-<net>-agents-<k>` per pod |
| each component | Deployment + Service `<net>-<component>`; under workload SpinApp a Spin component (spin.py) is a SpinApp `<net>-<component>` instead, running the Spin app image, and spin-operator makes its Deployment and Service; the interaction-timeline's DuckDB on a PersistentVolumeClaim `<net>-interaction-timeline` |
| NATS (managed) | built by nats_children: StatefulSet `<net>-nats` (a cluster), its Services, Secrets and budget |
| availability | PodDisruptionBudget `<net>-agents` and `<net>-<component>` for each of them that may run more than one pod |

With `persistence.enabled: false` every data directory is an emptyDir instead of a claim.

External NATS adds nothing: pods get its URL and mount its credentials Secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from agentnet_operator import names, spin
from agentnet_operator.model import AgentNetwork, AgentNetworkSpec, ComponentSpec, Resources, Scheduling, Volume
from agentnet_operator.tls import TlsMaterial
from agentnet_runtime import permissions
from agentnet_runtime.catalogue import BY_NAME, HEALTH_PATH, HTTP_PORT, READY_PATH
from agentnet_runtime.settings import GuardSettings

if TYPE_CHECKING:  # certmanager builds on this module's blocks
    from agentnet_operator.certmanager import FromCertManager

# Pods run as this non-root user (the distroless "nonroot" id) under the
# restricted Pod Security Standard.
RUN_AS_USER = 65532
TMP_SIZE_LIMIT = "64Mi"
DATA_SIZE_LIMIT = "1Gi"
# What a generated secret (a NATS password, an API token) looks like: URL-safe, so it needs no quoting anywhere.
SECRET_VALUE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def new_secret_value() -> str:
    """A fresh password or token (made once, then read back from its Secret, so the Secret never changes)."""
    return secrets.token_urlsafe(32)


# The API server refuses a ConfigMap whose data is larger (core/v1 validation: 1 MiB); network.json must fit.
CONFIG_MAP_LIMIT = 1_048_576
# Claims of a StatefulSet go with the network (its owner) and stay when it scales down, so that
# scaling up again gives the same agents their data back.
CLAIM_RETENTION = {"whenDeleted": "Delete", "whenScaled": "Retain"}

# ------------------------------------------------------------------------------------
# topology plan (cached: building a ramanujan graph retries until it qualifies)
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopologyPlan:
    """Neighbours and colours of every agent."""

    neighbours: tuple[tuple[int, ...], ...]
    colours: tuple[str, ...]  # polarity colour (RED/BLUE/GREEN) per agent
    proper: bool  # the colours are a proper 3-colouring (else the runtime's best effort)
    conflicts: int  # edges whose two agents share a colour (0 when proper)
    display: tuple[str, ...]  # display colour per agent (golden-angle palette)

    def colour_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for colour in self.colours:
            counts[colour] = counts.get(colour, 0) + 1
        return dict(sorted(counts.items()))


@lru_cache(maxsize=128)
def _plan(kind: str, agents: int, degree: int | None, seed: int, dimensions: int) -> TopologyPlan:
    from agentnet_runtime.core.colouring import colour_graph, display_palette
    from agentnet_runtime.core.topology import build_topology

    graph = build_topology(kind, agents, degree=degree, seed=seed, dimensions=dimensions)
    colouring = colour_graph(graph)
    # Agents need a polarity even when no proper 3-colouring exists (e.g. a
    # complete graph of 4 or more): then they get the best effort.
    colours = colouring.colours if colouring.colours is not None else colouring.best_effort
    return TopologyPlan(
        neighbours=tuple(tuple(sorted(int(n) for n in graph.neighbors(i))) for i in range(agents)),
        colours=tuple(_colour_name(colours[i]) for i in range(agents)),
        proper=bool(colouring.proper),
        conflicts=len(colouring.conflicts),
        display=tuple(display_palette(agents, seed=seed)),
    )


def _colour_name(colour: Any) -> str:
    return str(getattr(colour, "value", colour))


def topology_plan(spec: AgentNetworkSpec) -> TopologyPlan:
    """Build (or reuse) the topology and colouring of a spec.

    Raises agentnet_runtime.core.topology.TopologyError when the topology
    cannot be built (the operator reports it as Degraded)."""
    t = spec.topology
    return _plan(t.kind, spec.agents, t.degree, t.seed, t.dimensions)


# ------------------------------------------------------------------------------------
# small builders
# ------------------------------------------------------------------------------------


def owner_reference(network: AgentNetwork) -> dict[str, Any]:
    if not network.metadata.uid:
        raise ValueError("the network has no metadata.uid: children need it for their owner reference")
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": network.name,
        "uid": network.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(network: AgentNetwork, name: str, role: str, *, app: str = names.APP_NAME) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": names.labels(network.name, role, app=app),
        "ownerReferences": [owner_reference(network)],
    }
    if network.namespace:
        meta["namespace"] = network.namespace
    return meta


def digest(value: Any) -> str:
    """sha256 of a JSON value (canonical: sorted keys, no spaces, whole numbers as ints)."""
    return hashlib.sha256(_canonical_json(_whole_numbers_as_ints(value)).encode()).hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _whole_numbers_as_ints(value: Any) -> Any:
    """500.0 as 500: the API server stores a whole float as an int (a ControllerRevision's `data` read back
    says `"target": 500` where the spec model said 500.0), so one content must have one digest either way."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings of the restricted Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level settings of the restricted Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _http_probes() -> dict[str, Any]:
    """Readiness follows /ready (NATS and JetStream): it drives the network's Ready condition and its
    automatic rollback, so it reacts within seconds. Liveness is /health, answered while the process
    runs; a startup probe gives a slow start (imports on a busy 2-core node) two minutes before
    liveness may restart anything."""
    live = {"path": HEALTH_PATH, "port": names.PORT_NAME_HTTP}
    ready = {"path": READY_PATH, "port": names.PORT_NAME_HTTP}
    return {
        "startupProbe": {"httpGet": live, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {"httpGet": ready, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {"httpGet": live, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
    }


def _resources(resources: Resources | None) -> dict[str, Any]:
    return {"resources": resources.dump()} if resources is not None else {}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _empty_dir(name: str, limit: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": limit}}


def nats_url(network: AgentNetwork) -> str:
    """URL agents, components and the operator's autoscaler connect to: of a managed cluster, every
    server's (comma-separated, TLS), so a client reconnects to another when one goes."""
    nats = network.spec.nats
    if nats.managed:
        return ",".join(f"tls://{names.nats_pod_host(network.name, network.namespace, k)}:{names.NATS_CLIENT_PORT}"
                        for k in range(nats.replicas))
    assert nats.url is not None
    return nats.url


def _nats_secret_name(network: AgentNetwork) -> str | None:
    nats = network.spec.nats
    return names.nats_name(network.name) if nats.managed else nats.credentials_secret


def runs_as_spinapp(network: AgentNetwork, component: str) -> bool:
    """Whether the component runs as a SpinApp: workload SpinApp and a Spin HTTP component. The
    others (bound to NATS or to long-lived state) run as Deployments under either workload."""
    return network.spec.workload == "SpinApp" and BY_NAME[component].spin


def spinapp_components(network: AgentNetwork) -> list[str]:
    """The network's components that run as SpinApps (none under workload Deployment)."""
    return [c.name for c in network.spec.effective_components if runs_as_spinapp(network, c.name)]


def component_workload_kind(network: AgentNetwork, component: str) -> str:
    return names.SPINAPP_KIND if runs_as_spinapp(network, component) else "Deployment"


def component_url(network: AgentNetwork, component: str) -> str:
    port = names.SPINAPP_SERVICE_PORT if runs_as_spinapp(network, component) else HTTP_PORT
    return f"http://{names.component_name(network.name, component)}:{port}"


def component_replicas(component: ComponentSpec, scale: Mapping[str, int] | None = None) -> int:
    """Replicas to run: the spec's; with autoscaling, the autoscaler's decision if it
    made one, kept within the bounds."""
    if component.autoscaling is None:
        return component.replicas
    replicas = (scale or {}).get(component.name, component.replicas)
    return max(component.autoscaling.min_replicas, min(component.autoscaling.max_replicas, replicas))


def component_workload_ref(network: AgentNetwork, component: str) -> dict[str, Any]:
    """Enough of a component's Deployment (or SpinApp) to find it in the cache."""
    if runs_as_spinapp(network, component):
        api_version, kind = names.SPINAPP_API_VERSION, names.SPINAPP_KIND
    else:
        api_version, kind = "apps/v1", "Deployment"
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"namespace": network.namespace, "name": names.component_name(network.name, component)}}


# ------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------


def network_config(network: AgentNetwork) -> dict[str, Any]:
    """Content of network.json in the config ConfigMap."""
    spec = network.spec
    plan = topology_plan(spec)
    return {
        "network": network.name,
        "agents": spec.agents,
        "agentsPerPod": spec.agents_per_pod,
        "agentsService": names.agents_name(network.name),
        "httpPort": HTTP_PORT,
        "topology": spec.topology.dump(),
        "colouring": {"proper": plan.proper, "conflicts": plan.conflicts, "counts": plan.colour_counts()},
        "retention": {
            "maxNodes": spec.retention.max_nodes,
            "timeline": spec.retention.timeline.dump(),
        },
        "nodes": [
            {
                "id": i,
                "pod": i // spec.agents_per_pod,
                "neighbours": list(plan.neighbours[i]),
                "colour": plan.colours[i],
                "display": plan.display[i],
            }
            for i in range(spec.agents)
        ],
        "nats": {"url": nats_url(network), "credentialsDir": names.NATS_CREDENTIALS_DIR,
                 "streamReplicas": spec.stream_replicas},
        "components": {
            c.name: {
                "route": BY_NAME[c.name].route,
                "url": component_url(network, c.name),
                "workQueue": BY_NAME[c.name].work_queue,
                "settings": dict(sorted((c.settings or {}).items())),
            }
            for c in spec.effective_components
        },
    }


def _agents_config_digest(config: dict[str, Any]) -> str:
    # Agents restart when what they read changes, not when a component's settings or the timeline's
    # retention do.
    read = {k: v for k, v in config.items() if k != "components"}
    read["retention"] = {"maxNodes": config["retention"]["maxNodes"]}
    return digest(read)


def _component_config_digest(network: AgentNetwork, component: ComponentSpec) -> str:
    """What a component's pods read at start besides the image: its settings (and the timeline its
    retention), so that they restart when it changes."""
    settings = component.settings or {}
    if component.name == names.TIMELINE_COMPONENT:
        return digest({"settings": settings, "retention": network.spec.retention.timeline.dump()})
    return digest(settings)


def config_size(config: dict[str, Any]) -> int:
    """Bytes of network.json as the ConfigMap stores it (what CONFIG_MAP_LIMIT bounds)."""
    return len((_canonical_json(config) + "\n").encode())


def config_map(network: AgentNetwork, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(network, names.config_name(network.name), names.ROLE_CONFIG),
        "data": {names.CONFIG_KEY: _canonical_json(config) + "\n"},
    }


# ------------------------------------------------------------------------------------
# pods of agents and components
# ------------------------------------------------------------------------------------


def _runtime_volumes(
    network: AgentNetwork, *, data: dict[str, Any] | None, identity: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of an agent or component pod. data: the source of the data volume
    (mounted at names.DATA_DIR), or None for no data volume in the pod spec (none at all, or a
    StatefulSet's claim template of that name). identity: the component's name, None for agent pods."""
    volumes: list[dict[str, Any]] = [
        {
            "name": names.VOLUME_CONFIG,
            "configMap": {
                "name": names.config_name(network.name),
                "items": [{"key": names.CONFIG_KEY, "path": names.CONFIG_KEY}],
            },
        },
        _empty_dir(names.VOLUME_TMP, TMP_SIZE_LIMIT),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": names.VOLUME_CONFIG, "mountPath": names.CONFIG_DIR, "readOnly": True},
        {"name": names.VOLUME_TMP, "mountPath": names.TMP_DIR},
    ]
    source = _nats_credentials(network, identity)
    if source is not None:
        volumes.append({"name": names.VOLUME_NATS_CREDENTIALS, "secret": source})
        mounts.append(
            {"name": names.VOLUME_NATS_CREDENTIALS, "mountPath": names.NATS_CREDENTIALS_DIR, "readOnly": True}
        )
    if network.spec.nats.managed:  # the CA that signed the servers' certificate, to verify them
        items = [{"key": names.TLS_CA, "path": names.TLS_CA}]
        volumes.append({"name": names.VOLUME_NATS_CA,
                        "secret": {"secretName": names.nats_tls_name(network.name), "items": items}})
        mounts.append({"name": names.VOLUME_NATS_CA, "mountPath": names.NATS_CA_DIR, "readOnly": True})
    if data is not None:
        volumes.append({"name": names.VOLUME_DATA, **data})
    return volumes, mounts


def _nats_credentials(network: AgentNetwork, identity: str | None) -> dict[str, Any] | None:
    """The Secret volume of a pod's NATS credentials: an external server's Secret whole; with managed NATS
    the agents' Secret (every agent pod's password; a pod takes its own) or a component's own key."""
    if not network.spec.nats.managed:
        secret = network.spec.nats.credentials_secret
        return {"secretName": secret} if secret is not None else None
    if identity is None:
        return {"secretName": names.nats_agents_secret_name(network.name)}
    if permissions.component_grant(identity) is None:  # a component without NATS gets no user
        return None
    return {"secretName": names.nats_name(network.name), "items": [{"key": identity, "path": identity}]}


def _data_mount() -> dict[str, Any]:
    return {"name": names.VOLUME_DATA, "mountPath": names.DATA_DIR}


def _data_env() -> dict[str, Any]:
    return {"name": names.ENV_DATA_DIR, "value": names.DATA_DIR}


def _claim_spec(network: AgentNetwork, volume: Volume) -> dict[str, Any]:
    """A PersistentVolumeClaim's spec: one node's volume (ReadWriteOnce) of the persistence's class."""
    persistence = network.spec.persistence
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": volume.size}}}
    if persistence.storage_class_name is not None:
        spec["storageClassName"] = persistence.storage_class_name
    return spec


def _claim_templates(network: AgentNetwork, role: str, volume: Volume, *, app: str = names.APP_NAME) -> dict[str, Any]:
    """The StatefulSet fields of one data claim per pod, named names.VOLUME_DATA (none when
    persistence is off)."""
    if not network.spec.persistence.enabled:
        return {}
    template = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": names.VOLUME_DATA, "labels": names.labels(network.name, role, app=app)},
        "spec": _claim_spec(network, volume),
    }
    return {"volumeClaimTemplates": [template], "persistentVolumeClaimRetentionPolicy": CLAIM_RETENTION}


def timeline_claim(network: AgentNetwork) -> dict[str, Any]:
    """The interaction-timeline's claim: one DuckDB file, one writer, owned by the network (so it
    goes with it)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(network, names.timeline_claim_name(network.name), names.TIMELINE_COMPONENT),
        "spec": _claim_spec(network, network.spec.persistence.timeline),
    }


def _timeline_on_claim(network: AgentNetwork, component: ComponentSpec) -> bool:
    return network.spec.persistence.enabled and component.name == names.TIMELINE_COMPONENT


def _runtime_env(network: AgentNetwork) -> list[dict[str, Any]]:
    env = [
        {"name": names.ENV_NETWORK, "value": network.name},
        _field_env(names.ENV_NAMESPACE, "metadata.namespace"),
        _field_env(names.ENV_POD_NAME, "metadata.name"),
        {"name": names.ENV_CONFIG, "value": f"{names.CONFIG_DIR}/{names.CONFIG_KEY}"},
        {"name": names.ENV_HTTP_PORT, "value": str(HTTP_PORT)},
        {"name": names.ENV_NATS_URL, "value": nats_url(network)},
        {"name": names.ENV_LOG_LEVEL, "value": network.spec.logging.level},
        {"name": names.ENV_LOG_FORMAT, "value": network.spec.logging.format},
    ]
    if _nats_secret_name(network) is not None:
        env.append({"name": names.ENV_NATS_CREDENTIALS_DIR, "value": names.NATS_CREDENTIALS_DIR})
    if network.spec.nats.managed:
        env.append({"name": names.ENV_NATS_CA_FILE, "value": f"{names.NATS_CA_DIR}/{names.TLS_CA}"})
    return env + _guard_env(network)


def _guard_env(network: AgentNetwork) -> list[dict[str, Any]]:
    """spec.limits, and the API token from its Secret, as the runtime's guard reads them (settings.GuardSettings)."""
    token = {"secretKeyRef": {"name": names.api_token_name(network.name), "key": names.API_TOKEN_KEY}}
    return [{"name": names.ENV_API_TOKEN, "valueFrom": token},
            *({"name": GuardSettings.env_name(field), "value": str(value)}
              for field, value in network.spec.limits.guard_settings().items())]  # fmt: skip


def api_token_secret(network: AgentNetwork, token: str) -> dict[str, Any]:
    """The Secret with the bearer token the network's mutating routes require (every pod reads it as
    AGENTNET_API_TOKEN; a client of the network reads it from here)."""
    if not SECRET_VALUE.match(token):
        raise ValueError("the API token must be 16-128 characters of [A-Za-z0-9_-]")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(network, names.api_token_name(network.name), names.ROLE_API_TOKEN),
        "type": "Opaque",
        "data": {names.API_TOKEN_KEY: _b64(token)},
    }


def _pod_spec(
    container: dict[str, Any], volumes: list[dict[str, Any]], scheduling: Scheduling | None, selector: dict[str, str]
) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        **_scheduling(scheduling, selector),
    }


def _scheduling(scheduling: Scheduling | None, selector: dict[str, str]) -> dict[str, Any]:
    """The PodSpec fields of a Scheduling (same names). A topology spread constraint without a
    labelSelector counts the workload's own pods: Kubernetes would count none, and spread nothing."""
    if scheduling is None:
        return {}
    fields = scheduling.dump()
    for constraint in fields.get("topologySpreadConstraints", ()):
        constraint.setdefault("labelSelector", {"matchLabels": dict(selector)})
    return fields


def pod_disruption_budget(network: AgentNetwork, name: str, role: str, *, app: str = names.APP_NAME) -> dict[str, Any]:
    """A budget of voluntary disruptions (node drains, cluster upgrades) for one workload's pods.

    maxUnavailable 1, not minAvailable: it holds for any number of replicas, so it follows the
    autoscaler and the scale subresource without being rewritten, and it never blocks a drain for
    good (minAvailable equal to the replicas would); agents and components catch up by CRDT sync
    after a restart, so losing one pod at a time is safe. Unhealthy pods may always be evicted, so a
    crash-looping pod does not hold a drain up."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(network, name, role, app=app),
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": names.selector_labels(network.name, role, app=app)},
        },
    }


def _most_replicas(component: ComponentSpec) -> int:
    """The most pods a component may run: its budget exists from the spec alone, not from the
    autoscaler's last decision, so it does not come and go as the component scales."""
    return component.autoscaling.max_replicas if component.autoscaling is not None else component.replicas


def _runtime_container(
    network: AgentNetwork,
    name: str,
    args: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    resources: Resources | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": network.spec.image,
        "imagePullPolicy": network.spec.image_pull_policy,
        "command": ["agentnet", *args],
        "env": env,
        "ports": [{"name": names.PORT_NAME_HTTP, "containerPort": HTTP_PORT, "protocol": "TCP"}],
        **_http_probes(),
        **_resources(resources),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def agents_service(network: AgentNetwork) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(network, names.agents_name(network.name), names.ROLE_AGENT),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # peers find each other before they are ready
            "selector": names.selector_labels(network.name, names.ROLE_AGENT),
            "ports": [
                {"name": names.PORT_NAME_HTTP, "port": HTTP_PORT, "targetPort": names.PORT_NAME_HTTP, "protocol": "TCP"}
            ],
        },
    }


def agents_statefulset(network: AgentNetwork, config: dict[str, Any]) -> dict[str, Any]:
    spec = network.spec
    role = names.ROLE_AGENT
    volumes, mounts = _runtime_volumes(network, data=None, identity=None)
    env = [
        *_runtime_env(network),
        _field_env(names.ENV_POD_INDEX, f"metadata.labels['{names.LABEL_POD_INDEX}']"),
        {"name": names.ENV_AGENTS_PER_POD, "value": str(spec.agents_per_pod)},
    ]
    if spec.persistence.enabled:  # snapshots to the pod's claim (the runtime's default interval), restored at start
        mounts.append(_data_mount())
        env.append(_data_env())
    container = _runtime_container(network, "agent", ["agent"], env, mounts, spec.agent_resources)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": child_metadata(network, names.agents_name(network.name), role),
        "spec": {
            "serviceName": names.agents_name(network.name),
            "replicas": spec.pods,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": names.selector_labels(network.name, role)},
            "template": {
                "metadata": {
                    "labels": names.labels(network.name, role),
                    "annotations": {names.ANNOTATION_CONFIG_DIGEST: _agents_config_digest(config)},
                },
                "spec": _pod_spec(
                    container, volumes, spec.agent_scheduling, names.selector_labels(network.name, role)
                ),
            },
            **_claim_templates(network, role, spec.persistence.agents),
        },
    }


def component_deployment(network: AgentNetwork, component: ComponentSpec, replicas: int) -> dict[str, Any]:
    on_claim = _timeline_on_claim(network, component)
    if on_claim:
        data = {"persistentVolumeClaim": {"claimName": names.timeline_claim_name(network.name)}}
    else:
        data = _empty_dir(names.VOLUME_DATA, DATA_SIZE_LIMIT)
    volumes, mounts = _runtime_volumes(network, data=data, identity=component.name)
    mounts.append(_data_mount())
    env = [*_runtime_env(network), _data_env(), *(e.dump() for e in component.env or ())]
    container = _runtime_container(
        network, component.name, ["component", component.name], env, mounts, component.resources
    )
    # One DuckDB file has one writer: the old pod lets go of it before the new one opens it.
    strategy = {"strategy": {"type": "Recreate"}} if on_claim else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(network, names.component_name(network.name, component.name), component.name),
        "spec": {
            "replicas": replicas,
            **strategy,
            "progressDeadlineSeconds": network.spec.rollout.progress_deadline_seconds,
            "selector": {"matchLabels": names.selector_labels(network.name, component.name)},
            "template": {
                "metadata": {
                    "labels": names.labels(network.name, component.name),
                    "annotations": {names.ANNOTATION_CONFIG_DIGEST: _component_config_digest(network, component)},
                },
                "spec": _pod_spec(
                    container, volumes, component.scheduling, names.selector_labels(network.name, component.name)
                ),
            },
        },
    }


def component_service(network: AgentNetwork, component: ComponentSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(network, names.component_name(network.name, component.name), component.name),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(network.name, component.name),
            "ports": [
                {"name": names.PORT_NAME_HTTP, "port": HTTP_PORT, "targetPort": names.PORT_NAME_HTTP, "protocol": "TCP"}
            ],
        },
    }


def component_spinapp(network: AgentNetwork, component: ComponentSpec, replicas: int) -> dict[str, Any]:
    """A SpinApp (core.spinkube.dev/v1alpha1) running one component of the Spin app image
    (spec.components selects it), using only fields spin-operator's CRD defines.

    SpinApp has no /scale: the operator writes spec.replicas itself. Settings go as Spin
    variables (SpinKube has no env field); the health checks ask /health under the component's
    route, as Spin routes requests by path."""
    spec = network.spec
    settings = spec.effective_spin
    probe = {"httpGet": {"path": spin.health_path(component.name)}}
    out_spec: dict[str, Any] = {
        "image": settings.image,
        "executor": settings.executor,
        "components": [component.name],
        "replicas": replicas,
        "checks": {"readiness": probe, "liveness": probe},
        "podLabels": names.labels(network.name, component.name),
        "podAnnotations": {names.ANNOTATION_CONFIG_DIGEST: _component_config_digest(network, component)},
        "variables": spin.spinapp_variables(network.name, component.name, spec.logging, component.settings),
    }
    if component.resources is not None:
        out_spec["resources"] = component.resources.dump()
    return {
        "apiVersion": names.SPINAPP_API_VERSION,
        "kind": names.SPINAPP_KIND,
        "metadata": child_metadata(network, names.component_name(network.name, component.name), component.name),
        "spec": out_spec,
    }


# ------------------------------------------------------------------------------------
# everything
# ------------------------------------------------------------------------------------


def desired_children(
    network: AgentNetwork,
    *,
    nats_password: str | None = None,
    api_token: str | None = None,
    nats_tls: TlsMaterial | FromCertManager | None = None,
    scale: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Every object the network owns, in apply order (config and Secret first).

    nats_password: the managed NATS server's password (read it from the
    existing Secret, or make one with new_secret_value()); required when NATS
    is managed. nats_tls: the managed cluster's CA and certificate (tls.ensure() of what the
    Secrets hold), or FromCertManager when cert-manager issues them; required when NATS is managed.
    api_token: the network's API token (read it from the existing Secret, or make one with
    new_secret_value()); without it the Secret is left out (the pods still refer to it). scale: the autoscaler's replicas per component, which win over
    spec replicas (kept within min/max).

    Raises agentnet_runtime.core.topology.TopologyError when the topology cannot
    be built, ValueError when an input is missing."""
    spec = network.spec
    if spec.nats.managed and nats_password is None:
        raise ValueError("managed NATS needs nats_password (from the existing Secret, or new_secret_value())")
    if spec.nats.managed and nats_tls is None:
        raise ValueError("managed NATS needs nats_tls (tls.ensure() of what its Secrets hold)")
    # nats_children builds on this module's blocks (metadata, pod spec, claims), so it is imported here.
    from agentnet_operator.nats_children import managed_nats_children

    config = network_config(network)
    out: list[dict[str, Any]] = [config_map(network, config)]
    if api_token is not None:
        out.append(api_token_secret(network, api_token))
    if spec.nats.managed:
        assert nats_password is not None and nats_tls is not None
        out += managed_nats_children(network, nats_password, nats_tls)
    out += [agents_service(network), agents_statefulset(network, config)]
    if spec.pods > 1:
        out.append(pod_disruption_budget(network, names.agents_name(network.name), names.ROLE_AGENT))
    for component in spec.effective_components:
        replicas = component_replicas(component, scale)
        if runs_as_spinapp(network, component.name):
            out.append(component_spinapp(network, component, replicas))
        else:
            if _timeline_on_claim(network, component):
                out.append(timeline_claim(network))
            out += [component_deployment(network, component, replicas), component_service(network, component)]
        if _most_replicas(component) > 1:
            name = names.component_name(network.name, component.name)
            out.append(pod_disruption_budget(network, name, component.name))
    # A JSON round trip: plain JSON types only, and no dict shared between objects.
    return json.loads(json.dumps(out))


# (apiVersion, kind) of every kind of child: what the operator lists (with
# names.children_selector) to compute status and to prune.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("v1", "PersistentVolumeClaim"),
    ("policy/v1", "PodDisruptionBudget"),
    (names.SPINAPP_API_VERSION, names.SPINAPP_KIND),
    (names.CERT_MANAGER_API_VERSION, names.ISSUER_KIND),  # watched once cert-manager's CRDs exist
    (names.CERT_MANAGER_API_VERSION, names.CERTIFICATE_KIND),
)


def child_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(apiVersion, kind, name): how observed objects are matched to desired ones."""
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def obsolete_children(
    network: AgentNetwork, desired: list[dict[str, Any]], observed: list[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """Observed children this network controls that are no longer desired (a
    component dropped from the list, NATS made external, workload switched):
    the handler deletes them. Objects the network does not control are never listed."""
    wanted = {child_key(o) for o in desired}
    out = []
    for obj in observed:
        owners = obj.get("metadata", {}).get("ownerReferences") or []
        controlled = any(o.get("controller") and o.get("uid") == network.metadata.uid for o in owners)
        if controlled and child_key(obj) not in wanted:
            out.append(child_key(obj))
    return sorted(out)


def to_json(objects: list[dict[str, Any]]) -> str:
    """Canonical JSON of objects (what 'byte-identical' is measured on)."""
    return _canonical_json(objects)
