"""The image recipe, checked without a Docker engine: the Dockerfile as BuildKit's parser reads
it, the build context .dockerignore leaves, the dependency installer's torch variants, and the
container HEALTHCHECK against a real health endpoint."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from typing import Any

import pytest

from datatorag.runtime import Readiness, UvicornServer, health_app
from tests.deploy._paths import DOCKERFILE, ROOT
from tests.deploy.conftest import require_module

INSTALLER = ROOT / "deploy" / "docker" / "install-python-deps.sh"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
CUDA_WHEELS = re.compile(r"^(nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|triton|torch)==")


def stages() -> dict[str, list[Any]]:
    """Instructions per named stage (BuildKit's own parser, via the ``dockerfile`` package)."""
    dockerfile = require_module("dockerfile", "dockerfile")
    out: dict[str, list[Any]] = {}
    current = "<global>"
    for cmd in dockerfile.parse_file(str(DOCKERFILE)):
        if cmd.cmd == "FROM":
            assert [v.upper() for v in cmd.value[1:2]] == ["AS"], f"unnamed stage: {cmd.original}"
            current = cmd.value[2]
        out.setdefault(current, []).append(cmd)
    return out


def instr(stage: list[Any], name: str) -> list[Any]:
    return [c for c in stage if c.cmd == name]


def global_args() -> dict[str, str]:
    return dict(c.value[0].split("=", 1) for c in stages()["<global>"] if "=" in c.value[0])


def test_stages_and_default_target() -> None:
    st = stages()
    assert list(st) == [
        "<global>",
        "builder",
        "gpu-builder",
        "gpu",
        "runtime",
    ]  # runtime last = default
    args = global_args()
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert st["runtime"][0].value[0] == "${PYTHON_IMAGE}"
    assert st["builder"][0].value[0] == "${PYTHON_IMAGE}"
    assert st["gpu"][0].value[0] == "${CUDA_IMAGE}"
    builder_args = dict(
        c.value[0].split("=", 1) for c in instr(st["builder"], "ARG") if "=" in c.value[0]
    )
    assert builder_args["TORCH"] == "locked"  # as locked unless asked for the CPU build


@pytest.mark.parametrize(
    ("stage", "cmd"), [("runtime", ["serve", "query-gateway"]), ("gpu", ["serve", "embedder"])]
)
def test_final_stages_run_datatorag_as_non_root(stage: str, cmd: list[str]) -> None:
    s = stages()[stage]
    (user,) = instr(s, "USER")
    uid = user.value[0].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric: runAsNonRoot can verify it
    after = s[s.index(user) :]
    assert not [
        c.cmd for c in after if c.cmd in ("RUN", "COPY", "ADD")
    ]  # nothing runs as root later
    (entry,) = instr(s, "ENTRYPOINT")
    assert entry.json and list(entry.value) == ["datatorag"]
    (c,) = instr(s, "CMD")
    assert c.json and list(c.value) == cmd
    (hc,) = instr(s, "HEALTHCHECK")
    assert list(hc.value) == ["CMD", "datatorag-healthcheck"]
    assert any(f.startswith("--start-period=") for f in hc.flags)
    env = " ".join(" ".join(e.value) for e in instr(s, "ENV"))
    for var in (
        "DATATORAG_GATEWAY_HOST 0.0.0.0",
        "HF_HUB_OFFLINE 1",
        "TRANSFORMERS_OFFLINE 1",
        "PATH /opt/venv/bin:$PATH",
    ):
        assert var in env
    copied = {c.value[-1] for c in instr(s, "COPY")}
    assert {"/opt/venv", "/usr/local/bin/datatorag-healthcheck"} <= copied


def test_dependencies_install_before_the_code_is_copied() -> None:
    """Code changes must not re-run the torch install (layer cache)."""
    for name in ("builder", "gpu-builder"):
        s = stages()[name]
        lines = [(c.cmd, " ".join(c.value)) for c in s]
        install = next(
            i for i, (cmd, v) in enumerate(lines) if cmd == "RUN" and "install-python-deps" in v
        )
        code = next(
            i for i, (cmd, v) in enumerate(lines) if cmd == "COPY" and v.startswith("libs ")
        )
        assert install < code
        assert any(cmd == "COPY" and "requirements.lock" in v for cmd, v in lines[:install])


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    out = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line.lstrip("!").strip("/")
        rx = (
            re.escape(pat)
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        out.append((negate, re.compile(rx + "$")))
    return out


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    included = True
    for negate, rx in _dockerignore_patterns():
        if any(rx.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            included = negate
    return included


def test_build_context_holds_what_copy_needs_and_nothing_else() -> None:
    for s in stages().values():
        for c in instr(s, "COPY"):
            if any(f.startswith("--from=") for f in c.flags):
                continue
            for src in c.value[:-1]:
                assert (ROOT / src).exists(), src
                assert in_context(src), f"{src} is excluded by .dockerignore"
    for needed in ("libs/datatorag/config.py", "services/parser/__main__.py", "requirements.lock"):
        assert in_context(needed)
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_docker.py",
        "data/x.db",
        "libs/__pycache__/config.cpython-311.pyc",
        "bench/bench_quality.py",
    ):
        assert not in_context(left_out), left_out


def run_installer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(INSTALLER), *args], check=False, capture_output=True, text=True, timeout=30
    )


def test_installer_locked_variant_is_the_lock() -> None:
    proc = run_installer("--print", "locked", str(ROOT / "requirements.lock"))
    assert proc.returncode == 0
    assert proc.stdout == (ROOT / "requirements.lock").read_text()


def test_installer_cpu_variant_drops_only_the_cuda_wheels() -> None:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    proc = run_installer("--print", "cpu", str(ROOT / "requirements.lock"))
    assert proc.returncode == 0
    out = proc.stdout.splitlines()
    *reqs, torch_line = out
    assert [line for line in lock if not CUDA_WHEELS.match(line)] == reqs
    torch_pin = next(line for line in lock if line.startswith("torch=="))
    assert torch_line == f"{torch_pin} --index-url https://download.pytorch.org/whl/cpu"
    assert any(line.startswith("nvidia-") for line in lock)  # there was something to drop
    assert not any(CUDA_WHEELS.match(line) for line in reqs)


def test_installer_refuses_an_unknown_variant() -> None:
    proc = run_installer("--print", "rocm", str(ROOT / "requirements.lock"))
    assert proc.returncode == 2 and "unknown variant 'rocm'" in proc.stderr


# ---- the container HEALTHCHECK ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _healthcheck(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, err.decode()


@pytest.mark.timeout(60)
async def test_healthcheck_against_a_real_worker_health_endpoint() -> None:
    port = _free_port()
    alive = {"ok": True}
    app = health_app(Readiness(), lambda: (alive["ok"], "ok" if alive["ok"] else "parser: stuck"))
    server = UvicornServer(app, "127.0.0.1", port)
    await server.start()
    env = {"PATH": "/usr/bin:/bin", "DATATORAG_HEALTH_PORT": str(port)}
    try:
        assert await _healthcheck(env, "parser") == (0, "")
        # the gateway's port is another variable: the same server is not found there
        rc, err = await _healthcheck(
            {**env, "DATATORAG_GATEWAY_PORT": str(_free_port())}, "query-gateway"
        )
        assert rc == 1 and "/healthz" in err
        alive["ok"] = False
        rc, err = await _healthcheck(env, "parser")
        assert rc == 1 and "HTTP 503" in err and "parser: stuck" in err
        alive["ok"] = True
        assert (
            await _healthcheck({"PATH": "/usr/bin:/bin", "DATATORAG_HEALTHCHECK_PORT": str(port)})
        )[0] == 0
    finally:
        await server.stop()
    rc, err = await _healthcheck(env, "parser")
    assert rc == 1 and f"127.0.0.1:{port}" in err


def test_healthcheck_reads_the_service_from_the_command_line() -> None:
    sys.path.insert(0, str(HEALTHCHECK.parent))
    try:
        import healthcheck  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(HEALTHCHECK.parent))
    assert (
        healthcheck.service_from_cmdline(
            ["/opt/venv/bin/python", "/opt/venv/bin/datatorag", "serve", "embedder"]
        )
        == "embedder"
    )
    assert (
        healthcheck.service_from_cmdline(["python", "-m", "services.query_gateway"])
        == "query-gateway"
    )
    assert healthcheck.service_from_cmdline(["datatorag", "init"]) is None
    assert healthcheck.port_for("query-gateway", {}) == 8080
    assert healthcheck.port_for("embedder", {"DATATORAG_EMBEDDER_PORT": "9001"}) == 9001
    assert healthcheck.port_for("indexer", {}) == 9100
    assert healthcheck.port_for("embedder", {"DATATORAG_HEALTHCHECK_PORT": "7"}) == 7
