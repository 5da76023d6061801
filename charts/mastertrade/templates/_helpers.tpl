{{/*
Names, labels and small shared pieces. A workload below is an entry of .Values.workloads, passed
around as (dict "root" $ "key" $key "w" $workload).
*/}}

{{- define "mastertrade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mastertrade.fullname" -}}
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

{{- define "mastertrade.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "mastertrade.labels" -}}
helm.sh/chart: {{ include "mastertrade.chart" . }}
app.kubernetes.io/name: {{ include "mastertrade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mastertrade
{{- end }}

{{/* Object name of a workload: <fullname>-<workload name>. */}}
{{- define "mastertrade.workloadName" -}}
{{- printf "%s-%s" (include "mastertrade.fullname" .root) .w.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mastertrade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mastertrade.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .w.name }}
{{- end }}

{{- define "mastertrade.workloadLabels" -}}
{{ include "mastertrade.labels" .root }}
app.kubernetes.io/component: {{ .w.name }}
mastertrade.io/tier: {{ .w.component }}
{{- end }}

{{/*
Pod label saying "this pod talks to workload <name>": each workload's NetworkPolicy admits the
pods that carry its label, so the allowed graph is the catalog's dependsOn.
*/}}
{{- define "mastertrade.usesLabel" -}}
mastertrade.io/uses-{{ . }}
{{- end }}

{{/* image reference from (dict "root" $ "image" $image) */}}
{{- define "mastertrade.image" -}}
{{- $registry := default .image.registry .root.Values.global.imageRegistry }}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- $ref := .image.repository }}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $ref .image.digest }}
{{- else }}
{{- printf "%s:%s" $ref $tag }}
{{- end }}
{{- end }}

{{/* The image a workload runs: its own, or MasterTrade's. */}}
{{- define "mastertrade.workloadImage" -}}
{{- include "mastertrade.image" (dict "root" .root "image" (.w.image | default .root.Values.image)) }}
{{- end }}

{{- define "mastertrade.credentialsSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-credentials" (include "mastertrade.fullname" .)) }}
{{- end }}

{{- define "mastertrade.serviceAccountName" -}}
{{- include "mastertrade.fullname" . }}
{{- end }}

{{/* Prometheus' own identity: the only workload that reads the Kubernetes API (pod discovery) */}}
{{- define "mastertrade.prometheusServiceAccountName" -}}
{{- include "mastertrade.fullname" . }}-prometheus
{{- end }}

{{/*
Key of the workload that provides .role to the others (database, rabbitmq, redis or metrics:
its `provides`). Connection URLs, backups, policies and Prometheus follow it, whatever its key.
*/}}
{{- define "mastertrade.providerKey" -}}
{{- range $key, $w := .root.Values.workloads }}{{ if eq (toString $w.provides) $.role }}{{ $key }}{{ end }}{{ end }}
{{- end }}

{{/* The managed service that replaces the workload providing .role, or an empty map */}}
{{- define "mastertrade.externalOf" -}}
{{- $external := index (.root.Values.external | default dict) (toString .role) | default dict }}
{{- if $external.host }}{{ toJson $external }}{{ else }}{}{{ end }}
{{- end }}

{{/* "true" when a managed service stands in for .role and is reached over TLS */}}
{{- define "mastertrade.externalTLS" -}}
{{- $external := include "mastertrade.externalOf" . | fromJson }}
{{- if and $external.host $external.tls }}true{{ end }}
{{- end }}

{{/* "true" when the workload .w runs in the cluster: enabled, and not replaced by a managed service */}}
{{- define "mastertrade.runs" -}}
{{- if and .w.enabled (not (include "mastertrade.externalOf" (dict "root" .root "role" .w.provides) | fromJson).host) }}true{{ end }}
{{- end }}

{{/* "true" when what the workload .w provides is there: it runs, or a managed service stands in */}}
{{- define "mastertrade.available" -}}
{{- if or (include "mastertrade.runs" .) (include "mastertrade.externalOf" (dict "root" .root "role" .w.provides) | fromJson).host }}true{{ end }}
{{- end }}

{{/* "host:port" of what provides .role: the managed service, else the workload's first port */}}
{{- define "mastertrade.providerAddress" -}}
{{- $external := include "mastertrade.externalOf" . | fromJson }}
{{- if $external.host }}
{{- printf "%s:%d" $external.host (int $external.port) }}
{{- else }}
{{- $key := include "mastertrade.providerKey" . }}
{{- printf "%s:%d" (include "mastertrade.hostOf" (dict "root" .root "target" $key)) (int (first (index .root.Values.workloads $key).ports).port) }}
{{- end }}
{{- end }}

{{/* In-cluster host name of the workload with key .target */}}
{{- define "mastertrade.hostOf" -}}
{{- include "mastertrade.workloadName" (dict "root" .root "w" (index .root.Values.workloads .target)) }}
{{- end }}

{{- define "mastertrade.podSecurityContext" -}}
{{- $sc := .w.securityContext | default .root.Values.image.securityContext -}}
runAsNonRoot: true
runAsUser: {{ $sc.runAsUser }}
runAsGroup: {{ $sc.runAsGroup }}
fsGroup: {{ $sc.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mastertrade.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{- define "mastertrade.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A value as an environment string. Helm reads YAML numbers as floats, which print 1000000 as
1e+06; whole numbers are printed as integers instead.
*/}}
{{- define "mastertrade.envString" -}}
{{- if and (kindIs "float64" .) (eq . (. | int64 | float64)) }}{{ . | int64 }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* The non-secret environment of a workload, rendered into its ConfigMap: a YAML map. */}}
{{- define "mastertrade.envData" -}}
{{- $root := .root }}
{{- $data := dict }}
{{- range $group := .w.settings }}
{{- range $name, $value := index $root.Values.settings $group }}
{{- $_ := set $data $name (include "mastertrade.envString" $value) }}
{{- end }}
{{- end }}
{{- range $name, $field := .w.authEnv }}
{{- $_ := set $data $name (index $root.Values.auth $field | toString) }}
{{- end }}
{{- range $name, $target := .w.serviceUrls }}
{{- $tw := index $root.Values.workloads $target }}
{{- $_ := set $data $name (printf "http://%s:%d" (include "mastertrade.hostOf" (dict "root" $root "target" $target)) (int (first $tw.ports).port)) }}
{{- end }}
{{- range $name, $value := .w.env }}
{{- $_ := set $data $name (include "mastertrade.envString" $value) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
The config files of a workload (files/<key>/<file>, rendered with tpl unless `verbatim`): a YAML
map.
*/}}
{{- define "mastertrade.filesData" -}}
{{- $root := .root }}
{{- $key := .key }}
{{- $data := dict }}
{{- range .w.configFiles }}
{{- $text := $root.Files.Get (printf "files/%s/%s" $key .file) }}
{{- if .verbatim }}
{{- $_ := set $data .file $text }}
{{- else }}
{{- $_ := set $data .file (tpl $text $root) }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
A Prometheus scrape job for every pod of one component of this release, found by pod discovery
in the release's namespace, scraped on the container port named .port (one target per pod).
Called with (dict "root" $ "job" name "component" label "port" portName "tier" tier).
*/}}
{{- define "mastertrade.podScrapeJob" }}
  - job_name: {{ .job }}
    metrics_path: /metrics
    kubernetes_sd_configs:
      - role: pod
        namespaces:
          names: [{{ .root.Release.Namespace }}]
        selectors:
          - role: pod
            label: app.kubernetes.io/instance={{ .root.Release.Name }},app.kubernetes.io/component={{ .component }}
    relabel_configs:
      # Pod discovery gives one target per container port: keep the metrics port only
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: {{ .port }}
        action: keep
      # A pod that has not started or has finished has nothing to scrape
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Pending|Succeeded|Failed
        action: drop
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      # `job` names the workload; the services label their own series with `service`
      - target_label: tier
        replacement: {{ .tier }}
{{- end }}
