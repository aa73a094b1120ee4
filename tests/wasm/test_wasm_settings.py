"""The Spin build reads a component's settings (wasm/settings.py, from the JSON schema of settings.py's model)
as the Python process does (settings.load, pydantic): the same values accepted, the same refused, in the same words."""

from __future__ import annotations

import os
from unittest import mock

from components.component_support import component_config
from hypothesis import given
from hypothesis import strategies as st

from agentnet_runtime import settings
from agentnet_runtime.config import ConfigError
from agentnet_runtime.wasm import settings as wasm_settings
from agentnet_runtime.wasm.routes import SPIN

FIELDS = [(component, spin.settings_model, name) for component, spin in SPIN.items()
          for name in getattr(settings, spin.settings_model).model_fields if name != "component_id"]  # fmt: skip
VALUES = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                   st.sampled_from(["", "ten", "0.5", "1", "0", "-1", "0.999", "1001"]))  # fmt: skip


def python_reading(component: str, model: str, environ: dict[str, str]) -> dict | str:
    """What the Python process reads, less the defaults it takes from network.json (a Spin component has
    none: there those fields keep the model's own default, and none of them is used by its routes)."""
    config = component_config(component)
    with mock.patch.dict(os.environ, environ):
        try:
            read = settings.load(getattr(settings, model), component, config).model_dump()
        except ConfigError as error:
            return str(error)
    return {name: value for name, value in read.items() if name not in getattr(settings, model).network_defaults(config)}


def wasm_reading(component: str, model: str, environ: dict[str, str]) -> dict | str:
    try:
        read = wasm_settings.read(wasm_settings.schemas()[model], component, environ)
    except wasm_settings.SettingError as error:
        return str(error)
    return {name: value for name, value in read.items() if name not in getattr(settings, model).network_defaults(component_config(component))}


@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_a_setting_reads_the_same_in_the_spin_build(field, value):
    component, model, name = field
    environ = {name.upper(): value}
    assert wasm_reading(component, model, environ) == python_reading(component, model, environ)


def test_unset_settings_are_the_models_defaults_and_the_component_is_named():
    for component, spin in SPIN.items():
        read = wasm_reading(component, spin.settings_model, {})
        assert read == python_reading(component, spin.settings_model, {}) and read["component_id"] == component


def test_a_component_set_up_as_another_is_refused():
    assert wasm_reading("egraph-service", "EgraphSettings", {"COMPONENT_ID": "crdt-service"}) == \
        python_reading("egraph-service", "EgraphSettings", {"COMPONENT_ID": "crdt-service"}) == \
        "COMPONENT_ID must be egraph-service for egraph-service, got crdt-service"


NAMES = st.sampled_from(["saturation_timeout_ms", "SATURATION_TIMEOUT_MS", "Node_Limit", "node_limit", "log_level"])
SOURCE = st.dictionaries(NAMES, st.sampled_from(["", " ", "1", "250", "x"]), max_size=4)


@given(config=SOURCE, environ=SOURCE)
def test_a_setting_is_the_config_stores_else_the_environments(config, environ):
    """wasi:config/store (Spin variables) over the environment, by lower-case name; empty is unset in either."""
    merged = wasm_settings.given(config, environ)
    for name in {key.lower() for key in (*config, *environ)}:
        stored = [v for k, v in config.items() if k.lower() == name and v.strip()]
        environment = [v for k, v in environ.items() if k.lower() == name and v.strip()]
        assert merged.get(name) == (stored or environment or [None])[-1]
    assert set(merged) <= {key.lower() for key in (*config, *environ)}
