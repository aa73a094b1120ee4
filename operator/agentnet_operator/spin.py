"""The Spin app: which components run in it, the manifest (spin.toml) `make spin-image` packs
with their wasm files, and the Spin variables a SpinApp binds.

Both sides are made here so they agree: every variable a SpinApp sets is one the manifest
declares, and every setting a Spin component reads is a variable of that component whose
default is the setting's own (settings.py). Application variables are shared by the whole
app, so a setting's is named `<component>_<setting>` (egraph_service_node_limit) and the
component reads it under the setting's own name (node_limit).

    python -m agentnet_operator.spin manifest   spin.toml, on stdout
    python -m agentnet_operator.spin image      the Spin app image's reference
    python -m agentnet_operator.spin components the Spin components' names, one a line
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

from agentnet_operator import names
from agentnet_runtime import __version__
from agentnet_runtime.catalogue import BY_NAME, HEALTH_PATH, SPIN_COMPONENTS

MANIFEST_VERSION = 2  # Spin 2 and 3 (what SpinKube's containerd-shim-spin reads)
APP_NAME = "agentnet-components"


def wasm_file(component: str) -> str:
    """The component's wasm file: build/wasm/<name>.wasm, and at the image's root beside /spin.toml."""
    return f"{component}.wasm"


def route(component: str) -> str:
    """The component's trigger route: its catalogue prefix and everything under it."""
    return f"{BY_NAME[component].route}/..."


def health_path(component: str) -> str:
    """Where a Spin component answers its health check: /health under its route, as Spin routes by path."""
    return f"{BY_NAME[component].route}{HEALTH_PATH}"


def _identifier(component: str) -> str:
    return component.replace("-", "_")


def setting_variable(component: str, setting: str) -> str:
    """The application variable of one setting (Spin's names: lower case, digits, underscores)."""
    return f"{_identifier(component)}_{setting.lower()}"


def _settings_fields(component: str) -> dict[str, Any]:
    """The component's settings and their defaults (its Service's settings model), without the
    identity ones the component has by what it is (COMPONENT_ID)."""
    from agentnet_runtime.components import Service, module_name

    module = importlib.import_module(module_name(component))
    (service,) = {v for v in vars(module).values()
                  if isinstance(v, type) and issubclass(v, Service) and v.name == component}
    model = service.settings_model
    identity = model.identity(component)
    return {name: field.default for name, field in model.model_fields.items() if name not in identity}


def _shared_variables() -> dict[str, str]:
    """Application variables every Spin component reads, with their defaults."""
    from agentnet_operator.model import Logging

    logging = Logging()
    return {names.SPIN_VAR_NETWORK: "", names.SPIN_VAR_LOG_LEVEL: logging.level, names.SPIN_VAR_LOG_FORMAT: logging.format}


def manifest(components: tuple[str, ...] = SPIN_COMPONENTS) -> dict[str, Any]:
    """spin.toml (manifest version 2) of the Spin app holding `components`."""
    shared = _shared_variables()
    variables: dict[str, dict[str, str]] = {name: {"default": value} for name, value in shared.items()}
    triggers = []
    parts: dict[str, Any] = {}
    for component in components:
        own = {name: f"{{{{ {name} }}}}" for name in shared}
        for setting, default in _settings_fields(component).items():
            variable = setting_variable(component, setting)
            variables[variable] = {"default": "" if default is None else str(default)}
            own[setting] = f"{{{{ {variable} }}}}"
        triggers.append({"route": route(component), "component": component})
        parts[component] = {"source": wasm_file(component), "variables": own}
    return {
        "spin_manifest_version": MANIFEST_VERSION,
        "application": {"name": APP_NAME, "version": __version__,
                        "description": "agentnet's request-handling components as Spin HTTP components"},
        "variables": variables,
        "trigger": {"http": triggers},
        "component": parts,
    }


def spinapp_variables(network: str, component: str, logging: Any, settings: Mapping[str, str] | None) -> list[dict[str, str]]:
    """SpinApp.spec.variables of one component: the network, its logging and the settings given
    (spec.components[].settings, keys in any case as network.json allows, the last of two spellings
    winning as in settings.load); the rest keep the manifest's defaults."""
    given = {setting_variable(component, key): value for key, value in (settings or {}).items()}
    return [
        {"name": names.SPIN_VAR_NETWORK, "value": network},
        {"name": names.SPIN_VAR_LOG_LEVEL, "value": logging.level},
        {"name": names.SPIN_VAR_LOG_FORMAT, "value": logging.format},
        *({"name": name, "value": value} for name, value in sorted(given.items())),
    ]


def main(argv: list[str]) -> int:
    if argv == ["manifest"]:
        import tomli_w

        sys.stdout.write(tomli_w.dumps(manifest()))
    elif argv == ["image"]:
        print(names.SPIN_IMAGE)
    elif argv == ["components"]:
        print("\n".join(SPIN_COMPONENTS))
    else:
        print("usage: python -m agentnet_operator.spin manifest|image|components", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
