#!/usr/bin/env bash
# Creates (once) and prints the path of the project's virtualenv.
# The venv lives outside the clone, keyed by a hash of requirements.lock, so CI and
# fresh clones reuse the ~3 GB torch install instead of downloading it every run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${DATATORAG_CACHE:-$HOME/.cache/datatorag}"
key="$(cat "$root/requirements.lock" | sha256sum | cut -c1-16)"
venv="$cache/venv-py311-$key"
if [ ! -x "$venv/.complete" ]; then
  mkdir -p "$cache"
  command -v uv >/dev/null 2>&1 || python3 -m pip install -q --user uv >&2 || python3 -m pip install -q uv >&2
  uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
  # No marker means a previous attempt died half-way: start clean.
  rm -rf "$venv"
  echo "creating venv $venv (first run downloads torch and friends, a few minutes)" >&2
  "$uv_bin" venv -q --python python3.11 "$venv" >&2
  VIRTUAL_ENV="$venv" "$uv_bin" pip install -q -r "$root/requirements.lock" >&2
  printf '#!/bin/sh\nexit 0\n' > "$venv/.complete" && chmod +x "$venv/.complete"
fi
# The project itself is installed editable into whichever clone asks (cheap, no deps).
if ! (cd / && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(0 if 'file://$root' in (m.distribution('datatorag').read_text('direct_url.json') or '') else 1)") 2>/dev/null; then
  uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
  VIRTUAL_ENV="$venv" "$uv_bin" pip install -q --no-deps -e "$root" >&2
fi
ln -sfn "$venv" "$root/.venv"
echo "$venv"
