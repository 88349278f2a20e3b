"""Session fixture ``moto_server``: a real moto server (SQS, S3, DynamoDB) in its own process.

It listens on 127.0.0.1 at a free port and changes no environment variable; tests reach it
through the ``endpoint_url`` and dummy credentials of the object it yields (see ``connection``).
Tests keep out of each other's way by using unique queue, bucket and table names.

The process is moto's own server (``moto.server``: its WSGI app, werkzeug, threaded) started by
``python -m tests.servers.moto`` with one addition: DynamoDB requests run one at a time. Moto
evaluates a ``ConditionExpression`` and applies the write as separate steps, so two threaded
requests can both pass a condition that only one should (seen: a racing ``advance`` left the
item half from each write). Real DynamoDB applies a conditional write atomically; serialising
DynamoDB requests gives moto that property. SQS and S3 stay concurrent (long polls must not
block other requests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers._require import unavailable

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    def connection(self, **overrides):  # -> datatorag.adapters.aws.session.AwsConnection
        from datatorag.adapters.aws.session import AwsConnection

        options = {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            **overrides,
        }
        return AwsConnection(**options)

    def clients(self, **overrides):  # -> datatorag.adapters.aws.session.AwsClients
        from datatorag.adapters.aws.session import AwsClients

        return AwsClients(self.connection(**overrides))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REPO_ROOT = Path(__file__).resolve().parents[2]


def _command(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.servers.moto", "-H", "127.0.0.1", "-p", str(port)]


def _serve(argv: list[str] | None = None) -> None:
    """moto's server (see ``moto.server.main``) with DynamoDB requests serialised."""
    import argparse
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # this child process only

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def serialised(environ, start_response):  # WSGI
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(args.host, args.port, serialised, threaded=True, request_handler=MotoRequestHandler)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/moto-api/data.json", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _start(log_path: Path) -> tuple[subprocess.Popen[bytes] | None, str, str]:
    """Start the server on a free port; (process, url, why) - process None when it failed."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The child gets dummy credentials of its own; the test process's environment is untouched.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                _command(port), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
            )
        except OSError as exc:
            return None, url, f"cannot start: {exc}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(url):
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            return None, url, f"exited with {proc.returncode}: {tail}"
        if time.monotonic() > deadline:
            _stop(proc)
            return None, url, f"no answer on {url} after {START_TIMEOUT_S:.0f}s"
        time.sleep(0.1)
    return proc, url, ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log_dir = tmp_path_factory.mktemp("moto")
    why = ""
    for attempt in range(3):  # a free port can be taken by another process before we bind it
        proc, url, why = _start(log_dir / f"moto-{attempt}.log")
        if proc is not None:
            break
    else:
        unavailable("moto server", why)
        return
    try:
        yield MotoServer(endpoint_url=url)
    finally:
        _stop(proc)


if __name__ == "__main__":
    _serve()
