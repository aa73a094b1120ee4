"""spec.persistence and spec.retention in the children: claims per agent pod and for NATS and the
timeline, the claims' fate on delete and scale-down, and emptyDir for throwaway networks."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from conftest import PASSWORD, SECRETS, load_example, network_from
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agentnet_operator import children, names, nats_children
from agentnet_operator.cluster import replacement
from agentnet_operator.model import AgentNetwork

TIMELINE = names.TIMELINE_COMPONENT


def build(persistence: dict[str, Any] | None = None, **spec: Any) -> dict[tuple[str, str], dict[str, Any]]:
    body = copy.deepcopy(load_example("network.yaml"))
    if persistence is not None:
        body["spec"]["persistence"] = persistence
    body["spec"].update(spec)
    objects = children.desired_children(network_from(body), **SECRETS)
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod(workload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def data_mounts(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in container["volumeMounts"] if m["name"] == names.VOLUME_DATA]


def test_agents_get_a_claim_each_mounted_at_the_data_dir_and_snapshot_to_it() -> None:
    agents = build()[("StatefulSet", "ramanujan-agents")]
    (template,) = agents["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == names.VOLUME_DATA
    assert template["metadata"]["labels"][names.LABEL_COMPONENT] == names.ROLE_AGENT
    assert template["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    spec, container = pod(agents)
    assert data_mounts(container) == [{"name": names.VOLUME_DATA, "mountPath": names.DATA_DIR}]
    assert names.VOLUME_DATA not in {v["name"] for v in spec["volumes"]}  # the template supplies it
    assert {"name": names.ENV_DATA_DIR, "value": names.DATA_DIR} in container["env"]
    assert container["command"] == ["agentnet", "agent"]


def test_deleting_the_network_deletes_the_claims_and_scaling_down_keeps_them() -> None:
    objects = build()
    for name in ("ramanujan-agents", "ramanujan-nats"):
        policy = objects[("StatefulSet", name)]["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy == {"whenDeleted": "Delete", "whenScaled": "Retain"}
    claim = objects[("PersistentVolumeClaim", "ramanujan-interaction-timeline")]
    (owner,) = claim["metadata"]["ownerReferences"]
    assert owner["kind"] == names.KIND and owner["controller"] is True  # garbage-collected with the network


def test_nats_keeps_jetstream_on_its_claim() -> None:
    nats = build()[("StatefulSet", "ramanujan-nats")]
    (template,) = nats["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["labels"][names.LABEL_NAME] == names.NATS_APP_NAME
    spec, container = pod(nats)
    assert data_mounts(container) == [{"name": names.VOLUME_DATA, "mountPath": names.NATS_DATA_DIR}]
    assert names.VOLUME_DATA not in {v["name"] for v in spec["volumes"]}
    secret = build()[("Secret", "ramanujan-nats")]
    config = base64.b64decode(secret["data"][names.NATS_SECRET_CONFIG]).decode()
    assert f'store_dir: "{names.NATS_DATA_DIR}/jetstream"' in config


def test_the_timeline_keeps_its_duckdb_on_a_claim_and_is_recreated_not_rolled() -> None:
    objects = build(persistence={"storageClassName": "fast", "timeline": {"size": "3Gi"}})
    claim = objects[("PersistentVolumeClaim", "ramanujan-interaction-timeline")]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "3Gi"}}}
    deployment = objects[("Deployment", f"ramanujan-{TIMELINE}")]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec, container = pod(deployment)
    (volume,) = [v for v in spec["volumes"] if v["name"] == names.VOLUME_DATA]
    assert volume == {"name": names.VOLUME_DATA,
                      "persistentVolumeClaim": {"claimName": "ramanujan-interaction-timeline"}}
    assert data_mounts(container) == [{"name": names.VOLUME_DATA, "mountPath": names.DATA_DIR}]
    # The other components keep a scratch emptyDir and roll as before.
    other = objects[("Deployment", "ramanujan-stream-red")]
    assert "strategy" not in other["spec"]
    (scratch,) = [v for v in pod(other)[0]["volumes"] if v["name"] == names.VOLUME_DATA]
    assert "emptyDir" in scratch


def test_sizes_and_class_reach_every_claim() -> None:
    objects = build(persistence={"storageClassName": "local-path", "agents": {"size": "250Mi"},
                                 "nats": {"size": "2G"}})
    agents = objects[("StatefulSet", "ramanujan-agents")]["spec"]["volumeClaimTemplates"][0]["spec"]
    nats = objects[("StatefulSet", "ramanujan-nats")]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert (agents["storageClassName"], agents["resources"]["requests"]["storage"]) == ("local-path", "250Mi")
    assert (nats["storageClassName"], nats["resources"]["requests"]["storage"]) == ("local-path", "2G")


def test_a_throwaway_network_keeps_todays_empty_dirs() -> None:
    objects = build(persistence={"enabled": False})
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in objects)
    agents, nats = objects[("StatefulSet", "ramanujan-agents")], objects[("StatefulSet", "ramanujan-nats")]
    for sts in (agents, nats):
        assert "volumeClaimTemplates" not in sts["spec"]
        assert "persistentVolumeClaimRetentionPolicy" not in sts["spec"]
    _, agent = pod(agents)
    assert agent["command"] == ["agentnet", "agent"] and data_mounts(agent) == []
    assert names.ENV_DATA_DIR not in {e["name"] for e in agent["env"]}
    (nats_data,) = [v for v in pod(nats)[0]["volumes"] if v["name"] == names.VOLUME_DATA]
    assert nats_data["emptyDir"] == {"sizeLimit": nats_children.NATS_DATA_SIZE_LIMIT}
    timeline = objects[("Deployment", f"ramanujan-{TIMELINE}")]
    assert "strategy" not in timeline["spec"]
    (scratch,) = [v for v in pod(timeline)[0]["volumes"] if v["name"] == names.VOLUME_DATA]
    assert "emptyDir" in scratch


def test_external_nats_and_no_timeline_make_no_claims_for_them() -> None:
    body = copy.deepcopy(load_example("external-nats.yaml"))
    body["spec"]["components"] = [{"name": "stream-red"}]
    objects = children.desired_children(network_from(body))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in kinds)
    assert not any(name.endswith("-nats") for _, name in kinds)
    (agents,) = [o for o in objects if o["kind"] == "StatefulSet"]
    assert agents["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == names.VOLUME_DATA


def config_of(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return json.loads(objects[("ConfigMap", "ramanujan-config")]["data"][names.CONFIG_KEY])


def test_retention_defaults_and_values_reach_network_json() -> None:
    assert config_of(build())["retention"] == {
        "maxNodes": None, "timeline": {"maxAgeSeconds": 604800, "maxEvents": 1000000}}
    set_ = config_of(build(retention={"maxNodes": 5000, "timeline": {"maxAgeSeconds": 3600, "maxEvents": 10}}))
    assert set_["retention"] == {"maxNodes": 5000, "timeline": {"maxAgeSeconds": 3600, "maxEvents": 10}}


def restarts(before: dict, after: dict) -> set[str]:
    """Workloads whose pod template changed (so their pods restart)."""
    return {name for (kind, name), obj in after.items() if kind in ("StatefulSet", "Deployment")
            and obj["spec"]["template"] != before[(kind, name)]["spec"]["template"]}


def test_a_retention_change_restarts_only_the_pods_that_read_it() -> None:
    base = build()
    assert restarts(base, build(retention={"maxNodes": 2000})) == {"ramanujan-agents"}
    assert restarts(base, build(retention={"timeline": {"maxEvents": 5}})) == {f"ramanujan-{TIMELINE}"}


@pytest.mark.parametrize(("persistence", "field"), [
    ({"agents": {"size": "0"}}, ("spec", "persistence", "agents", "size")),
    ({"nats": {"size": "-1Gi"}}, ("spec", "persistence", "nats", "size")),
    ({"timeline": {"size": "100m"}}, ("spec", "persistence", "timeline", "size")),
    ({"storageClassName": "Fast_SSD"}, ("spec", "persistence", "storageClassName")),
    ({"enable": True}, ("spec", "persistence", "enable")),
])
def test_bad_persistence_is_refused_naming_the_field(persistence: dict[str, Any], field: tuple[str, ...]) -> None:
    body = copy.deepcopy(load_example("network.yaml"))
    body["spec"]["persistence"] = persistence
    with pytest.raises(ValidationError) as error:
        AgentNetwork.model_validate(body)
    assert [e["loc"] for e in error.value.errors()] == [field]


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"]))
def test_every_positive_size_is_accepted_as_written(number: int, suffix: str) -> None:
    size = f"{number}{suffix}"
    objects = build(persistence={"agents": {"size": size}})
    template = objects[("StatefulSet", "ramanujan-agents")]["spec"]["volumeClaimTemplates"][0]
    assert template["spec"]["resources"]["requests"]["storage"] == size


@pytest.mark.parametrize("max_nodes", [0, 999, -5])
def test_a_budget_below_the_minimum_is_refused(max_nodes: int) -> None:
    body = copy.deepcopy(load_example("network.yaml"))
    body["spec"]["retention"] = {"maxNodes": max_nodes}
    with pytest.raises(ValidationError) as error:
        AgentNetwork.model_validate(body)
    assert [e["loc"] for e in error.value.errors()] == [("spec", "retention", "maxNodes")]


def test_a_statefulset_is_replaced_only_when_its_claims_differ() -> None:
    desired = build()[("StatefulSet", "ramanujan-agents")]
    live = copy.deepcopy(desired)
    # What the API server adds to a template it stores does not count.
    live["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = "Filesystem"
    live["spec"]["volumeClaimTemplates"][0]["status"] = {"phase": "Pending"}
    assert replacement(desired, live) is None
    before_persistence = copy.deepcopy(live)
    del before_persistence["spec"]["volumeClaimTemplates"]
    assert replacement(desired, before_persistence) == "Orphan"  # its pods keep serving meanwhile
    resized = copy.deepcopy(live)
    resized["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "5Gi"
    assert replacement(desired, resized) == "Orphan"
    throwaway = build(persistence={"enabled": False})[("StatefulSet", "ramanujan-agents")]
    assert replacement(throwaway, copy.deepcopy(throwaway)) is None


def test_a_deployment_is_replaced_only_when_its_strategy_type_changes() -> None:
    objects = build()
    timeline = objects[("Deployment", f"ramanujan-{TIMELINE}")]
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    made_before = copy.deepcopy(timeline)
    made_before["spec"]["strategy"] = rolling  # as the API server defaulted it
    assert replacement(timeline, made_before) == "Background"
    assert replacement(timeline, copy.deepcopy(timeline)) is None
    other = objects[("Deployment", "ramanujan-stream-red")]
    defaulted = copy.deepcopy(other)
    defaulted["spec"]["strategy"] = rolling
    assert replacement(other, defaulted) is None
    for key in (("Service", "ramanujan-agents"), ("ConfigMap", "ramanujan-config"), ("Secret", "ramanujan-nats")):
        assert replacement(objects[key], copy.deepcopy(objects[key])) is None, key
