"""The package as a user installs it: ``pip install .`` into a fresh virtualenv, then the
``datatorag`` command and ``import datatorag`` from a directory that has nothing to do with the
clone. The fresh venv reuses the cached dependencies through a ``.pth`` file (no torch download);
the project itself is built into a wheel and installed without ``--editable``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(found).exists():
        pytest.fail("uv is needed to build the venv (scripts/venv.sh installs it)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the dependencies come from the project's cached venv (the one running this test)
    (site / "_cached_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin/python"),
            "--no-deps",
            "--no-build-isolation",
            "--reinstall",
            str(REPO),
        ],
        check=True,
        env=_clean_env(),
    )
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    # nothing may point back at the clone: the installed copy has to stand on its own
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DATATORAG_")
    }
    env.update(extra)
    return env


def test_import_from_anywhere_is_the_installed_copy(installed: Path, tmp_path: Path) -> None:
    code = (
        "import datatorag, importlib.util, json;"
        "print(json.dumps([datatorag.__file__, datatorag.__version__,"
        " importlib.util.find_spec('libs') is None, importlib.util.find_spec('services') is None,"
        " (datatorag.config.sample_corpus() / 'pto-and-leave-policy.pdf').is_file()]))"
    )
    out = subprocess.run(
        [str(installed / "bin/python"), "-c", code],
        cwd=tmp_path,
        env=_clean_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path, ver, no_libs, no_services, has_samples = __import__("json").loads(out)
    assert path.startswith(str(installed)), path
    assert ver == "0.1.0"
    assert no_libs and no_services, "the wheel must install only the datatorag package"
    assert has_samples, "the sample corpus ships as package data"


def test_datatorag_up_ingests_the_sample_corpus_from_an_unrelated_directory(
    installed: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = _clean_env(DATATORAG_DATA_DIR=str(tmp_path / "data"), DATATORAG_GATEWAY_PORT=str(port))
    proc = subprocess.Popen(
        [str(installed / "bin/datatorag"), "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "ingestion complete" in line or time.monotonic() > deadline:
                break
        assert any("ingestion complete: 13 indexed, 0 failed" in x for x in lines), lines
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/search",
            json={"query": "how many weeks of parental leave", "k": 3},
            headers={"Authorization": "Bearer dev-key"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["hits"], resp.json()
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    lines += rest.splitlines()
    assert proc.returncode == 0, lines
    # Ctrl-C ends with the one "stopped" line: no teardown noise from native extensions
    assert lines[-1] == "stopped", lines[-5:]
    assert not any("nanobind" in x or "Traceback" in x for x in lines), lines
