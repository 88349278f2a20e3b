"""Run the peer side of a comparison in the peers' venv (bench/peers/venv.sh), as a subprocess
over data files, and read the one JSON object it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"


def peers_python() -> Path:
    """The peers' interpreter (the venv is created on first use, keyed by requirements.txt)."""
    out = subprocess.run(
        ["bash", str(PEERS / "venv.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"peers venv could not be created:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1]) / "bin" / "python"


def run_peer(script: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    cmd = [str(peers_python()), str(PEERS / script), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode:
        raise RuntimeError(f"{script} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    sys.stderr.write(out.stderr[-2000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
