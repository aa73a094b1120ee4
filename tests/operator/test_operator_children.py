"""desired_children: the objects an AgentNetwork owns, without a cluster."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import yaml
from conftest import PASSWORD, SECRETS, UID, load_example, network_from
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentnet_operator import children, names
from agentnet_operator.children import desired_children, to_json
from agentnet_runtime.catalogue import BY_NAME, COMPONENT_NAMES, HTTP_PORT

SPIN_VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def build(example: str, **kw: Any) -> list[dict[str, Any]]:
    network = network_from(load_example(example))
    if network.spec.nats.managed:
        kw = {**SECRETS, **kw}
    return desired_children(network, **kw)


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]) for o in objects if o["kind"] in ("StatefulSet", "Deployment")
    ]


def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return json.loads(cm["data"][names.CONFIG_KEY])


def test_the_reference_network_has_the_designed_children() -> None:
    objects = build("network.yaml")
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    expected = {
        ("ConfigMap", "ramanujan-config"),
        ("StatefulSet", "ramanujan-agents"),
        ("Service", "ramanujan-agents"),
        ("StatefulSet", "ramanujan-nats"),
        ("Service", "ramanujan-nats"),
        ("Service", "ramanujan-nats-headless"),
        ("Secret", "ramanujan-nats"),
        ("Secret", "ramanujan-nats-ca"),
        ("Secret", "ramanujan-nats-tls"),
        ("Secret", "ramanujan-nats-agents"),
        ("PodDisruptionBudget", "ramanujan-nats"),  # a cluster of three servers
    }
    expected |= {(kind, f"ramanujan-{c}") for c in COMPONENT_NAMES for kind in ("Deployment", "Service")}
    expected.add(("PersistentVolumeClaim", "ramanujan-interaction-timeline"))
    expected.add(("PodDisruptionBudget", "ramanujan-agents"))  # 9 agent pods; every component runs one
    assert set(keys) == expected and len(keys) == len(expected)
    assert keys[0] == ("ConfigMap", "ramanujan-config")  # config before the pods that mount it
    assert keys.index(("Secret", "ramanujan-nats")) < keys.index(("StatefulSet", "ramanujan-nats"))
    assert keys.index(("Secret", "ramanujan-nats-agents")) < keys.index(("StatefulSet", "ramanujan-agents"))
    assert all(o["metadata"]["namespace"] == "demo" for o in objects)


@pytest.mark.parametrize("example", ["network.yaml", "spinapp.yaml", "external-nats.yaml", "torus-3d.yaml"])
def test_every_child_is_owned_and_labelled(example: str) -> None:
    for obj in build(example):
        meta = obj["metadata"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "agentnet.dev/v1alpha1",
                "kind": "AgentNetwork",
                "name": load_example(example)["metadata"]["name"],
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        for key in (
            names.LABEL_NAME,
            names.LABEL_INSTANCE,
            names.LABEL_COMPONENT,
            names.LABEL_PART_OF,
            names.LABEL_MANAGED_BY,
        ):
            assert labels.get(key), (obj["kind"], meta["name"], key)
        assert labels[names.LABEL_INSTANCE] == load_example(example)["metadata"]["name"]
        assert labels[names.LABEL_MANAGED_BY] == names.FIELD_MANAGER
        assert len(meta["name"]) <= 63


def test_selectors_match_pod_labels_and_services_find_their_pods() -> None:
    objects = build("network.yaml")
    for name, template in pod_templates(objects):
        workload = (
            by_key(objects)[("StatefulSet", name)]
            if ("StatefulSet", name) in by_key(objects)
            else by_key(objects)[("Deployment", name)]
        )
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        assert set(selector) == {names.LABEL_NAME, names.LABEL_INSTANCE, names.LABEL_COMPONENT}
    pods = [t["metadata"]["labels"] for _, t in pod_templates(objects)]
    for svc in (o for o in objects if o["kind"] == "Service"):
        matches = [p for p in pods if svc["spec"]["selector"].items() <= p.items()]
        assert len(matches) == 1, svc["metadata"]["name"]


@pytest.mark.parametrize("example", ["network.yaml", "external-nats.yaml", "autoscaling.yaml"])
def test_pods_are_restricted(example: str) -> None:
    for name, template in pod_templates(build(example)):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
            assert forbidden not in pod
        assert all("hostPath" not in v for v in pod["volumes"])
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["runAsNonRoot"] is True
            assert "privileged" not in sc
            assert container["readinessProbe"]["httpGet"] and container["livenessProbe"]["httpGet"]
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert writable, "a read-only root needs somewhere to write"


def test_agent_and_component_containers() -> None:
    objects = by_key(build("network.yaml"))
    agents = objects[("StatefulSet", "ramanujan-agents")]
    assert agents["spec"]["replicas"] == 9
    assert agents["spec"]["serviceName"] == "ramanujan-agents"
    (agent,) = agents["spec"]["template"]["spec"]["containers"]
    assert agent["command"][:2] == ["agentnet", "agent"]  # snapshot options: test_operator_persistence.py
    assert agent["image"] == "ghcr.io/agentnet/agentnet-runtime:0.1.0"
    env = {e["name"]: e for e in agent["env"]}
    assert (
        env[names.ENV_POD_INDEX]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env[names.ENV_NATS_URL]["value"] == children.nats_url(network_from(load_example("network.yaml")))
    assert env[names.ENV_NATS_CA_FILE]["value"] == "/etc/agentnet/nats-ca/ca.crt"
    assert agent["ports"] == [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    headless = objects[("Service", "ramanujan-agents")]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True

    for component in COMPONENT_NAMES:
        deployment = objects[("Deployment", f"ramanujan-{component}")]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["agentnet", "component", component]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["progressDeadlineSeconds"] == 120
        service = objects[("Service", f"ramanujan-{component}")]["spec"]
        assert service["ports"][0]["port"] == HTTP_PORT and service["ports"][0]["targetPort"] == "http"


def test_resources_come_from_the_spec() -> None:
    objects = by_key(build("autoscaling.yaml"))
    (container,) = objects[("Deployment", "autoscaled-stream-red")]["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    (plain,) = objects[("Deployment", "autoscaled-crdt-service")]["spec"]["template"]["spec"]["containers"]
    assert "resources" not in plain


def test_the_autoscaler_owns_replicas_within_bounds() -> None:
    network = network_from(load_example("autoscaling.yaml"))
    default = by_key(desired_children(network, **SECRETS))
    assert default[("Deployment", "autoscaled-stream-red")]["spec"]["replicas"] == 1
    scaled = by_key(
        desired_children(network, **SECRETS, scale={"stream-red": 7, "stream-blue": 50, "crdt-service": 3})
    )
    assert scaled[("Deployment", "autoscaled-stream-red")]["spec"]["replicas"] == 7
    assert scaled[("Deployment", "autoscaled-stream-blue")]["spec"]["replicas"] == 10  # maxReplicas
    # no autoscaling: the spec's replicas stand, whatever status says
    assert scaled[("Deployment", "autoscaled-crdt-service")]["spec"]["replicas"] == 1


def test_agents_per_pod() -> None:
    objects = build("torus-3d.yaml")
    sts = by_key(objects)[("StatefulSet", "torus-3d-agents")]
    assert sts["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[names.ENV_AGENTS_PER_POD] == "9"
    config = config_of(objects)
    assert [n["pod"] for n in config["nodes"]] == [i // 9 for i in range(27)]


@pytest.mark.parametrize("example", ["network.yaml", "ring.yaml", "torus-2d.yaml", "torus-3d.yaml", "complete.yaml"])
def test_config_map_holds_the_topology_and_its_colouring(example: str) -> None:
    from agentnet_runtime.core.colouring import colour_graph, display_palette
    from agentnet_runtime.core.topology import build_topology

    network = network_from(load_example(example))
    spec = network.spec
    config = config_of(build(example))
    t = spec.topology
    graph = build_topology(t.kind, spec.agents, degree=t.degree, seed=t.seed, dimensions=t.dimensions)
    assert [n["id"] for n in config["nodes"]] == list(range(spec.agents))
    for node in config["nodes"]:
        assert set(node["neighbours"]) == set(graph.neighbors(node["id"]))
        assert node["neighbours"] == sorted(node["neighbours"])
    assert [n["display"] for n in config["nodes"]] == list(display_palette(spec.agents, seed=t.seed))
    assert config["topology"]["kind"] == t.kind
    colouring = colour_graph(graph)
    assert config["colouring"]["proper"] == bool(colouring.proper)
    colours = [n["colour"] for n in config["nodes"]]
    assert set(colours) <= {"RED", "BLUE", "GREEN"}
    assert sum(config["colouring"]["counts"].values()) == spec.agents
    clashes = [(a, b) for a, b in graph.edges() if colours[a] == colours[b]]
    assert config["colouring"]["conflicts"] == len(clashes) == len(colouring.conflicts)
    if colouring.proper:
        assert clashes == []
        assert colours == [colouring.colours[i].value for i in range(spec.agents)]
    assert set(config["components"]) == {c.name for c in spec.effective_components}


@pytest.mark.parametrize(
    ("agents", "topology"),
    [(1000, {"kind": "ring"}), (1000, {"kind": "torus", "dimensions": 3}), (128, {"kind": "complete"}),
     (1000, {"kind": "ramanujan", "degree": 64})],
)  # fmt: skip
def test_every_network_the_resource_accepts_fits_in_a_config_map(agents: int, topology: dict) -> None:
    from agentnet_operator.status import check_network

    network = network_from({"metadata": {"name": "big"}, "spec": {"agents": agents, "topology": topology}})
    (cm,) = [o for o in desired_children(network, **SECRETS) if o["kind"] == "ConfigMap"]
    assert len(cm["data"][names.CONFIG_KEY].encode()) <= children.CONFIG_MAP_LIMIT == 1024 * 1024
    assert len(config_of([cm])["nodes"]) == agents
    assert check_network(network) == []


def test_a_config_past_the_config_map_limit_is_a_problem_naming_the_limit_not_an_apply() -> None:
    """The resource stops at 1,000 agents; 13,000 in a ring (the stretch past it) would need more than 1 MiB."""
    from agentnet_operator.status import REASON_CONFIG_TOO_LARGE, check_network

    network = network_from({"metadata": {"name": "huge"}, "spec": {"agents": 1000, "topology": {"kind": "ring"}}})
    network.spec = network.spec.model_copy(update={"agents": 13_000})
    (problem,) = check_network(network)
    assert problem.reason == REASON_CONFIG_TOO_LARGE
    size = children.config_size(children.network_config(network))
    assert size > children.CONFIG_MAP_LIMIT
    assert f"is {size} bytes, over the ConfigMap limit of 1048576 bytes (1 MiB)" in problem.message
    assert "13000 agents (ring topology)" in problem.message


def test_complete_graph_gets_its_best_effort_colouring() -> None:
    config = config_of(build("complete.yaml"))
    assert config["colouring"]["proper"] is False and config["colouring"]["conflicts"] > 0
    assert all(n["colour"] in {"RED", "BLUE", "GREEN"} for n in config["nodes"])


def test_reference_network_is_properly_3_coloured() -> None:
    config = config_of(build("network.yaml"))
    assert config["colouring"]["proper"] is True
    assert config["colouring"]["counts"] == {"BLUE": 3, "GREEN": 3, "RED": 3}
    for node in config["nodes"]:
        assert len(node["neighbours"]) == 4


def test_component_settings_reach_the_config() -> None:
    config = config_of(build("autoscaling.yaml"))
    assert config["components"]["skill-verification"]["settings"] == {"NUM_AGENTS": "17"}
    assert config["components"]["stream-red"] == {
        "route": "/stream/red",
        "url": f"http://autoscaled-stream-red:{HTTP_PORT}",
        "workQueue": True,
        "settings": {},
    }


def test_managed_nats() -> None:
    objects = by_key(build("network.yaml"))
    secret = objects[("Secret", "ramanujan-nats")]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data[names.NATS_SECRET_PASSWORD] == PASSWORD  # the network's secret, every user's password derived from it
    assert "jetstream {" in data[names.NATS_SECRET_CONFIG] and PASSWORD not in data[names.NATS_SECRET_CONFIG]
    sts = objects[("StatefulSet", "ramanujan-nats")]
    assert sts["spec"]["serviceName"] == "ramanujan-nats-headless" and sts["spec"]["replicas"] == 3
    (nats,) = sts["spec"]["template"]["spec"]["containers"]
    assert nats["image"] == "ghcr.io/agentnet/agentnet-runtime:0.1.0"  # the runtime's own: it carries nats-server
    assert nats["command"] == ["nats-server", "--config", "/etc/nats/nats.conf"] and "args" not in nats
    assert objects[("Service", "ramanujan-nats-headless")]["spec"]["clusterIP"] == "None"
    client_ports = {p["name"]: p["port"] for p in objects[("Service", "ramanujan-nats")]["spec"]["ports"]}
    assert client_ports["client"] == 4222
    # clients get their own password, not the server's configuration (test_operator_nats_auth.py has the rest)
    agent_pod = objects[("StatefulSet", "ramanujan-agents")]["spec"]["template"]["spec"]
    (creds,) = [v for v in agent_pod["volumes"] if v["name"] == names.VOLUME_NATS_CREDENTIALS]
    assert creds["secret"] == {"secretName": "ramanujan-nats-agents"}


def nats_container(body: dict[str, Any]) -> dict[str, Any]:
    objects = by_key(desired_children(network_from(body), **SECRETS))
    (container,) = objects[("StatefulSet", f"{body['metadata']['name']}-nats")]["spec"]["template"]["spec"]["containers"]
    return container


def test_a_nats_image_of_its_own_keeps_its_entry_point() -> None:
    body = load_example("network.yaml")
    body["spec"]["nats"] = {"managed": True, "image": "docker.io/library/nats:2.15.1-alpine"}
    upstream = nats_container(body)
    # the official images' entry point is nats-server: arguments only
    assert upstream["image"] == "docker.io/library/nats:2.15.1-alpine"
    assert upstream["args"] == ["--config", "/etc/nats/nats.conf"] and "command" not in upstream
    body["spec"]["image"] = body["spec"]["nats"]["image"] = "registry.local/agentnet:dev"
    same = nats_container(body)  # named explicitly, the runtime image still needs the command
    assert same["command"] == ["nats-server", "--config", "/etc/nats/nats.conf"] and "args" not in same
    del body["spec"]["nats"]["image"]
    assert nats_container(body)["image"] == "registry.local/agentnet:dev"


def test_the_managed_nats_url_resolves_from_any_namespace() -> None:
    """The operator (its autoscaler reads the work-queue lag) runs in its own namespace."""
    for namespace in ("demo", "team-b"):
        network = network_from(load_example("network.yaml"), namespace=namespace)
        url = ",".join(f"tls://ramanujan-nats-{k}.ramanujan-nats-headless.{namespace}.svc:4222" for k in range(3))
        assert children.nats_url(network) == url
        objects = desired_children(network, **SECRETS)
        assert config_of(objects)["nats"]["url"] == url
        for _, template in pod_templates(objects):
            for container in template["spec"]["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert env.get(names.ENV_NATS_URL, url) == url


def test_readiness_and_liveness_are_separate_probes() -> None:
    for name, template in pod_templates(build("network.yaml")):
        (container,) = template["spec"]["containers"]
        ready, live = container["readinessProbe"], container["livenessProbe"]
        if name == "ramanujan-nats":  # nats-server's own monitoring endpoint
            assert ready["httpGet"] == {"path": "/healthz?js-enabled-only=true", "port": "monitor"}
            continue
        startup = container["startupProbe"]
        assert ready["httpGet"] == {"path": "/ready", "port": "http"}, name
        assert live["httpGet"] == {"path": "/health", "port": "http"}, name
        # readiness reacts within seconds (it drives Ready and the automatic rollback) ...
        assert 2 <= ready["periodSeconds"] <= 5 and ready["failureThreshold"] <= 3
        assert ready["periodSeconds"] * ready["failureThreshold"] <= 10
        # ... liveness forgives a slow moment, and a slow start on a busy node is not killed
        assert live["periodSeconds"] * live["failureThreshold"] >= 30
        assert startup["httpGet"] == live["httpGet"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_managed_nats_needs_a_password() -> None:
    network = network_from(load_example("network.yaml"))
    with pytest.raises(ValueError, match="nats_password"):
        desired_children(network)
    with pytest.raises(ValueError, match="password"):
        desired_children(network, nats_password='bad" password', nats_tls=SECRETS["nats_tls"])
    with pytest.raises(ValueError, match="nats_tls"):
        desired_children(network, nats_password=PASSWORD)
    assert re.match(r"^[A-Za-z0-9_-]{16,}$", children.new_secret_value())


def test_external_nats_adds_nothing_but_its_url_and_secret() -> None:
    objects = build("external-nats.yaml")
    assert not [o for o in objects if o["metadata"]["labels"][names.LABEL_COMPONENT] == names.ROLE_NATS]
    assert not [o for o in objects if o["kind"] == "Secret"]
    pod = by_key(objects)[("StatefulSet", "external-nats-agents")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env[names.ENV_NATS_URL] == "nats://nats.infra.svc:4222"
    (creds,) = [v for v in pod["volumes"] if v["name"] == names.VOLUME_NATS_CREDENTIALS]
    assert creds["secret"] == {"secretName": "agentnet-nats"}
    assert config_of(objects)["nats"]["url"] == "nats://nats.infra.svc:4222"


@pytest.fixture(scope="module")
def spinapp_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the real SpinApp CRD, from spin-operator's Go module."""
    from rig.spinoperator import crds

    crd = yaml.safe_load((crds() / "core.spinkube.dev_spinapps.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def pruned(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Paths in `value` that a structural schema does not know (what the API server would drop)
    or whose type it refuses, and required fields that are missing."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return []
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        out = [f"{path}.{k}" for k in schema.get("required", []) if k not in value]
        for key, sub in value.items():
            if "properties" in schema:
                out += pruned(schema["properties"][key], sub, f"{path}.{key}") if key in schema["properties"] \
                    else [f"{path}.{key}"]
            elif "additionalProperties" in schema:
                out += pruned(schema["additionalProperties"], sub, f"{path}.{key}")
        return out
    if kind == "array" and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in pruned(schema["items"], v, f"{path}[{i}]")]
    expected = {"string": str, "integer": int, "boolean": bool, "number": (int, float), "object": dict, "array": list}
    return [] if kind is None or isinstance(value, expected[kind]) else [f"{path}: not {kind}"]


def test_spinapp_workload_splits_spin_components_from_the_others(spinapp_schema) -> None:
    from agentnet_operator import spin

    objects = build("spinapp.yaml")
    keys = {(o["kind"], o["metadata"]["name"]) for o in objects}
    spinapps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "SpinApp"}
    # Spin HTTP components are SpinApps; the NATS-bound ones stay Deployments with their Services.
    assert set(spinapps) == {"spin-crdt-service", "spin-egraph-service"}
    assert {k for k in keys if k[0] in ("Deployment", "Service") and "agents" not in k[1] and "nats" not in k[1]} == {
        ("Deployment", "spin-stream-red"), ("Service", "spin-stream-red"),
        ("Deployment", "spin-agent-orchestrator"), ("Service", "spin-agent-orchestrator"),
    }  # fmt: skip
    assert ("StatefulSet", "spin-agents") in keys  # agents are not Spin apps
    declared = set(spin.manifest()["variables"])
    for name, app in spinapps.items():
        component = app["metadata"]["labels"][names.LABEL_COMPONENT]
        assert app["apiVersion"] == "core.spinkube.dev/v1alpha1"
        assert pruned(spinapp_schema, app) == []  # the real schema keeps every field
        spec = app["spec"]
        assert spec["image"] == names.SPIN_IMAGE and spec["executor"] == "containerd-shim-spin"
        assert spec["components"] == [component]  # one component of the shared Spin app image
        assert spec["checks"]["readiness"]["httpGet"]["path"] == f"{BY_NAME[component].route}/health"
        assert all(SPIN_VARIABLE.match(v["name"]) for v in spec["variables"])
        assert {v["name"] for v in spec["variables"]} <= declared  # Spin ignores what the manifest lacks
        assert names.selector_labels("spin", component).items() <= spec["podLabels"].items()
    egraph = spinapps["spin-egraph-service"]["spec"]
    assert egraph["replicas"] == 2 and egraph["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert {"name": "egraph_service_saturation_timeout_ms", "value": "2000"} in egraph["variables"]
    assert {"name": "crdt_service_cache_size_mb", "value": "20"} in spinapps["spin-crdt-service"]["spec"]["variables"]
    urls = {n: c["url"] for n, c in config_of(objects)["components"].items()}
    assert urls == {"stream-red": f"http://spin-stream-red:{HTTP_PORT}", "crdt-service": "http://spin-crdt-service:80",
                    "egraph-service": "http://spin-egraph-service:80",
                    "agent-orchestrator": f"http://spin-agent-orchestrator:{HTTP_PORT}"}


def test_a_spinapp_never_runs_the_runtime_image() -> None:
    body = load_example("spinapp.yaml")
    del body["spec"]["spin"]
    body["spec"]["image"] = "registry.example/agentnet-runtime:custom"
    objects = desired_children(network_from(body), **SECRETS)
    images = {o["metadata"]["name"]: o["spec"]["image"] for o in objects if o["kind"] == "SpinApp"}
    assert images == {"spin-crdt-service": names.SPIN_IMAGE, "spin-egraph-service": names.SPIN_IMAGE}
    (red,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "spin-stream-red"]
    assert red["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/agentnet-runtime:custom"


def test_under_spinapp_the_timeline_keeps_its_claim() -> None:
    body = load_example("spinapp.yaml")
    body["spec"]["components"] = [{"name": "interaction-timeline"}, {"name": "skill-verification"}]
    keys = {(o["kind"], o["metadata"]["name"]) for o in desired_children(network_from(body), **SECRETS)}
    assert {("PersistentVolumeClaim", "spin-interaction-timeline"), ("Deployment", "spin-interaction-timeline"),
            ("SpinApp", "spin-skill-verification")} <= keys


def test_output_is_deterministic_and_plain_json() -> None:
    first = build("network.yaml")
    children._plan.cache_clear()
    second = build("network.yaml")
    assert to_json(first) == to_json(second)
    assert json.loads(json.dumps(first)) == first
    # the order keys were written in does not matter
    body = load_example("network.yaml")
    body["spec"] = dict(reversed(list(body["spec"].items())))
    body["spec"]["topology"] = dict(reversed(list(body["spec"]["topology"].items())))
    assert to_json(desired_children(network_from(body), **SECRETS)) == to_json(first)
    # and YAML round trip is lossless
    assert yaml.safe_load(yaml.safe_dump(first)) == first


def test_children_need_the_owner_uid() -> None:
    network = network_from(load_example("ring.yaml"), uid="")
    with pytest.raises(ValueError, match="uid"):
        desired_children(network, **SECRETS)


def test_longest_network_name_fits_every_child() -> None:
    body = load_example("ring.yaml")
    body["metadata"]["name"] = "a" * names.MAX_NETWORK_NAME_LENGTH
    for obj in desired_children(network_from(body), **SECRETS):
        assert DNS_1035.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63


SMALL_TOPOLOGIES = st.sampled_from(
    [
        {"kind": "ring", "agents": 5},
        {"kind": "ring", "agents": 12},
        {"kind": "complete", "agents": 4},
        {"kind": "ramanujan", "agents": 9, "degree": 4},
        {"kind": "ramanujan", "agents": 10, "degree": 3},
        {"kind": "torus", "agents": 16, "dimensions": 2},
    ]
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(
    topology=SMALL_TOPOLOGIES,
    per_pod=st.integers(1, 5),
    workload=st.sampled_from(["Deployment", "SpinApp"]),
    components=st.one_of(st.none(), st.lists(st.sampled_from(COMPONENT_NAMES), unique=True, max_size=4)),
    replicas=st.integers(0, 5),
    persistent=st.booleans(),
)
def test_any_valid_spec_renders_deterministically(topology, per_pod, workload, components, replicas, persistent) -> None:
    t = dict(topology)
    agents = t.pop("agents")
    spec: dict[str, Any] = {"agents": agents, "agentsPerPod": per_pod, "topology": t, "workload": workload,
                            "persistence": {"enabled": persistent}}  # fmt: skip
    if components is not None:  # (with persistence, the timeline's one claim allows it one replica)
        spec["components"] = [
            {"name": c, "replicas": min(replicas, 1) if persistent and c == names.TIMELINE_COMPONENT else replicas}
            for c in components
        ]
    body = {"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork", "metadata": {"name": "prop"}, "spec": spec}
    objects = desired_children(network_from(body), **SECRETS)
    assert to_json(objects) == to_json(desired_children(network_from(body), **SECRETS))
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    sts = by_key(objects)[("StatefulSet", "prop-agents")]
    assert sts["spec"]["replicas"] == -(-agents // per_pod)
    assert len(config_of(objects)["nodes"]) == agents
    # A budget for exactly the workloads that may run more than one pod, each selecting only its own.
    budgets = {o["metadata"]["name"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    several = {f"prop-{c}" for c in (components if components is not None else ()) if spec["components"][
        components.index(c)]["replicas"] > 1}
    assert budgets == several | ({"prop-agents"} if -(-agents // per_pod) > 1 else set()) | {"prop-nats"}
    for name in budgets:
        assert [n for n, _ in pods_selected_by(objects, name)] == [name]


def test_obsolete_children_are_the_controlled_ones_no_longer_desired() -> None:
    network = network_from(load_example("network.yaml"))
    before = desired_children(network, **SECRETS)
    body = load_example("network.yaml")
    body["spec"]["components"] = [{"name": "dashboard"}]
    body["spec"]["nats"] = {"url": "nats://elsewhere:4222"}
    after = desired_children(network_from(body))
    stranger = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ramanujan-x", "ownerReferences": [
        {"uid": "someone-else", "controller": True}]}}  # fmt: skip
    gone = children.obsolete_children(network, after, [*before, stranger])
    assert ("apps/v1", "Deployment", "ramanujan-stream-red") in gone
    assert ("v1", "Secret", "ramanujan-nats") in gone and ("apps/v1", "StatefulSet", "ramanujan-nats") in gone
    assert ("apps/v1", "Deployment", "ramanujan-dashboard") not in gone
    assert all(k[2] != "ramanujan-x" for k in gone)
    assert children.obsolete_children(network, before, before) == []
    assert {(o["apiVersion"], o["kind"]) for o in before + build("spinapp.yaml")} <= set(children.CHILD_KINDS)


def test_children_selector_selects_every_child() -> None:
    selector = dict(part.split("=") for part in names.children_selector("ramanujan").split(","))
    for obj in build("network.yaml"):
        assert selector.items() <= obj["metadata"]["labels"].items()


def pods_selected_by(objects: list[dict[str, Any]], budget: str) -> list[tuple[str, dict[str, str]]]:
    """(workload, pod labels) of every pod template a PodDisruptionBudget selects."""
    (pdb,) = [o for o in objects if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == budget]
    selector = pdb["spec"]["selector"]["matchLabels"].items()
    pods = [(n, t["metadata"]["labels"]) for n, t in pod_templates(objects)]
    pods += [(o["metadata"]["name"], o["spec"]["podLabels"]) for o in objects if o["kind"] == "SpinApp"]
    return [(n, labels) for n, labels in pods if selector <= labels.items()]


def network_with(**spec: Any) -> Any:
    body = load_example("ring.yaml")
    body["spec"].update(spec)
    return network_from(body)


def test_budgets_for_the_agents_and_each_component_that_may_run_several_pods() -> None:
    network = network_with(components=[
        {"name": "crdt-service", "replicas": 2},
        {"name": "dashboard", "replicas": 1},
        {"name": "stream-red", "replicas": 1, "autoscaling": {"maxReplicas": 3, "metric": {"target": 10}}},
        {"name": "stream-blue", "replicas": 0},
    ])  # fmt: skip
    objects = desired_children(network, **SECRETS)
    budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
    # stream-red runs one pod now, but may run three: its budget does not come and go as it scales
    assert set(budgets) == {"ring-agents", "ring-crdt-service", "ring-stream-red", "ring-nats"}
    for name, pdb in budgets.items():
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert pdb["metadata"]["ownerReferences"][0]["uid"] == UID
        labels = pdb["metadata"]["labels"]
        assert labels == names.labels("ring", labels[names.LABEL_COMPONENT], app=labels[names.LABEL_NAME])
        assert [n for n, _ in pods_selected_by(objects, name)] == [name]
    # one agent pod (all agents in it): nothing to budget
    one_pod = desired_children(network_with(agentsPerPod=8), **SECRETS)
    assert [o["metadata"]["name"] for o in one_pod if o["kind"] == "PodDisruptionBudget"] == ["ring-nats"]
    # SpinApps: the budget selects the pods spin-operator makes from podLabels
    spin = build("spinapp.yaml")
    budgets = {o["metadata"]["name"]: o for o in spin if o["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {"spin-agents", "spin-stream-red", "spin-egraph-service", "spin-nats"}
    assert [n for n, _ in pods_selected_by(spin, "spin-stream-red")] == ["spin-stream-red"]
    (egraph,) = [o for o in spin if o["kind"] == "SpinApp" and o["metadata"]["name"] == "spin-egraph-service"]
    assert budgets["spin-egraph-service"]["spec"]["selector"]["matchLabels"].items() <= egraph["spec"]["podLabels"].items()


def test_a_budget_is_pruned_when_its_component_drops_to_one_replica_or_goes() -> None:
    two = network_with(components=[{"name": "crdt-service", "replicas": 2}, {"name": "dashboard", "replicas": 2}])
    before = desired_children(two, **SECRETS)
    after = desired_children(network_with(components=[{"name": "crdt-service", "replicas": 1}]), **SECRETS)
    gone = children.obsolete_children(two, after, before)
    assert ("policy/v1", "PodDisruptionBudget", "ring-crdt-service") in gone
    assert ("policy/v1", "PodDisruptionBudget", "ring-dashboard") in gone
    assert ("policy/v1", "PodDisruptionBudget", "ring-agents") not in gone


SCHEDULING = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "agentnet", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                           "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "ring"}}}}]}},
    "priorityClassName": "agentnet-high",
}  # fmt: skip
SPREAD = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}


def test_scheduling_knobs_reach_each_pod_template_and_only_theirs() -> None:
    network = network_with(
        agentScheduling={**SCHEDULING, "topologySpreadConstraints": [SPREAD]},
        nats={"managed": True, "scheduling": {"nodeSelector": {"disk": "ssd"}}},
        components=[{"name": "crdt-service", "scheduling": {"tolerations": [{"operator": "Exists"}]}},
                    {"name": "dashboard"}],
    )  # fmt: skip
    objects = by_key(desired_children(network, **SECRETS))
    agents = objects[("StatefulSet", "ring-agents")]["spec"]["template"]["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert agents[field] == SCHEDULING[field], field
    # a spread constraint without a selector counts the agents' own pods (Kubernetes would count none)
    assert agents["topologySpreadConstraints"] == [
        {**SPREAD, "labelSelector": {"matchLabels": names.selector_labels("ring", names.ROLE_AGENT)}}
    ]
    crdt = objects[("Deployment", "ring-crdt-service")]["spec"]["template"]["spec"]
    assert crdt["tolerations"] == [{"operator": "Exists"}]
    assert not {"nodeSelector", "affinity", "priorityClassName", "topologySpreadConstraints"} & set(crdt)
    nats = objects[("StatefulSet", "ring-nats")]["spec"]["template"]["spec"]
    assert nats["nodeSelector"] == {"disk": "ssd"} and "tolerations" not in nats
    dashboard = objects[("Deployment", "ring-dashboard")]["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "topologySpreadConstraints"} & set(
        dashboard)


def env_of(template: dict[str, Any]) -> dict[str, Any]:
    (container,) = template["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_component_env_and_logging_reach_the_pods() -> None:
    network = network_with(
        logging={"level": "DEBUG", "format": "text"},
        components=[{"name": "crdt-service", "env": [{"name": "CACHE_SIZE_MB", "value": "64"},
                                                     {"name": "EMPTY", "value": ""}]},
                    {"name": "dashboard"}],
    )  # fmt: skip
    objects = desired_children(network, **SECRETS)
    templates = dict(pod_templates(objects))
    for name in ("ring-agents", "ring-crdt-service", "ring-dashboard"):
        env = env_of(templates[name])
        assert (env[names.ENV_LOG_LEVEL], env[names.ENV_LOG_FORMAT]) == ("DEBUG", "text"), name
    assert env_of(templates["ring-crdt-service"]).items() >= {"CACHE_SIZE_MB": "64", "EMPTY": ""}.items()
    assert "CACHE_SIZE_MB" not in env_of(templates["ring-dashboard"])
    (nats,) = templates["ring-nats"]["spec"]["containers"]
    assert [e["name"] for e in nats["env"]] == [names.ENV_NATS_SERVER_NAME]  # the NATS server logs its own way
    # defaults: INFO, json
    default = dict(pod_templates(desired_children(network_with(), **SECRETS)))
    assert env_of(default["ring-agents"])[names.ENV_LOG_LEVEL] == "INFO"
    assert env_of(default["ring-agents"])[names.ENV_LOG_FORMAT] == "json"
    # a SpinApp gets them as Spin variables
    spin = [o for o in build("spinapp.yaml") if o["kind"] == "SpinApp"][0]
    variables = {v["name"]: v.get("value") for v in spin["spec"]["variables"]}
    assert (variables[names.SPIN_VAR_LOG_LEVEL], variables[names.SPIN_VAR_LOG_FORMAT]) == ("INFO", "json")


def test_every_variable_the_operator_sets_is_reserved() -> None:
    """spec.components[].env may not override one: the model's list is what the builders set."""
    network = network_with(components=[{"name": "interaction-timeline"}])
    templates = [t for name, t in pod_templates(desired_children(network, **SECRETS)) if name != "ring-nats"]
    set_by_operator = {n for t in templates for n in env_of(t)}
    assert set_by_operator == set(names.OPERATOR_ENV)
