"""Packaging: the Helm chart, the image's install steps and the kind e2e script.

- The chart lints strictly, its values schema refuses bad values by name, its
  CRD is a byte-for-byte copy of crds/, its appVersion is the agentnet version,
  its RBAC grants exactly what the operator uses (derived from the code), and
  every rendered variant passes the API server's own validation (server-side
  dry run, with Pod Security "restricted" enforced on the operator's pod).
- Installed into the control plane, the operator runs under exactly the chart's
  ServiceAccount and RBAC and brings examples/network.yaml to Ready, while a
  request outside its rules gets 403; upgrade and uninstall behave.
- The Dockerfile's pip steps build a working `agentnet` in a clean venv.
- scripts/e2e-kind.sh runs its steps in order against stub tools.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from agentnet_operator import model, names
from agentnet_operator.children import CHILD_KINDS
from agentnet_operator.cluster import RESOURCES
from agentnet_runtime import __version__
from rig import EXISTING_KUBECONFIG, answers, images, wait_established, wait_for
from rig.controlplane import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "agentnet"
DOCKERFILE = REPO / "Dockerfile"
E2E_SCRIPT = REPO / "scripts" / "e2e-kind.sh"
RELEASE = "agentnet"  # contains the chart name, so the objects are named "agentnet"

# Every option values.yaml documents, as `helm --set` arguments. "{ns}" is the test namespace.
OPTIONS: dict[str, list[str]] = {
    "defaults": [],
    "watch-namespace": ["--set", "watchNamespace={ns}"],
    "monitoring": ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                   "--set", "grafanaDashboard.enabled=true"],
    "monitoring-one-namespace": ["--set", "watchNamespace={ns}", "--set", "serviceMonitor.enabled=true",
                                 "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true"],
    "no-leader-election": ["--set", "operator.leaderElection.enabled=false", "--set", "replicaCount=1"],
}

# The stated list: everything the chart may grant, as (apiGroup, resource, verb).
WRITE = ("get", "list", "watch", "create", "patch", "delete")
NAMESPACED_GRANTS = {
    *(("agentnet.dev", "agentnetworks", verb) for verb in ("get", "list", "watch")),
    ("agentnet.dev", "agentnetworks/status", "patch"),
    *(("", resource, verb) for resource in ("configmaps", "secrets", "services", "persistentvolumeclaims")
      for verb in WRITE),
    *(("apps", resource, verb) for resource in ("statefulsets", "deployments", "controllerrevisions")
      for verb in WRITE),
    *(("core.spinkube.dev", "spinapps", verb) for verb in WRITE),
    *(("cert-manager.io", resource, verb) for resource in ("issuers", "certificates")
      for verb in ("list", "watch", "create", "patch", "delete")),
    *(("policy", "poddisruptionbudgets", verb) for verb in ("list", "watch", "create", "patch", "delete")),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "delete"),
    ("", "events", "create"),
}
# Kinds in agentnet_operator.cluster.RESOURCES the operator never creates or patches.
NOT_WRITTEN = {("v1", "Pod"): ("get", "list", "delete")}  # the autoscaler's `pods` source; stuck pods
# Kinds written and watched but never read one by one (no `get`: least privilege).
NOT_READ = {kind: ("list", "watch", "create", "patch", "delete") for kind in (
    ("policy/v1", "PodDisruptionBudget"), ("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate"))}
CRD_WATCH = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")}
NAMESPACE_WATCH = {("", "namespaces", verb) for verb in ("list", "watch")}
# Leader election: the Lease in the release's namespace (get and update by its name only).
LEASE_GRANTS = {("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")}


# --- helpers --------------------------------------------------------------------------------

def run(binary: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], input=input, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{shlex.join(result.args)} exited {result.returncode}:\n" \
                                   f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def options(name: str, ns: str) -> list[str]:
    return [arg.format(ns=ns) for arg in OPTIONS[name]]


def render(rig_bin: Path, *args: str, namespace: str = "agentnet-system") -> list[dict[str, Any]]:
    text = ok(run(rig_bin / "helm", "template", RELEASE, str(CHART), "--namespace", namespace, *args))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def chart_yaml() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


# --- the chart, rendered ----------------------------------------------------------------------

def test_chart_crd_is_a_verbatim_copy_of_crds():
    chart_crds = sorted(p.name for p in (CHART / "crds").iterdir())
    assert chart_crds == sorted(p.name for p in (REPO / "crds").iterdir()) == [names.CRD_FILE]
    assert (CHART / "crds" / names.CRD_FILE).read_bytes() == (REPO / "crds" / names.CRD_FILE).read_bytes(), \
        "charts/agentnet/crds/ drifted from crds/: run `make crds`"


def test_chart_app_version_is_the_agentnet_version_the_image_carries():
    chart = chart_yaml()
    assert chart["appVersion"] == __version__
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # The operator's image is the one networks run by default (model.DEFAULT_IMAGE).
    assert values["image"]["repository"] == model.IMAGE_REPOSITORY
    assert f"{values['image']['repository']}:{chart['appVersion']}" == model.DEFAULT_IMAGE
    dockerfile = DOCKERFILE.read_text()
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile
    assert "runtime/agentnet_runtime/__init__.py" in dockerfile  # the build checks VERSION against it


def test_helm_lint_strict(rig_bin):
    for name in OPTIONS:
        ok(run(rig_bin / "helm", "lint", "--strict", str(CHART), *options(name, "demo")))


@pytest.mark.parametrize(("args", "message"), [
    (["--set-string", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
    (["--set", "replicaCount=-1"], "at '/replicaCount': minimum: got -1, want 0"),
    (["--set", "replicaCount=2", "--set", "operator.leaderElection.enabled=false"],
     "at '/replicaCount': maximum: got 2, want 1"),
    (["--set", "operator.leaderElection.leaseDurationSeconds=0"], "at '/operator/leaderElection/leaseDurationSeconds'"),
    (["--set", "operator.leaderElection.enabled=yes"], "at '/operator/leaderElection/enabled'"),
    (["--set", "watchNamespace=Not_A_Namespace"], "at '/watchNamespace'"),
    (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
    (["--set", "operator.resyncSeconds=0"], "at '/operator/resyncSeconds'"),
    (["--set", "prometheusRule.thresholds.httpErrorRatio=5"], "at '/prometheusRule/thresholds/httpErrorRatio'"),
    (["--set", "replicas=1"], "additional properties 'replicas' not allowed"),
])
def test_values_schema_refuses_bad_values_naming_the_field(rig_bin, args, message):
    result = run(rig_bin / "helm", "template", RELEASE, str(CHART), *args)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_every_object_carries_the_recommended_labels(rig_bin):
    docs = render(rig_bin, *options("monitoring", "demo"))
    assert {doc["kind"] for doc in docs} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
        "PodDisruptionBudget", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"}
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["helm.sh/chart"] == f"agentnet-{chart_yaml()['version']}"
        assert labels["app.kubernetes.io/name"] == "agentnet"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == __version__
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "agentnet"


def test_operator_deployment_is_two_restricted_replicas_with_leader_election_probes_and_resources(rig_bin):
    docs = render(rig_bin, namespace="ops")
    (deployment,) = of_kind(docs, "Deployment")
    spec = deployment["spec"]
    # Two replicas, one leading: an upgrade rolls them one at a time, a drain evicts one at a time.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    (budget,) = of_kind(docs, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    pod = spec["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"] == spec["selector"] and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    (container,) = pod["containers"]
    assert container["image"] == model.DEFAULT_IMAGE
    args = container["args"]
    assert args[0] == "operator" and "--resync-seconds=60" in args
    lease = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]["leaderElection"]
    assert {"--leader-elect", "--lease-namespace=ops", f"--lease-name={RELEASE}",
            f"--lease-duration-seconds={lease['leaseDurationSeconds']}",
            f"--lease-renew-deadline-seconds={lease['renewDeadlineSeconds']}",
            f"--lease-retry-period-seconds={lease['retryPeriodSeconds']}"} <= set(args)
    assert not any(a.startswith("--namespace") for a in args)  # every namespace by default
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--liveness-port={ports['healthz']}" in args and f"--metrics-port={ports['metrics']}" in args
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsUser"] == 65532
    assert pod["serviceAccountName"] == RELEASE

    (service,) = of_kind(render(rig_bin), "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    # Network children use other app.kubernetes.io/component values: never selected by the chart.
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"


def test_without_leader_election_one_replica_is_recreated_and_no_lease_is_granted(rig_bin):
    docs = render(rig_bin, *options("no-leader-election", "ops"), namespace="ops")
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith(("--leader-elect", "--lease-"))]
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding") and not of_kind(docs, "PodDisruptionBudget")


def test_rbac_grants_what_the_operator_uses_and_nothing_more(rig_bin):
    # What the code writes and watches, derived from it: a kind added there fails here
    # until the chart grants it.
    needed = {("agentnet.dev", f"{names.PLURAL}/status", "patch"), ("", "events", "create")}
    for api_version, kind in {*RESOURCES, *CHILD_KINDS}:
        group = api_version.rpartition("/")[0]
        plural = RESOURCES[(api_version, kind)][1]
        verbs = ("list", "watch") if kind == names.KIND else {**NOT_WRITTEN, **NOT_READ}.get((api_version, kind), WRITE)
        needed |= {(group, plural, verb) for verb in verbs}
    assert needed - NAMESPACED_GRANTS == set(), "the chart does not grant what the operator uses"
    # ... and grants nothing for a resource the operator does not name.
    assert {(g, r) for g, r, _ in NAMESPACED_GRANTS} == {(g, r) for g, r, _ in needed}
    assert {("apps", "controllerrevisions", verb) for verb in WRITE} <= NAMESPACED_GRANTS  # revision history

    # Every namespace: one ClusterRole with exactly the stated list.
    docs = render(rig_bin, namespace="ops")
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert grants(cluster_role["rules"]) == NAMESPACED_GRANTS | CRD_WATCH
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"] == f"ops-{RELEASE}"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": "ops"}]
    # The Lease: a Role in the operator's own namespace, never cluster-wide; get/update by its name only.
    (lease_role,) = of_kind(docs, "Role")
    assert lease_role["metadata"]["namespace"] == "ops" and grants(lease_role["rules"]) == LEASE_GRANTS
    for rule in lease_role["rules"]:
        assert rule["verbs"] == ["create"] or rule["resourceNames"] == [RELEASE]
    (lease_binding,) = of_kind(docs, "RoleBinding")
    assert lease_binding["metadata"]["namespace"] == "ops"
    assert lease_binding["roleRef"]["name"] == lease_role["metadata"]["name"]
    assert lease_binding["subjects"] == binding["subjects"]

    # One namespace: the rules in a Role there; cluster-wide only what kopf observes.
    docs = render(rig_bin, "--set", "watchNamespace=demo", namespace="ops")
    (role, lease_role) = sorted(of_kind(docs, "Role"), key=lambda r: r["metadata"]["namespace"] != "demo")
    assert role["metadata"]["namespace"] == "demo" and grants(role["rules"]) == NAMESPACED_GRANTS
    assert lease_role["metadata"]["namespace"] == "ops" and grants(lease_role["rules"]) == LEASE_GRANTS
    (role_binding,) = [b for b in of_kind(docs, "RoleBinding") if b["metadata"]["namespace"] == "demo"]
    assert role_binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": "ops"}]
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert grants(cluster_role["rules"]) == CRD_WATCH | NAMESPACE_WATCH
    (deployment,) = of_kind(docs, "Deployment")
    assert "--namespace=demo" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]

    for rule in [*role["rules"], *cluster_role["rules"]]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def _exported_metric_names() -> set[str]:
    """Every sample name the runtime and the operator export (from their metric objects)."""
    from prometheus_client import Counter, Gauge, Histogram

    from agentnet_operator import cluster as operator_cluster
    from agentnet_operator import handlers
    from agentnet_runtime import refusals
    from agentnet_runtime.components import cache
    from agentnet_runtime.web import METRICS

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    metrics = [*(m for m in vars(METRICS).values() if isinstance(m, (Counter, Gauge, Histogram))),
               operator_cluster.API_REQUESTS, handlers.RECONCILES, handlers.RECONCILE_SECONDS, handlers.NETWORKS,
               cache.HITS, cache.MISSES, refusals.REFUSED]
    exported = {family.name + suffix for metric in metrics for family in metric.describe()
                for suffix in suffixes[family.type]}
    return exported | {"process_start_time_seconds"}  # prometheus-client's process collector


def queried_metrics(docs: list[dict[str, Any]]) -> set[str]:
    """The metric names every alert rule and Grafana panel of the rendered chart reads (not label names:
    those in by/without clauses and matchers are left out)."""
    (rule,) = of_kind(docs, "PrometheusRule")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    (dashboard_map,) = of_kind(docs, "ConfigMap")
    for dashboard in dashboard_map["data"].values():
        exprs += [t["expr"] for panel in json.loads(dashboard)["panels"] for t in panel.get("targets", [])]
    names = set()
    for expr in exprs:
        expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)
        names |= set(re.findall(r"\b((?:agentnet|process)_[a-z_]+)\b(?!\s*(?:=|!=|=~|!~))", expr))
    return names


def test_alerts_and_dashboard_query_metrics_the_code_exports(rig_bin):
    exported = _exported_metric_names()
    assert {"agentnet_http_requests_total", "agentnet_http_request_duration_seconds_bucket",
            "agentnet_operator_reconciles_total"} <= exported

    docs = render(rig_bin, *options("monitoring", "demo"))
    (rule,) = of_kind(docs, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {"AgentnetHighHTTPErrorRate", "AgentnetHighHTTPLatencyP99",
                           "AgentnetLowCacheHitRate", "AgentnetFrequentColdStarts"}
    # The thresholds of values.yaml: 5 % errors, p99 200 ms, 50 % cache hits, 3 cold starts an hour.
    assert alerts["AgentnetHighHTTPErrorRate"]["expr"].rstrip().endswith("> 0.05")
    assert alerts["AgentnetHighHTTPLatencyP99"]["expr"].rstrip().endswith("> 0.2")
    assert alerts["AgentnetLowCacheHitRate"]["expr"].rstrip().endswith("< 0.5")
    assert alerts["AgentnetFrequentColdStarts"]["expr"].rstrip().endswith("> 3")

    (dashboard_map,) = of_kind(docs, "ConfigMap")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["agentnet.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "agentnet.json").read_text())

    queried = queried_metrics(docs)
    assert {"agentnet_cache_hits_total", "agentnet_cache_misses_total", "agentnet_operator_networks"} <= queried
    assert "agentnet_network" not in queried  # the label the networks' ServiceMonitor adds
    assert queried - exported == set()  # every alert and panel reads a metric the code exports

    # The networks' ServiceMonitor scrapes the port the operator names on agent and component Services.
    (_, networks_monitor) = sorted(of_kind(docs, "ServiceMonitor"), key=lambda m: m["metadata"]["name"])
    assert networks_monitor["spec"]["endpoints"][0]["port"] == names.PORT_NAME_HTTP
    assert networks_monitor["spec"]["selector"]["matchLabels"] == {
        names.LABEL_NAME: names.APP_NAME, names.LABEL_PART_OF: names.PART_OF,
        names.LABEL_MANAGED_BY: names.MANAGED_BY}


# --- against the API server ---------------------------------------------------------------------

def _crd(group: str, kind: str, plural: str, spec_schema: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "required": ["spec"],
                         "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                        "metadata": {"type": "object"}, "spec": spec_schema}}}}]}}


_STR = {"type": "string"}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          "(([0-9]+)s)?(([0-9]+)ms)?)$"}
_SELECTOR = {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
    "matchLabels": _STR_MAP,
    "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "properties": {
        "key": _STR, "operator": _STR, "values": {"type": "array", "items": _STR}}}}}}
# The prometheus-operator CRDs (monitoring.coreos.com/v1), cut down to the fields the
# chart uses, with the real field names, types and patterns and no unknown fields
# allowed: a misspelt or misplaced field fails the dry run.
MONITORING_CRDS = [
    _crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", {
        "type": "object", "required": ["selector"], "properties": {
            "selector": _SELECTOR,
            "namespaceSelector": {"type": "object", "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STR}}},
            "jobLabel": _STR,
            "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                "port": _STR, "path": _STR, "scheme": {"type": "string", "enum": ["http", "https"]},
                "interval": _DURATION, "scrapeTimeout": _DURATION,
                "relabelings": {"type": "array", "items": {"type": "object", "properties": {
                    "action": {"type": "string", "enum": [
                        "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap",
                        "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase",
                        "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
                    "sourceLabels": {"type": "array", "items": {
                        "type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
                    "targetLabel": _STR, "regex": _STR, "replacement": _STR, "separator": _STR,
                    "modulus": {"type": "integer", "format": "int64"}}}}}}}}}),
    _crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", {
        "type": "object", "properties": {
            "groups": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                       "items": {"type": "object", "required": ["name"], "properties": {
                           "name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                           "rules": {"type": "array", "items": {"type": "object", "required": ["expr"], "properties": {
                               "alert": _STR, "record": _STR,
                               "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}],
                                        "x-kubernetes-int-or-string": True},
                               "for": _DURATION, "keep_firing_for": _DURATION,
                               "labels": _STR_MAP, "annotations": _STR_MAP}}}}}}}}),
]


@pytest.fixture(scope="module")
def monitoring_crds(kubectl) -> bool:
    """The monitoring.coreos.com CRDs: the cluster's own when it has them, else (on the local
    control plane only: never in someone's cluster) the cut-down ones. False when neither."""
    existing = set(kubectl("get", "crd", "-o", "name").split())
    for crd in MONITORING_CRDS:
        if f"customresourcedefinition.apiextensions.k8s.io/{crd['metadata']['name']}" not in existing:
            if EXISTING_KUBECONFIG:
                return False
            kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(crd))
        wait_established(kubectl, crd["metadata"]["name"])
    return True


@pytest.mark.cluster
@pytest.mark.parametrize("option", OPTIONS)
def test_rendered_chart_passes_server_side_dry_run(rig_bin, kubeconfig, kubectl, monitoring_crds, namespace, option):
    """Every object, validated by the API server itself; Pod Security "restricted" is
    enforced in the namespace, so the operator's pod template must meet it."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted")
    manifests = ok(run(rig_bin / "helm", "template", RELEASE, str(CHART), "--namespace", namespace,
                       "--include-crds", *options(option, namespace)))
    if not monitoring_crds:  # an existing cluster without prometheus-operator
        manifests = yaml.safe_dump_all([doc for doc in yaml.safe_load_all(manifests) if doc and doc["kind"]
                                        not in ("ServiceMonitor", "PrometheusRule")])
    result = run(rig_bin / "kubectl", f"--kubeconfig={kubeconfig}", "-n", namespace, "apply",
                 "--dry-run=server", "-f", "-", input=manifests)
    ok(result)
    assert "violate PodSecurity" not in result.stderr, result.stderr
    assert "unknown field" not in result.stderr, result.stderr

    docs = render(rig_bin, *options(option, namespace), namespace=namespace)
    if monitoring_crds and of_kind(docs, "ServiceMonitor"):  # the CRDs refuse a field they do not know
        monitor = of_kind(docs, "ServiceMonitor")[0]
        monitor["spec"]["endpoints"][0]["intervall"] = "30s"
        refused = run(rig_bin / "kubectl", f"--kubeconfig={kubeconfig}", "-n", namespace, "apply",
                      "--dry-run=server", "-f", "-", input=json.dumps(monitor))
        assert refused.returncode != 0 and 'unknown field "spec.endpoints[0].intervall"' in refused.stderr

    (deployment,) = of_kind(docs, "Deployment")
    pod_spec = {**deployment["spec"]["template"]["spec"], "serviceAccountName": "default"}  # dry run: no SA
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator-pod-template"}, "spec": pod_spec}
    ok(run(rig_bin / "kubectl", f"--kubeconfig={kubeconfig}", "-n", namespace, "apply",
           "--dry-run=server", "-f", "-", input=json.dumps(pod)))
    # ... where Pod Security is enforced: without the chart's capability drop, the same Pod is refused.
    del pod_spec["containers"][0]["securityContext"]["capabilities"]
    refused = run(rig_bin / "kubectl", f"--kubeconfig={kubeconfig}", "-n", namespace, "apply",
                  "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert refused.returncode != 0 and 'violates PodSecurity "restricted' in refused.stderr, refused.stderr


def _sa_kubeconfig(kubectl, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token), against the
    same API server and CA as the test's own kubeconfig."""
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json"))
    token = kubectl("-n", namespace, "create", "token", service_account, "--duration=1h").strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": service_account,
                                                "namespace": namespace}}]}))
    return path


def expect_access(rig_bin: Path, sa_kubeconfig: Path, expected: dict[tuple[str, ...], bool]) -> None:
    """`kubectl auth can-i` as the ServiceAccount answers as expected for every request
    (polled: the API server's RBAC authorizer learns new bindings from a watch)."""
    def answers() -> dict[tuple[str, ...], bool]:
        return {args: run(rig_bin / "kubectl", f"--kubeconfig={sa_kubeconfig}", "auth", "can-i", *args)
                .stdout.strip() == "yes" for args in expected}

    try:
        wait_for(lambda: answers() == expected, 15, "the ServiceAccount's access")
    except AssertionError:
        assert answers() == expected


def _forbidden(call) -> bool:
    try:
        call()
    except ApiException as error:
        return error.status == 403
    return False


class ChartOperator:
    """`agentnet operator` as a local process with exactly the args of the chart's
    Deployment (ports swapped for free ones) and the ServiceAccount's token."""

    def __init__(self, deployment: dict[str, Any], kubeconfig: Path, log: Path):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        liveness, metrics = free_port(), free_port()
        self.args = [arg for arg in container["args"]
                     if not arg.startswith(("--liveness-port=", "--metrics-port="))]
        self.log = log
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("agentnet")), *self.args, f"--kubeconfig={kubeconfig}",
             f"--liveness-port={liveness}", f"--metrics-port={metrics}"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT)
        healthz = f"http://127.0.0.1:{liveness}/healthz"
        wait_for(lambda: answers(self.process, healthz, log), 60, "the operator's /healthz")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.mark.cluster
def test_helm_install_operator_under_chart_rbac_upgrade_and_uninstall(
        rig_bin, helm, kubectl, kubeconfig, namespace, tmp_path):
    ns = namespace
    # On an existing cluster the image may not be pullable (make e2e-kind builds and loads it):
    # there the Deployment runs no pod, and the operator below still proves the RBAC.
    scale = ["--set", "replicaCount=0"] if EXISTING_KUBECONFIG else []
    wait = ["--namespace", ns, "--wait", "--timeout", "120s"]

    def deployment() -> dict[str, Any]:
        return json.loads(kubectl("-n", ns, "get", "deployment", RELEASE, "-o", "json"))

    def exists(*args: str) -> bool:
        return run(rig_bin / "kubectl", f"--kubeconfig={kubeconfig}", "get", *args).returncode == 0

    # 1. Install with the defaults: every namespace, ClusterRole + ClusterRoleBinding.
    notes = helm("install", RELEASE, str(CHART), *wait, *scale)
    assert "It watches AgentNetworks in every namespace." in notes
    installed = deployment()
    if not EXISTING_KUBECONFIG:  # kwok's fake node: pods become Ready without running
        assert installed["status"]["readyReplicas"] == 2
    assert exists("crd", names.CRD_NAME) and exists("clusterrole", f"{ns}-{RELEASE}")
    sa = _sa_kubeconfig(kubectl, ns, RELEASE, tmp_path / "sa.kubeconfig")
    expect_access(rig_bin, sa, {
        ("list", "secrets", "--all-namespaces"): True,
        ("patch", "deployments.apps", "-n", "default"): True,
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"): True,
        ("create", "pods", "-n", ns): False,  # pods: read and, when stuck, deleted; never made
        ("update", "agentnetworks.agentnet.dev", "-n", ns): False,
        ("list", "namespaces"): False,  # kopf lists them only when watching one namespace
        ("create", "leases.coordination.k8s.io", "-n", ns): True,  # leader election, in its own namespace only
        ("update", f"leases.coordination.k8s.io/{RELEASE}", "-n", ns): True,
        ("update", "leases.coordination.k8s.io/another", "-n", ns): False,
        ("create", "leases.coordination.k8s.io", "-n", "default"): False,
    })

    # 2. Upgrade: one namespace, other resources and resync; the pods roll one at a time.
    helm("upgrade", RELEASE, str(CHART), *wait, *scale, "--set", f"watchNamespace={ns}",
         "--set", "resources.limits.memory=384Mi", "--set", "operator.resyncSeconds=2")
    upgraded = deployment()
    assert upgraded["metadata"]["generation"] > installed["metadata"]["generation"]
    (container,) = upgraded["spec"]["template"]["spec"]["containers"]
    assert f"--namespace={ns}" in container["args"] and "--resync-seconds=2" in container["args"]
    assert container["resources"]["limits"]["memory"] == "384Mi"
    if not EXISTING_KUBECONFIG:
        assert upgraded["status"]["readyReplicas"] == upgraded["status"]["updatedReplicas"] == 2
    history = json.loads(helm("history", RELEASE, "-n", ns, "-o", "json"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
    assert not exists("clusterrole", f"{ns}-{RELEASE}")  # the cluster-wide rules went away
    assert exists("-n", ns, "role", RELEASE) and exists("clusterrole", f"{ns}-{RELEASE}-observe")
    expect_access(rig_bin, sa, {
        ("list", "secrets", "--all-namespaces"): False,
        ("patch", "deployments.apps", "-n", "default"): False,
        ("patch", "deployments.apps", "-n", ns): True,
        ("list", "namespaces"): True,
    })

    # 3. The operator with exactly the Deployment's args, as the ServiceAccount, reconciles the
    #    example network to Ready: the chart's RBAC suffices. Outside it: 403.
    operator = ChartOperator(upgraded, sa, tmp_path / "operator.log")
    try:
        kubectl("-n", ns, "apply", "-f", str(REPO / "examples" / "network.yaml"))
        kubectl("-n", ns, "wait", "--for=condition=Ready", "anet/ramanujan", "--timeout=120s")
        meta = json.loads(kubectl("-n", ns, "get", "anet", "ramanujan", "-o", "json"))["metadata"]
        assert not meta.get("finalizers")  # so a network can be deleted with or without the operator
        events = json.loads(kubectl("-n", ns, "get", "events", "-o", "json",
                                    "--field-selector", f"involvedObject.kind={names.KIND},reason=Applied"))
        assert events["items"], "the operator could not post its Applied event"

        as_sa = config.new_client_from_config(config_file=str(sa))
        core = client.CoreV1Api(as_sa)
        assert _forbidden(lambda: core.list_node())
        assert _forbidden(lambda: core.list_namespaced_secret("default"))
        assert _forbidden(lambda: core.delete_collection_namespaced_pod(ns, dry_run="All"))
        assert _forbidden(lambda: core.delete_namespace(ns, dry_run="All"))
        assert _forbidden(lambda: client.RbacAuthorizationV1Api(as_sa).create_namespaced_role(ns, client.V1Role(
            metadata=client.V1ObjectMeta(name="escalate"), rules=[client.V1PolicyRule(
                api_groups=["*"], resources=["*"], verbs=["*"])])))

        kubectl("-n", ns, "delete", "anet", "ramanujan", "--wait", "--timeout=60s")
        log = operator.log.read_text()
        assert "forbidden" not in log.lower(), log[-3000:]  # nothing the operator did was refused
    finally:
        operator.stop()
        print(f"operator log (tail):\n{operator.log.read_text()[-3000:]}")

    # 4. Uninstall: every object of the release goes; the CRD (from crds/) stays.
    helm("uninstall", RELEASE, "-n", ns, "--wait")
    assert json.loads(helm("list", "-n", ns, "-o", "json")) == []
    for kind in ("deployment", "serviceaccount", "service", "role", "rolebinding"):
        assert kubectl("-n", ns, "get", kind, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name") == ""
    assert not exists("clusterrole", f"{ns}-{RELEASE}-observe")
    assert not exists("clusterrolebinding", f"{ns}-{RELEASE}-observe")
    assert exists("crd", names.CRD_NAME)


# --- the image, without Docker -------------------------------------------------------------------

def _dockerfile_stages() -> list[list[str]]:
    """Instructions per stage: continuation lines joined, comments dropped."""
    stages: list[list[str]] = []
    logical = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        instruction, logical = logical.strip(), ""
        if not instruction:
            continue
        if instruction.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _pip_command(instruction: str, python: Path, wheels: Path) -> list[str]:
    """A RUN's pip command for a local venv: /wheels -> a temp dir, no BuildKit mount flags.
    --no-cache-dir is dropped so the machine's pip cache saves the downloads."""
    words = [w for w in shlex.split(instruction.removeprefix("RUN ")) if not w.startswith("--mount=")]
    assert words[0] == "pip", instruction
    return [str(python), "-m", "pip", *(str(wheels) if w == "/wheels" else w for w in words[1:]
                                         if w != "--no-cache-dir")]


@pytest.mark.timeout(900)
def test_dockerfile_pip_steps_build_a_working_agentnet_in_a_clean_venv(tmp_path):
    """Slow (about a minute; downloads from PyPI unless pip's cache has them): the Dockerfile's
    own COPY and pip lines, run in clean venvs, give an `agentnet` that starts."""
    build, final = _dockerfile_stages()
    # The build context: what the build stage copies, filtered as .dockerignore allows.
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    context = tmp_path / "src"
    context.mkdir()
    for instruction in build:
        if instruction.startswith("COPY "):
            *sources, _ = instruction.split()[1:]
            for source in sources:
                assert source in allowed, f".dockerignore keeps {source} out of the build context"
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, context / source,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info", "*.so"))
                else:
                    shutil.copy2(REPO / source, context / source)

    # The build stage's version check passes for the right VERSION and stops a wrong one.
    (check,) = [i for i in build if "__version__" in i]
    shell = check.removeprefix("RUN ")
    env = {**os.environ, "VERSION": __version__}
    assert subprocess.run(["sh", "-c", shell], cwd=context, env=env, capture_output=True).returncode == 0
    wrong = subprocess.run(["sh", "-c", shell], cwd=context, env={**env, "VERSION": "9.9.9"},
                           capture_output=True, text=True)
    assert wrong.returncode != 0 and "9.9.9" in wrong.stderr

    wheels = tmp_path / "wheels"
    (pip_wheel,) = [i for i in build if " pip wheel " in f" {i} "]
    (pip_install,) = [i for i in final if " pip install " in f" {i} "]
    assert "--no-index" in pip_install  # the final stage installs only what the build stage built
    for stage, instruction, cwd in (("build", pip_wheel, context), ("image", pip_install, tmp_path)):
        env_dir = tmp_path / f"venv-{stage}"
        venv.create(env_dir, with_pip=True)
        python, *args = _pip_command(instruction, env_dir / "bin" / "python", wheels)
        ok(run(Path(python), *args, cwd=cwd, timeout=800))

    image = tmp_path / "venv-image" / "bin"
    assert ok(run(image / "agentnet", "--version")).strip() == f"agentnet, version {__version__}"
    # The operator's and the runtime's imports resolve; no dev tools came along.
    ok(run(image / "python", "-c", "import kopf, kubernetes, nats, duckdb, starlette, uvicorn; "
                                   "import agentnet_operator.handlers, agentnet_runtime.agent.main"))
    assert "--liveness-port" in ok(run(image / "agentnet", "operator", "--help"))
    # The wheel carries the engine compiled (setup.py), as the benchmarks measured it.
    compiled = ok(run(image / "python", "-c", "from agentnet_runtime.core import compiled_modules; "
                                              "print(*sorted(compiled_modules()))"))
    assert compiled.split() == images.compiled_engine_modules()
    assert run(image / "python", "-c", "import pytest").returncode != 0


# --- make e2e-kind, with stub tools ----------------------------------------------------------------

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "{log}"
[[ " $* " == *" -f - "* ]] && cat >/dev/null  # read a piped manifest, as the real tool does
case "$(basename "$0") $*" in
  "docker info"*) [[ -z "${{NO_ENGINE:-}}" ]] ;;
  "kind get clusters"*) ;;
  kubectl*"create namespace"*) printf 'apiVersion: v1\\nkind: Namespace\\nmetadata: {{name: demo}}\\n' ;;
  kubectl*"apply -f examples/"*"-o name"*) echo agentnetwork.agentnet.dev/ramanujan ;;
  *) ;;
esac
"""


def _stub_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "helm"):
        (bin_dir / tool).write_text(STUB.format(log=log))
        (bin_dir / tool).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}, log


def test_e2e_kind_script_runs_its_steps_in_order(tmp_path):
    """The script cannot run here (no Docker engine): bash -n, shellcheck (`make host-packages`
    installs it), and a run against stub docker/kind/kubectl/helm that records every call."""
    ok(run(Path("/bin/bash"), "-n", str(E2E_SCRIPT)))
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: `make host-packages` installs it"
    ok(run(Path(shellcheck), str(E2E_SCRIPT)))

    env, log = _stub_path(tmp_path)
    ok(run(Path("/bin/bash"), str(E2E_SCRIPT), env=env, cwd=tmp_path))
    calls = log.read_text().splitlines()
    image = f"{model.IMAGE_REPOSITORY}:{__version__}"
    expected = [
        "docker info",
        f"docker build --build-arg VERSION={__version__} --tag {image} .",
        "kind get clusters",
        "kind create cluster --name agentnet --wait 120s",
        f"kind load docker-image {image} --name agentnet",
        "helm upgrade --install agentnet charts/agentnet",
        "kubectl --context kind-agentnet apply --server-side --force-conflicts -f charts/agentnet/crds/",
        "kubectl --context kind-agentnet -n demo apply -f examples/network.yaml -o name",
        "kubectl --context kind-agentnet -n demo wait --for=condition=Ready agentnetwork.agentnet.dev/ramanujan",
    ]
    positions = [next(i for i, call in enumerate(calls) if call.startswith(step)) for step in expected]
    assert positions == sorted(positions), calls
    (install,) = [call for call in calls if call.startswith("helm upgrade --install")]
    assert f"image.repository={model.IMAGE_REPOSITORY}" in install and f"image.tag={__version__}" in install

    no_engine = run(Path("/bin/bash"), str(E2E_SCRIPT), env={**env, "NO_ENGINE": "1"}, cwd=tmp_path)
    assert no_engine.returncode != 0 and "no Docker engine" in no_engine.stderr
