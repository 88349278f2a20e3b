{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "datatorag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; services append "-<service>" so it leaves room for the longest. */}}
{{- define "datatorag.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "datatorag.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "datatorag.labels" -}}
helm.sh/chart: {{ include "datatorag.chart" . }}
app.kubernetes.io/name: {{ include "datatorag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: datatorag
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "datatorag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "datatorag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one service: call with (dict "root" $ "name" "parser"). */}}
{{- define "datatorag.componentLabels" -}}
{{ include "datatorag.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "datatorag.componentSelectorLabels" -}}
{{ include "datatorag.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "datatorag.componentName" -}}
{{- printf "%s-%s" (include "datatorag.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "datatorag.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "datatorag.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of one service: its own repository/tag when set, else the chart's; plus tagSuffix. */}}
{{- define "datatorag.image" -}}
{{- $img := .svc.image | default dict -}}
{{- $repo := $img.repository | default .root.Values.image.repository -}}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s%s" $repo $tag ($img.tagSuffix | default "") -}}
{{- end -}}

{{/* True ("true") when the model volume is mounted into this component. */}}
{{- define "datatorag.mountsModel" -}}
{{- if and (ne .root.Values.model.volume.type "none") (has .name .root.Values.model.mountInto) -}}true{{- end -}}
{{- end -}}

{{/* The environment every container gets: the ConfigMap, secrets, per-service extras. */}}
{{- define "datatorag.env" -}}
{{- $root := .root -}}
envFrom:
  - configMapRef:
      name: {{ include "datatorag.fullname" $root }}-env
env:
  {{- if has .name (list "connector" "parser" "indexer") }}
  # workers serve /healthz, /readyz and /metrics here
  - name: DATATORAG_HEALTH_PORT
    value: {{ .svc.port | quote }}
  {{- end }}
  {{- if eq .name "query-gateway" }}
  - name: DATATORAG_API_KEYS
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.secrets.apiKeys.existingSecret }}
        key: {{ $root.Values.secrets.apiKeys.key }}
  {{- with $root.Values.secrets.openaiApiKey.existingSecret }}
  - name: DATATORAG_ANSWER_OPENAI_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $root.Values.secrets.openaiApiKey.key }}
  {{- end }}
  {{- end }}
  {{- if eq $root.Values.config.opensearch.auth "basic" }}
  - name: DATATORAG_OPENSEARCH_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.secrets.opensearch.existingSecret }}
        key: {{ $root.Values.secrets.opensearch.usernameKey }}
  - name: DATATORAG_OPENSEARCH_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.secrets.opensearch.existingSecret }}
        key: {{ $root.Values.secrets.opensearch.passwordKey }}
  {{- end }}
  {{- range $k, $v := (.svc.env | default dict) }}
  - name: {{ $k }}
    value: {{ $v | quote }}
  {{- end }}
{{- end -}}

{{/* /tmp and the model: the root filesystem is read-only. */}}
{{- define "datatorag.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if include "datatorag.mountsModel" . }}
  - name: model
    mountPath: {{ .root.Values.model.mountPath }}
    readOnly: true
  {{- end }}
{{- end -}}

{{- define "datatorag.volumes" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .root.Values.tmpSizeLimit }}
  {{- if include "datatorag.mountsModel" . }}
  - name: model
    {{- if eq .root.Values.model.volume.type "persistentVolumeClaim" }}
    persistentVolumeClaim:
      claimName: {{ .root.Values.model.volume.claimName }}
      readOnly: true
    {{- else if eq .root.Values.model.volume.type "hostPath" }}
    hostPath:
      path: {{ .root.Values.model.volume.hostPath }}
      type: Directory
    {{- end }}
  {{- end }}
{{- end -}}

{{/* Fail the render early on combinations that cannot work. */}}
{{- define "datatorag.validate" -}}
{{- if and (eq .Values.config.opensearch.auth "basic") (not .Values.secrets.opensearch.existingSecret) -}}
{{- fail "config.opensearch.auth=basic needs secrets.opensearch.existingSecret (a Secret with username and password)" -}}
{{- end -}}
{{- $gw := index .Values.services "query-gateway" -}}
{{- if and $gw.enabled (not .Values.secrets.apiKeys.existingSecret) -}}
{{- fail "the query gateway needs secrets.apiKeys.existingSecret: a Secret holding DATATORAG_API_KEYS (key=tenant,...)" -}}
{{- end -}}
{{- if and .Values.llm.enabled (not (hasPrefix (printf "%s/" .Values.llm.volume.mountPath) .Values.llm.modelPath)) -}}
{{- fail (printf "llm.modelPath (%s) must be inside llm.volume.mountPath (%s)" .Values.llm.modelPath .Values.llm.volume.mountPath) -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int (add 25 .Values.config.queues.waitTimeS 1)) -}}
{{- fail (printf "terminationGracePeriodSeconds must exceed the worker's shutdown grace (25 s + waitTimeS + 1 = %d s)" (int (add 25 .Values.config.queues.waitTimeS 1))) -}}
{{- end -}}
{{- end -}}
