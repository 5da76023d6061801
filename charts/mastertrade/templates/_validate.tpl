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
