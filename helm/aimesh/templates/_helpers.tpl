{{/* Chart name, overridable. */}}
{{- define "aimesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: "<release>-<chart>", or the release name when it already
contains the chart name. */}}
{{- define "aimesh.fullname" -}}
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

{{/* "<fullname>-<suffix>", kept within 63 characters. Call with (list $ "suffix"). */}}
{{- define "aimesh.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "aimesh.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aimesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels selecting every pod of the release. */}}
{{- define "aimesh.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "aimesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels selecting one component's pods. Call with (list $ "component"). */}}
{{- define "aimesh.selectorLabels" -}}
{{ include "aimesh.releaseSelectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of every resource. Call with (list $ "component"). */}}
{{- define "aimesh.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "aimesh.chart" $root }}
{{ include "aimesh.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: aimesh
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "aimesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "aimesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aimesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The enabled services, each merged over serviceDefaults, as a YAML map name -> settings.
Fails on a bad service name or a missing grpcService. */}}
{{- define "aimesh.enabledServices" -}}
{{- $out := dict -}}
{{- range $name, $cfg := .Values.services -}}
{{- if and $cfg $cfg.enabled -}}
{{- if not (regexMatch "^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$" $name) -}}
{{- fail (printf "services.%s: a service name must be a lowercase DNS label of at most 32 characters" $name) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$" (default "" $cfg.grpcService)) -}}
{{- fail (printf "services.%s.grpcService must be a fully qualified gRPC service name such as aimesh.notes.v1.NotesService" $name) -}}
{{- end -}}
{{- $_ := set $out $name (mergeOverwrite (deepCopy $.Values.serviceDefaults) (deepCopy $cfg)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The gRPC package of a fully qualified service name: aimesh.notes.v1.NotesService -> aimesh.notes.v1 */}}
{{- define "aimesh.grpcPackage" -}}
{{- regexReplaceAll "\\.[^.]+$" . "" -}}
{{- end -}}

{{/* Whether some enabled service mounts the JWT signing key ("true" or ""). */}}
{{- define "aimesh.needsJwt" -}}
{{- range $name, $svc := (include "aimesh.enabledServices" . | fromYaml) -}}
{{- if $svc.mountJwtSigningKey -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aimesh.identityGrpcService" -}}aimesh.identity.v1.IdentityService{{- end -}}

{{/* The URL the other services fetch the token keys from: auth.identityUrl, else this release's
identity service (when enabled), else empty. */}}
{{- define "aimesh.identityUrl" -}}
{{- if .Values.auth.identityUrl -}}
{{- .Values.auth.identityUrl -}}
{{- else -}}
{{- range $name, $svc := (include "aimesh.enabledServices" . | fromYaml) -}}
{{- if eq $svc.grpcService (include "aimesh.identityGrpcService" $) -}}
{{- printf "http://%s:%v" (include "aimesh.componentName" (list $ $name)) $.Values.grpcPort -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The database URL Secret and key the aimesh pods read. */}}
{{- define "aimesh.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- include "aimesh.componentName" (list . "database") -}}
{{- end -}}
{{- end -}}

{{- define "aimesh.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{- define "aimesh.jwtSecretName" -}}
{{- if .Values.jwt.existingSecret -}}
{{- .Values.jwt.existingSecret -}}
{{- else -}}
{{- include "aimesh.componentName" (list . "jwt") -}}
{{- end -}}
{{- end -}}

{{/* The PEM of the chart-managed JWT Secret: jwt.signingKey, else the key already in the cluster,
else a new Ed25519 key. Rendered once per release render (memoised in .Values), so the Secret and
the pods' checksum annotation agree. */}}
{{- define "aimesh.jwtSigningKey" -}}
{{- if .Values.jwt.signingKey -}}
{{- .Values.jwt.signingKey -}}
{{- else -}}
{{- if not (hasKey .Values.jwt "_rendered") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "aimesh.jwtSecretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "signing-key.pem") -}}
{{- $_ := set .Values.jwt "_rendered" (index $existing.data "signing-key.pem" | b64dec) -}}
{{- else -}}
{{- $_ := set .Values.jwt "_rendered" (genPrivateKey "ed25519") -}}
{{- end -}}
{{- end -}}
{{- .Values.jwt._rendered -}}
{{- end -}}
{{- end -}}

{{- define "aimesh.jwtSecretKey" -}}
{{- if .Values.jwt.existingSecret -}}{{ .Values.jwt.existingSecretKey }}{{- else -}}signing-key.pem{{- end -}}
{{- end -}}

{{/* Checks the values that must be set or that contradict each other. */}}
{{- define "aimesh.validate" -}}
{{- if and .Values.database.url .Values.database.existingSecret -}}
{{- fail "set only one of database.url and database.existingSecret" -}}
{{- end -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "a PostgreSQL database is required: set database.url (postgres://USER:PASSWORD@HOST:5432/DB) or database.existingSecret" -}}
{{- end -}}
{{- if and .Values.database.url (not (hasPrefix "postgres" .Values.database.url)) -}}
{{- fail "database.url must be a postgres:// or postgresql:// URL (the chart runs several pods on one database)" -}}
{{- end -}}
{{- if and .Values.jwt.signingKey .Values.jwt.existingSecret -}}
{{- fail "set only one of jwt.signingKey and jwt.existingSecret" -}}
{{- end -}}
{{- if and (include "aimesh.needsJwt" .) (not (or .Values.jwt.signingKey .Values.jwt.existingSecret .Values.jwt.generate)) -}}
{{- fail "an enabled service mounts the JWT signing key: set jwt.signingKey (PEM), jwt.existingSecret or jwt.generate" -}}
{{- end -}}
{{- range $name, $svc := (include "aimesh.enabledServices" . | fromYaml) -}}
{{- if and (ne $svc.grpcService (include "aimesh.identityGrpcService" $)) (not (include "aimesh.identityUrl" $)) -}}
{{- fail (printf "services.%s verifies tokens with the identity service's keys: enable services.identity or set auth.identityUrl" $name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- if and .Values.telemetry.otlpEndpoint (not (regexMatch "^https?://[^/:]+:[0-9]+/?$" .Values.telemetry.otlpEndpoint)) -}}
{{- fail "telemetry.otlpEndpoint must look like http://HOST:PORT" -}}
{{- end -}}
{{- if and .Values.envoy.enabled (not (include "aimesh.enabledServices" . | fromYaml)) -}}
{{- fail "envoy.enabled needs at least one enabled service to route to" -}}
{{- end -}}
{{- end -}}

{{/* Environment of every aimesh container. Call with (dict "root" $ "name" "notes" "svc" $settings). */}}
{{- define "aimesh.env" -}}
{{- $root := .root -}}
- name: AIMESH_GRPC_ADDR
  value: {{ printf "0.0.0.0:%v" $root.Values.grpcPort | quote }}
- name: AIMESH_DATA_DIR
  value: /var/lib/aimesh
- name: AIMESH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | default (include "aimesh.databaseSecretName" $root) }}
      key: {{ include "aimesh.databaseSecretKey" $root }}
- name: AIMESH_DB_MAX_CONNECTIONS
  value: {{ $root.Values.config.dbMaxConnections | quote }}
- name: AIMESH_AUTO_MIGRATE
  value: {{ (not $root.Values.migrations.enabled) | quote }}
- name: AIMESH_SHUTDOWN_GRACE_SECS
  value: {{ $root.Values.config.shutdownGraceSeconds | quote }}
- name: AIMESH_METRICS_ADDR
  value: {{ if $root.Values.metrics.enabled }}{{ printf "0.0.0.0:%v" $root.Values.metrics.port | quote }}{{ else }}"off"{{ end }}
- name: AIMESH_LOG
  value: {{ $root.Values.config.log | quote }}
- name: AIMESH_LOG_FORMAT
  value: {{ $root.Values.config.logFormat | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "aimesh-%s" .name | quote }}
{{- if .svc }}
{{- if .svc.grpcService }}
- name: AIMESH_JWT_ISSUER
  value: {{ $root.Values.auth.jwtIssuer | quote }}
- name: AIMESH_RATE_LIMIT_PER_SEC
  value: {{ $root.Values.auth.rateLimitPerSecond | quote }}
- name: AIMESH_RATE_LIMIT_BURST
  value: {{ $root.Values.auth.rateLimitBurst | quote }}
{{- if ne .svc.grpcService (include "aimesh.identityGrpcService" $root) }}
- name: AIMESH_IDENTITY_URL
  value: {{ include "aimesh.identityUrl" $root | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with $root.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if and .svc .svc.mountJwtSigningKey }}
- name: AIMESH_JWT_SIGNING_KEY_FILE
  value: {{ printf "%s/signing-key.pem" (trimSuffix "/" $root.Values.jwt.mountDir) | quote }}
{{- end }}
{{- with $root.Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with (and .svc .svc.env) }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Default soft anti-affinity spreading one component's pods across nodes. Call with (list $ "component"). */}}
{{- define "aimesh.spreadAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "aimesh.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* Pod annotations: checksums of the Secrets the chart manages and the pod reads (a changed
value rolls the pods), then the user's podAnnotations. Renders nothing when there are none.
Call with (dict "root" $ "jwt" BOOL "extra" MAP). */}}
{{- define "aimesh.podAnnotations" -}}
{{- $root := .root -}}
{{- $ann := dict -}}
{{- if not $root.Values.database.existingSecret -}}
{{- $_ := set $ann "checksum/database" ($root.Values.database.url | sha256sum) -}}
{{- end -}}
{{- if and .jwt (not $root.Values.jwt.existingSecret) -}}
{{- $_ := set $ann "checksum/jwt" (include "aimesh.jwtSigningKey" $root | sha256sum) -}}
{{- end -}}
{{- $ann = merge $ann (default dict .extra) -}}
{{- if $ann -}}
{{- toYaml $ann -}}
{{- end -}}
{{- end -}}
