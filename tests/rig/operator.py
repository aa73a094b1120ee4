"""The operator under test, run as a real subprocess."""

import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rig import answers, wait_for
from rig.controlplane import free_port, stop_process


class RunningOperator:
    """`agentnet operator` as a subprocess, with its liveness probe and metrics on free ports.

    cert_manager: whether it takes certificates from cert-manager while its CRDs are installed. Off
    unless a test asks: the rig is shared, and another test's cert-manager must not change this one's
    certificates."""

    def __init__(self, kubeconfig: Path, log: Path, *, namespace: str | None = None,
                 resync_seconds: float = 60.0, args: tuple[str, ...] = (), cert_manager: bool = False,
                 attempts: int = 3):
        self.log = log
        scope = [f"--namespace={namespace}"] if namespace else []
        for attempt in range(1, attempts + 1):
            # Ports chosen by binding port 0 come from the ephemeral range: any process's outgoing
            # connection can take one before the operator binds it. Then choose again, as EmbeddedNats does.
            self.metrics_port, liveness_port = free_port(), free_port()
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("agentnet")), "operator", f"--kubeconfig={kubeconfig}",
                 *scope, f"--liveness-port={liveness_port}", f"--metrics-port={self.metrics_port}",
                 f"--resync-seconds={resync_seconds}", "--cert-manager" if cert_manager else "--no-cert-manager",
                 *args],
                stdout=log.open("wb"), stderr=subprocess.STDOUT)
            healthz = f"http://127.0.0.1:{liveness_port}/healthz"
            try:
                wait_for(lambda: answers(self.process, healthz, log), 60, "the operator's liveness probe")
                return
            except AssertionError:
                if attempt == attempts or "Address already in use" not in log.read_text():
                    raise
                stop_process(self.process)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
            text = response.read().decode()
        return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == name and labels.items() <= sample.labels.items())

    def writes(self) -> float:
        return sum(self.metric("agentnet_operator_api_requests_total", verb=verb)
                   for verb in ("apply", "delete", "patch_status"))

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        stop_process(self.process)
