{{/* Names and labels shared by every template of the chart. */}}

{{- define "edgewave-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgewave-agent.fullname" -}}
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

{{- define "edgewave-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgewave-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "edgewave-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgewave-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edgewave
app.kubernetes.io/component: edge-agent
{{- end -}}

{{- define "edgewave-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "edgewave-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "edgewave-agent.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* agent.yaml, as edgewave_agent.settings.AgentConfig reads it (snake_case keys). The agent
     id is per node, so it is passed as --agent-id, not written here. */}}
{{- define "edgewave-agent.config" -}}
{{- $v := .Values -}}
{{- $config := dict
      "region" (required "region is required (a DNS label such as eu-west)" $v.region)
      "data_dir" "/var/lib/edgewave"
      "listen" (dict
        "control" (printf "0.0.0.0:%d" (int $v.ports.control))
        "serving" (printf "0.0.0.0:%d" (int $v.ports.serving)))
      "store" (dict "quota_bytes" $v.store.quota) -}}
{{- with $v.zone }}{{ $_ := set $config "zone" . }}{{ end -}}
{{- with $v.jurisdiction }}{{ $_ := set $config "jurisdiction" . }}{{ end -}}
{{- with $v.labels }}{{ $_ := set $config "labels" . }}{{ end -}}
{{- if $v.gateway.address -}}
{{- if $v.insecure -}}{{- fail "gateway.address needs mTLS: unset insecure and set tls.secretName" -}}{{- end -}}
{{- $link := dict "address" $v.gateway.address -}}
{{- with $v.gateway.serverName }}{{ $_ := set $link "server_name" . }}{{ end -}}
{{- $_ := set $config "gateway" $link -}}
{{- end -}}
{{- if $v.insecure -}}
{{- $_ := set $config "insecure" true -}}
{{- else -}}
{{- $_ := required "tls.secretName is required unless insecure is true" $v.tls.secretName -}}
{{- $_ := set $config "tls" (dict
      "cert_file" "/etc/edgewave/tls/tls.crt"
      "key_file" "/etc/edgewave/tls/tls.key"
      "client_ca_file" "/etc/edgewave/tls/ca.crt"
      "trust_domain" $v.tls.trustDomain) -}}
{{- end -}}
{{- if $v.activationPublicKey.pem -}}
{{- $_ := set $config "activation_public_key_pem" $v.activationPublicKey.pem -}}
{{- else if $v.activationPublicKey.configMap.name -}}
{{- $_ := set $config "activation_public_key_file" (printf "/etc/edgewave/activation/%s" $v.activationPublicKey.configMap.key) -}}
{{- else -}}
{{- fail "set activationPublicKey.pem or activationPublicKey.configMap.name (the operator's Ed25519 public key)" -}}
{{- end -}}
{{- toYaml (mergeOverwrite $config (deepCopy $v.config)) -}}
{{- end -}}
