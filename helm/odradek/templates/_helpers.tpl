{{/* Names, labels and the few values several templates derive. */}}

{{- define "odradek.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "odradek.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "odradek.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "odradek.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "odradek.operatorName" -}}
{{- printf "%s-operator" (include "odradek.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "odradek.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "odradek.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: odradek
{{- end -}}

{{- define "odradek.operatorSelector" -}}
app.kubernetes.io/name: {{ include "odradek.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "odradek.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "odradek.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "odradek.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "odradek.clusterName" -}}
{{- default .Release.Name .Values.cluster.name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The namespaces whose Roles the operator gets: the listed ones, or the release's. */}}
{{- define "odradek.watchedNamespaces" -}}
{{- if .Values.operator.watch.namespaces -}}
{{- toJson .Values.operator.watch.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the cluster CA (tls.crt, tls.key) the operator mounts. */}}
{{- define "odradek.caSecret" -}}
{{- if eq .Values.tls.ca.source "existingSecret" -}}
{{- required "tls.ca.existingSecret is needed when tls.ca.source is existingSecret" .Values.tls.ca.existingSecret -}}
{{- else -}}
{{- printf "%s-ca" (include "odradek.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* kopf's leader election: on when more than one operator replica runs. */}}
{{- define "odradek.peering" -}}
{{- if gt (int .Values.operator.replicas) 1 -}}
{{- include "odradek.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Labels the operator puts on broker pods (odradek/operator/cluster.py labels()). */}}
{{- define "odradek.brokerSelector" -}}
app.kubernetes.io/name: odradek
app.kubernetes.io/instance: {{ include "odradek.clusterName" . }}
app.kubernetes.io/component: broker
{{- end -}}
