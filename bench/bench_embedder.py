"""Embedder throughput: our engine vs a plain ``SentenceTransformer.encode`` of the same chunks.

Chunks are real: the 37signals handbook (``../shared/corpora``) parsed and chunked by our
pipeline at several chunk sizes, so lengths vary the way they do in production. Both paths run in
the same process, alternating, best of N rounds each.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

from bench._common import target, write_result

REPO = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path:
    return (
        Path(os.environ.get("DATATORAG_CORPORA_DIR", REPO.parent / "shared" / "corpora"))
        / "37signals-handbook"
    )


def load_chunks(n: int) -> list[str]:
    from datatorag.chunking import chunk_document
    from datatorag.embedding.engine import load_tokenizer
    from datatorag.parsing import parse_document

    tok = load_tokenizer()
    texts: list[str] = []
    files = sorted(corpus_dir().glob("*.md"))
    if not files:
        raise SystemExit(f"corpus not found under {corpus_dir()}")
    for size in (64, 128, 256):  # a realistic spread of chunk lengths
        for f in files:
            doc = parse_document(f.read_bytes(), filename=f.name)
            texts += [
                c.text for c in chunk_document(doc, tok, max_tokens=size, overlap_tokens=size // 8)
            ]
    random.Random(0).shuffle(texts)
    while len(texts) < n:
        texts += texts
    return texts[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    n = args.chunks or (256 if args.quick else 2000)
    rounds = args.rounds or (2 if args.quick else 4)

    import torch
    from sentence_transformers import SentenceTransformer

    from datatorag.config import EmbeddingSettings
    from datatorag.embedding.engine import EmbeddingEngine

    texts = load_chunks(n)
    engine = EmbeddingEngine(EmbeddingSettings())
    inputs = engine.document_inputs(texts, None)
    plain = SentenceTransformer(str(engine.spec.path), device=engine.device, local_files_only=True)
    plain.max_seq_length = engine.max_seq
    lengths = [
        len(x)
        for x in engine.tokenizer(inputs, truncation=True, max_length=engine.max_seq)["input_ids"]
    ]
    tokens = sum(lengths)
    # SentenceTransformer.encode sorts by character length and pads each batch of 64 to its longest
    by_chars = sorted(range(n), key=lambda i: -len(inputs[i]))
    plain_padded = sum(
        max(lengths[i] for i in by_chars[b : b + 64]) * len(by_chars[b : b + 64])
        for b in range(0, n, 64)
    )
    plain_padding = 1 - tokens / plain_padded

    engine.encode(inputs[:64])  # warm-up both
    plain.encode(inputs[:64], batch_size=64)

    def ours_once() -> float:
        nonlocal stats
        t0 = time.perf_counter()
        _, stats = engine.encode(inputs)
        return time.perf_counter() - t0

    def plain_once() -> float:
        t0 = time.perf_counter()
        plain.encode(inputs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - t0

    # Paired rounds, the order alternating, so drift in the machine's speed hits both paths;
    # the headline ratio is the median of the per-round ratios.
    ours_s, base_s = [], []
    stats = None
    for r in range(rounds):
        if r % 2 == 0:
            ours_s.append(ours_once())
            base_s.append(plain_once())
        else:
            base_s.append(plain_once())
            ours_s.append(ours_once())
    round_ratios = sorted(b / o for o, b in zip(ours_s, base_s, strict=True))
    ratio = statistics.median(round_ratios)
    ours, base = min(ours_s), min(base_s)
    ours_cps, base_cps = n / ours, n / base
    padding = 1 - stats.tokens / stats.padded_tokens if stats and stats.padded_tokens else None
    print(
        f"embedder ({engine.model_id}, {engine.device}, torch threads {torch.get_num_threads()}): "
        f"{n} chunks, {tokens} tokens, {rounds} paired rounds"
    )
    print(
        f"  ours : {ours_cps:8.1f} chunks/s  {tokens / ours:9.0f} tokens/s  "
        f"padding {padding:.1%}  (best round)"
    )
    print(
        f"  plain: {base_cps:8.1f} chunks/s  {tokens / base:9.0f} tokens/s  "
        f"padding {plain_padding:.1%}  (SentenceTransformer.encode, batch 64)"
    )
    print(
        f"  ratio ours/plain per round: {', '.join(f'{x:.2f}' for x in round_ratios)}; "
        f"median {ratio:.2f}x"
    )
    write_result(
        "embedder",
        {
            "config": {
                "model": engine.model_id,
                "device": engine.device,
                "dtype": str(engine.dtype),
                "chunks": n,
                "tokens": tokens,
                "rounds": rounds,
                "torch_threads": torch.get_num_threads(),
            },
            "metrics": {
                "chunks_per_s": round(ours_cps, 1),
                "tokens_per_s": round(tokens / ours),
                "padding_fraction": round(padding or 0, 4),
                "batches": stats.batches if stats else None,
            },
            "baseline": {
                "chunks_per_s": round(base_cps, 1),
                "tokens_per_s": round(tokens / base),
                "padding_fraction": round(plain_padding, 4),
            },
            "ratios": {
                "ours_over_plain_encode": round(ratio, 3),
                "per_round": [round(x, 3) for x in round_ratios],
                "best_round_over_best_round": round(ours_cps / base_cps, 3),
            },
            "targets": {
                "at least as fast as plain encode": target(
                    ">= 1.0x", round(ratio, 3), ratio >= 1.0
                ),
                "1000 chunks in < 5 min": target(
                    "< 300 s", round(1000 / ours_cps, 1), 1000 / ours_cps < 300
                ),
            },
        },
    )


if __name__ == "__main__":
    main()
