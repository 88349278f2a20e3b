#!/usr/bin/env bash
# Installs (once) the deployment linters built from Go modules and prints their bin dir:
#   helm         helm.sh/helm/v3/cmd/helm                     ($HELM_VERSION)
#   kubeconform  github.com/yannh/kubeconform/cmd/kubeconform ($KUBECONFORM_VERSION)
#
# Built with `go install` through the Go module proxy into a cache outside the clone, keyed by the
# versions, so CI and fresh clones compile helm (minutes on 2 cores) only once per version:
#   ${DATATORAG_CACHE:-$HOME/.cache/datatorag}/go-bin/helm-<v>_kubeconform-<v>/
# Idempotent and safe to run concurrently (flock). Progress goes to stderr; stdout is the bin dir.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
CACHE="${DATATORAG_CACHE:-$HOME/.cache/datatorag}"
# bump RECIPE when the build flags change, so caches built the old way are not reused
RECIPE=2
BIN="$CACHE/go-bin/r${RECIPE}-helm-${HELM_VERSION}_kubeconform-${KUBECONFORM_VERSION}"

log() { echo "deploy-tools.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() { # name version-command...
  local name="$1"; shift
  [[ -x "$BIN/$name" ]] && "$BIN/$name" "$@" >/dev/null 2>&1
}

all_installed() {
  installed helm version --short && installed kubeconform -v
}

if all_installed; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  [[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing Go from Debian's packages (newer toolchains come from the module proxy)"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >&2
  fi
  command -v go >/dev/null 2>&1 || die "Go is required to build helm and kubeconform (https://go.dev/dl)"
fi

mkdir -p "$BIN"
exec 9>"$BIN/.lock"
flock 9  # another process may be compiling the same versions: wait for it, then reuse
if all_installed; then
  echo "$BIN"
  exit 0
fi

# Static binaries; no VCS stamping (module downloads carry no .git); a go.mod asking for a newer
# Go fetches that toolchain from the module proxy.
export GOBIN="$BIN" CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

if ! installed helm version --short; then
  log "building helm $HELM_VERSION with go install (compiles the Kubernetes client libraries: minutes)"
  start=$SECONDS
  # Like helm's Makefile: the default Kubernetes version (`helm template` without --kube-version,
  # `helm lint`) follows the client-go helm is built with (v0.X -> 1.X), not the stale 1.20.
  dl="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}")" \
    || die "cannot fetch helm.sh/helm/v3@${HELM_VERSION} from the Go module proxy: $(sed -n 's/.*"Error": //p' <<<"$dl")"
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$dl")"
  k8s_minor="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -n 1)"
  [[ -n "$k8s_minor" ]] || die "cannot read the client-go version from $gomod"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2 \
    || die "go install helm ${HELM_VERSION} failed"
  log "helm built in $((SECONDS - start))s"
fi
if ! installed kubeconform -v; then
  log "building kubeconform $KUBECONFORM_VERSION with go install"
  start=$SECONDS
  go install -trimpath -ldflags "-s -w" \
    "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" >&2 \
    || die "go install kubeconform ${KUBECONFORM_VERSION} failed"
  log "kubeconform built in $((SECONDS - start))s"
fi

all_installed || die "helm or kubeconform in $BIN does not run"
echo "$BIN"
