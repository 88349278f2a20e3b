#!/opt/venv/bin/python
"""Container HEALTHCHECK: GET /healthz of whichever DatatoRAG service runs in this container.

One image runs all five services, each with its health endpoint on a different port, so the port
comes from (first match): ``DATATORAG_HEALTHCHECK_PORT``; the service named on PID 1's command line
(``datatorag serve <service>``): query-gateway -> ``DATATORAG_GATEWAY_PORT`` (8080), embedder ->
``DATATORAG_EMBEDDER_PORT`` (8081), the other workers -> ``DATATORAG_HEALTH_PORT`` (9100).
Exit 0 when the endpoint answers 200, else 1 with the reason on stderr. Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 4.0


def service_from_cmdline(cmdline: list[str]) -> str | None:
    """``[..., "serve", "embedder"]`` -> ``"embedder"``; ``python -m services.parser`` -> ``"parser"``."""
    for i, arg in enumerate(cmdline):
        if arg == "serve" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith("services."):
            return arg.removeprefix("services.").replace("_", "-")
    return None


def pid1_cmdline() -> list[str]:
    try:
        raw = Path("/proc/1/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def port_for(service: str | None, env: dict[str, str]) -> int:
    if env.get("DATATORAG_HEALTHCHECK_PORT"):
        return int(env["DATATORAG_HEALTHCHECK_PORT"])
    if service in ("query-gateway", "query_gateway", "gateway"):
        return int(env.get("DATATORAG_GATEWAY_PORT") or 8080)
    if service == "embedder":
        return int(env.get("DATATORAG_EMBEDDER_PORT") or 8081)
    return int(env.get("DATATORAG_HEALTH_PORT") or 9100)


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    service = argv[1] if len(argv) > 1 else service_from_cmdline(pid1_cmdline())
    url = f"http://127.0.0.1:{port_for(service, env)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            if resp.status == 200:
                return 0
            print(f"{url}: HTTP {resp.status}", file=sys.stderr)
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code} {exc.read(500).decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
