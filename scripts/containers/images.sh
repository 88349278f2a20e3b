#!/usr/bin/env bash
# Builds the project's images with podman, from a locally built Debian base (no registry needed).
#
#   scripts/containers/images.sh [IMAGE...]   slim model dev-servers opensearch (default: all)
#
# Images: localhost/datatorag:$TAG (slim), localhost/datatorag-model:$TAG (the embedder),
# localhost/datatorag-dev-servers:$TAG (moto, sample FTP), localhost/datatorag-opensearch:$VERSION.
# Caches, all outside the clone: the base rootfs (base-image.sh), the uv wheel cache (the host's,
# the one scripts/venv.sh fills: torch is downloaded once per machine), podman's layer cache
# (keyed by each instruction and the files it copies).
#
# Environment:
#   DATATORAG_TAG       image tag (default latest)
#   DATATORAG_UV_CACHE  host uv cache to mount into builds (default: `uv cache dir`)
#   DATATORAG_BUILD_CA  CA bundle for HTTPS from builds (default: pip's `cert` setting, then
#                       /etc/ssl/certs/ca-certificates.crt), passed as a secret, never stored
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "images.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TAG="${DATATORAG_TAG:-latest}"
OPENSEARCH_VERSION="${OPENSEARCH_VERSION:-2.19.1}"
wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=(slim model dev-servers opensearch)

bash scripts/containers/podman-setup.sh >/dev/null 2>&1 || bash scripts/containers/podman-setup.sh
base="$(bash scripts/containers/base-image.sh)"

uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
uv_cache="${DATATORAG_UV_CACHE:-$("$uv_bin" cache dir 2>/dev/null || echo "$HOME/.cache/uv")}"
mkdir -p "$uv_cache"
ca="${DATATORAG_BUILD_CA:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
ca="${ca:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"
[[ -s "$ca" ]] || die "no CA bundle at '$ca' (set DATATORAG_BUILD_CA)"

# Builds share the host's network namespace (no bridge: nothing leaves through a private range);
# the docker format keeps HEALTHCHECK (OCI image configs have no such field).
common=(--network host --layers --format docker --build-arg "BASE_IMAGE=$base" --secret "id=ca,src=$ca")
app=("${common[@]}" --build-arg UV_CACHE_DIR=/uv-cache --volume "$uv_cache:/uv-cache")

build() { # target image
  log "building $2 (target $1)"
  local t0=$SECONDS
  podman build "${app[@]}" --target "$1" -t "$2" -f Dockerfile . >&2
  log "built $2 in $((SECONDS - t0)) s: $(podman image inspect --format '{{.Size}}' "$2") bytes"
}

for image in "${wanted[@]}"; do
  case "$image" in
    slim) build slim "localhost/datatorag:$TAG" ;;
    model) build model "localhost/datatorag-model:$TAG" ;;
    dev-servers) build dev-servers "localhost/datatorag-dev-servers:$TAG" ;;
    opensearch)
      home="$(OPENSEARCH_VERSION="$OPENSEARCH_VERSION" bash scripts/opensearch.sh install)"
      ctx="$(mktemp -d)"
      cp -a "$home" "$ctx/home"
      rm -rf "$ctx/home/logs" "$ctx/home/.datatorag-installed"
      cp deploy/docker/opensearch/Dockerfile deploy/docker/opensearch/entrypoint.sh "$ctx/"
      log "building localhost/datatorag-opensearch:$OPENSEARCH_VERSION"
      podman build "${common[@]}" -t "localhost/datatorag-opensearch:$OPENSEARCH_VERSION" "$ctx" >&2
      rm -rf "$ctx"
      ;;
    *) die "unknown image '$image' (slim model dev-servers opensearch)" ;;
  esac
done
podman images --filter 'reference=localhost/datatorag*' >&2
