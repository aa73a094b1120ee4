"""The models accept the examples and refuse every invalid spec, naming the field."""

from __future__ import annotations

import types
from typing import Any

import pytest
from conftest import EXAMPLES, load_example
from invalid_specs import INVALID_SPECS, RING, VALID_SPEC, InvalidSpec
from pydantic import ValidationError

from agentnet_operator.model import AgentNetwork, AgentNetworkSpec, ComponentSpec, field_path
from agentnet_runtime.catalogue import COMPONENT_NAMES

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def errors_of(case: InvalidSpec) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        AgentNetwork.model_validate(case.manifest())
    return [(field_path(e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.name)
def test_invalid_spec_is_refused_naming_the_field(case: InvalidSpec) -> None:
    errors = errors_of(case)
    assert any(path == case.field and case.expected_model_message in msg for path, msg in errors), errors


def test_the_table_covers_the_required_rules() -> None:
    assert len(INVALID_SPECS) >= 10
    assert len({c.name for c in INVALID_SPECS}) == len(INVALID_SPECS)
    required = {
        "agents-zero", "ramanujan-odd-product", "unknown-topology-kind", "unknown-component",
        "min-above-max-replicas", "empty-image", "negative-replicas", "ramanujan-degree-not-below-agents",
        "duplicate-component", "torus-dimensions-4",
    }  # fmt: skip
    assert required <= {c.name for c in INVALID_SPECS}


def test_the_bases_of_the_table_are_valid() -> None:
    for spec in (VALID_SPEC, RING):
        AgentNetwork.model_validate({"metadata": {"name": "valid"}, "spec": spec})


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_examples_are_valid(example: str) -> None:
    body = load_example(example)
    network = AgentNetwork.model_validate(body)
    assert network.kind == "AgentNetwork" and network.api_version == "agentnet.dev/v1alpha1"


def test_examples_cover_every_topology_and_workload() -> None:
    specs = [AgentNetworkSpec.model_validate(load_example(e)["spec"]) for e in EXAMPLE_FILES]
    assert {(s.topology.kind, s.topology.dimensions if s.topology.kind == "torus" else None) for s in specs} >= {
        ("ring", None), ("torus", 2), ("torus", 3), ("complete", None), ("ramanujan", None),
    }  # fmt: skip
    assert {s.workload for s in specs} == {"Deployment", "SpinApp"}
    reference = AgentNetworkSpec.model_validate(load_example("network.yaml")["spec"])
    assert (reference.agents, reference.topology.kind, reference.topology.degree) == (9, "ramanujan", 4)


def test_examples_are_possible_topologies() -> None:
    from agentnet_runtime.core.topology import check_topology

    for example in EXAMPLE_FILES:
        spec = AgentNetworkSpec.model_validate(load_example(example)["spec"])
        t = spec.topology
        assert check_topology(t.kind, spec.agents, degree=t.degree, dimensions=t.dimensions) is None, example


def test_defaults() -> None:
    spec = AgentNetworkSpec.model_validate(VALID_SPEC)
    assert spec.agents_per_pod == 1 and spec.workload == "Deployment"
    assert spec.nats.managed and spec.nats.url is None
    assert (
        spec.rollout.revision_history_limit,
        spec.rollout.progress_deadline_seconds,
        spec.rollout.auto_rollback,
    ) == (
        10,
        120,
        True,
    )
    assert spec.topology.seed == 0 and spec.topology.dimensions == 2
    assert spec.image.endswith(":" + __import__("agentnet_runtime").__version__)
    assert spec.components is None


def test_components_omitted_means_all_eleven_in_catalogue_order() -> None:
    spec = AgentNetworkSpec.model_validate(VALID_SPEC)
    assert [c.name for c in spec.effective_components] == list(COMPONENT_NAMES)
    assert all(c.replicas == 1 for c in spec.effective_components)
    listed = AgentNetworkSpec.model_validate(
        {**VALID_SPEC, "components": [{"name": "dashboard"}, {"name": "stream-red"}]}
    )
    assert [c.name for c in listed.effective_components] == ["stream-red", "dashboard"]
    none = AgentNetworkSpec.model_validate({**VALID_SPEC, "components": []})
    assert none.effective_components == []


def test_autoscaling_behavior_defaults_are_the_hpas() -> None:
    c = ComponentSpec.model_validate(
        {"name": "stream-red", "autoscaling": {"maxReplicas": 5, "metric": {"target": 10}}}
    )
    assert c.autoscaling is not None
    up, down = c.autoscaling.behavior.scale_up, c.autoscaling.behavior.scale_down
    assert up.stabilization_window_seconds == 0 and down.stabilization_window_seconds == 300
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == [("Percent", 100, 15), ("Pods", 4, 15)]
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Percent", 100, 15)]
    assert c.autoscaling.min_replicas == 1 and c.autoscaling.metric.source == "nats"


def test_defaults_are_not_shared_between_instances() -> None:
    a = AgentNetworkSpec.model_validate(VALID_SPEC)
    b = AgentNetworkSpec.model_validate(VALID_SPEC)
    a.rollout.revision_history_limit = 3
    assert b.rollout.revision_history_limit == 10


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AgentNetworkSpec.model_validate({**VALID_SPEC, "agentz": 3})


def test_snake_case_names_work_in_python() -> None:
    spec = AgentNetworkSpec(agents=4, agents_per_pod=2, topology={"kind": "ring"})
    assert spec.dump()["agentsPerPod"] == 2 and spec.pods == 2
    assert AgentNetworkSpec.model_validate({**RING, "agents": 9, "agentsPerPod": 4}).pods == 3


def test_from_body_reads_views_and_tolerates_a_bad_status() -> None:
    body = types.MappingProxyType(
        {
            "apiVersion": "agentnet.dev/v1alpha1",
            "kind": "AgentNetwork",
            "metadata": types.MappingProxyType({"name": "demo", "uid": "u", "generation": 3, "resourceVersion": "7"}),
            "spec": types.MappingProxyType(VALID_SPEC),
            "status": {"observedGeneration": "not a number"},
        }
    )
    network = AgentNetwork.from_body(body)
    assert network.name == "demo" and network.metadata.generation == 3 and network.status is None
    ok = AgentNetwork.from_body({**body, "status": {"observedGeneration": 2, "kopf": {"progress": {}}}})
    assert ok.status is not None and ok.status.observed_generation == 2
