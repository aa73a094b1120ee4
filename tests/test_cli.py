import subprocess
import sys
from pathlib import Path

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
