#!/bin/sh
# Image build step: fills /opt/venv with one image's part of requirements.lock, or the project.
#
#   install-requirements.sh slim | model | dev-servers   the pinned dependencies (requirements_for.py)
#   install-requirements.sh project                      the project itself (/src), no dependencies
#
# The CA of an intercepting proxy comes as the build secret "ca" (never stored in a layer).
set -eu
here="$(dirname "$0")"
venv=/opt/venv
if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi
[ -x "$venv/bin/python" ] || uv venv -q "$venv" --python /usr/bin/python3.11

case "${1:?slim | model | dev-servers | project}" in
  slim | model | dev-servers)
    reqs="$(mktemp)"
    python3 "$here/requirements_for.py" "$1" /src/pyproject.toml /src/requirements.lock >"$reqs"
    # --no-deps: the list is already complete at the lock's versions; nothing is resolved here
    uv pip install -q --python "$venv/bin/python" --no-deps -r "$reqs"
    rm -f "$reqs"
    ;;
  project)
    uv pip install -q --python "$venv/bin/python" --no-deps /src
    rm -rf /src/build /src/libs/*.egg-info
    "$venv/bin/datatorag" --help >/dev/null
    ;;
  *) echo "install-requirements.sh: unknown step '$1'" >&2; exit 2 ;;
esac
