"""A real Prometheus (built from its Go module by tests/prometheus/build.sh) scraping
given targets every second, for the autoscaler's `prometheus` metric source."""

import subprocess
from pathlib import Path

from rig import answers, wait_for
from rig.controlplane import die_with_parent, free_port, stop_process

BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "prometheus" / "build.sh"


def build_prometheus(binary: str = "prometheus") -> Path:
    """Build (or reuse) the cached binaries and return the path of `binary` (prometheus | promtool)."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT), binary], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


class RunningPrometheus:
    def __init__(self, binary: Path, targets: list[str], directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: agentnet\n    static_configs: [{{targets: [{', '.join(repr(t) for t in targets)}]}}]\n"
        )
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [str(binary), f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=(directory / "prometheus.log").open("wb"), preexec_fn=die_with_parent)
        wait_for(lambda: answers(self.process, f"{self.url}/-/ready", directory / "prometheus.log"), 60,
                 "Prometheus to be ready")

    def stop(self) -> None:
        stop_process(self.process)
