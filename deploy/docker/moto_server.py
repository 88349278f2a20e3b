#!/usr/bin/env python3
"""moto (SQS, S3, DynamoDB) for the compose stack, provisioned at every start.

moto keeps its state in memory: a restarted moto has no queues, and every service would then fail
until someone re-ran ``datatorag init``. This launcher starts the server and, before it reports
healthy, creates the queues (with DLQs and redrive), the bucket and the registry table with the
same code as ``datatorag init`` (``provision_aws``), from the same DATATORAG_* environment as the
services. Documents in flight when moto restarts are lost with its memory; the next sync of each
source fetches them again (the registry that said "unchanged" is gone too).

    datatorag-moto            serve on 0.0.0.0:$MOTO_PORT (5000), provisioned
    datatorag-moto --check    exit 0 when the server answers and provisioning finished (HEALTHCHECK)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

MARKER = Path(tempfile.gettempdir()) / "datatorag-moto-provisioned"


def port() -> int:
    return int(os.environ.get("MOTO_PORT") or 5000)


def check() -> int:
    if not MARKER.is_file():
        print("moto: not provisioned yet", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port()}/moto-api/data.json"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


def serve() -> int:
    from moto.server import ThreadedMotoServer

    from datatorag.adapters.aws.provision import provision_aws
    from datatorag.config import Settings

    MARKER.unlink(missing_ok=True)
    host = os.environ.get("MOTO_HOST") or "0.0.0.0"
    server = ThreadedMotoServer(ip_address=host, port=port())
    server.start()
    # provision this server, whatever name the services reach it by
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port()}"
    report = asyncio.run(provision_aws(Settings()))
    for what in report.created:
        print(f"moto: created {what}", flush=True)
    MARKER.touch()
    print(f"moto: serving on {host}:{port()}, provisioned", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["--check"] else serve())
