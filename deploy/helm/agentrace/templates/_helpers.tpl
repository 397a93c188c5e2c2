{{/*
The chart's name: the chart name or nameOverride, cut to 63 characters (a label value's limit).
*/}}
{{- define "agentrace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource name prefix: fullnameOverride, or the release name followed by the chart's name
unless it contains it already. Cut to 52 characters so that "-gateway" and the suffixes
Kubernetes adds to pod names still fit in 63.
*/}}
{{- define "agentrace.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The helm.sh/chart label: chart name and version.
*/}}
{{- define "agentrace.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select one tier's pods; call with (dict "ctx" $ "component" "node").
*/}}
{{- define "agentrace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentrace.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
All labels of one tier's resources; call with (dict "ctx" $ "component" "node").
*/}}
{{- define "agentrace.labels" -}}
helm.sh/chart: {{ include "agentrace.chart" .ctx }}
{{ include "agentrace.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agentrace
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of a tier's ServiceAccount; call with (dict "ctx" $ "component" "node").
*/}}
{{- define "agentrace.serviceAccountName" -}}
{{- $tier := index .ctx.Values .component }}
{{- if $tier.serviceAccount.create }}
{{- default (printf "%s-%s" (include "agentrace.fullname" .ctx) .component) $tier.serviceAccount.name }}
{{- else }}
{{- default "default" $tier.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the gateways' headless Service, which the node tier resolves.
*/}}
{{- define "agentrace.gatewayServiceName" -}}
{{- printf "%s-gateway" (include "agentrace.fullname" .) }}
{{- end }}

{{/*
The collector image reference: repository, then the digest or else the tag (appVersion).
*/}}
{{- define "agentrace.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The pods' security context: a numeric non-root user, the runtime's default seccomp profile.
*/}}
{{- define "agentrace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The collector containers' security context: nothing to gain over the user it starts as.
*/}}
{{- define "agentrace.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Flags both tiers share: listen addresses inside the pod, the view, the metrics token.
*/}}
{{- define "agentrace.commonArgs" -}}
- --otlp-grpc-addr=0.0.0.0:4317
- --metrics-addr=0.0.0.0:9101
- --view={{ ternary "on" "off" .Values.view.enabled }}
{{- if .Values.metricsAuth.existingSecret }}
- --metrics-auth-token-file=/etc/agentrace/metrics-auth/{{ .Values.metricsAuth.key }}
{{- end }}
{{- end }}

{{/*
Liveness and readiness probes on the metrics port (/healthz and /readyz are never guarded).
*/}}
{{- define "agentrace.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/*
prometheus.io annotations for annotation-based scrape configs; call with (dict "ctx" $ "on" bool).
*/}}
{{- define "agentrace.scrapeAnnotations" -}}
{{- if .on -}}
prometheus.io/scrape: "true"
prometheus.io/port: "9101"
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
The metrics token volume and its mount (used when metricsAuth.existingSecret is set).
*/}}
{{- define "agentrace.metricsAuthVolume" -}}
- name: metrics-auth
  secret:
    secretName: {{ .Values.metricsAuth.existingSecret }}
    # 0440: readable by the owner and fsGroup only.
    defaultMode: 288
{{- end }}

{{- define "agentrace.metricsAuthMount" -}}
- name: metrics-auth
  mountPath: /etc/agentrace/metrics-auth
  readOnly: true
{{- end }}

{{/*
The Prometheus Operator's bearer-token setting for a monitor's endpoint.
*/}}
{{- define "agentrace.monitorAuthorization" -}}
authorization:
  type: Bearer
  credentials:
    name: {{ .Values.metricsAuth.existingSecret }}
    key: {{ .Values.metricsAuth.key }}
{{- end }}
