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
# The venv holds dependencies only: it is shared by every clone, so the project is never installed
# into it (an editable install would point all clones at one of them). bin/datatorag, the Makefile
# and pytest put the clone's own root on the path instead.
if [ -f "$venv/.project-installed-cleanup" ] || "$venv/bin/python" -c "import importlib.metadata as m; m.distribution('datatorag')" 2>/dev/null; then
  uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
  VIRTUAL_ENV="$venv" "$uv_bin" pip uninstall -q datatorag >&2 || true
fi
ln -sfn "$venv" "$root/.venv"
echo "$venv"
