#!/usr/bin/env bash
# DatatoRAG on AWS from an empty account: deploys the stacks of this directory in order, wiring
# each stack's imports to the stacks before it, from ONE parameter file.
#
#   deploy.sh [-f params.env] deploy [stack...]   every stack (or those named), in order; on ECS
#                                            then `datatorag init`
#   deploy.sh [-f params.env] outputs       EKS: Helm values + the kubectl steps; ECS: endpoints
#   deploy.sh [-f params.env] helm-values   EKS: only the Helm values (YAML on stdout)
#   deploy.sh [-f params.env] plan          the stacks and parameters deploy would use (no AWS)
#   deploy.sh [-f params.env] teardown [--purge]
#
# The parameter file holds Key=Value lines (# comments). Platform (eks|ecs) and Region are this
# script's; DefaultTenant, EmbeddingModel and ImageTag are also read here (Helm values, sources);
# every key goes to each stack whose template declares it, and a key that is neither the
# script's nor any template's is an error (a typo never falls back to a default).
# The *StackName parameters, AdminPrincipalArn (default: the caller) and the ECS load balancer of
# the alarms stack are filled in here. Only the aws CLI is needed (v2); it is called at run time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
params_file="$here/params.env"
AWS="${AWS_CLI:-aws}"

die() { echo "deploy.sh: $*" >&2; exit 1; }
log() { echo "deploy.sh: $*" >&2; }

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---- parameters -------------------------------------------------------------------------------

PARAMS=""  # newline-separated Key=Value, in file order
SCRIPT_KEYS="Platform Region DefaultTenant EmbeddingModel ImageTag"

param() { # key [default]: the value from the parameter file
  local line
  while IFS= read -r line; do
    [[ "${line%%=*}" == "$1" ]] && { printf '%s' "${line#*=}"; return 0; }
  done <<<"$PARAMS"
  [[ $# -ge 2 ]] && { printf '%s' "$2"; return 0; }
  return 1
}

load_params() {
  [[ -f "$params_file" ]] || die "no parameter file $params_file (copy params.eks.example.env or params.ecs.example.env)"
  local line n=0 key
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    [[ -z "${line// /}" || "$line" =~ ^[[:space:]]*# ]] && continue
    [[ "$line" =~ ^[A-Za-z][A-Za-z0-9]*= ]] || die "$params_file:$n: not Key=Value: $line"
    key="${line%%=*}"
    param "$key" >/dev/null && die "$params_file:$n: $key given twice"
    PARAMS+="$line"$'\n'
  done <"$params_file"
}

template_params() { # template: its parameter names, one a line
  awk '/^Parameters:/ {p = 1; next} /^[A-Za-z]/ {p = 0} p && /^  [A-Za-z0-9]+:[[:space:]]*$/ {
    sub(/^  /, ""); sub(/:.*/, ""); print }' "$1"
}

# ---- stacks -----------------------------------------------------------------------------------

platform() { param Platform eks; }
prefix() { param Prefix datatorag; }
region() { param Region "${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"; }

stacks() { # the stacks of the chosen platform, in deploy order: <suffix> per line
  if [[ "$(platform)" == ecs ]]; then
    printf '%s\n' security network storage opensearch iam models ecs ecs-services alarms
  else
    printf '%s\n' security network storage opensearch iam models eks alarms
  fi
}

stack_name() { echo "$(prefix)-$1"; }

check_params() {
  case "$(platform)" in eks | ecs) ;; *) die "Platform must be eks or ecs, not $(platform)" ;; esac
  [[ -n "$(region)" ]] || die "set Region in $params_file (or AWS_REGION)"
  local line key s found
  while IFS= read -r line; do
    [[ -z "$line" ]] && continue
    key="${line%%=*}"
    case " $SCRIPT_KEYS " in *" $key "*) continue ;; esac
    [[ "$key" == *StackName ]] && die "$key is set by deploy.sh (stacks are named <Prefix>-<stack>)"
    found=""
    for s in $(stacks); do
      template_params "$here/$s.yaml" | grep -qx "$key" && found=1
    done
    [[ -n "$found" ]] || die "$key: no template of the $(platform) path declares this parameter"
  done <<<"$PARAMS"
}

OUTPUTS_DIR=""  # made in main: functions called in $(...) cannot set it
outputs_dir() { echo "$OUTPUTS_DIR"; }
PLAN=""  # set by `plan`: values that need AWS are shown as placeholders

aws_() { "$AWS" --region "$(region)" "$@"; }

fetch_outputs() { # suffix: cache the stack's outputs (Key<TAB>Value lines)
  local f
  f="$(outputs_dir)/$1"
  aws_ cloudformation describe-stacks --stack-name "$(stack_name "$1")" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text >"$f"
}

output() { # suffix key: an output of a deployed stack
  local f key value
  f="$(outputs_dir)/$1"
  [[ -f "$f" ]] || fetch_outputs "$1"
  while IFS=$'\t' read -r key value; do
    [[ "$key" == "$2" ]] && { printf '%s' "$value"; return 0; }
  done <"$f"
  return 1
}

caller_principal() { # the caller as an IAM principal (an assumed role -> its role)
  local arn
  arn="$(aws_ sts get-caller-identity --query Arn --output text)"
  if [[ "$arn" =~ ^arn:(aws[a-z-]*):sts::([0-9]{12}):assumed-role/([^/]+)/ ]]; then
    echo "arn:${BASH_REMATCH[1]}:iam::${BASH_REMATCH[2]}:role/${BASH_REMATCH[3]}"
  else
    echo "$arn"
  fi
}

admin_principal() {
  local admin
  admin="$(param AdminPrincipalArn "")"
  if [[ -z "$admin" && -n "$PLAN" ]]; then
    admin="<the caller: aws sts get-caller-identity>"
  elif [[ -z "$admin" ]]; then
    admin="$(caller_principal)"
  fi
  echo "$admin"
}

stack_overrides() { # suffix: Key=Value per line, for the parameters its template declares
  local s="$1" name value
  while IFS= read -r name; do
    case "$name" in
      SecurityStackName) value="$(stack_name security)" ;;
      NetworkStackName) value="$(stack_name network)" ;;
      StorageStackName) value="$(stack_name storage)" ;;
      OpenSearchStackName) value="$(stack_name opensearch)" ;;
      IamStackName) value="$(stack_name iam)" ;;
      ModelsStackName) value="$(stack_name models)" ;;
      EcsStackName) value="$(stack_name ecs)" ;;
      AdminPrincipalArn) value="$(admin_principal)" ;;
      Prefix) value="$(prefix)" ;;
      LoadBalancerFullName)
        if [[ "$(platform)" == ecs ]] && ! param LoadBalancerFullName >/dev/null; then
          if [[ -n "$PLAN" ]]; then
            value="<output LoadBalancerFullName of $(stack_name ecs)>"
          else
            value="$(output ecs LoadBalancerFullName)"
          fi
        else
          value="$(param LoadBalancerFullName "")" || true
          [[ -n "$value" ]] || continue
        fi
        ;;
      *) value="$(param "$name")" || continue ;;
    esac
    echo "$name=$value"
  done < <(template_params "$here/$s.yaml")
}

deploy_stack() { # suffix
  local s="$1" overrides=()
  local line
  while IFS= read -r line; do overrides+=("$line"); done < <(stack_overrides "$s")
  log "stack $(stack_name "$s") ($s.yaml)"
  aws_ cloudformation deploy \
    --stack-name "$(stack_name "$s")" \
    --template-file "$here/$s.yaml" \
    --capabilities CAPABILITY_NAMED_IAM \
    --no-fail-on-empty-changeset \
    --tags "project=datatorag" "datatorag:prefix=$(prefix)" \
    ${overrides[@]+--parameter-overrides "${overrides[@]}"}
  rm -f "$(outputs_dir)/$s"  # outputs may have changed
}

# The generated gateway secret is a bare random key; once, it becomes
# "sha256:<digest>=<DefaultTenant>" (a production gateway accepts digests only) and the key itself
# is shown this one time: only its digest is kept.
seed_api_keys() {
  local arn value digest
  arn="$(output security ApiKeysSecretArn)"
  value="$(aws_ secretsmanager get-secret-value --secret-id "$arn" --query SecretString --output text)"
  if [[ "$value" != *=* ]]; then
    digest="sha256:$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)"
    aws_ secretsmanager put-secret-value --secret-id "$arn" \
      --secret-string "$digest=$(param DefaultTenant default)" >/dev/null
    log "API key (reader) of tenant $(param DefaultTenant default), shown once; $arn keeps its digest:"
    printf '%s\n' "$value" >&2
    log "admin keys: datatorag keys create --tenant $(param DefaultTenant default) --role admin (in a gateway task or pod)"
  fi
}

ecs_run_init() {
  local cluster td subnets sg task code
  cluster="$(output ecs ClusterName)"
  td="$(output ecs-services InitTaskDefinition)"
  subnets="$(output network PrivateSubnetIds)"
  sg="$(output network WorkloadSecurityGroupId)"
  log "running datatorag init ($td)"
  task="$(aws_ ecs run-task --cluster "$cluster" --task-definition "$td" --launch-type FARGATE \
    --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$sg],assignPublicIp=DISABLED}" \
    --query 'tasks[0].taskArn' --output text)"
  aws_ ecs wait tasks-stopped --cluster "$cluster" --tasks "$task"
  code="$(aws_ ecs describe-tasks --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].containers[0].exitCode' --output text)"
  [[ "$code" == 0 ]] || die "datatorag init exited with $code (logs: /$(prefix)/ecs/init)"
}

cmd_deploy() { # [stack...]: only these (in deploy order), e.g. "security" before pushing images
  local s only=" $* " all
  all=" $(stacks | tr '\n' ' ')"
  for s in "$@"; do
    [[ "$all" == *" $s "* ]] || die "no stack $s on the $(platform) path (stacks:$all)"
  done
  for s in $(stacks); do
    [[ $# -eq 0 || "$only" == *" $s "* ]] || continue
    deploy_stack "$s"
    if [[ "$s" == security ]]; then seed_api_keys; fi
  done
  if [[ $# -gt 0 ]]; then return; fi
  if [[ "$(platform)" == ecs ]]; then ecs_run_init; fi
  cmd_outputs
}

# ---- what the outputs imply -------------------------------------------------------------------

yaml_str() { printf '"%s"' "${1//\"/\\\"}"; }

cmd_helm_values() {
  [[ "$(platform)" == eks ]] || die "helm-values is for Platform=eks"
  local model tenant
  model="$(param EmbeddingModel minilm)"
  tenant="$(param DefaultTenant default)"
  cat <<EOF
# Generated by deploy/cloudformation/deploy.sh from the outputs of the $(prefix)-* stacks.
# Each service runs under the account <fullname>-<service>, which its IRSA role trusts.
fullnameOverride: $(yaml_str "$(param ServiceAccountName datatorag)")
image:
  repository: $(yaml_str "$(output security ImageRepositoryUri)")
  tag: $(yaml_str "$(param ImageTag 0.1.0)")
# the embedder's model image: the same repository, tag <ImageTag>-model
serviceAccount:
  create: true
init:
  serviceAccount:
    roleArn: $(yaml_str "$(output eks InitRoleArn)")
services:
EOF
  local key svc
  for key in Connector Parser Embedder Indexer QueryGateway; do
    case "$key" in QueryGateway) svc=query-gateway ;; *) svc="${key,,}" ;; esac
    printf '  %s:\n    serviceAccount:\n      roleArn: %s\n' "$svc" "$(yaml_str "$(output eks "${key}RoleArn")")"
  done
  cat <<EOF
# the connector's sources: the default tenant (the connector adds its uploads source); add the
# tenant's FTP/SFTP/S3/Workday/Rippling sources here
sources:
  inline:
    tenants:
      $tenant:
        sources: []
config:
  mode: production
  aws:
    region: $(yaml_str "$(region)")
    bucket: $(yaml_str "$(output storage BucketName)")
    registryTable: $(yaml_str "$(output storage RegistryTableName)")
    sse: aws:kms
    kmsKeyId: $(yaml_str "$(output security KmsKeyArn)")
  queues:
    parse: $(yaml_str "$(output storage ParseQueueName)")
    embed: $(yaml_str "$(output storage EmbedQueueName)")
    index: $(yaml_str "$(output storage IndexQueueName)")
    visibilityTimeoutS: $(output storage VisibilityTimeout)
    maxReceives: $(output storage MaxReceiveCount)
    waitTimeS: $(output storage ReceiveWaitTime)
  opensearch:
    url: $(yaml_str "$(output opensearch DomainEndpoint)")
    auth: sigv4
    region: $(yaml_str "$(region)")
    service: es
    engine: faiss
    indexPrefix: $(yaml_str "$(output opensearch IndexPrefix)")
  embedding:
    model: $(yaml_str "$model")
  # POST /v1/documents lands here, per tenant
  uploads:
    bucket: $(yaml_str "$(output storage LandingBucketName)")
    prefix: $(yaml_str "$(output storage LandingPrefix)")
EOF
  if [[ "$model" == minilm ]]; then
    cat <<EOF
# the bundled all-MiniLM-L6-v2 needs no model volume
model:
  mountPath: /models
  volume:
    type: none
EOF
  else
    cat <<EOF
# the EFS of $(stack_name models) (copy the model in first: deploy/README.md), as a
# ReadOnlyMany claim the chart creates
model:
  mountPath: /models
  volume:
    type: persistentVolumeClaim
    claimName: datatorag-models
    create: true
    efs:
      fileSystemId: $(yaml_str "$(output models FileSystemId)")
      accessPointId: $(yaml_str "$(output models AccessPointId)")
EOF
  fi
  cat <<EOF
keda:
  roleArn: $(yaml_str "$(output eks KedaOperatorRoleArn || true)")
  queueUrlPrefix: $(yaml_str "$(output storage QueueUrlPrefix)")
EOF
}

cmd_outputs() {
  if [[ "$(platform)" == ecs ]]; then
    cat <<EOF
ECS cluster:   $(output ecs ClusterName)
REST API:      $(output ecs GatewayUrl)   (docs: /docs; point your certificate's DNS name here)
gRPC API:      $(output ecs GrpcEndpoint)
API keys:      the bootstrap key was shown once when deploy seeded $(output security ApiKeysSecretArn) (it keeps the digest); admin keys: datatorag keys create --tenant $(param DefaultTenant default) --role admin (ECS exec into the gateway task)
Sources file:  SSM parameter $(output ecs SourcesParameter) (edit, then: aws ecs update-service --cluster $(output ecs ClusterName) --service connector --force-new-deployment)
First document: aws s3 cp handbook.pdf s3://$(output storage LandingBucketName)/$(output storage LandingPrefix)$(param DefaultTenant default)/
Alarms topic:  $(output alarms TopicArn)
EOF
    return
  fi
  local ns release cluster
  ns="$(param Namespace datatorag)"
  release="$(param ServiceAccountName datatorag)"
  cluster="$(output eks ClusterName)"
  cat <<EOF
# 1. kubeconfig, the NVIDIA device plugin (GPU nodes advertise nvidia.com/gpu)
aws eks update-kubeconfig --region $(region) --name $cluster
helm repo add nvdp https://nvidia.github.io/k8s-device-plugin
helm upgrade --install nvidia-device-plugin nvdp/nvidia-device-plugin --namespace kube-system \\
  --set-json 'nodeSelector={"nvidia.com/gpu.present":"true"}' \\
  --set-json 'tolerations=[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]'
# 2. namespace, the gateway's API keys (from Secrets Manager)
kubectl create namespace $ns --dry-run=client -o yaml | kubectl apply -f -
kubectl -n $ns create secret generic datatorag-api-keys --dry-run=client -o yaml \\
  --from-literal=api-keys="\$(aws secretsmanager get-secret-value --region $(region) \\
    --secret-id $(output security ApiKeysSecretArn) --query SecretString --output text)" | kubectl apply -f -
# 3. the release (values below: deploy.sh helm-values > values-aws.yaml); the init hook provisions
#    the index before any service starts (--wait: until every service is Ready)
helm upgrade --install $release deploy/helm/datatorag -n $ns -f values-aws.yaml --wait --timeout 20m
# 4. a first document, then a first query (port-forward, or ingress.enabled)
aws s3 cp handbook.pdf s3://$(output storage LandingBucketName)/$(output storage LandingPrefix)$(param DefaultTenant default)/
kubectl -n $ns port-forward svc/$release-query-gateway 8080:8080
# alarms: $(output alarms TopicArn)
# ---- values-aws.yaml ----
EOF
  cmd_helm_values
}

cmd_plan() {
  local s
  PLAN=1
  for s in $(stacks); do
    echo "$(stack_name "$s") <- $s.yaml"
    stack_overrides "$s" | sed 's/^/    /'
  done
}

# ---- teardown ---------------------------------------------------------------------------------

cmd_teardown() {
  local purge="${1:-}" s order="" lb
  for s in $(stacks); do order="$s $order"; done
  if [[ "$(platform)" == ecs ]]; then  # the ALB has deletion protection on
    lb="$(aws_ cloudformation describe-stack-resource --stack-name "$(stack_name ecs)" \
      --logical-resource-id LoadBalancer --query StackResourceDetail.PhysicalResourceId \
      --output text 2>/dev/null)" || lb=""
    if [[ -n "$lb" && "$lb" != None ]]; then
      aws_ elbv2 modify-load-balancer-attributes --load-balancer-arn "$lb" \
        --attributes Key=deletion_protection.enabled,Value=false >/dev/null
    fi
  fi
  local key
  if [[ "$purge" == --purge ]]; then
    for key in Ftp Sftp Workday Rippling Llm ApiKeys; do
      aws_ secretsmanager delete-secret --force-delete-without-recovery \
        --secret-id "$(output security "${key}SecretArn")" >/dev/null || true
    done
  fi
  for s in $order; do
    log "deleting $(stack_name "$s")"
    aws_ cloudformation delete-stack --stack-name "$(stack_name "$s")"
    aws_ cloudformation wait stack-delete-complete --stack-name "$(stack_name "$s")"
  done
  cat >&2 <<EOF
deploy.sh: kept (DeletionPolicy Retain - data and keys outlive the stacks; delete by hand if wanted):
  S3 buckets $(prefix)-documents-*, $(prefix)-landing-*, $(prefix)-access-logs-* (empty every version first)
  DynamoDB table $(prefix)-registry (deletion protection on), OpenSearch domain $(prefix)
  EFS file system $(prefix)-models, ECR repository $(prefix)/datatorag, KMS key alias/$(prefix)
  log groups /$(prefix)/vpc-flow-logs and /$(prefix)/opensearch/audit
$( [[ "$purge" == --purge ]] || echo "  the Secrets Manager entries $(prefix)/* (teardown --purge deletes them)")
EOF
}

# ---- main -------------------------------------------------------------------------------------

while getopts "f:h" opt; do
  case "$opt" in
    f) params_file="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || usage
command="$1"
shift

load_params
check_params
OUTPUTS_DIR="$(mktemp -d)"
trap 'rm -rf "$OUTPUTS_DIR"' EXIT
case "$command" in
  deploy) cmd_deploy "$@" ;;
  outputs) cmd_outputs ;;
  helm-values) cmd_helm_values ;;
  plan) cmd_plan ;;
  teardown) cmd_teardown "$@" ;;
  *) usage ;;
esac
