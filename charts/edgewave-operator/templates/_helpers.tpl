{{/* Names and labels shared by every template of the chart. */}}

{{- define "edgewave-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgewave-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "edgewave-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgewave-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edgewave-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgewave-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edgewave
app.kubernetes.io/component: operator
{{- end -}}

{{- define "edgewave-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgewave-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "edgewave-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The webhook Service and the Secret holding its serving certificate. */}}
{{- /* Suffixed names cut the fullname first, so the suffix survives at the 63-character limit. */}}
{{- define "edgewave-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "edgewave-operator.fullname" . | trunc 50 | trimSuffix "-") -}}
{{- end -}}

{{- define "edgewave-operator.webhookSecretName" -}}
{{- if eq .Values.webhook.tls.mode "existingSecret" -}}
{{- required "webhook.tls.existingSecret is required when webhook.tls.mode is existingSecret" .Values.webhook.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-webhook-tls" (include "edgewave-operator.fullname" . | trunc 50 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{- define "edgewave-operator.leaseName" -}}
{{- default (include "edgewave-operator.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "edgewave-operator.caSecretName" -}}
{{- default (printf "%s-ca" (include "edgewave-operator.fullname" .)) .Values.pki.caSecretName -}}
{{- end -}}

{{- define "edgewave-operator.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "edgewave-operator.fullname" .)) .Values.pki.signingKeySecretName -}}
{{- end -}}

{{- /*
The webhook certificate mode in effect: `auto` is cert-manager where the cluster serves
cert-manager.io/v1 (helm install/upgrade ask the cluster; Argo CD passes the cluster's API
versions to `helm template`), else the hook Job. Every mode but `helm` renders the same bytes
on every render.
*/}}
{{- define "edgewave-operator.webhookTlsMode" -}}
{{- $mode := .Values.webhook.tls.mode -}}
{{- if eq $mode "auto" -}}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}certManager{{- else -}}job{{- end -}}
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}

{{- /*
kube-score wants imagePullPolicy Always. The chart's default is IfNotPresent on purpose: releases
are immutable tags (or digests, with image.digest), and a restart must not depend on the
registry. The exception is declared only while the policy is not Always.
*/}}
{{- define "edgewave-operator.pullPolicyIgnore" -}}
{{- if ne .Values.image.pullPolicy "Always" -}}
kube-score/ignore: container-image-pull-policy
{{- end -}}
{{- end -}}

{{- define "edgewave-operator.gatewayLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgewave-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edgewave
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Gateways: the embedded one's Service, each standalone one's name and address. */}}
{{- define "edgewave-operator.gatewayServiceName" -}}
{{- printf "%s-gateway" (include "edgewave-operator.fullname" . | trunc 50 | trimSuffix "-") -}}
{{- end -}}

{{- define "edgewave-operator.gatewayName" -}}
{{- printf "%s-%s" (include "edgewave-operator.fullname" .root | trunc 30 | trimSuffix "-") .gateway.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* {"name": "host:port", ...}: the standalone gateways the operator reaches agents through. */}}
{{- define "edgewave-operator.standaloneGateways" -}}
{{- $root := . -}}
{{- $found := dict -}}
{{- range .Values.gateways.standalone -}}
{{- $service := include "edgewave-operator.gatewayName" (dict "root" $root "gateway" .) -}}
{{- $_ := set $found .name (printf "%s.%s.svc:%v" $service $root.Release.Namespace (.port | default 7444)) -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}
