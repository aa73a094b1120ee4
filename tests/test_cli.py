import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentnet_runtime import __version__

AGENTNET = str(Path(sys.executable).with_name("agentnet"))


def test_version():
    result = subprocess.run([AGENTNET, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"agentnet, version {__version__}"


def test_help_lists_subcommands():
    result = subprocess.run([AGENTNET, "--help"], capture_output=True, text=True, check=True)
    assert "Usage: agentnet" in result.stdout
    assert "crds" in result.stdout


def test_unknown_subcommand_is_refused():
    result = subprocess.run([AGENTNET, "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr


# --- agentnet render ------------------------------------------------------------------------

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENTNET, "render", *args], capture_output=True, text=True)


def _without_uid(objects):
    for obj in objects:
        for owner in obj["metadata"].get("ownerReferences", ()):
            owner.pop("uid")
    return objects


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_render_prints_what_the_operator_would_create(example: Path) -> None:
    from agentnet_operator.children import desired_children
    from agentnet_operator.model import AgentNetwork
    from agentnet_operator.render import RENDER_API_TOKEN, render_secrets
    from agentnet_operator.revisions import controller_revision, revision_content

    result = render("-f", str(example))
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    body = yaml.safe_load(example.read_text())
    name = body["metadata"]["name"]
    # What the operator's builders make for this network once it exists in namespace default
    # (with the uid the API server would give it), less the uid.
    network = AgentNetwork.model_validate({**body, "metadata": {**body["metadata"], "namespace": "default",
                                                                "uid": "0b1c2d3e-0000-4000-8000-000000000001"}})
    managed = network.spec.nats.managed
    expected = [controller_revision(network, 1, revision_content(network.spec)),
                *desired_children(network, api_token=RENDER_API_TOKEN, **(render_secrets() if managed else {}))]
    assert objects == _without_uid(expected)
    for obj in objects:
        assert obj["metadata"]["namespace"] == "default"
        assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "agentnet.dev/v1alpha1", "kind": "AgentNetwork",
                                                       "name": name, "controller": True, "blockOwnerDeletion": True}]
    kinds = {o["kind"] for o in objects}
    assert {"ControllerRevision", "ConfigMap", "StatefulSet", "Service"} <= kinds
    assert render("-f", str(example)).stdout == result.stdout  # byte for byte: diffable


def test_render_takes_the_namespace_and_several_documents(tmp_path: Path) -> None:
    ring = yaml.safe_load((EXAMPLES[0].parent / "ring.yaml").read_text())
    other = {**ring, "metadata": {"name": "other", "namespace": "elsewhere"}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([ring, other]))
    result = render("-f", str(path), "-n", "mine")
    assert result.returncode == 0, result.stderr
    where = {(o["metadata"]["ownerReferences"][0]["name"], o["metadata"]["namespace"])
             for o in yaml.safe_load_all(result.stdout)}
    assert where == {(ring["metadata"]["name"], "mine"), ("other", "elsewhere")}  # the file's namespace wins


@pytest.mark.parametrize(
    ("spec_change", "expected"),
    [
        ({"agents": 0}, "spec.agents: Input should be greater than or equal to 1"),
        ({"components": [{"name": "crdt-service", "env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}]},
         "spec.components[0].env[0].name: name is set by the operator and cannot be overridden"),
        ({"agentScheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
         "spec.agentScheduling.tolerations[0].value: a toleration with operator Exists has no value"),
        ({"topology": {"kind": "torus"}, "agents": 10}, "torus topology with 10 agents: torus topology needs"),
    ],
)
def test_render_refuses_a_bad_file_naming_the_field(tmp_path: Path, spec_change, expected) -> None:
    body = yaml.safe_load((EXAMPLES[0].parent / "ring.yaml").read_text())
    body["spec"].update(spec_change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(body))
    result = render("-f", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_render_refuses_what_is_not_yaml_or_not_a_network(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("spec: [unclosed")
    assert "cannot read" in render("-f", str(path)).stderr
    path.write_text("")
    assert "holds no AgentNetwork" in render("-f", str(path)).stderr
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = render("-f", str(path))
    assert result.returncode == 1 and "kind: Input should be 'AgentNetwork'" in result.stderr, result.stderr
