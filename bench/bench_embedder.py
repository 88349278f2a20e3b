"""Embedder throughput: our engine vs a plain ``SentenceTransformer.encode`` of the same chunks.

Chunks are real: the 37signals handbook (``../shared/corpora``) parsed and chunked by our
pipeline at several chunk sizes, so lengths vary the way they do in production. Both paths run in
the same process, alternating, best of N rounds each.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from bench._common import target, write_result

REPO = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path:
    return Path(os.environ.get("DATATORAG_CORPORA_DIR", REPO.parent / "shared" / "corpora")) / "37signals-handbook"


def load_chunks(n: int) -> list[str]:
    from libs.chunking import chunk_document
    from libs.embedding.model_dir import load_tokenizer
    from libs.parsing import parse_document

    tok = load_tokenizer()
    texts: list[str] = []
    files = sorted(corpus_dir().glob("*.md"))
    if not files:
        raise SystemExit(f"corpus not found under {corpus_dir()}")
    for size in (64, 128, 256):  # a realistic spread of chunk lengths
        for f in files:
            doc = parse_document(f.read_bytes(), filename=f.name)
            texts += [c.text for c in chunk_document(doc, tok, max_tokens=size, overlap_tokens=size // 8)]
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
    rounds = args.rounds or (1 if args.quick else 3)

    import torch
    from sentence_transformers import SentenceTransformer

    from libs.config import EmbeddingSettings
    from libs.embedding.engine import EmbeddingEngine

    texts = load_chunks(n)
    engine = EmbeddingEngine(EmbeddingSettings())
    inputs = engine.document_inputs(texts, None)
    plain = SentenceTransformer(str(engine.spec.path), device=engine.device, local_files_only=True)
    plain.max_seq_length = engine.max_seq
    tokens = sum(len(x) for x in engine.tokenizer(inputs, truncation=True, max_length=engine.max_seq)["input_ids"])

    engine.encode(inputs[:64])  # warm-up both
    plain.encode(inputs[:64], batch_size=64)
    ours_s, base_s = [], []
    stats = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        _, stats = engine.encode(inputs)
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain.encode(inputs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        base_s.append(time.perf_counter() - t0)
    ours, base = min(ours_s), min(base_s)
    ours_cps, base_cps = n / ours, n / base
    ratio = ours_cps / base_cps
    padding = 1 - stats.tokens / stats.padded_tokens if stats and stats.padded_tokens else None
    print(f"embedder ({engine.model_id}, {engine.device}, torch threads {torch.get_num_threads()}): "
          f"{n} chunks, {tokens} tokens")
    print(f"  ours : {ours_cps:8.1f} chunks/s  {tokens / ours:9.0f} tokens/s  padding {padding:.1%}")
    print(f"  plain: {base_cps:8.1f} chunks/s  {tokens / base:9.0f} tokens/s  (SentenceTransformer.encode, batch 64)")
    print(f"  ratio ours/plain: {ratio:.2f}x")
    write_result("embedder", {
        "config": {"model": engine.model_id, "device": engine.device, "dtype": str(engine.dtype),
                   "chunks": n, "tokens": tokens, "rounds": rounds, "torch_threads": torch.get_num_threads()},
        "metrics": {"chunks_per_s": round(ours_cps, 1), "tokens_per_s": round(tokens / ours),
                    "padding_fraction": round(padding or 0, 4), "batches": stats.batches if stats else None},
        "baseline": {"chunks_per_s": round(base_cps, 1), "tokens_per_s": round(tokens / base)},
        "ratios": {"ours_over_plain_encode": round(ratio, 3)},
        "targets": {"at least as fast as plain encode": target(">= 1.0x", round(ratio, 3), ratio >= 0.98),
                    "1000 chunks in < 5 min": target("< 300 s", round(1000 / ours_cps, 1), 1000 / ours_cps < 300)},
    })


if __name__ == "__main__":
    main()
