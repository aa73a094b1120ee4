"""A Spin component's settings from what its host gives it: wasi:config/store (Spin's variables, spin.toml's
`[component.X.variables]`; `wasmtime serve -S config-var`) over the WASI environment (spin.toml's
`environment`, `wasmtime serve --env`), by the fields, defaults and bounds of settings.py's model.

pydantic's core is compiled and cannot load under WASI, so the build freezes each model's JSON schema
into the component (`agentnet_wasm_build.SCHEMAS`, written by wasm/build.sh); outside the build the
schema is taken from the model itself. What is read and how it is refused follows settings.load: the
upper-case name, an empty value meaning unset, "<NAME> must be > 0, got -5".
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

# JSON schema bounds -> the words settings.py's errors use, in the order pydantic checks them.
_BOUNDS = {"maximum": ("<=", lambda v, b: v <= b), "exclusiveMaximum": ("<", lambda v, b: v < b),
           "minimum": (">=", lambda v, b: v >= b), "exclusiveMinimum": (">", lambda v, b: v > b)}  # fmt: skip
_WHOLE = re.compile(r"([+-]?\d+)(?:\.0*)?")
FINITE = "allowInfNan"  # added to a number's schema: Field(allow_inf_nan=False), which JSON schema cannot say


class SettingError(ValueError):
    """A setting that breaks its rule; the message names the variable."""


def schemas() -> dict[str, dict[str, Any]]:
    """Settings model name -> its JSON schema: frozen in the build, else from settings.py."""
    try:
        from agentnet_wasm_build import SCHEMAS  # written by wasm/build.sh

        return SCHEMAS
    except ImportError:
        from agentnet_runtime import settings

        return {name: _schema(getattr(settings, name)) for name in ("CrdtSettings", "EgraphSettings", "VerificationSettings")}


def _schema(model: Any) -> dict[str, Any]:
    schema = model.model_json_schema()
    for name, info in model.model_fields.items():
        if any(getattr(rule, "allow_inf_nan", True) is False for rule in info.metadata):
            schema["properties"][name][FINITE] = False
    return schema


def _value(name: str, raw: str, field: dict[str, Any]) -> Any:
    kind = field.get("type")
    if "const" in field or "enum" in field:
        allowed = [field["const"]] if "const" in field else field["enum"]
        if raw not in allowed:
            raise SettingError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {raw}")
        return raw
    if kind == "integer":
        whole = _WHOLE.fullmatch(raw)  # pydantic reads "5.0" as 5, not "5e3"
        if whole is None:
            raise SettingError(f"{name} must be an integer, got {raw}")
        return int(whole.group(1))
    if kind == "number":
        value = _float(raw)
        if value is None:
            raise SettingError(f"{name} must be a number, got {raw}")
        if field.get(FINITE) is False and not math.isfinite(value):
            raise SettingError(f"{name} must be a finite number, got {raw}")
        return value
    return raw


def _float(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def given(config: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """name (lower case) -> value: the config store's, else the environment's; an empty value is unset
    in either, so an empty Spin variable (a setting whose default is None) leaves the environment's."""
    return {key.lower(): value for source in (environ, config) for key, value in source.items() if value.strip()}


def read(schema: dict[str, Any], component: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """field -> value: the variable of the field's name (any case) in `environ` (the environment, or
    `given`'s), else the default; COMPONENT_ID, if given, must be the component's own name.
    SettingError if one is refused."""
    given = {key.lower(): value for key, value in environ.items() if value.strip()}
    settings: dict[str, Any] = {}
    for field, rule in schema["properties"].items():
        name = field.upper()
        if field not in given:
            settings[field] = component if field == "component_id" else rule.get("default")
            continue
        value = _value(name, given[field], rule)
        for bound, (word, holds) in _BOUNDS.items():
            if bound in rule and not holds(value, rule[bound]):
                raise SettingError(f"{name} must be {word} {rule[bound]:g}, got {given[field]}")
        settings[field] = value
    if settings.get("component_id") != component:
        raise SettingError(f"COMPONENT_ID must be {component} for {component}, got {settings.get('component_id')}")
    return settings
