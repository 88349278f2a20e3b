"""``make bench-gpu`` must run when a GPU is lent: its ``--smoke`` path (tiny Gemma3 encoder,
few steps, CPU) runs here so the script cannot rot between loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.bench_gpu import GEMMA_CONFIG, GEMMA_DENSE, forward_flops_per_token, peak_flops

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, "DATATORAG_BENCH_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = f"{REPO / 'libs'}:{REPO}"
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_gpu", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert data["config"]["smoke"] is True and data["config"]["gpu"] == "cpu (smoke)"
    for dtype in ("bfloat16", "float32"):
        assert data["metrics"]["forward"][dtype]["tokens_per_s"] > 0
    assert data["metrics"]["engine_tokens_per_s"] > 0 < data["metrics"]["plain_encode_tokens_per_s"]
    assert data["ratios"]["engine_over_plain_encode"] > 0
    assert data["config"]["engine_tokens"] > 16  # the texts went through the tokenizer


def test_without_gpu_the_full_run_refuses_plainly(tmp_path: Path) -> None:
    env = {**os.environ, "DATATORAG_BENCH_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = f"{REPO / 'libs'}:{REPO}"
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_gpu"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0 and "no GPU here" in out.stderr
    assert not list(tmp_path.iterdir())


def test_published_architecture_and_flops() -> None:
    """~300M parameters, ~200M of them the embedding table (which costs no FLOPs)."""
    c = GEMMA_CONFIG
    embed = c["vocab_size"] * c["hidden_size"]
    assert 195e6 < embed < 205e6
    flops = forward_flops_per_token(c, GEMMA_DENSE, 512)
    # 2 x ~100M non-embedding weights per token, plus attention at 512 tokens
    assert 1.5e8 < flops < 3.5e8
    assert forward_flops_per_token(c, GEMMA_DENSE, 2048) > flops
    assert peak_flops("NVIDIA H200", "bfloat16") == 989e12
    assert peak_flops("NVIDIA A10G", "float32") == 31.2e12
    assert peak_flops("some other card", "bfloat16") is None
