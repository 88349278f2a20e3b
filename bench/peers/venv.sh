#!/usr/bin/env bash
# Creates (once) and prints the path of the peers' virtualenv (ChromaDB, fastembed, Haystack).
# Like scripts/venv.sh: outside the clone, keyed by a hash of bench/peers/requirements.txt. The
# peers conflict with the project's pins, so they never go into .venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${DATATORAG_CACHE:-$HOME/.cache/datatorag}"
key="$(sha256sum < "$here/requirements.txt" | cut -c1-16)"
venv="$cache/peers-py311-$key"
if [ ! -x "$venv/.complete" ]; then
  mkdir -p "$cache"
  uv_bin="$(command -v uv || echo "$HOME/.local/bin/uv")"
  rm -rf "$venv"
  echo "creating peers venv $venv" >&2
  "$uv_bin" venv -q --python python3.11 "$venv" >&2
  VIRTUAL_ENV="$venv" "$uv_bin" pip install -q -r "$here/requirements.txt" >&2
  printf '#!/bin/sh\nexit 0\n' > "$venv/.complete" && chmod +x "$venv/.complete"
fi
echo "$venv"
