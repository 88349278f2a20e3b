"""Podman for the container tests: the images `make images` builds, and the compose stack run
with podman-compose and CI's host-network override (deploy/compose/ci-host-network.yml)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._paths import COMPOSE_FILE, ROOT
from tests.servers._require import unavailable

TAG = "latest"
IMAGES = {
    "slim": f"localhost/datatorag:{TAG}",
    "model": f"localhost/datatorag-model:{TAG}",
    "dev-servers": f"localhost/datatorag-dev-servers:{TAG}",
    "opensearch": "localhost/datatorag-opensearch:2.19.1",
}
CI_OVERRIDE = ROOT / "deploy" / "compose" / "ci-host-network.yml"
IMAGES_SCRIPT = ROOT / "scripts" / "containers" / "images.sh"
# the first build of the model image installs torch and its CUDA wheels (minutes on 2 cores)
BUILD_TIMEOUT_S = 3600


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def require_podman() -> None:
    if shutil.which("podman") is None:
        unavailable("podman", "not installed (scripts/containers/podman-setup.sh)")
    info = subprocess.run(
        ["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if info.returncode != 0:
        unavailable("podman", f"podman info failed: {info.stderr[-500:]}")


def ensure_images() -> dict[str, str]:
    """The images, built (cached: seconds when nothing changed) by scripts/containers/images.sh."""
    require_podman()
    missing = [name for name, ref in IMAGES.items() if not image_exists(ref)]
    if missing:
        proc = subprocess.run(
            ["bash", str(IMAGES_SCRIPT), *missing],
            check=False,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if proc.returncode != 0:
            pytest.fail(f"images.sh {' '.join(missing)} failed:\n{proc.stderr[-5000:]}")
    return dict(IMAGES)


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def inspect_image(ref: str) -> dict[str, Any]:
    (data,) = json.loads(podman("image", "inspect", ref).stdout)
    return dict(data)


def run_in(image: str, *cmd: str, entrypoint: str | None = None, timeout: float = 300) -> str:
    """Run one command in a fresh container (host network, read-only root, as the image's user)."""
    args = ["run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp"]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    proc = podman(*args, image, *cmd, timeout=timeout)
    return proc.stdout


@dataclass
class Stack:
    """docker-compose.yml under podman-compose, CI's override on top."""

    project: str
    env: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        exe = compose_exe()
        cmd = [exe, "-p", self.project, "-f", str(COMPOSE_FILE), "-f", str(CI_OVERRIDE), *args]
        proc = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**_base_env(), **self.env},
        )
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd[1:])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def start(self, *services: str) -> None:
        podman("start", *(self.container(s) for s in services))

    def wait_healthy(self, service: str, timeout_s: float = 300) -> None:
        """Run the container's own HEALTHCHECK until it passes. Podman (4.3, no systemd here)
        does not schedule health checks itself, so the test runs them, as docker would."""
        name = self.container(service)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            state = podman("inspect", "--format", "{{.State.Status}}", name, check=False)
            if state.stdout.strip() == "exited":
                pytest.fail(f"{service} exited:\n{self.logs(service)}")
            proc = podman("healthcheck", "run", name, check=False, timeout=60)
            if proc.returncode == 0:
                return
            last = (proc.stdout + proc.stderr).strip()
            time.sleep(2)
        pytest.fail(
            f"{service} not healthy after {timeout_s:.0f} s ({last}):\n{self.logs(service)}"
        )

    def wait_exit(self, service: str, timeout_s: float = 300) -> int:
        proc = podman("wait", self.container(service), timeout=timeout_s)
        return int(proc.stdout.strip().splitlines()[-1])

    def logs(self, service: str, tail: int = 60) -> str:
        proc = podman("logs", "--tail", str(tail), self.container(service), check=False)
        return (proc.stdout + proc.stderr)[-6000:]


def compose_exe() -> str:
    """The venv's podman-compose (a dev dependency), else one on PATH or installed as a uv tool
    by scripts/containers/podman-setup.sh."""
    for candidate in (
        ROOT / ".venv" / "bin" / "podman-compose",
        shutil.which("podman-compose"),
        Path.home() / ".local" / "bin" / "podman-compose",
    ):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    unavailable("podman-compose", "not installed (scripts/containers/podman-setup.sh)")
    raise AssertionError("unreachable")


def _base_env() -> dict[str, str]:
    """Compose interpolates ${DATATORAG_*:-default}: the test runner's own settings stay out."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DATATORAG_")}
