"""The CRD in crds/ is generated from the models, structural, and complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import CRDS, apply_defaults

from agentnet_operator import crdgen, model, names

CRD_PATH = CRDS / names.CRD_FILE
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
ALLOWED_KEYS = {
    "type", "description", "properties", "required", "items", "additionalProperties", "enum", "default",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "minProperties", "maxProperties", "format", "nullable",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-int-or-string", "anyOf",
}  # fmt: skip


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdgen.crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_committed_crd_is_what_the_models_generate() -> None:
    assert CRD_PATH.exists(), f"run `agentnet crds -o crds` to create {CRD_PATH}"
    assert CRD_PATH.read_text() == crdgen.crd_yaml(), "crds/ is out of date: run `agentnet crds -o crds`"


def test_generation_is_byte_stable() -> None:
    assert crdgen.crd_yaml() == crdgen.crd_yaml()
    assert "&id" not in crdgen.crd_yaml()  # no YAML anchors/aliases


def test_cli_prints_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(crdgen.crds_command, [])
    assert printed.exit_code == 0 and printed.output == crdgen.crd_yaml()

    assert runner.invoke(crdgen.crds_command, ["-o", str(tmp_path), "--check"]).exit_code == 1
    assert runner.invoke(crdgen.crds_command, ["-o", str(tmp_path)]).exit_code == 0
    assert (tmp_path / names.CRD_FILE).read_text() == crdgen.crd_yaml()
    assert runner.invoke(crdgen.crds_command, ["-o", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / names.CRD_FILE).write_text(crdgen.crd_yaml() + "# edited\n")
    assert runner.invoke(crdgen.crds_command, ["-o", str(tmp_path), "--check"]).exit_code == 1
    assert runner.invoke(crdgen.crds_command, ["--check"]).exit_code != 0


def test_cli_is_reachable_from_agentnet() -> None:
    from agentnet_runtime.cli import main

    result = CliRunner().invoke(main, ["crds"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["metadata"]["name"] == names.CRD_NAME


def test_resource_identity(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "agentnetworks.agentnet.dev"
    assert spec["group"] == "agentnet.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "AgentNetwork" and spec["names"]["plural"] == "agentnetworks"
    assert spec["names"]["shortNames"] == ["anet"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]


def _at(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in re.sub(r"\[.*?\]", "", json_path).strip(".").split("."):
        if node is None:
            return None
        if node.get("type") == "array":
            node = node["items"]
        node = node.get("properties", {}).get(part)
    return node


def test_subresources(crd: dict[str, Any], schema: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    assert version["subresources"]["status"] == {}
    scale = version["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.agents",
        "statusReplicasPath": ".status.agents.ready",
        "labelSelectorPath": ".status.selector",
    }
    assert _at(schema, ".spec.agents")["type"] == "integer"
    assert _at(schema, ".status.agents.ready")["type"] == "integer"
    assert _at(schema, ".status.selector")["type"] == "string"


def test_printer_columns(crd: dict[str, Any], schema: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    default_columns = [c["name"] for c in columns if not c.get("priority")]
    assert default_columns == ["Ready", "Agents", "Topology", "Revision", "Age"]
    for column in columns:
        if column["jsonPath"].startswith(".metadata"):
            continue
        assert _at(schema, column["jsonPath"]) is not None, column


def _walk(node: dict[str, Any], path: str, seen: list[str]) -> None:
    seen.append(path)
    assert set(node) <= ALLOWED_KEYS, f"{path}: unexpected keys {set(node) - ALLOWED_KEYS}"
    if node.get("x-kubernetes-int-or-string"):
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        assert "type" not in node, path
        return
    assert "anyOf" not in node, f"{path}: anyOf is only allowed for int-or-string"
    assert node.get("type") in TYPES, f"{path}: every node needs a type"
    kind = node["type"]
    if kind == "object":
        props, extra = node.get("properties"), node.get("additionalProperties")
        assert not (props is not None and extra is not None), f"{path}: properties and additionalProperties"
        assert props is not None or extra is not None, f"{path}: object without properties"
        for name, sub in (props or {}).items():
            assert sub.get("description"), f"{path}.{name}: no description for kubectl explain"
            _walk(sub, f"{path}.{name}", seen)
        assert set(node.get("required", ())) <= set(props or ()), path
        if extra is not None:
            assert "maxProperties" in node, f"{path}: unbounded map (CEL cost)"
            _walk(extra, f"{path}.*", seen)
    elif kind == "array":
        assert "maxItems" in node, f"{path}: unbounded list (CEL cost)"
        _walk(node["items"], f"{path}[]", seen)
    elif kind == "string" and path not in (".apiVersion", ".kind"):  # no CEL reads those two
        assert "maxLength" in node or node.get("format") == "date-time", f"{path}: unbounded string (CEL cost)"
    if node.get("x-kubernetes-list-type") == "map":
        item = node["items"]
        for key in node["x-kubernetes-list-map-keys"]:
            assert key in item.get("required", ()), f"{path}: list-map key {key} must be required"
    for rule in node.get("x-kubernetes-validations", ()):
        assert set(rule) <= {"rule", "message", "fieldPath"} and rule["message"], path


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    assert schema["type"] == "object"
    assert schema["properties"]["metadata"] == {"type": "object"}
    rest = {k: v for k, v in schema["properties"].items() if k != "metadata"}
    seen: list[str] = []
    _walk({**schema, "properties": rest}, "", seen)
    assert len(seen) > 100
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "oneOf", "allOf", "x-kubernetes-preserve-unknown-fields", "type: 'null'", "title:"):
        assert forbidden not in text


def test_spec_fields_are_not_nullable_status_fields_are(schema: dict[str, Any]) -> None:
    # In the spec, null is pruned (= absent), which is what CEL's has() needs.
    assert "nullable" not in yaml.safe_dump(schema["properties"]["spec"])
    assert _at(schema, ".status.nats.ready")["nullable"] is True


def _rules(node: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        found += [(r["rule"], r["message"]) for r in node.get("x-kubernetes-validations", ())]
        for value in node.values():
            found += _rules(value)
    elif isinstance(node, list):
        for value in node:
            found += _rules(value)
    return found


def test_every_model_rule_is_in_the_schema(schema: dict[str, Any]) -> None:
    classes = [c for c in vars(model).values() if isinstance(c, type) and issubclass(c, model._Object)]
    expected = {(r.cel, r.message) for c in classes for r in c.rules}
    assert len(expected) >= 10
    expected |= {(r.cel, r.message) for r in model.TRANSITION_RULES}
    assert expected == set(_rules(schema))


def test_cel_rules_live_where_their_fields_are(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert any("agents * self.topology.degree" in r["rule"] for r in spec["x-kubernetes-validations"])
    autoscaling = _at(schema, ".spec.components.autoscaling")
    assert autoscaling["x-kubernetes-validations"][0]["fieldPath"] == ".minReplicas"
    for rule in _rules(schema):
        assert len(rule[0]) < 400  # keep them readable and cheap




@pytest.mark.parametrize(
    "example", ["network.yaml", "ring.yaml", "autoscaling.yaml", "spinapp.yaml", "external-nats.yaml"]
)
def test_crd_defaults_equal_model_defaults(schema: dict[str, Any], example: str) -> None:
    """The models are the one source of defaults: the API server, defaulting
    with the generated schema, ends where pydantic does."""
    from conftest import load_example

    spec = load_example(example)["spec"]
    defaulted = apply_defaults(schema["properties"]["spec"], spec)
    assert defaulted == model.AgentNetworkSpec.model_validate(spec).dump()


def test_defaults_are_valid_for_the_model(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    model.Nats.model_validate(spec["nats"]["default"])
    model.Rollout.model_validate(spec["rollout"]["default"])
    behavior = _at(schema, ".spec.components.autoscaling.behavior")["default"]
    model.Behavior.model_validate(behavior)


def test_enums_come_from_the_catalogue_and_topology(schema: dict[str, Any]) -> None:
    from agentnet_runtime.catalogue import COMPONENT_NAMES
    from agentnet_runtime.core.topology import TOPOLOGY_KINDS

    assert _at(schema, ".spec.components.name")["enum"] == list(COMPONENT_NAMES)
    assert set(_at(schema, ".spec.topology.kind")["enum"]) == set(TOPOLOGY_KINDS)
    components = _at(schema, ".spec.components")
    assert components["x-kubernetes-list-type"] == "map" and components["x-kubernetes-list-map-keys"] == ["name"]
    assert components["maxItems"] == len(COMPONENT_NAMES)


def test_structural_conversion_refuses_what_it_cannot_express() -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural({"anyOf": [{"type": "string"}, {"type": "boolean"}]}, nullable=False)
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural({"oneOf": [{"type": "string"}]}, nullable=False)
