#!/usr/bin/env bash
# Makes this machine able to build and run the project's containers with podman (idempotent).
#
#   scripts/containers/podman-setup.sh        install podman, runc, debootstrap; write containers.conf
#
# The CI machine is root inside a VM without systemd: podman runs with runc and the cgroupfs
# manager, and without default ulimits (the VM's hard limits are lower than podman's defaults).
# No public image registry is reachable: images are built from a local Debian base
# (scripts/containers/base-image.sh), never pulled.
set -euo pipefail

log() { echo "podman-setup.sh: $*" >&2; }
PODMAN_COMPOSE_VERSION=1.6.0

[[ "$(id -u)" == 0 ]] || { log "ERROR: run as root (podman runs rootful here)"; exit 1; }

missing=()
for pair in podman:podman runc:runc debootstrap:debootstrap; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

conf=/etc/containers/containers.conf
want="$(cat <<'CONF'
# written by DatatoRAG's scripts/containers/podman-setup.sh (rootful podman, no systemd)
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
)"
if [[ ! -f "$conf" ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  mkdir -p /etc/containers
  [[ -f "$conf" ]] && cp "$conf" "$conf.bak"
  printf '%s\n' "$want" >"$conf"
  log "wrote $conf"
fi
# podman-compose from PyPI (Debian's 1.0 predates `!reset` and `--no-deps` creation): the project
# venv has it as a dev dependency; a venv made from an older lock gets it as a uv tool
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ ! -x "$root/.venv/bin/podman-compose" ]] && ! command -v podman-compose >/dev/null 2>&1 \
    && [[ ! -x "$HOME/.local/bin/podman-compose" ]]; then
  uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
  log "installing podman-compose==$PODMAN_COMPOSE_VERSION (uv tool)"
  "$uv_bin" tool install -q "podman-compose==$PODMAN_COMPOSE_VERSION" >&2
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}}' >&2
