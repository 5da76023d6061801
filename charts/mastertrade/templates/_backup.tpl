{{/*
Shared pieces of the backup CronJob and the restore Job (backup.yaml, restore-job.yaml): both run
the scripts of files/backup/ in PostgreSQL's image, as its user, with the backups volume.
*/}}

{{/* The CronJob's name: at most 52 characters, as Kubernetes requires of a CronJob */}}
{{- define "mastertrade.backupCronJobName" -}}
{{- printf "%s-backup" (include "mastertrade.fullname" . | trunc 45 | trimSuffix "-") }}
{{- end }}

{{/* libpq's environment for the release's database, and where the backups are */}}
{{- define "mastertrade.backupEnv" -}}
{{- $address := include "mastertrade.providerAddress" (dict "root" . "role" "database") }}
- name: BACKUP_DIR
  value: /backups
- name: PGHOST
  value: {{ regexReplaceAll ":[0-9]+$" $address "" }}
- name: PGPORT
  value: {{ regexFind "[0-9]+$" $address | quote }}
{{- if include "mastertrade.externalTLS" (dict "root" . "role" "database") }}
- name: PGSSLMODE
  value: require
{{- end }}
- name: PGUSER
  value: {{ .Values.auth.postgresUser | quote }}
- name: PGDATABASE
  value: {{ .Values.auth.database | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "mastertrade.credentialsSecretName" . }}, key: postgres-password}
{{- end }}

{{/* The backup's environment: the database's, retention and RabbitMQ's management API */}}
{{- define "mastertrade.backupJobEnv" -}}
{{- $rabbitmqKey := include "mastertrade.providerKey" (dict "root" . "role" "rabbitmq") }}
{{- $rabbitmq := index .Values.workloads $rabbitmqKey }}
{{- include "mastertrade.backupEnv" . }}
- name: RETENTION_DAYS
  value: {{ .Values.backup.retentionDays | toString | quote }}
{{- $managed := include "mastertrade.externalOf" (dict "root" . "role" "rabbitmq") | fromJson }}
{{- $managementUrl := $managed.managementUrl | default "" }}
{{- if include "mastertrade.runs" (dict "root" . "w" $rabbitmq) }}
{{- $management := 0 }}
{{- range $rabbitmq.ports }}{{ if eq .name "management" }}{{ $management = .port }}{{ end }}{{ end }}
{{- $managementUrl = printf "http://%s:%d" (include "mastertrade.hostOf" (dict "root" . "target" $rabbitmqKey)) (int $management) }}
{{- end }}
{{- if $managementUrl }}
- name: RABBITMQ_MANAGEMENT_URL
  value: {{ $managementUrl | quote }}
- name: RABBITMQ_USER
  value: {{ .Values.auth.rabbitmqUser | quote }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "mastertrade.credentialsSecretName" . }}, key: rabbitmq-password}
{{- end }}
{{- end }}

{{/* The pod spec both run; called with (dict "root" $ "name" $container "args" $args "env" $env) */}}
{{- define "mastertrade.backupPodSpec" -}}
{{- $root := .root }}
{{- $postgres := index $root.Values.workloads (include "mastertrade.providerKey" (dict "root" $root "role" "database")) -}}
serviceAccountName: {{ include "mastertrade.serviceAccountName" $root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with include "mastertrade.imagePullSecrets" $root }}{{ . | nindent 0 }}{{ end }}
securityContext:
  {{- include "mastertrade.podSecurityContext" (dict "root" $root "w" $postgres) | nindent 2 }}
containers:
  - name: {{ .name }}
    image: {{ include "mastertrade.image" (dict "root" $root "image" $postgres.image) }}
    imagePullPolicy: {{ $postgres.image.pullPolicy | default "IfNotPresent" }}
    command: {{- toYaml .args | nindent 6 }}
    env: {{- .env | trim | nindent 6 }}
    resources: {{- toYaml $root.Values.backup.resources | nindent 6 }}
    securityContext:
      {{- include "mastertrade.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: scripts
        mountPath: /scripts
        readOnly: true
      - name: backups
        mountPath: /backups
      - name: tmp
        mountPath: /tmp
volumes:
  - name: scripts
    configMap:
      name: {{ include "mastertrade.fullname" $root }}-backup-scripts
  - name: backups
    persistentVolumeClaim:
      claimName: {{ include "mastertrade.fullname" $root }}-backups
  - name: tmp
    emptyDir: {}
{{- end }}
