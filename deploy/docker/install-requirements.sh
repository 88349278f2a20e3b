#!/bin/sh
# Image build step: fills the image's /opt/venv with a requirement list, or with the project.
#
#   install-requirements.sh requirements FILE   pinned requirements (a list requirements_for.py cut)
#   install-requirements.sh project DIR         the project itself (pyproject.toml + libs/), no deps
#
# uv is bind-mounted from the builder stage at /opt/uv; the CA of an intercepting proxy comes as
# the build secret "ca" (never stored in a layer). The input is removed once installed.
set -eu
uv=/opt/uv/bin/uv
venv=/opt/venv
export UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_CACHE_UPGRADE=1
if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi
[ -x "$venv/bin/python" ] || "$uv" venv -q "$venv" --python /usr/bin/python3.11

case "${1:?requirements FILE | project DIR}" in
  requirements)
    # --no-deps: the list is already complete at the lock's versions; nothing is resolved here
    "$uv" pip install -q --python "$venv/bin/python" --no-deps -r "${2:?requirements file}"
    rm -f "$2"
    ;;
  project)
    "$uv" pip install -q --python "$venv/bin/python" --no-deps "${2:?project directory}"
    rm -rf "$2"
    "$venv/bin/datatorag" --help >/dev/null
    ;;
  *) echo "install-requirements.sh: unknown step '$1'" >&2; exit 2 ;;
esac
