#!/usr/bin/env sh
# Installs requirements.lock into a virtualenv, with the torch build the image wants.
#
#   install-python-deps.sh VARIANT LOCK PYTHON      install into the venv of PYTHON
#   install-python-deps.sh --print VARIANT LOCK     print the requirements that would be installed
#
# VARIANT:
#   locked  exactly the lock: torch from PyPI, whose Linux wheels bundle the CUDA libraries
#           (the GPU embedder needs these; they also run on CPU, at ~4 GB of image)
#   cpu     the same lock minus the CUDA wheels (nvidia-*, cuda-*, triton), with torch at the
#           locked version from the PyTorch CPU index ($TORCH_CPU_INDEX): an image ~3 GB smaller
#           for the parser, indexer, connector and gateway, which never run a model on a GPU
# Needs uv on PATH.
set -eu

print_only=0
if [ "${1:-}" = "--print" ]; then print_only=1; shift; fi
variant="${1:?variant: locked | cpu}"
lock="${2:?path to requirements.lock}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

# Package lines look like "name==version"; their "# via" comments are indented.
cuda_free() { grep -v -E '^(nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|triton|torch)==' "$1"; }
torch_pin() { grep -E '^torch==' "$1" | head -n 1; }

case "$variant" in
  locked) reqs() { cat "$lock"; } ;;
  cpu) reqs() { cuda_free "$lock"; } ;;
  *) echo "install-python-deps.sh: unknown variant '$variant' (locked | cpu)" >&2; exit 2 ;;
esac

if [ "$print_only" = 1 ]; then
  reqs
  [ "$variant" = cpu ] && echo "$(torch_pin "$lock") --index-url $TORCH_CPU_INDEX"
  exit 0
fi

python="${3:?python of the target venv}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
reqs > "$tmp"
uv pip install --python "$python" --no-deps -r "$tmp"
if [ "$variant" = cpu ]; then
  pin="$(torch_pin "$lock")"
  [ -n "$pin" ] || { echo "install-python-deps.sh: no torch pin in $lock" >&2; exit 1; }
  # torch's own dependencies are all in the lock (installed above): take only the wheel.
  uv pip install --python "$python" --no-deps --index-url "$TORCH_CPU_INDEX" "$pin"
fi
