"""Storage of the rig: the rancher local-path provisioner, so PersistentVolumeClaims bind to
real directories on the real node, and the default StorageClass `local-path` that names it.

The provisioner runs as a pod on the real node (images.local_path_provisioner(), built from
its Go module). For each claim it starts a helper pod (images.busybox()) on the claim's node
that makes the volume's directory, and another that removes it when the volume is released.
The directories live under VOLUMES_DIR as the node sees it, which is the node's state dir
on the host (node.py binds <state>/node/var-lib on the node's /var/lib): they go with the rig's
state dir, as etcd's data does, and nothing is written elsewhere on the host.

On kwok's fake node nothing really runs, so nothing needs a directory either: a kwok Stage
(FAKE_NODE_HELPER_STAGE) completes the helper pods sent there at once, and claims of pods on
the fake node bind as they would on a real one.
"""

from __future__ import annotations

import json

from rig.node import NAMESPACE_NODE_SELECTOR, NODE_KIND_LABEL, REAL_NODE

NAMESPACE = "local-path-storage"
NAME = "local-path-provisioner"
STORAGE_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
VOLUMES_DIR = "/var/lib/agentnet-volumes"  # on the node: <state dir>/node/var-lib/agentnet-volumes
CONFIG_DIR = "/etc/config"
WORKER_THREADS = 16  # claims of many networks at once on the fake node (scale tests)
# client-go's default 5 requests/s (burst 10) held every claim of a busy test run behind the provisioner's
# own throttle: each claim takes a helper pod's create, a poll a second until it is done, its log, its delete.
CLIENT_QPS, CLIENT_BURST = 100, 200
HELPER_SETUP = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'  # any pod user may write
HELPER_TEARDOWN = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}}


def helper_pod(image: str) -> dict:
    """The template of the provisioner's helper pods. They run as root (the volumes' parent is
    root's) with one capability: DAC_OVERRIDE, for removing what a pod's user left in a volume."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "helper-pod", "image": image, "imagePullPolicy": "Never",
                "securityContext": {**RESTRICTED_CONTAINER, "capabilities": {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]}},
            }],
        },
    }


def manifests(provisioner_image: str, helper_image: str) -> list[dict]:
    """Namespace, least-privilege RBAC, configuration, the provisioner's Deployment and the default
    StorageClass (WaitForFirstConsumer: a node-local volume is made where its pod is scheduled)."""
    meta = {"namespace": NAMESPACE, "labels": {"app": NAME}}
    cluster_rules = [
        # What the provisioning controller watches and writes (sig-storage-lib-external-provisioner).
        {"apiGroups": [""], "resources": ["persistentvolumeclaims", "nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "watch", "create", "delete"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    namespace_rules = [  # its helper pods, their logs and its own ConfigMap, in its namespace only
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["local-path-config"], "verbs": ["get"]},
    ]
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [VOLUMES_DIR]}]}
    return [
        # An empty node selector: helper pods go to the node their claim names, the fake one too
        # (the rig's default would send every pod of the namespace to the real node).
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "annotations": {NAMESPACE_NODE_SELECTOR: ""}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME},
         "rules": cluster_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": NAME, **meta},
         "rules": namespace_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": NAME, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME}, "subjects": subject},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "local-path-config", **meta},
         "data": {"config.json": json.dumps(config), "setup": HELPER_SETUP, "teardown": HELPER_TEARDOWN,
                  "helperPod.yaml": json.dumps(helper_pod(helper_image))}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, **meta},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": NAME}},
                  "template": {"metadata": {"labels": {"app": NAME}}, "spec": {
                      "serviceAccountName": NAME, "nodeSelector": {NODE_KIND_LABEL: REAL_NODE},
                      "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                          "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": NAME, "image": provisioner_image, "imagePullPolicy": "Never",
                          "args": ["start", "--config", f"{CONFIG_DIR}/config.json",
                                   "--service-account-name", NAME, "--worker-threads", str(WORKER_THREADS),
                                   "--kube-client-qps", str(CLIENT_QPS), "--kube-client-burst", str(CLIENT_BURST)],
                          "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                  {"name": "CONFIG_MOUNT_PATH", "value": f"{CONFIG_DIR}/"}],
                          "securityContext": RESTRICTED_CONTAINER,
                          "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},  # like CoreDNS: not BestEffort
                          "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]}],
                      "volumes": [{"name": "config", "configMap": {"name": "local-path-config"}}]}}}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"},
    ]


# kwok Stage: a helper pod on the fake node has done its work as soon as it runs.
FAKE_NODE_HELPER_STAGE = {
    "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "local-path-helper-complete"},
    "spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {"matchExpressions": [
            {"key": ".metadata.namespace", "operator": "In", "values": [NAMESPACE]},
            {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        ]},
        "next": {"statusTemplate": "phase: Succeeded\n"},
    },
}
