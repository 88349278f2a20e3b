#!/bin/bash
# The official image's convention: environment variables named like settings become -E flags.
set -euo pipefail
args=()
while IFS='=' read -r -d '' name value; do
  if [[ "$name" == *.* ]]; then args+=("-E$name=$value"); fi
done < <(env -0)
exec /usr/share/opensearch/bin/opensearch "${args[@]}" "$@"
