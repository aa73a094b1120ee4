"""The operator's only door to the API server: server-side apply, delete,
status patches — plus a cache of children fed by watch events, so a reconcile
reads nothing from the API server and writes only what changed.
"""

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from agentnet_operator import names

API_REQUESTS = Counter("agentnet_operator_api_requests_total",
                       "Requests the operator sent to the Kubernetes API", ["verb", "kind"])

# (apiVersion, kind) -> (URL prefix, plural) of every kind the operator writes.
RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Secret"): ("/api/v1", "secrets"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims"),
    ("apps/v1", "StatefulSet"): ("/apis/apps/v1", "statefulsets"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("apps/v1", "ControllerRevision"): ("/apis/apps/v1", "controllerrevisions"),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets"),
    ("v1", "Pod"): ("/api/v1", "pods"),  # read (the autoscaler's pods source); deleted only when stuck
    (names.SPINAPP_API_VERSION, names.SPINAPP_KIND): (f"/apis/{names.SPINAPP_API_VERSION}", "spinapps"),
    (names.CERT_MANAGER_API_VERSION, names.ISSUER_KIND): (f"/apis/{names.CERT_MANAGER_API_VERSION}", "issuers"),
    (names.CERT_MANAGER_API_VERSION, names.CERTIFICATE_KIND): (
        f"/apis/{names.CERT_MANAGER_API_VERSION}", "certificates"),
    (names.API_VERSION, names.KIND): (f"/apis/{names.API_VERSION}", names.PLURAL),
}

# On each child: digest of what the operator last applied. A changed digest
# means the spec changed; an unchanged one lets drift checks stay read-only.
ANNOTATION_APPLIED = f"{names.GROUP}/applied-digest"

Key = tuple[str, str, str, str]  # kind, namespace, name, apiVersion


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"], obj["apiVersion"]


def _path(api_version: str, kind: str, namespace: str, name: str | None = None, sub: str = "") -> str:
    prefix, plural = RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    return path + (f"/{sub}" if sub else "")


def covers(desired: Any, live: Any) -> bool:
    """True when every field set in `desired` has the same value in `live`.

    Fields the API server defaults (and so only `live` has) are ignored; lists
    must match element by element. This is how drift is told from defaulting."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and covers(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(covers, desired, live))
    return desired == live


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    if live is None:
        return True
    applied = live["metadata"].get("annotations", {}).get(ANNOTATION_APPLIED)
    if applied != desired["metadata"]["annotations"][ANNOTATION_APPLIED]:
        return True
    return not covers({k: v for k, v in desired.items() if k != "status"}, live)


def replacement(desired: Mapping[str, Any], live: Mapping[str, Any]) -> str | None:
    """How a live child that no update can turn into `desired` is replaced: deleted with this
    propagation policy, then made again. None when an apply will do. Fields the API server
    defaulted in the live child do not count.

    - a StatefulSet whose volumeClaimTemplates or podManagementPolicy (immutable) differ, e.g. made
      before spec.persistence, or the NATS server's before it became a cluster: "Orphan", so its pods
      keep serving until the new one adopts them;
    - a Deployment whose strategy type changes (the timeline's Recreate): server-side apply cannot
      remove the rollingUpdate the API server defaulted, which Recreate forbids: "Background";
    - a Secret of another type (immutable), e.g. the kubernetes.io/tls one cert-manager wrote for a
      network whose certificates the operator makes once cert-manager is gone: "Background"."""
    spec, live_spec = desired.get("spec") or {}, live.get("spec") or {}  # a ConfigMap or a Secret has none
    if desired["kind"] == "StatefulSet":
        def claims(sts_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
            templates = sts_spec.get("volumeClaimTemplates") or []
            return [{"name": t["metadata"]["name"], "spec": t.get("spec", {})} for t in templates]

        policy = (spec.get("podManagementPolicy"), live_spec.get("podManagementPolicy", "OrderedReady"))
        same = covers(claims(spec), claims(live_spec)) and policy[0] in (None, policy[1])
        return None if same else "Orphan"
    if desired["kind"] == "Secret":
        return None if desired.get("type", "Opaque") == live.get("type", "Opaque") else "Background"
    if desired["kind"] == "Deployment":
        wanted = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        have = (live_spec.get("strategy") or {}).get("type", "RollingUpdate")
        return None if wanted == have else "Background"
    return None


def stamp_digest(obj: dict[str, Any], digest: str) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[ANNOTATION_APPLIED] = digest
    return obj


def resource_version(obj: Mapping[str, Any]) -> int:
    """resourceVersion as a number: etcd's revision, which only grows (every
    Kubernetes API server backed by etcd hands them out this way)."""
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return 0


class Cluster:
    """API access for one operator process. Thread-safe."""

    def __init__(self, api: client.ApiClient):
        self.api = api
        self._children: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- the cache of children (fed by watch events) ---------------------------
    def observe(self, obj: Mapping[str, Any], deleted: bool = False) -> None:
        """Record a child as seen in a watch event or an apply response. These race
        (an event can overtake the response it follows), so the newest version wins."""
        key = key_of(obj)
        with self._lock:
            if deleted:
                self._children.pop(key, None)
            elif key not in self._children or resource_version(obj) >= resource_version(self._children[key]):
                # managedFields is most of an object's size and nothing here reads it
                self._children[key] = {
                    **obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}

    def children_of(self, uid: str) -> list[dict[str, Any]]:
        with self._lock:
            return [obj for obj in self._children.values()
                    if any(ref.get("uid") == uid and ref.get("controller")
                           for ref in obj["metadata"].get("ownerReferences", []))]

    def cached(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            return self._children.get(key_of(obj))

    # -- requests ----------------------------------------------------------------
    def _call(self, verb: str, kind: str, method: str, path: str, *, body: Any = None,
              content_type: str | None = None, query: Iterable[tuple[str, str]] = ()) -> Any:
        API_REQUESTS.labels(verb, kind).inc()
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body,
            auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=headers, body=body)
        response.read()
        if not 200 <= response.status < 300:
            raise ApiException.from_response(http_resp=response, body=response.data.decode(errors="replace"),
                                             data=None)
        return json.loads(response.data) if response.data else None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under the operator's field manager; the result is cached."""
        kind, namespace, name, api_version = key_of(obj)
        live = self._call("apply", kind, "PATCH", _path(api_version, kind, namespace, name), body=obj,
                          content_type="application/apply-patch+yaml",
                          query=[("fieldManager", names.FIELD_MANAGER), ("force", "true"),
                                 ("fieldValidation", "Strict")])  # a field the schema lacks is an error
        self.observe(live)
        return live

    def delete(self, obj: Mapping[str, Any], *, propagation: str = "Background") -> None:
        """propagation: Background (dependents go too) or Orphan (they stay, e.g. a StatefulSet's pods)."""
        kind, namespace, name, api_version = key_of(obj)
        try:
            self._call("delete", kind, "DELETE", _path(api_version, kind, namespace, name),
                       body={"propagationPolicy": propagation})
        except ApiException as error:
            if error.status != 404:
                raise
        self.observe(obj, deleted=True)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("get", kind, "GET", _path(api_version, kind, namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Objects matching a label selector, read from the API server (not the cache)."""
        result = self._call("list", kind, "GET", _path(api_version, kind, namespace), query=[("labelSelector", selector)])
        return [{"apiVersion": api_version, "kind": kind, **item} for item in result.get("items", [])]

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """The network as written. A merge patch replaces lists whole, so conditions are written as computed."""
        return self._call("patch_status", names.KIND, "PATCH",
                          _path(names.API_VERSION, names.KIND, namespace, name, "status"),
                          body={"status": status}, content_type="application/merge-patch+json")

    def api_group_served(self, group_version: str) -> bool:
        """Whether the API server serves e.g. core.spinkube.dev/v1alpha1 (its CRD is installed)."""
        try:
            self._call("discover", group_version, "GET", f"/apis/{group_version}")
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            raise


def api_error_message(error: ApiException) -> str:
    """The API server's own message (e.g. a validation failure), not the HTTP dump."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"
