"""The compose stack's development servers as processes (the dev-servers image runs the same
files): moto that provisions itself at every start, and the read-only sample FTP server."""

from __future__ import annotations

import ftplib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.deploy._paths import ROOT

MOTO_SERVER = ROOT / "deploy" / "docker" / "moto_server.py"
SAMPLE_FTP = ROOT / "deploy" / "docker" / "sample_ftp.py"
QUEUES = {"datatorag-parse", "datatorag-embed", "datatorag-index"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATATORAG_", "AWS_"))}
    return {
        **base,
        "PYTHONPATH": f"{ROOT / 'libs'}",
        "DATATORAG_MODE": "production",
        "DATATORAG_AWS_REGION": "us-east-1",
        "DATATORAG_AWS_BUCKET": "datatorag-documents",
        "DATATORAG_AWS_REGISTRY_TABLE": "datatorag-registry",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


def check(e: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, str(MOTO_SERVER), "--check"], env=e, capture_output=True, timeout=30
    ).returncode


def start_moto(e: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(MOTO_SERVER)], env=e, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while check(e) != 0:
        assert proc.poll() is None, "moto_server.py exited"
        assert time.monotonic() < deadline, "moto_server.py never became healthy"
        time.sleep(0.3)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def resources(port: int) -> tuple[set[str], list[str], list[str]]:
    kw = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    urls = boto3.client("sqs", **kw).list_queues().get("QueueUrls", [])
    buckets = [b["Name"] for b in boto3.client("s3", **kw).list_buckets()["Buckets"]]
    tables = boto3.client("dynamodb", **kw).list_tables()["TableNames"]
    return {u.rsplit("/", 1)[-1] for u in urls}, buckets, tables


@pytest.mark.timeout(180)
def test_moto_is_healthy_only_once_provisioned_and_again_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    e = env(MOTO_HOST="127.0.0.1", MOTO_PORT=str(port), TMPDIR=str(tmp_path))
    assert check(e) == 1  # nothing serves yet
    proc = start_moto(e)
    try:
        queues, buckets, tables = resources(port)
        assert queues == QUEUES | {f"{q}-dlq" for q in QUEUES}
        assert buckets == ["datatorag-documents"] and tables == ["datatorag-registry"]
    finally:
        assert stop(proc) == 0
    assert check(e) == 1  # the marker went with the server: a stale one would lie
    proc = start_moto(e)  # a new, empty moto: provisioned again before it reports healthy
    try:
        assert resources(port)[0] == QUEUES | {f"{q}-dlq" for q in QUEUES}
    finally:
        stop(proc)


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "policy.md").write_text("# Leave\n\nTwenty days a year.\n")
    port = free_port()
    e = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "libs"),
        "SAMPLE_FTP_HOST": "127.0.0.1",
        "SAMPLE_FTP_PORT": str(port),
        "SAMPLE_FTP_PASSWORD": "s3cret",
        "SAMPLE_FTP_ROOT": str(tmp_path),
        "SAMPLE_FTP_PASSIVE_PORTS": f"{free_port()}-{free_port()}",
    }
    proc = subprocess.Popen([sys.executable, str(SAMPLE_FTP)], env=e)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "sample_ftp.py died"
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_sample_ftp_serves_read_only_to_its_user(ftp_server: int, tmp_path: Path) -> None:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", ftp_server, timeout=10)
        with pytest.raises(ftplib.error_perm):
            ftp.login("hr", "wrong")
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", ftp_server, timeout=10)
        ftp.login("hr", "s3cret")
        assert ftp.nlst() == ["policy.md"]
        got: list[bytes] = []
        ftp.retrbinary("RETR policy.md", got.append)
        assert b"".join(got) == (tmp_path / "policy.md").read_bytes()
        with pytest.raises(ftplib.error_perm):
            ftp.storbinary("STOR new.md", io.BytesIO(b"x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.md"]


def test_sample_ftp_refuses_to_start_without_a_password() -> None:
    e = {k: v for k, v in os.environ.items() if k != "SAMPLE_FTP_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, str(SAMPLE_FTP)],
        env={**e, "PYTHONPATH": str(ROOT / "libs")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "SAMPLE_FTP_PASSWORD" in proc.stderr
