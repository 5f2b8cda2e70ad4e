{{/*
Expand the name of the chart.
*/}}
{{- define "pushdial.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "pushdial.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "pushdial.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "pushdial.labels" -}}
helm.sh/chart: {{ include "pushdial.chart" . }}
{{ include "pushdial.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pushdial
{{- end }}

{{/*
Selector labels
*/}}
{{- define "pushdial.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushdial.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component (api, worker, migration): call with
(dict "root" $ "component" "api").
*/}}
{{- define "pushdial.componentLabels" -}}
{{ include "pushdial.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pushdial.componentSelectorLabels" -}}
{{ include "pushdial.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of a component's objects: <fullname>-api, <fullname>-worker.
*/}}
{{- define "pushdial.componentName" -}}
{{- printf "%s-%s" (include "pushdial.fullname" .root | trunc 56 | trimSuffix "-") .component }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "pushdial.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pushdial.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest, or repository:tag (tag defaults to the appVersion).
*/}}
{{- define "pushdial.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The container port: the port of config.listen (host:port or [v6]:port).
*/}}
{{- define "pushdial.containerPort" -}}
{{- regexFind "[0-9]+$" .Values.config.listen | int }}
{{- end }}

{{/*
The api's metrics port: the port of config.metricsListen, empty when it is unset. It must
differ from the public port, which serves no metrics.
*/}}
{{- define "pushdial.metricsPort" -}}
{{- with .Values.config.metricsListen }}
{{- $port := regexFind "[0-9]+$" . | int }}
{{- if eq $port (include "pushdial.containerPort" $ | int) }}
{{- fail "config.metricsListen must use another port than config.listen" }}
{{- end }}
{{- $port }}
{{- end }}
{{- end }}

{{/*
The public base URL: config.publicUrl, else the first ingress host (https when a TLS entry
names it), else empty (the binary then uses http://<PUSHDIAL_LISTEN>).
*/}}
{{- define "pushdial.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $https := false }}
{{- range .Values.ingress.tls }}
{{- if has $host (.hosts | default list) }}
{{- $https = true }}
{{- end }}
{{- end }}
{{- printf "%s://%s" (ternary "https" "http" $https) $host }}
{{- end }}
{{- end }}

{{/*
The non-secret settings, as a map of environment variable to string: config.* by the table
below, plus the paths of the mounted push credentials. Unset (null, "" or empty list)
values are left out, so the binary's defaults apply. Lists are joined with commas.
*/}}
{{- define "pushdial.configEnv" -}}
{{- $names := dict
  "listen" "PUSHDIAL_LISTEN"
  "metricsListen" "PUSHDIAL_METRICS_LISTEN"
  "headerTimeout" "PUSHDIAL_HEADER_TIMEOUT"
  "publicUrl" "PUSHDIAL_PUBLIC_URL"
  "logFormat" "PUSHDIAL_LOG_FORMAT"
  "otlpEndpoint" "PUSHDIAL_OTLP_ENDPOINT"
  "offerTimeout" "PUSHDIAL_OFFER_TIMEOUT"
  "presenceWindow" "PUSHDIAL_PRESENCE_WINDOW"
  "pushStaleness" "PUSHDIAL_PUSH_STALENESS"
  "callExpiresIn" "PUSHDIAL_CALL_EXPIRES_IN"
  "pairingCodeTtl" "PUSHDIAL_PAIRING_CODE_TTL"
  "jobLease" "PUSHDIAL_JOB_LEASE"
  "jobPollInterval" "PUSHDIAL_JOB_POLL_INTERVAL"
  "workerConcurrency" "PUSHDIAL_WORKER_CONCURRENCY"
  "dbMaxConnections" "PUSHDIAL_DB_MAX_CONNECTIONS"
  "dbMinConnections" "PUSHDIAL_DB_MIN_CONNECTIONS"
  "maxInFlight" "PUSHDIAL_MAX_IN_FLIGHT"
  "redisPrefix" "PUSHDIAL_REDIS_PREFIX"
  "loopbackPushUrl" "PUSHDIAL_LOOPBACK_PUSH_URL"
  "shutdownDrain" "PUSHDIAL_SHUTDOWN_DRAIN"
  "shutdownGrace" "PUSHDIAL_SHUTDOWN_GRACE"
  "webhookAllowSubnets" "PUSHDIAL_WEBHOOK_ALLOW_SUBNETS"
  "webhookRetrySchedule" "PUSHDIAL_WEBHOOK_RETRY_SCHEDULE"
  "webhookTimeout" "PUSHDIAL_WEBHOOK_TIMEOUT"
  "webhookDisableAfter" "PUSHDIAL_WEBHOOK_DISABLE_AFTER"
  "webhookConcurrency" "PUSHDIAL_WEBHOOK_CONCURRENCY"
  "webhookEndpointConcurrency" "PUSHDIAL_WEBHOOK_ENDPOINT_CONCURRENCY"
  "limitWebhookEndpoints" "PUSHDIAL_LIMIT_WEBHOOK_ENDPOINTS"
  "limitWebhookSendsPerMinute" "PUSHDIAL_LIMIT_WEBHOOK_SENDS_PER_MINUTE"
  "limitApiPerSecond" "PUSHDIAL_LIMIT_API_PER_SECOND"
  "limitKeyPerSecond" "PUSHDIAL_LIMIT_KEY_PER_SECOND"
  "limitCallsPerMinute" "PUSHDIAL_LIMIT_CALLS_PER_MINUTE"
  "limitCallsPerNumberPerHour" "PUSHDIAL_LIMIT_CALLS_PER_NUMBER_PER_HOUR"
  "limitPairingPerIpPerMinute" "PUSHDIAL_LIMIT_PAIRING_PER_IP_PER_MINUTE"
  "limitPushPerDevicePerMinute" "PUSHDIAL_LIMIT_PUSH_PER_DEVICE_PER_MINUTE"
  "limitPushPerCredentialPerSecond" "PUSHDIAL_LIMIT_PUSH_PER_CREDENTIAL_PER_SECOND"
  "limitIpPerSecond" "PUSHDIAL_LIMIT_IP_PER_SECOND"
  "limitWidgetPerIpPerMinute" "PUSHDIAL_LIMIT_WIDGET_PER_IP_PER_MINUTE"
  "limitWidgetPerNumberPerHour" "PUSHDIAL_LIMIT_WIDGET_PER_NUMBER_PER_HOUR"
  "webDir" "PUSHDIAL_WEB_DIR"
  "trustedProxies" "PUSHDIAL_TRUSTED_PROXIES"
  "fcmBaseUrl" "PUSHDIAL_FCM_BASE_URL"
  "fcmTokenUri" "PUSHDIAL_FCM_TOKEN_URI"
  "apnsKeyId" "PUSHDIAL_APNS_KEY_ID"
  "apnsTeamId" "PUSHDIAL_APNS_TEAM_ID"
  "apnsTopic" "PUSHDIAL_APNS_TOPIC"
  "apnsSandbox" "PUSHDIAL_APNS_SANDBOX"
  "vapidSubject" "PUSHDIAL_VAPID_SUBJECT"
  "oidcIssuer" "PUSHDIAL_OIDC_ISSUER"
  "oidcClientId" "PUSHDIAL_OIDC_CLIENT_ID"
  "oidcName" "PUSHDIAL_OIDC_NAME"
  "googleClientId" "PUSHDIAL_GOOGLE_CLIENT_ID"
  "googleIssuer" "PUSHDIAL_GOOGLE_ISSUER"
  "githubClientId" "PUSHDIAL_GITHUB_CLIENT_ID"
  "githubUrl" "PUSHDIAL_GITHUB_URL"
  "githubApiUrl" "PUSHDIAL_GITHUB_API_URL"
  "sessionIdleTimeout" "PUSHDIAL_SESSION_IDLE_TIMEOUT"
  "sessionLifetime" "PUSHDIAL_SESSION_LIFETIME"
  "smtpFrom" "PUSHDIAL_SMTP_FROM"
}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "publicUrl" (include "pushdial.publicUrl" .) }}
{{- $env := dict }}
{{- range $key, $value := $config }}
{{- $name := required (printf "config.%s has no environment variable" $key) (get $names $key) }}
{{- if kindIs "slice" $value }}
{{- if $value }}
{{- $_ := set $env $name (join "," $value) }}
{{- end }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
{{- /* YAML numbers may arrive as float64: print integers without an exponent */}}
{{- $_ := set $env $name (printf "%d" (int64 $value)) }}
{{- else if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{- $_ := set $env $name (toString $value) }}
{{- end }}
{{- end }}
{{- if include "pushdial.fcmCredentialsSecret" . }}
{{- $_ := set $env "PUSHDIAL_FCM_CREDENTIALS" "/etc/pushdial/fcm/credentials.json" }}
{{- end }}
{{- if include "pushdial.apnsKeySecret" . }}
{{- $_ := set $env "PUSHDIAL_APNS_KEY" "/etc/pushdial/apns/key.p8" }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The data of the Secret the chart creates (environment variables), as a map; empty when
nothing secret is given in values.
*/}}
{{- define "pushdial.secretEnv" -}}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "set redis.url or redis.existingSecret, not both" }}
{{- end }}
{{- $env := dict }}
{{- with .Values.database.url }}
{{- $_ := set $env "DATABASE_URL" . }}
{{- end }}
{{- with .Values.redis.url }}
{{- $_ := set $env "REDIS_URL" . }}
{{- end }}
{{- with .Values.secrets.encryptionKey }}
{{- $_ := set $env "PUSHDIAL_ENCRYPTION_KEY" . }}
{{- end }}
{{- with .Values.secrets.encryptionKeysPrevious }}
{{- $_ := set $env "PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS" . }}
{{- end }}
{{- with .Values.secrets.vapidPrivateKey }}
{{- $_ := set $env "PUSHDIAL_VAPID_PRIVATE_KEY" . }}
{{- end }}
{{- with .Values.secrets.metricsToken }}
{{- $_ := set $env "PUSHDIAL_METRICS_TOKEN" . }}
{{- end }}
{{- with .Values.secrets.oidcClientSecret }}
{{- $_ := set $env "PUSHDIAL_OIDC_CLIENT_SECRET" . }}
{{- end }}
{{- with .Values.secrets.googleClientSecret }}
{{- $_ := set $env "PUSHDIAL_GOOGLE_CLIENT_SECRET" . }}
{{- end }}
{{- with .Values.secrets.githubClientSecret }}
{{- $_ := set $env "PUSHDIAL_GITHUB_CLIENT_SECRET" . }}
{{- end }}
{{- with .Values.secrets.smtpUrl }}
{{- $_ := set $env "PUSHDIAL_SMTP_URL" . }}
{{- end }}
{{- range $name, $value := .Values.secretEnv }}
{{- $_ := set $env $name (toString $value) }}
{{- end }}
{{- if $env }}
{{- toYaml $env }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the FCM service-account JSON (the chart's when the content is
given in values), or empty when FCM credentials are not configured.
*/}}
{{- define "pushdial.fcmCredentialsSecret" -}}
{{- $c := .Values.secrets.fcmCredentials }}
{{- if and $c.content $c.existingSecret }}
{{- fail "set secrets.fcmCredentials.content or secrets.fcmCredentials.existingSecret, not both" }}
{{- end }}
{{- if $c.existingSecret }}
{{- $c.existingSecret }}
{{- else if $c.content }}
{{- printf "%s-push" (include "pushdial.fullname" .) }}
{{- end }}
{{- end }}

{{- define "pushdial.apnsKeySecret" -}}
{{- $c := .Values.secrets.apnsKey }}
{{- if and $c.content $c.existingSecret }}
{{- fail "set secrets.apnsKey.content or secrets.apnsKey.existingSecret, not both" }}
{{- end }}
{{- if $c.existingSecret }}
{{- $c.existingSecret }}
{{- else if $c.content }}
{{- printf "%s-push" (include "pushdial.fullname" .) }}
{{- end }}
{{- end }}

{{/*
envFrom and env of every pushdial container: the ConfigMap, the chart's Secret, then
existingSecret and extraEnvFrom (later sources win), then env (which wins over envFrom):
URLs from existing Secrets, extraEnv, and the component's extraEnv.
Call with (dict "root" $ "extraEnv" list "configMap" name "secret" name).
*/}}
{{- define "pushdial.env" -}}
{{- $root := .root }}
{{- $values := $root.Values -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
  {{- if include "pushdial.secretEnv" $root }}
  - secretRef:
      name: {{ .secret }}
  {{- end }}
  {{- with $values.existingSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
  {{- with $values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $env := list }}
{{- with $values.database.existingSecret }}
{{- $env = append $env (dict "name" "DATABASE_URL" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $values.database.existingSecretKey))) }}
{{- end }}
{{- with $values.redis.existingSecret }}
{{- $env = append $env (dict "name" "REDIS_URL" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $values.redis.existingSecretKey))) }}
{{- end }}
{{- $env = concat $env $values.extraEnv (.extraEnv | default list) }}
{{- with $env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Volumes and mounts shared by every pushdial pod: /tmp, the push credentials, extras.
*/}}
{{- define "pushdial.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolumeSizeLimit }}
{{- with include "pushdial.fcmCredentialsSecret" . }}
- name: fcm-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ ternary $.Values.secrets.fcmCredentials.existingSecretKey "fcm-credentials.json" (ne $.Values.secrets.fcmCredentials.existingSecret "") }}
        path: credentials.json
{{- end }}
{{- with include "pushdial.apnsKeySecret" . }}
- name: apns-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ ternary $.Values.secrets.apnsKey.existingSecretKey "apns-key.p8" (ne $.Values.secrets.apnsKey.existingSecret "") }}
        path: key.p8
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "pushdial.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "pushdial.fcmCredentialsSecret" . }}
- name: fcm-credentials
  mountPath: /etc/pushdial/fcm
  readOnly: true
{{- end }}
{{- if include "pushdial.apnsKeySecret" . }}
- name: apns-key
  mountPath: /etc/pushdial/apns
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checksums of the ConfigMap and Secrets the pods read, so a changed setting rolls them.
*/}}
{{- define "pushdial.configChecksums" -}}
checksum/config: {{ include "pushdial.configEnv" . | sha256sum }}
checksum/secret: {{ printf "%s%s%s" (include "pushdial.secretEnv" .) .Values.secrets.fcmCredentials.content .Values.secrets.apnsKey.content | sha256sum }}
{{- end }}
