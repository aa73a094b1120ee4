"""The chart's alert rules, as rendered by helm, tested by the real `promtool test rules`
(built from the Prometheus Go module the rig already builds): every alert fires on series
that break its threshold for its `for`, and stays quiet on series that do not."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import of_kind, options, render

from rig.prometheus import build_prometheus

# The labels every series of a network carries once scraped (the ServiceMonitor adds agentnet_network).
NET = 'namespace="demo",agentnet_network="net"'
ALERT_LABELS = {"namespace": "demo", "agentnet_network": "net", "severity": "warning"}  # severity: values.yaml


@pytest.fixture(scope="module")
def promtool() -> Path:
    return build_prometheus("promtool")


@pytest.fixture(scope="module")
def rules(rig_bin: Path, tmp_path_factory) -> Path:
    """The PrometheusRule's groups, as rendered with the default thresholds, in a rule file."""
    (rule,) = of_kind(render(rig_bin, *options("monitoring", "demo")), "PrometheusRule")
    path = tmp_path_factory.mktemp("rules") / "agentnet.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def alert(labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {"exp_labels": {**ALERT_LABELS, **labels}, "exp_annotations": {"summary": summary, "description": description}}


# One case per alert: (alert name, input series, time to evaluate at, the alerts expected then).
# Each feeds one app (or pod) past the threshold and one within it, so the case fails if the alert
# fires for both, for neither or only before its `for` (10m; cold starts have none).
CASES = {
    "AgentnetHighHTTPErrorRate": (
        [  # stream-red: 10 % 5xx; crdt-service 1 %
            (f'agentnet_http_requests_total{{{NET},app="stream-red",method="POST",route="/submit",status="200"}}', "0+90x40"),
            (f'agentnet_http_requests_total{{{NET},app="stream-red",method="POST",route="/submit",status="500"}}', "0+10x40"),
            (f'agentnet_http_requests_total{{{NET},app="crdt-service",method="POST",route="/merge",status="200"}}', "0+99x40"),
            (f'agentnet_http_requests_total{{{NET},app="crdt-service",method="POST",route="/merge",status="500"}}', "0+1x40"),
        ],
        [("5m", []), ("20m", [alert(
            {"app": "stream-red"},
            "stream-red of network net (demo) answers more than 5% of HTTP requests with a 5xx",
            "10% of its requests failed over the last 5 minutes.")])],
    ),
    "AgentnetHighHTTPLatencyP99": (
        [  # egraph-service: every request in (0.25 s, 0.5 s]; duck-colors: every one under 0.1 s
            *((f'agentnet_http_request_duration_seconds_bucket{{{NET},app="egraph-service",method="POST",'
               f'route="/saturate",le="{le}"}}', "0+0x40" if le in ("0.1", "0.25") else "0+100x40")
              for le in ("0.1", "0.25", "0.5", "+Inf")),
            *((f'agentnet_http_request_duration_seconds_bucket{{{NET},app="duck-colors",method="GET",'
               f'route="/palette",le="{le}"}}', "0+100x40") for le in ("0.1", "0.25", "0.5", "+Inf")),
        ],
        [("5m", []), ("20m", [alert(
            {"app": "egraph-service"},
            "p99 HTTP latency of egraph-service of network net (demo) is over 0.2s",
            "p99 over the last 5 minutes: 497.5ms.")])],
    ),
    "AgentnetLowCacheHitRate": (
        [  # crdt-service: 30 % hits; egraph-service 90 %; an idle cache (no lookups) is not a low hit rate
            (f'agentnet_cache_hits_total{{{NET},app="crdt-service",cache="merge"}}', "0+30x40"),
            (f'agentnet_cache_misses_total{{{NET},app="crdt-service",cache="merge"}}', "0+70x40"),
            (f'agentnet_cache_hits_total{{{NET},app="egraph-service",cache="memo"}}', "0+90x40"),
            (f'agentnet_cache_misses_total{{{NET},app="egraph-service",cache="memo"}}', "0+10x40"),
            (f'agentnet_cache_hits_total{{namespace="demo",agentnet_network="idle",app="crdt-service",cache="merge"}}', "0x40"),
            (f'agentnet_cache_misses_total{{namespace="demo",agentnet_network="idle",app="crdt-service",cache="merge"}}', "0x40"),
        ],
        [("5m", []), ("25m", [alert(
            {"app": "crdt-service"},
            "cache hit rate of crdt-service of network net (demo) is under 50%",
            "30% of cache lookups hit over the last 10 minutes (crdt-service merge cache, egraph-service memo).")])],
    ),
    "AgentnetFrequentColdStarts": (
        [  # agent-0 restarts 4 times in 4 minutes; agent-1 twice
            (f'process_start_time_seconds{{{NET},app="agent",pod="net-agents-0"}}', "60 120 180 240 300x40"),
            (f'process_start_time_seconds{{{NET},app="agent",pod="net-agents-1"}}', "60 120 180x40"),
        ],
        [("3m", []), ("5m", [alert(
            {"app": "agent", "pod": "net-agents-0"},
            "net-agents-0 of network net (demo) started more than 3 times within an hour",
            "4 process starts in the last hour: each one begins cold (empty replica, full resync from its "
            "neighbours). A crash loop or OOM kills?")])],
    ),
}


def unit_test(name: str, series, evals) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": expected} for at, expected in evals],
    }


def promtool_test(promtool: Path, rules: Path, tests: list[dict[str, Any]], directory: Path) -> subprocess.CompletedProcess:
    path = directory / "agentnet.tests.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run([str(promtool), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


def test_every_alert_of_the_chart_has_a_case(rules):
    alerts = {r["alert"] for group in yaml.safe_load(rules.read_text())["groups"] for r in group["rules"]}
    assert alerts == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_fires_past_its_threshold_and_not_within(promtool, rules, tmp_path, name):
    result = promtool_test(promtool, rules, [unit_test(name, *CASES[name])], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_a_case_whose_alert_does_not_fire(promtool, rules, tmp_path):
    """The cases can fail: the same series with the firing app's errors cut below the threshold."""
    series, evals = CASES["AgentnetHighHTTPErrorRate"]
    calm = [(s, "0+1x40" if 'status="500"' in s else v) for s, v in series]
    result = promtool_test(promtool, rules, [unit_test("AgentnetHighHTTPErrorRate", calm, evals)], tmp_path)
    assert result.returncode != 0 and "AgentnetHighHTTPErrorRate" in result.stdout + result.stderr
