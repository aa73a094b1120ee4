{{/* Chart name, truncated to a DNS label. */}}
{{- define "agentnet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: <release> when it contains the chart name, else <release>-<chart>. */}}
{{- define "agentnet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of cluster-scoped objects: unique per release and namespace. */}}
{{- define "agentnet.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "agentnet.fullname" .) }}
{{- end }}

{{- define "agentnet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the operator. `component: operator` keeps them apart from
the pods of a network (their component is agent, nats or a component's name),
even when a network has the release's name.
*/}}
{{- define "agentnet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentnet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "agentnet.labels" -}}
helm.sh/chart: {{ include "agentnet.chart" . }}
{{ include "agentnet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agentnet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agentnet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentnet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agentnet.subjects" -}}
- kind: ServiceAccount
  name: {{ include "agentnet.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "agentnet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
What the operator does in the namespaces it watches — and nothing more.
tests/test_chart.py derives the kinds the code writes (agentnet_operator.cluster.RESOURCES)
and fails when one is missing here, or when anything is granted beyond its stated list.
*/}}
{{- define "agentnet.rules" -}}
# Watch the networks (the operator writes only their status: no finalizer, no annotations).
- apiGroups: ["agentnet.dev"]
  resources: ["agentnetworks"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["agentnet.dev"]
  resources: ["agentnetworks/status"]
  verbs: ["patch"]
# The children of every network, written by server-side apply (create on first
# apply, patch after), pruned by delete; watched to repair drift. ControllerRevisions
# hold the revision history (declarative rollback); a PersistentVolumeClaim holds the
# interaction-timeline's DuckDB (the StatefulSets' claims are made by their controller).
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments", "controllerrevisions"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Components as SpinApps (workload: SpinApp), when SpinKube is installed.
- apiGroups: ["core.spinkube.dev"]
  resources: ["spinapps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A managed NATS cluster's TLS from cert-manager, when it is installed: an Issuer and
# Certificate chain per network, written by server-side apply, pruned by delete, watched for
# readiness and renewal (never read alone); cert-manager itself writes the Secrets.
- apiGroups: ["cert-manager.io"]
  resources: ["issuers", "certificates"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The autoscaler's `pods` metric source lists a component's ready pods; a StatefulSet's pod
# stuck unready on an earlier revision is deleted so that it starts on the current one.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "delete"]
# A PodDisruptionBudget for the agents and each component that may run more than one pod:
# written by server-side apply, pruned by delete, watched to repair drift (never read alone).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Events on the networks (Applied, Pruned, ScaleUp, Degraded reasons, ...).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-scoped reads of kopf's own (it "observes" the cluster):
- CustomResourceDefinitions, to notice SpinKube being installed after the operator started;
- with watchNamespace only: namespaces, to notice the watched one (re)appear. Without this
  grant kopf still runs, but first retries the refused list and watch for about a minute.
*/}}
{{- define "agentnet.observeRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if or .Values.watchNamespace .Values.ignoreNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
