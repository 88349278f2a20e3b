"""Session fixture ``moto_server``: a real moto server (SQS, S3, DynamoDB) in its own process.

It listens on 127.0.0.1 at a free port and changes no environment variable; tests reach it
through the ``endpoint_url`` and dummy credentials of the object it yields (see ``connection``).
Tests keep out of each other's way by using unique queue, bucket and table names.
"""

from __future__ import annotations

import os
import shutil
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

    def connection(self, **overrides):  # -> libs.adapters.aws.session.AwsConnection
        from libs.adapters.aws.session import AwsConnection

        return AwsConnection(
            region=self.region,
            endpoint_url=self.endpoint_url,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            **overrides,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    # The child gets dummy credentials of its own; the test process's environment is untouched.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(_command(port), stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            unavailable("moto server", f"cannot start: {exc}")
            return
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                unavailable("moto server", f"exited with {proc.returncode}: {tail}")
            if time.monotonic() > deadline:
                unavailable("moto server", f"no answer on {url} after {START_TIMEOUT_S:.0f}s")
            time.sleep(0.1)
        yield MotoServer(endpoint_url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
