"""The `agentnet` command.

Subcommands are imported only when invoked, so `agentnet agent` never pays for
(or depends on) the operator's kopf and Kubernetes client imports.
"""

import importlib
import os

# One BLAS thread (read when numpy is first imported, so before any subcommand): the engine's numpy
# work is small (the topology's spectral check, layouts), and a BLAS thread pool spinning against the
# event loop on busy cores made the check many times slower. The image sets the same.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from agentnet_runtime import __version__  # noqa: E402

# name -> "module:attribute" of a click command. Add a line to add a subcommand.
SUBCOMMANDS: dict[str, str] = {
    "crds": "agentnet_operator.crdgen:crds_command",
    "operator": "agentnet_operator.main:operator_command",
    "agent": "agentnet_runtime.agent.main:agent_command",
    "component": "agentnet_runtime.components.main:component_command",
    "up": "agentnet_runtime.local.up:up_command",
    "history": "agentnet_operator.revision_cli:history_command",
    "rollback": "agentnet_operator.revision_cli:rollback_command",
    "render": "agentnet_operator.render:render_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *SUBCOMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            module, attribute = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agentnet")
def main() -> None:
    """Run networks of cooperating CRDT e-graph agents, locally or on Kubernetes."""


if __name__ == "__main__":
    main()
