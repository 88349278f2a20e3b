#!/usr/bin/env bash
# Installs (once) checkov into its own virtualenv and prints the path of its executable.
#
# checkov is not a dev extra of the project: its current release pins aiobotocore 2.x and an older
# botocore, which would downgrade the production adapters' dependencies. So it gets a venv of its
# own, outside the clone, keyed by a hash of scripts/checkov/requirements.lock (exact pins), like
# scripts/venv.sh. Idempotent and safe to run concurrently (flock). Progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lock="$root/scripts/checkov/requirements.lock"
cache="${DATATORAG_CACHE:-$HOME/.cache/datatorag}"
key="$(sha256sum <"$lock" | cut -c1-16)"
venv="$cache/tools/checkov-$key"
if [[ ! -f "$venv/.complete" ]]; then
  mkdir -p "$cache/tools"
  exec 9>"$cache/tools/.checkov-$key.lock"
  flock 9  # another process may be installing the same lock: wait, then reuse
  if [[ ! -f "$venv/.complete" ]]; then
    command -v uv >/dev/null 2>&1 || [[ -x "$HOME/.local/bin/uv" ]] \
      || python3 -m pip install -q --user uv >&2
    uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
    rm -rf "$venv"  # no marker: a previous attempt died half-way
    echo "checkov.sh: installing checkov into $venv" >&2
    "$uv_bin" venv -q --python python3.11 "$venv" >&2
    VIRTUAL_ENV="$venv" "$uv_bin" pip install -q -r "$lock" >&2
    touch "$venv/.complete"
  fi
fi
echo "$venv/bin/checkov"
