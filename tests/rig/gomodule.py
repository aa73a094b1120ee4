"""Programs the rig builds from one Go module each (tests/<program>/build.sh, over tests/gomodule.sh)
and runs against its control plane as subprocesses: spin-operator, cert-manager."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rig import answers, wait_for
from rig.controlplane import die_with_parent, free_port, stop_process

TESTS = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 3600  # a cold build takes minutes on a busy 2-core machine


def build_script(program: str, *args: str) -> Path:
    """What tests/<program>/build.sh prints last: the built binary (or with --crds the CRD directory)."""
    result = subprocess.run(["bash", str(TESTS / program / "build.sh"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=BUILD_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"tests/{program}/build.sh {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class RunningController:
    """A controller as a subprocess (`command` and a --health-probe-bind-address on a free port), once
    its /readyz answers."""

    def __init__(self, command: list[str], log: Path, what: str, timeout: float = 60):
        probe_port = free_port()
        self.log = log
        self.process = subprocess.Popen([*command, f"--health-probe-bind-address=127.0.0.1:{probe_port}"],
                                        stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        wait_for(lambda: answers(self.process, f"http://127.0.0.1:{probe_port}/readyz", log), timeout,
                 f"{what}'s readiness probe")

    def stop(self) -> None:
        stop_process(self.process)
