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

{{/* One ServiceAccount per service (and one for init): "<fullname>-<service>", the subject the
per-service IRSA roles of deploy/cloudformation/eks.yaml trust. Call with (dict "root" $ "name" n "svc" svc). */}}
{{- define "datatorag.serviceAccountName" -}}
{{- $sa := (.svc | default dict).serviceAccount | default dict -}}
{{- if .root.Values.serviceAccount.create -}}
{{- $sa.name | default (include "datatorag.componentName" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The slim image (connector, parser, indexer, gateway, init) or, for the embedder, the model
image (torch and the CUDA runtime). */}}
{{- define "datatorag.image" -}}
{{- $v := .root.Values -}}
{{- $tag := $v.image.tag | default .root.Chart.AppVersion -}}
{{- if eq .name "embedder" -}}
{{- printf "%s:%s" ($v.modelImage.repository | default $v.image.repository) ($v.modelImage.tag | default (printf "%s-model" $tag)) -}}
{{- else -}}
{{- printf "%s:%s" $v.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "datatorag.imagePullPolicy" -}}
{{- if eq .name "embedder" -}}
{{- .root.Values.modelImage.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- else -}}
{{- .root.Values.image.pullPolicy -}}
{{- end -}}
{{- end -}}

{{/* True ("true") when the model volume is mounted into this component. */}}
{{- define "datatorag.mountsModel" -}}
{{- if and (ne .root.Values.model.volume.type "none") (has .name .root.Values.model.mountInto) -}}true{{- end -}}
{{- end -}}

{{- define "datatorag.modelClaimName" -}}
{{- .Values.model.volume.claimName | default (printf "%s-models" (include "datatorag.fullname" .)) -}}
{{- end -}}

{{- define "datatorag.serviceTokenSecret" -}}
{{- .Values.secrets.serviceToken.existingSecret | default (printf "%s-service-token" (include "datatorag.fullname" .)) -}}
{{- end -}}

{{- define "datatorag.sourcesConfigMap" -}}
{{- .Values.sources.existingConfigMap | default (printf "%s-sources" (include "datatorag.fullname" .)) -}}
{{- end -}}

{{/* The environment every container gets: the ConfigMap, secrets, per-service extras. */}}
{{- define "datatorag.env" -}}
{{- $root := .root -}}
{{- $svc := .svc | default dict -}}
envFrom:
  - configMapRef:
      name: {{ .envConfigMap | default (printf "%s-env" (include "datatorag.fullname" $root)) }}
  {{- with $svc.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  {{- if has .name (list "connector" "parser" "indexer") }}
  # workers serve /healthz, /readyz and /metrics here
  - name: DATATORAG_HEALTH_PORT
    value: {{ $svc.port | quote }}
  {{- end }}
  {{- if eq .name "connector" }}
  - name: DATATORAG_SOURCES_FILE
    value: {{ printf "%s/%s" $root.Values.sources.mountPath $root.Values.sources.key | quote }}
  {{- end }}
  {{- if has .name (list "query-gateway" "connector" "embedder" "indexer") }}
  # the shared secret of the internal endpoints (X-Service-Token): the embedder and connector
  # check it, the gateway and the indexer (the embedder's callers) send it
  - name: DATATORAG_SERVICE_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "datatorag.serviceTokenSecret" $root }}
        key: {{ $root.Values.secrets.serviceToken.key }}
  {{- end }}
  {{- if eq .name "query-gateway" }}
  - name: DATATORAG_API_KEYS
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.secrets.apiKeys.existingSecret }}
        key: {{ $root.Values.secrets.apiKeys.key }}
  - name: DATATORAG_ADMIN_API_KEYS
    valueFrom:
      secretKeyRef:
        name: {{ $root.Values.secrets.apiKeys.existingSecret }}
        key: {{ $root.Values.secrets.apiKeys.adminKey }}
        optional: true
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
  {{- range $k, $v := ($svc.env | default dict) }}
  - name: {{ $k }}
    value: {{ $v | quote }}
  {{- end }}
  {{- with $svc.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* /tmp, the model, the sources file, extras: the root filesystem is read-only. */}}
{{- define "datatorag.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if include "datatorag.mountsModel" . }}
  - name: model
    mountPath: {{ .root.Values.model.mountPath }}
    readOnly: true
  {{- end }}
  {{- if eq .name "connector" }}
  - name: sources
    mountPath: {{ .root.Values.sources.mountPath }}
    readOnly: true
  {{- end }}
  {{- with (.svc | default dict).extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "datatorag.volumes" -}}
{{- $v := .root.Values -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $v.tmpSizeLimit }}
  {{- if include "datatorag.mountsModel" . }}
  - name: model
    {{- if eq $v.model.volume.type "persistentVolumeClaim" }}
    persistentVolumeClaim:
      claimName: {{ include "datatorag.modelClaimName" .root }}
      readOnly: true
    {{- else if eq $v.model.volume.type "hostPath" }}
    hostPath:
      path: {{ $v.model.volume.hostPath }}
      type: Directory
    {{- end }}
  {{- end }}
  {{- if eq .name "connector" }}
  - name: sources
    {{- if $v.sources.existingSecret }}
    secret:
      secretName: {{ $v.sources.existingSecret }}
      items: [{key: {{ $v.sources.key | quote }}, path: {{ $v.sources.key | quote }}}]
    {{- else }}
    configMap:
      name: {{ include "datatorag.sourcesConfigMap" .root }}
      items: [{key: {{ $v.sources.key | quote }}, path: {{ $v.sources.key | quote }}}]
    {{- end }}
  {{- end }}
  {{- with (.svc | default dict).extraVolumes }}
  {{- toYaml . | nindent 2 }}
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
{{- if and .Values.sources.existingSecret .Values.sources.existingConfigMap -}}
{{- fail "sources: set existingSecret or existingConfigMap, not both" -}}
{{- end -}}
{{- if and .Values.model.volume.create (ne .Values.model.volume.type "persistentVolumeClaim") -}}
{{- fail "model.volume.create needs model.volume.type=persistentVolumeClaim" -}}
{{- end -}}
{{- if and .Values.model.volume.create (not .Values.model.volume.efs.fileSystemId) -}}
{{- fail "model.volume.create needs model.volume.efs.fileSystemId (the models stack's FileSystemId output)" -}}
{{- end -}}
{{- if and .Values.llm.enabled (not (hasPrefix (printf "%s/" .Values.llm.volume.mountPath) .Values.llm.modelPath)) -}}
{{- fail (printf "llm.modelPath (%s) must be inside llm.volume.mountPath (%s)" .Values.llm.modelPath .Values.llm.volume.mountPath) -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int (add 25 .Values.config.queues.waitTimeS 1)) -}}
{{- fail (printf "terminationGracePeriodSeconds must exceed the worker's shutdown grace (25 s + waitTimeS + 1 = %d s)" (int (add 25 .Values.config.queues.waitTimeS 1))) -}}
{{- end -}}
{{- end -}}

{{/* The shared environment (the -env ConfigMap, and the init hook's copy of it). */}}
{{- define "datatorag.envData" -}}
{{- $c := .Values.config -}}
DATATORAG_MODE: {{ $c.mode | quote }}
DATATORAG_LOG_LEVEL: {{ $c.logLevel | quote }}
DATATORAG_LOG_FORMAT: {{ $c.logFormat | quote }}
DATATORAG_STALLED_AFTER_S: {{ $c.stalledAfterS | quote }}
DATATORAG_MAX_DOCUMENT_BYTES: {{ $c.maxDocumentBytes | int64 | quote }}
DATATORAG_MIN_FREE_DISK_MB: {{ $c.minFreeDiskMb | int64 | quote }}
# bind every interface inside the pod; ports are fixed per service
DATATORAG_GATEWAY_HOST: "0.0.0.0"
DATATORAG_GATEWAY_PORT: {{ (index .Values.services "query-gateway").port | quote }}
{{- $gw := index .Values.services "query-gateway" }}
{{- if $gw.grpc.enabled }}
DATATORAG_GRPC_PORT: {{ $gw.grpc.port | quote }}
{{- end }}
{{- if .Values.services.connector.enabled }}
# where the gateway forwards POST /v1/sources/{id}/sync (and the sync after an upload)
DATATORAG_CONNECTOR_URL: {{ printf "http://%s:%v" (include "datatorag.componentName" (dict "root" . "name" "connector")) .Values.services.connector.port | quote }}
{{- end }}
{{- with $c.uploads.bucket }}
DATATORAG_UPLOADS_BUCKET: {{ . | quote }}
{{- end }}
DATATORAG_UPLOADS_PREFIX: {{ $c.uploads.prefix | quote }}
DATATORAG_EMBEDDER_PORT: {{ .Values.services.embedder.port | quote }}
DATATORAG_AWS_REGION: {{ $c.aws.region | quote }}
AWS_REGION: {{ $c.aws.region | quote }}
DATATORAG_AWS_BUCKET: {{ $c.aws.bucket | quote }}
DATATORAG_AWS_REGISTRY_TABLE: {{ $c.aws.registryTable | quote }}
DATATORAG_AWS_SSE: {{ $c.aws.sse | quote }}
{{- with $c.aws.kmsKeyId }}
DATATORAG_AWS_KMS_KEY_ID: {{ . | quote }}
{{- end }}
DATATORAG_QUEUE_PARSE: {{ $c.queues.parse | quote }}
DATATORAG_QUEUE_EMBED: {{ $c.queues.embed | quote }}
DATATORAG_QUEUE_INDEX: {{ $c.queues.index | quote }}
DATATORAG_QUEUE_DLQ_SUFFIX: {{ $c.queues.dlqSuffix | quote }}
DATATORAG_QUEUE_VISIBILITY_TIMEOUT_S: {{ $c.queues.visibilityTimeoutS | quote }}
DATATORAG_QUEUE_MAX_RECEIVES: {{ $c.queues.maxReceives | quote }}
DATATORAG_QUEUE_WAIT_TIME_S: {{ $c.queues.waitTimeS | quote }}
DATATORAG_OPENSEARCH_URL: {{ $c.opensearch.url | quote }}
DATATORAG_OPENSEARCH_AUTH: {{ $c.opensearch.auth | quote }}
DATATORAG_OPENSEARCH_REGION: {{ $c.opensearch.region | default $c.aws.region | quote }}
DATATORAG_OPENSEARCH_SERVICE: {{ $c.opensearch.service | quote }}
DATATORAG_OPENSEARCH_ENGINE: {{ $c.opensearch.engine | quote }}
DATATORAG_OPENSEARCH_INDEX_PREFIX: {{ $c.opensearch.indexPrefix | quote }}
DATATORAG_OPENSEARCH_VERIFY_CERTS: {{ $c.opensearch.verifyCerts | quote }}
DATATORAG_EMBEDDING_MODEL: {{ $c.embedding.model | quote }}
DATATORAG_EMBEDDING_BATCH_SIZE: {{ $c.embedding.batchSize | quote }}
DATATORAG_EMBEDDING_MAX_SEQ_TOKENS: {{ $c.embedding.maxSeqTokens | quote }}
{{- if $c.embedding.truncateDim }}
DATATORAG_EMBEDDING_TRUNCATE_DIM: {{ $c.embedding.truncateDim | quote }}
{{- end }}
DATATORAG_EMBEDDING_MICROBATCH_WAIT_MS: {{ $c.embedding.microbatchWaitMs | quote }}
# pods start together: the gateway and the indexer wait for the embedder to load its model
DATATORAG_EMBEDDING_CONNECT_WAIT_S: {{ $c.embedding.connectWaitS | quote }}
DATATORAG_EMBEDDING_SERVICE_URL: {{ printf "http://%s:%v" (include "datatorag.componentName" (dict "root" . "name" "embedder")) .Values.services.embedder.port | quote }}
DATATORAG_CHUNK_MAX_TOKENS: {{ $c.chunking.maxTokens | quote }}
DATATORAG_CHUNK_OVERLAP_TOKENS: {{ $c.chunking.overlapTokens | quote }}
{{- $a := $c.answer }}
{{- $llm := printf "http://%s:%v/v1" (include "datatorag.componentName" (dict "root" . "name" "llm")) .Values.llm.port }}
DATATORAG_ANSWER_PROVIDERS: {{ $a.providers | default (ternary "openai,extractive" "extractive" .Values.llm.enabled) | quote }}
DATATORAG_ANSWER_OPENAI_BASE_URL: {{ $a.openaiBaseUrl | default $llm | quote }}
DATATORAG_ANSWER_OPENAI_MODEL: {{ $a.openaiModel | default .Values.llm.servedModelName | quote }}
DATATORAG_ANSWER_BEDROCK_MODEL_ID: {{ $a.bedrockModelId | quote }}
DATATORAG_ANSWER_BEDROCK_REGION: {{ $a.bedrockRegion | default $c.aws.region | quote }}
DATATORAG_ANSWER_TIMEOUT_S: {{ $a.timeoutS | quote }}
DATATORAG_ANSWER_FIRST_TOKEN_TIMEOUT_S: {{ $a.firstTokenTimeoutS | quote }}
DATATORAG_ANSWER_STALL_TIMEOUT_S: {{ $a.stallTimeoutS | quote }}
DATATORAG_ANSWER_CACHE_ENTRIES: {{ $a.cacheEntries | quote }}
# model weights only ever come from the mounted directory
HF_HOME: /tmp/huggingface
HF_HUB_OFFLINE: "1"
TRANSFORMERS_OFFLINE: "1"
{{- range $k, $v := $c.extraEnv }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* checkov's Kubernetes checks the chart does not follow, each with its reason (checkov reads
these annotations as inline suppressions; tests/deploy/test_helm.py runs checkov on the render). */}}
{{- define "datatorag.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_11=No CPU limit on purpose - CFS throttling stalls latency-bound services and model loads; CPU requests are set and memory is limited
checkov.io/skip2: CKV_K8S_15=IfNotPresent is safe here - release tags are immutable (ECR ImageTagMutability IMMUTABLE in the security stack); the pull policy is a value
checkov.io/skip3: CKV_K8S_43=Images are pinned by immutable release tags; image.tag takes a tag@sha256 digest where an operator wants digests
checkov.io/skip4: CKV_K8S_35=Settings are twelve-factor (pydantic-settings reads DATATORAG_* from the environment); each secret value comes from a secretKeyRef, never a literal
{{- end -}}
