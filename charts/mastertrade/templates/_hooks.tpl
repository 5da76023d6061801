{{/*
Pieces of the hook Jobs (operator/hooks.yaml, secrets.yaml): each runs the operator's
image with a ServiceAccount of its own, allowed exactly what the hook does.
*/}}

{{/*
Metadata of a hook object: (dict "root" $ "name" $name "events" "pre-delete" "weight" -10),
with "cluster" true for cluster-scoped kinds (no namespace)
*/}}
{{- define "mastertrade.hookMetadata" -}}
name: {{ .name }}
{{- if not .cluster }}
namespace: {{ .root.Release.Namespace }}
{{- end }}
labels:
  {{- include "mastertrade.labels" .root | nindent 2 }}
  app.kubernetes.io/component: operator-hook
annotations:
  helm.sh/hook: {{ .events }}
  helm.sh/hook-weight: {{ .weight | quote }}
  helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/* A hook Job running `mastertrade-operator <args>`: (dict "root" $ "name" $name "events" ... "args" $args) */}}
{{- define "mastertrade.hookJob" -}}
apiVersion: batch/v1
kind: Job
metadata:
  {{- include "mastertrade.hookMetadata" (dict "root" .root "name" .name "events" .events "weight" 0) | nindent 2 }}
spec:
  backoffLimit: 3
  activeDeadlineSeconds: 600
  template:
    metadata:
      labels:
        {{- include "mastertrade.labels" .root | nindent 8 }}
        app.kubernetes.io/component: operator-hook
    spec:
      restartPolicy: Never
      serviceAccountName: {{ .name }}
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with include "mastertrade.imagePullSecrets" .root }}{{ . | nindent 6 }}{{ end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .container }}
          image: {{ include "mastertrade.image" (dict "root" .root "image" .root.Values.operator.image) }}
          imagePullPolicy: {{ .root.Values.operator.image.pullPolicy | default "IfNotPresent" }}
          args: {{- toYaml .args | nindent 12 }}
          resources: {{- toYaml .root.Values.operator.resources | nindent 12 }}
          securityContext:
            {{- include "mastertrade.containerSecurityContext" .root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
{{- end }}
