"""GPU bench, one command (``make bench-gpu``, < 5 min on an H200/A10G): EmbeddingGemma-300m's
architecture built from its published configuration with random weights (no download is possible
where this runs; speed does not depend on the weights' values).

* **forward**: tokens/s of the bare Gemma3 encoder + pooling + dense head at fixed shapes, bf16 and
  fp32, and the model FLOP utilisation (FLOPs of the forward / elapsed / the GPU's peak).
* **engine vs plain**: our ``EmbeddingEngine`` (token-budget batches, bf16) against a plain
  ``SentenceTransformer.encode`` (fp32, its defaults) of the same texts, in the same process.

``--smoke`` runs a tiny configuration for a few steps on whatever device is there (CPU included):
the unit test runs it so the script cannot rot between GPU loans. Its figures mean nothing.

    .venv/bin/python -m bench.bench_gpu [--smoke] [--texts N] [--seq N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import target, write_result

# google/embeddinggemma-300m (config.json and the sentence-transformers modules, per its model
# card): Gemma3 text encoder with bidirectional attention, mean pooling, Dense 768->3072->768.
GEMMA_CONFIG: dict[str, Any] = {
    "vocab_size": 262_144,
    "hidden_size": 768,
    "intermediate_size": 1152,
    "num_hidden_layers": 24,
    "num_attention_heads": 3,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "max_position_embeddings": 2048,
    "use_bidirectional_attention": True,
    "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256,
}
GEMMA_DENSE = (768, 3072, 768)
SMOKE_CONFIG: dict[str, Any] = {
    **GEMMA_CONFIG,
    "vocab_size": 30_522,  # the borrowed MiniLM tokenizer's ids must fit the table
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "head_dim": 32,
    "query_pre_attn_scalar": 32,
}
SMOKE_DENSE = (64, 256, 64)
# dense peak FLOP/s (bf16 tensor cores, fp32 without TF32) by the name torch reports
PEAK_FLOPS = {
    "H200": (989e12, 67e12),
    "H100": (989e12, 67e12),
    "A100": (312e12, 19.5e12),
    "A10G": (125e12, 31.2e12),
    "L40S": (362e12, 91.6e12),
    "L4": (121e12, 30.3e12),
}


def peak_flops(name: str, dtype: str) -> float | None:
    for key, (bf16, fp32) in PEAK_FLOPS.items():
        if key in name:
            return bf16 if dtype == "bfloat16" else fp32
    return None


def build_model_dir(dest: Path, config: dict[str, Any], dense: tuple[int, int, int]) -> Path:
    """A sentence-transformers directory like EmbeddingGemma's, random weights, saved locally.
    The tokenizer is MiniLM's (shipped with the project): tokenisation is not what is measured,
    and its ids index the embedding table like any others."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from datatorag.embedding.model_dir import MINILM, resolve_model

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(**config)
    raw = dest / "raw"
    Gemma3TextModel(cfg).save_pretrained(raw)
    tok_src = resolve_model(MINILM).path
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(tok_src / name, raw / name)
    transformer = models.Transformer(str(raw), max_seq_length=config["max_position_embeddings"])
    d_in, d_mid, d_out = dense
    modules = [
        transformer,
        models.Pooling(d_in, pooling_mode="mean"),
        models.Dense(d_in, d_mid, bias=False, activation_function=torch.nn.Identity()),
        models.Dense(d_mid, d_out, bias=False, activation_function=torch.nn.Identity()),
        models.Normalize(),
    ]
    out = dest / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


def forward_flops_per_token(config: dict[str, Any], dense: tuple[int, int, int], seq: int) -> float:
    """2 x (weights a token passes through) + attention scores and mixing (QK^T, AV)."""
    h, inter, layers = (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
    )
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    per_layer = h * (q + 2 * kv) + q * h + 3 * h * inter  # q/k/v/o projections, gated MLP
    weights = layers * per_layer
    attention = layers * 2 * seq * q  # QK^T and AV, per token
    head = (dense[0] * dense[1] + dense[1] * dense[2]) / seq  # once per sequence
    return 2 * (weights + attention + head)


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Chunk-like texts of 32-480 words (log-uniform), from a fixed pseudo-vocabulary."""
    rng = np.random.default_rng(seed)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fi", "an", "or"]
    vocab = ["".join(rng.choice(syll, size=int(rng.integers(1, 4)))) for _ in range(3000)]
    lengths = np.exp(rng.uniform(np.log(32), np.log(480), size=n)).astype(int)
    return [" ".join(rng.choice(vocab, size=int(m))) for m in lengths]


def bench_forward(model: Any, device: str, dtype: str, batch: int, seq: int, steps: int) -> dict:
    import torch

    model = model.to(device=device, dtype=getattr(torch, dtype))
    ids = torch.randint(0, 30_000, (batch, seq), device=device)
    features = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        model(dict(features))  # warm-up (kernels, allocator)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(dict(features))
        sync()
        elapsed = time.perf_counter() - t0
    return {"tokens_per_s": round(batch * seq * steps / elapsed), "seconds": round(elapsed, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny config, few steps, any device")
    ap.add_argument("--quick", action="store_true", help="(make bench-quick) same as --smoke")
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--seq", type=int, default=None, help="forward bench sequence length")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    smoke = args.smoke or args.quick

    import torch
    from sentence_transformers import SentenceTransformer

    from datatorag.config import EmbeddingSettings
    from datatorag.embedding.engine import EmbeddingEngine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not smoke:
        raise SystemExit("no GPU here: bench_gpu needs one (or --smoke, which measures nothing)")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)"
    config, dense = (SMOKE_CONFIG, SMOKE_DENSE) if smoke else (GEMMA_CONFIG, GEMMA_DENSE)
    seq = args.seq or (64 if smoke else 512)
    batch = args.batch or (4 if smoke else 64)
    steps = args.steps or (2 if smoke else 20)
    n_texts = args.texts or (16 if smoke else 4096)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        model_dir = build_model_dir(Path(tmp), config, dense)
        params = sum(
            p.numel() for p in SentenceTransformer(str(model_dir), device="cpu").parameters()
        )
        flops_tok = forward_flops_per_token(config, dense, seq)

        forward: dict[str, Any] = {}
        for dtype in ("bfloat16", "float32"):
            st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
            r = bench_forward(st, device, dtype, batch, seq, steps)
            peak = peak_flops(gpu, dtype)
            r["mfu"] = round(r["tokens_per_s"] * flops_tok / peak, 4) if peak else None
            forward[dtype] = r
            del st
            if device == "cuda":
                torch.cuda.empty_cache()
        bf16_over_fp32 = forward["bfloat16"]["tokens_per_s"] / forward["float32"]["tokens_per_s"]

        texts = synthetic_texts(n_texts)
        engine = EmbeddingEngine(
            EmbeddingSettings(model=str(model_dir), device=device, backend="torch")
        )
        inputs = engine.document_inputs(texts, None)
        tokens = sum(engine.token_lengths(inputs))
        plain = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        plain.max_seq_length = engine.max_seq
        engine.encode(inputs[:64])
        plain.encode(inputs[:64], batch_size=64)

        def timed(fn: Any) -> float:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        rounds = 1 if smoke else 3
        ours = min(timed(lambda: engine.encode(inputs)) for _ in range(rounds))
        base = min(
            timed(lambda: plain.encode(inputs, batch_size=64, normalize_embeddings=True))
            for _ in range(rounds)
        )
        ratio = base / ours

    result = {
        "config": {
            "gpu": gpu,
            "smoke": smoke,
            "torch": torch.__version__,
            "model": "EmbeddingGemma-300m architecture, random weights" if not smoke else "tiny",
            "architecture": config,
            "dense": dense,
            "parameters": params,
            "forward_shape": [batch, seq],
            "forward_steps": steps,
            "flops_per_token": round(flops_tok),
            "engine_texts": n_texts,
            "engine_tokens": tokens,
            "engine_dtype": str(engine.dtype),
            "seconds_total": round(time.perf_counter() - started, 1),
        },
        "metrics": {
            "forward": forward,
            "engine_tokens_per_s": round(tokens / ours),
            "plain_encode_tokens_per_s": round(tokens / base),
        },
        "ratios": {
            "bf16_over_fp32_forward": round(bf16_over_fp32, 3),
            "engine_over_plain_encode": round(ratio, 3),
        },
        "targets": {}
        if smoke
        else {
            "bf16 faster than fp32 (forward)": target(
                "> 1.0x", round(bf16_over_fp32, 2), bf16_over_fp32 > 1.0
            ),
            "engine vs plain SentenceTransformer.encode": target(
                ">= 2.0x", round(ratio, 2), ratio >= 2.0
            ),
            "whole bench under 5 minutes": target(
                "< 300 s",
                round(time.perf_counter() - started),
                time.perf_counter() - started < 300,
            ),
        },
    }
    path = write_result("gpu_smoke" if smoke else "gpu", result)
    print(json.dumps({"gpu": gpu, **result["metrics"], **result["ratios"]}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
