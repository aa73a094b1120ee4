"""The CRD's CEL rules, evaluated without an API server (needs cel-python).

Every rule must compile; the examples must pass every rule; each invalid
spec worded by a rule must fail exactly that rule and no other, so the API
server names the same field and message as the models do. The cluster test
checks the same table against a real API server.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import celpy
import yaml
from conftest import CRDS, EXAMPLES, apply_defaults
from invalid_specs import INVALID_SPECS, InvalidSpec

from agentnet_operator import names

ROOT = yaml.safe_load((CRDS / names.CRD_FILE).read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
ENV = celpy.Environment()




def _failures(schema: dict[str, Any], value: Any, path: str = "", old: Any = None) -> list[tuple[str, str]]:
    """(field path, message) of every rule that does not hold. `old`: the stored object of an update;
    without it (a create) transition rules (those reading oldSelf) are skipped, as the API server does,
    and so are they where the old object lacks the field."""
    out: list[tuple[str, str]] = []
    if schema.get("type") == "object" and isinstance(value, dict):
        for rule in schema.get("x-kubernetes-validations", ()):
            activation = {"self": celpy.json_to_cel(value)}
            if "oldSelf" in rule["rule"]:
                if old is None:
                    continue
                activation["oldSelf"] = celpy.json_to_cel(old)
            result = ENV.program(ENV.compile(rule["rule"])).evaluate(activation)
            if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
                out.append(((path + rule.get("fieldPath", "")).lstrip("."), rule["message"]))
        for name, sub in schema.get("properties", {}).items():
            if name in value and name != "metadata":
                before = old.get(name) if isinstance(old, dict) else None
                out += _failures(sub, value[name], f"{path}.{name}", before)
        if "additionalProperties" in schema:
            for key, item in value.items():
                before = old.get(key) if isinstance(old, dict) else None
                out += _failures(schema["additionalProperties"], item, f"{path}.{key}", before)
    elif schema.get("type") == "array" and isinstance(value, list):
        for index, item in enumerate(value):
            out += _failures(schema["items"], item, f"{path}[{index}]")
    return out


def _all_rules(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        return list(node.get("x-kubernetes-validations", ())) + [r for v in node.values() for r in _all_rules(v)]
    if isinstance(node, list):
        return [r for v in node for r in _all_rules(v)]
    return []


def test_every_rule_compiles() -> None:
    rules = _all_rules(ROOT)
    assert rules
    for rule in rules:
        ENV.compile(rule["rule"])


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_pass_every_rule(example: str) -> None:
    assert _failures(ROOT, apply_defaults(ROOT, yaml.safe_load((EXAMPLES / example).read_text()))) == []


CEL_CASES = [c for c in INVALID_SPECS if any(c.message in r["message"] for r in _all_rules(ROOT))]


@pytest.mark.parametrize("case", CEL_CASES, ids=lambda c: c.name)
def test_invalid_spec_fails_exactly_its_rule(case: InvalidSpec) -> None:
    failures = _failures(ROOT, apply_defaults(ROOT, case.manifest()))
    assert len(failures) == 1, failures
    ((path, message),) = failures
    assert case.message in message and path == case.field


@pytest.mark.parametrize("change", [
    {"enabled": False},
    {"storageClassName": "fast"},
    {"agents": {"size": "2Gi"}},
    {"nats": {"size": "2Gi"}},
    {"timeline": {"size": "512Mi"}},
])
def test_persistence_cannot_change_on_update(change: dict[str, Any]) -> None:
    stored = apply_defaults(ROOT, yaml.safe_load((EXAMPLES / "network.yaml").read_text()))
    updated = copy.deepcopy(stored)
    updated["spec"]["persistence"].update(change)
    (failure,) = _failures(ROOT, updated, old=stored)
    assert failure[0] == "spec.persistence" and "persistence cannot change" in failure[1]


def test_other_changes_pass_the_persistence_rule() -> None:
    stored = apply_defaults(ROOT, yaml.safe_load((EXAMPLES / "network.yaml").read_text()))
    updated = copy.deepcopy(stored)
    updated["spec"]["agents"] = 12
    updated["spec"]["retention"] = {"maxNodes": 5000, "timeline": {"maxAgeSeconds": 60, "maxEvents": 10}}
    assert _failures(ROOT, updated, old=stored) == []
