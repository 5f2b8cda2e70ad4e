{{/*
The Deployment of one component, `api` or `worker` (`pushdial api` / `pushdial worker`):
call with (dict "root" $ "component" "api"). The worker serves /healthz, /readyz and
/metrics on PUSHDIAL_LISTEN; the api serves the API there, and its metrics (with the health
checks) on PUSHDIAL_METRICS_LISTEN, the container port `metrics`.
*/}}
{{- define "pushdial.deployment" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := $root.Values }}
{{- $c := index $values $component }}
{{- $ctx := dict "root" $root "component" $component }}
{{- $fullname := include "pushdial.fullname" $root }}
{{- $port := include "pushdial.containerPort" $root }}
{{- $metricsPort := ternary (include "pushdial.metricsPort" $root) "" (eq $component "api") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "pushdial.componentName" $ctx }}
  labels:
    {{- include "pushdial.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not $c.autoscaling.enabled }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with $c.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "pushdial.componentSelectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      annotations:
        {{- include "pushdial.configChecksums" $root | nindent 8 }}
        {{- if $values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $metricsPort | default $port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "pushdial.componentLabels" $ctx | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      serviceAccountName: {{ include "pushdial.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $values.serviceAccount.automount }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      # SIGTERM: /readyz fails at once while the api keeps serving for
      # PUSHDIAL_SHUTDOWN_DRAIN (the endpoints and load balancers drop the pod meanwhile,
      # so no preStop sleep is needed), then in-flight work gets PUSHDIAL_SHUTDOWN_GRACE and
      # agents' sockets are closed with a reconnect hint. This period must exceed both.
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: {{ $component }}
          image: {{ include "pushdial.image" $root | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          args:
            - {{ $component }}
            {{- with $c.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "pushdial.env" (dict "root" $root "extraEnv" $c.extraEnv "configMap" $fullname "secret" $fullname) | nindent 10 }}
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
            {{- if $metricsPort }}
            - name: metrics
              containerPort: {{ $metricsPort }}
              protocol: TCP
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $values.probes.readiness | nindent 12 }}
          {{- with $c.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "pushdial.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "pushdial.volumes" $root | nindent 8 }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml $c.topologySpreadConstraints | nindent 8 }}
      {{- else if $values.spreadAcrossNodes }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "pushdial.componentSelectorLabels" $ctx | nindent 14 }}
      {{- end }}
{{- end }}
