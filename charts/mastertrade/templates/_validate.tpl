{{/*
Rules a JSON schema cannot say well, checked before anything renders. Each message names the
value to change.
*/}}
{{- define "mastertrade.validate" -}}
{{- $trading := .Values.settings.trading }}
{{- if eq $trading.TRADING_ENVIRONMENT "live" }}
{{- if not .Values.apiKeys.existingSecret }}
{{- fail "settings.trading.TRADING_ENVIRONMENT=live places real orders and needs Binance API keys: create a Secret from your .env file and set apiKeys.existingSecret to its name (or keep TRADING_ENVIRONMENT=paper)" }}
{{- end }}
{{- if not .Values.settings.risk.CIRCUIT_BREAKER_ENABLED }}
{{- fail "settings.trading.TRADING_ENVIRONMENT=live needs settings.risk.CIRCUIT_BREAKER_ENABLED=true: live trading without the circuit breaker is refused" }}
{{- end }}
{{- end }}
{{- if and .Values.backup.restoreFrom (not .Values.backup.enabled) }}
{{- fail "backup.restoreFrom needs backup.enabled=true: the dumps are in the backups volume that the backup section creates" }}
{{- end }}
{{- if le (int .Values.image.terminationGracePeriodSeconds) (int .Values.image.preStopSleepSeconds) }}
{{- fail (printf "image.terminationGracePeriodSeconds (%d) must exceed image.preStopSleepSeconds (%d): the grace period counts from deletion, the sleep included" (int .Values.image.terminationGracePeriodSeconds) (int .Values.image.preStopSleepSeconds)) }}
{{- end }}
{{- range $role := list "database" "rabbitmq" "redis" "metrics" }}
{{- $providers := list }}
{{- range $key, $w := $.Values.workloads }}{{ if eq (toString $w.provides) $role }}{{ $providers = append $providers $key }}{{ end }}{{ end }}
{{- if ne (len $providers) 1 }}
{{- fail (printf "exactly one workload must have provides: %s, found %d (%s): set it on the one the others should use" $role (len $providers) (join ", " $providers)) }}
{{- end }}
{{- end }}
{{- range $role := list "database" "rabbitmq" "redis" }}
{{- if (include "mastertrade.externalOf" (dict "root" $ "role" $role) | fromJson).host }}
{{- if not (or $.Values.auth.existingSecret (and (eq $role "redis") (not $.Values.external.redis.passwordKey))) }}
{{- fail (printf "external.%s.host is set: its password cannot be generated; name a Secret holding it in auth.existingSecret" $role) }}
{{- end }}
{{- end }}
{{- end }}
{{- $database := index .Values.workloads (include "mastertrade.providerKey" (dict "root" . "role" "database")) }}
{{- $rabbitmqKey := include "mastertrade.providerKey" (dict "root" . "role" "rabbitmq") }}
{{- /* The schema Job waits for both servers; with RabbitMQ nowhere it would wait for ever */}}
{{- if and .Values.migrations.enabled (include "mastertrade.available" (dict "root" . "w" $database)) (not (include "mastertrade.available" (dict "root" . "w" (index .Values.workloads $rabbitmqKey)))) }}
{{- fail (printf "migrations.enabled runs the schema Job, which needs RabbitMQ as well as PostgreSQL (it declares the exchanges and queues), but workloads.%s is disabled and external.rabbitmq.host is empty: enable workloads.%s, point external.rabbitmq.host at a managed server, or set migrations.enabled=false" $rabbitmqKey $rabbitmqKey) }}
{{- end }}
{{- /* A setting is one value for every workload that reads it: set per workload, the
workloads would disagree (a backtest charging one fee and paper trading another) */}}
{{- range $key, $w := .Values.workloads }}
{{- range $w.extraEnv }}
{{- $name := .name }}
{{- range $group, $values := $.Values.settings }}
{{- if hasKey $values $name }}
{{- fail (printf "workloads.%s.extraEnv sets %s, a setting every workload that reads it shares: set settings.%s.%s instead" $key $name $group $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $w := .Values.workloads }}
{{- if $w.enabled }}
{{- range $w.dependsOn }}
{{- if not (include "mastertrade.available" (dict "root" $ "w" (index $.Values.workloads .))) }}
{{- $role := (index $.Values.workloads .).provides }}
{{- $managed := ternary (printf ", or point external.%s.host at a managed server" $role) "" (has (toString $role) (list "database" "rabbitmq" "redis")) }}
{{- fail (printf "workloads.%s depends on workloads.%s, which is disabled: enable workloads.%s or disable workloads.%s%s" $key . . $key $managed) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
