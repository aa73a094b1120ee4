"""The Spin app's manifest (spin.toml, which `make spin-image` packs) and the SpinApp variables
agreeing with it, without a cluster."""

from __future__ import annotations

import re
import tomllib

import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from agentnet_operator import names, spin
from agentnet_operator.model import Logging
from agentnet_runtime.catalogue import BY_NAME, COMPONENTS
from agentnet_runtime.components import create  # noqa: F401  (the components' modules import)

SPIN_VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")  # Spin's rule for variable names
TEMPLATE = re.compile(r"^\{\{ ([a-z0-9_]+) \}\}$")


def manifest() -> dict:
    """spin.toml as `python -m agentnet_operator.spin manifest` writes it, read back."""
    return tomllib.loads(tomli_w.dumps(spin.manifest()))


def test_the_manifest_routes_each_spin_component_under_its_prefix() -> None:
    toml = manifest()
    assert toml["spin_manifest_version"] == 2
    spin_components = [c.name for c in COMPONENTS if c.spin]
    assert spin_components == ["crdt-service", "egraph-service", "skill-verification"]
    assert {t["component"]: t["route"] for t in toml["trigger"]["http"]} == {
        "crdt-service": "/crdt/...", "egraph-service": "/egraph/...", "skill-verification": "/verify/..."}
    assert {n: c["source"] for n, c in toml["component"].items()} == {n: f"{n}.wasm" for n in spin_components}
    # the health check path is under the route, where Spin sends it to the component
    for name in spin_components:
        assert spin.health_path(name).startswith(BY_NAME[name].route + "/")


def test_every_component_variable_is_a_declared_one_with_the_settings_default() -> None:
    toml = manifest()
    declared = toml["variables"]
    assert all(SPIN_VARIABLE.match(n) for n in declared)
    for component, part in toml["component"].items():
        for setting, template in part["variables"].items():
            (variable,) = TEMPLATE.match(template).groups()
            assert variable in declared, (component, setting)
    egraph = toml["component"]["egraph-service"]["variables"]
    assert egraph["saturation_timeout_ms"] == "{{ egraph_service_saturation_timeout_ms }}"
    assert declared["egraph_service_saturation_timeout_ms"] == {"default": "5000"}  # settings.EgraphSettings
    assert declared["skill_verification_num_agents"] == {"default": "17"}  # the guides' K
    assert declared[names.SPIN_VAR_LOG_LEVEL] == {"default": Logging().level}
    # the identity a component has by what it is (COMPONENT_ID) is no variable
    assert not [n for n in declared if n.endswith("component_id")]


@given(component=st.sampled_from([c.name for c in COMPONENTS if c.spin]), data=st.data())
def test_a_spinapp_sets_only_variables_the_manifest_declares(component: str, data) -> None:
    part = manifest()["component"][component]["variables"]
    settings = [s for s in part if TEMPLATE.match(part[s]).group(1).startswith(component.replace("-", "_"))]
    given_settings = data.draw(st.dictionaries(st.sampled_from(settings).map(
        lambda s: data.draw(st.sampled_from([s, s.upper()]))), st.text(max_size=8), max_size=4))
    variables = spin.spinapp_variables("net", component, Logging(), given_settings)
    declared = manifest()["variables"]
    assert all(v["name"] in declared for v in variables)
    assert len({v["name"] for v in variables}) == len(variables)
    # as settings.load reads network.json: keys in any case, the last spelling of one setting wins
    for key, value in {k.lower(): v for k, v in given_settings.items()}.items():
        assert {"name": spin.setting_variable(component, key), "value": value} in variables


def test_cli_prints_the_manifest_the_image_and_the_components(capsys) -> None:
    assert spin.main(["image"]) == 0
    assert capsys.readouterr().out.strip() == names.SPIN_IMAGE
    assert spin.main(["components"]) == 0
    assert capsys.readouterr().out.split() == list(spin.SPIN_COMPONENTS)
    assert spin.main(["manifest"]) == 0
    assert tomllib.loads(capsys.readouterr().out) == manifest()
    assert spin.main(["nonsense"]) == 2


def test_each_spin_component_gets_every_setting_it_reads_as_a_variable() -> None:
    """The Spin build reads a setting from wasi:config/store under its own name (wasm/settings.py): the
    manifest must give the component a variable of that name for each one but its identity."""
    from agentnet_runtime.wasm import settings as wasm_settings
    from agentnet_runtime.wasm.routes import SPIN

    toml = manifest()
    for component, spin_component in SPIN.items():
        read = set(wasm_settings.schemas()[spin_component.settings_model]["properties"]) - {"component_id"}
        assert read <= set(toml["component"][component]["variables"]), component
