{{/*
The pod template of a workload: image, ports, environment, probes, volumes and security, from
its catalog entry. Called with (dict "root" $ "key" $key "w" $workload).
*/}}

{{/* One probe handler: the seed's exec check, or an HTTP GET on the first port. */}}
{{- define "mastertrade.probeHandler" -}}
{{- if .check.exec -}}
exec:
  command: {{- toYaml .check.exec | nindent 4 }}
{{- else -}}
httpGet:
  path: {{ .path | default .check.httpGet.path }}
  port: {{ (first .ports).name }}
{{- end }}
{{- end }}

{{- define "mastertrade.probes" -}}
{{- $check := .w.healthCheck }}
{{- $handler := include "mastertrade.probeHandler" (dict "check" $check "ports" .w.ports) }}
{{- if gt (int $check.startPeriod) 0 -}}
startupProbe:
  {{- $handler | nindent 2 }}
  periodSeconds: 10
  timeoutSeconds: {{ $check.timeout }}
  failureThreshold: {{ div (add $check.startPeriod 9) 10 }}
{{- end }}
readinessProbe:
  {{- $handler | nindent 2 }}
  periodSeconds: {{ $check.interval }}
  timeoutSeconds: {{ $check.timeout }}
  failureThreshold: {{ $check.retries }}
livenessProbe:
  {{- include "mastertrade.probeHandler" (dict "check" $check "ports" .w.ports "path" $check.livenessPath) | nindent 2 }}
  periodSeconds: {{ $check.interval }}
  timeoutSeconds: {{ $check.timeout }}
  failureThreshold: {{ $check.retries }}
{{- end }}

{{/*
Environment that is not in the ConfigMap: credentials from Secrets, and the seed's connection
URLs, assembled from Service names and the password (Kubernetes expands $(VAR) from earlier
entries, so no password is ever written into a ConfigMap).
*/}}
{{- define "mastertrade.secretEnv" -}}
{{- $root := .root }}
{{- $secret := include "mastertrade.credentialsSecretName" $root }}
{{- $auth := $root.Values.auth -}}
{{- range $name, $key := .w.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $key }}}
{{- end }}
{{- if has "database" .w.connections }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: postgres-password}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s:$(POSTGRES_PASSWORD)@%s/%s%s" $auth.postgresUser (include "mastertrade.providerAddress" (dict "root" $root "role" "database")) $auth.database (ternary "?sslmode=require" "" (eq (include "mastertrade.externalTLS" (dict "root" $root "role" "database")) "true")) | quote }}
{{- end }}
{{- if has "rabbitmq" .w.connections }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: rabbitmq-password}
- name: RABBITMQ_URL
  value: {{ printf "%s://%s:$(RABBITMQ_PASSWORD)@%s/%s" (ternary "amqps" "amqp" (eq (include "mastertrade.externalTLS" (dict "root" $root "role" "rabbitmq")) "true")) $auth.rabbitmqUser (include "mastertrade.providerAddress" (dict "root" $root "role" "rabbitmq")) (trimPrefix "/" $auth.rabbitmqVhost) | quote }}
{{- end }}
{{- if has "redis" .w.connections }}
{{- $redis := include "mastertrade.externalOf" (dict "root" $root "role" "redis") | fromJson }}
{{- $scheme := ternary "rediss" "redis" (eq (include "mastertrade.externalTLS" (dict "root" $root "role" "redis")) "true") }}
{{- $redisAuth := "" }}
{{- if and $redis.host $redis.passwordKey }}
{{- $redisAuth = ":$(REDIS_PASSWORD)@" }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $redis.passwordKey }}}
{{- end }}
- name: REDIS_URL
  value: {{ printf "%s://%s%s/0" $scheme $redisAuth (include "mastertrade.providerAddress" (dict "root" $root "role" "redis")) | quote }}
{{- end }}
{{- with $root.Values.apiKeys.existingSecret }}
{{- $apiSecret := . }}
{{- range $.w.apiKeys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef: {name: {{ $apiSecret }}, key: {{ . }}, optional: true}
{{- end }}
{{- end }}
{{- with .w.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksum of what the pod reads from ConfigMaps: a change rolls only this workload. */}}
{{- define "mastertrade.configHash" -}}
{{- list (include "mastertrade.envData" .) (include "mastertrade.filesData" .) | toJson | sha256sum }}
{{- end }}

{{- define "mastertrade.podTemplate" -}}
{{- $root := .root }}
{{- $w := .w }}
{{- $writable := $w.writablePaths | default $root.Values.image.writablePaths }}
{{- $persistent := and $w.persistence $w.persistence.enabled }}
{{- $hasMounts := or $persistent $w.configFiles $writable }}
{{- $hasVolumes := or (and $persistent (eq $w.kind "Deployment")) $w.configFiles $writable }}
{{- $name := include "mastertrade.workloadName" . }}
{{- $env := include "mastertrade.envData" . | fromYaml }}
{{- $secretEnv := include "mastertrade.secretEnv" . -}}
metadata:
  labels:
    {{- include "mastertrade.workloadLabels" . | nindent 4 }}
    {{- range $w.dependsOn }}
    {{ include "mastertrade.usesLabel" (index $root.Values.workloads .).name }}: "true"
    {{- end }}
  annotations:
    checksum/config: {{ include "mastertrade.configHash" . }}
    {{- with $w.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- if eq (toString $w.provides) "metrics" }}
  # Prometheus finds the pods it scrapes through the Kubernetes API: it needs its token
  serviceAccountName: {{ include "mastertrade.prometheusServiceAccountName" $root }}
  automountServiceAccountToken: true
  {{- else }}
  serviceAccountName: {{ include "mastertrade.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- end }}
  {{- if not $w.image }}
  terminationGracePeriodSeconds: {{ $root.Values.image.terminationGracePeriodSeconds }}
  {{- end }}
  # Service links would inject variables such as RABBITMQ_PORT that the images misread
  enableServiceLinks: false
  {{- with include "mastertrade.imagePullSecrets" $root }}{{ . | nindent 2 }}{{ end }}
  securityContext:
    {{- include "mastertrade.podSecurityContext" . | nindent 4 }}
  containers:
    - name: {{ $w.name }}
      image: {{ include "mastertrade.workloadImage" . }}
      imagePullPolicy: {{ ($w.image | default $root.Values.image).pullPolicy | default "IfNotPresent" }}
      {{- with $w.command }}
      command: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $w.args }}
      args: {{- toYaml $w.args | nindent 8 }}
      {{- else if not $w.image }}
      args: [serve, {{ $w.name }}, --port, {{ (first $w.ports).containerPort | default (first $w.ports).port | quote }}]
      {{- end }}
      ports:
        {{- range $w.ports }}
        - name: {{ .name }}
          containerPort: {{ .containerPort | default .port }}
          protocol: TCP
        {{- end }}
      {{- if $env }}
      envFrom:
        - configMapRef:
            name: {{ $name }}-env
      {{- end }}
      {{- if trim $secretEnv }}
      env: {{- $secretEnv | trim | nindent 8 }}
      {{- end }}
      resources: {{- toYaml $w.resources | nindent 8 }}
      {{- include "mastertrade.probes" . | nindent 6 }}
      {{- if and (not $w.image) (gt (int $root.Values.image.preStopSleepSeconds) 0) }}
      # Serve on while the Pod's endpoint is removed everywhere, then SIGTERM (kubelet's own
      # sleep: no binary needed in the image)
      lifecycle:
        preStop:
          sleep: {seconds: {{ int $root.Values.image.preStopSleepSeconds }}}
      {{- end }}
      securityContext:
        {{- include "mastertrade.containerSecurityContext" . | nindent 8 }}
      {{- if $hasMounts }}
      volumeMounts:
        {{- if and $w.persistence $w.persistence.enabled }}
        - name: data
          mountPath: {{ $w.persistence.mountPath }}
        {{- end }}
        {{- range $w.configFiles }}
        - name: files
          mountPath: {{ .mountPath }}
          subPath: {{ .file }}
          readOnly: true
        {{- end }}
        {{- range $i, $path := $writable }}
        - name: scratch-{{ $i }}
          mountPath: {{ $path }}
        {{- end }}
      {{- end }}
  {{- if $hasVolumes }}
  volumes:
    {{- if and $w.persistence $w.persistence.enabled (eq $w.kind "Deployment") }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $name }}-data
    {{- end }}
    {{- if $w.configFiles }}
    - name: files
      configMap:
        name: {{ $name }}-files
    {{- end }}
    {{- range $i, $path := $writable }}
    - name: scratch-{{ $i }}
      emptyDir: {}
    {{- end }}
  {{- end }}
  {{- with $w.nodeSelector }}
  nodeSelector: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.tolerations }}
  tolerations: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.affinity }}
  affinity: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
