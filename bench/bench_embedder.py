"""Embedder throughput on CPU: our engine on torch and on ONNX Runtime (fp32, int8) vs a plain
``SentenceTransformer.encode`` of the same chunks, and vs fastembed given the same ONNX graph
(in the peers' venv); single-query encode latency; int8's cost in cosine and recall@5.

Chunks are real: the 37signals handbook (``../shared/corpora``) parsed and chunked by our
pipeline at several chunk sizes, so lengths vary the way they do in production. Both paths run in
the same process, alternating, best of N rounds each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def doc_recall_at_5(engine: Any, chunks: list[tuple[str, str]]) -> float:
    """Document-level recall@5 on the test half of bench/quality/questions.yaml (odd positions,
    as bench_quality splits them): a question is a hit when a grade-2 document holds one of the
    five chunks nearest its query embedding."""
    import yaml

    qs = yaml.safe_load((REPO / "bench" / "quality" / "questions.yaml").read_text())["questions"]
    test = [q for pos, q in enumerate(qs) if pos % 2 == 1]
    docs = np.asarray([d for d, _ in chunks])
    cv, _ = engine.encode(engine.document_inputs([t for _, t in chunks], None))
    qv, _ = engine.encode(engine.query_inputs([q["question"] for q in test]))
    hits = 0
    for q, v in zip(test, qv, strict=True):
        top = set(docs[np.argsort(-(cv @ v))[:5]])
        hits += any(r["doc"] in top for r in q["relevant"] if r["grade"] == 2)
    return hits / len(test)


def handbook_chunks() -> list[tuple[str, str]]:
    from datatorag.chunking import chunk_document
    from datatorag.embedding.engine import load_tokenizer
    from datatorag.parsing import parse_document

    tok = load_tokenizer()
    out = []
    for f in sorted(corpus_dir().glob("*.md")):
        doc = parse_document(f.read_bytes(), filename=f.name)
        out += [
            (f.name, c.text) for c in chunk_document(doc, tok, max_tokens=256, overlap_tokens=32)
        ]
    return out


def single_query_ms(encode: Any, query: list[str], n: int = 60) -> float:
    encode(query)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        encode(query)
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2)


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--no-peers", action="store_true", help="skip fastembed (the peers' venv)")
    args = ap.parse_args()
    n = args.chunks or (256 if args.quick else 2000)
    rounds = args.rounds or (2 if args.quick else 4)

    import torch
    from sentence_transformers import SentenceTransformer

    from datatorag.config import EmbeddingSettings
    from datatorag.embedding.backend import chosen_backend
    from datatorag.embedding.engine import EmbeddingEngine
    from datatorag.embedding.onnx_engine import OnnxEmbeddingEngine

    load_before = load_avg()
    texts = load_chunks(n)
    engine = EmbeddingEngine(EmbeddingSettings(backend="torch"))
    onnx = OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx"))
    int8 = OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx", onnx_int8=True))
    inputs = engine.document_inputs(texts, None)
    plain = SentenceTransformer(str(engine.spec.path), device=engine.device, local_files_only=True)
    plain.max_seq_length = engine.max_seq
    lengths = engine.token_lengths(inputs)
    tokens = sum(lengths)
    # SentenceTransformer.encode sorts by character length and pads each batch of 64 to its longest
    by_chars = sorted(range(n), key=lambda i: -len(inputs[i]))
    plain_padded = sum(
        max(lengths[i] for i in by_chars[b : b + 64]) * len(by_chars[b : b + 64])
        for b in range(0, n, 64)
    )
    plain_padding = 1 - tokens / plain_padded

    stats: dict[str, Any] = {}

    def ours(e: Any, name: str) -> Any:
        def once() -> float:
            t0 = time.perf_counter()
            _, stats[name] = e.encode(inputs)
            return time.perf_counter() - t0

        return once

    def plain_once() -> float:
        t0 = time.perf_counter()
        plain.encode(inputs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - t0

    paths = {
        "torch": ours(engine, "torch"),
        "onnx": ours(onnx, "onnx"),
        "onnx_int8": ours(int8, "onnx_int8"),
        "plain": plain_once,
    }
    for e in (engine, onnx, int8):  # warm-up every path
        e.encode(inputs[:64])
    plain.encode(inputs[:64], batch_size=64)

    # Paired rounds, the order rotating, so drift in the machine's speed hits every path;
    # the headline ratios are the medians of the per-round ratios.
    secs: dict[str, list[float]] = {k: [] for k in paths}
    names = list(paths)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            secs[name].append(paths[name]())

    def per_round(a: str, b: str) -> list[float]:
        return sorted(y / x for x, y in zip(secs[a], secs[b], strict=True))

    ratio = {
        "torch_over_plain": per_round("torch", "plain"),
        "onnx_over_plain": per_round("onnx", "plain"),
        "onnx_int8_over_plain": per_round("onnx_int8", "plain"),
        "onnx_over_torch_engine": per_round("onnx", "torch"),
    }
    med = {k: statistics.median(v) for k, v in ratio.items()}
    cps = {k: n / min(v) for k, v in secs.items()}

    # quality of each CPU path against the torch engine's vectors
    ref, _ = engine.encode(inputs)
    cos = {}
    for name, e in (("onnx", onnx), ("onnx_int8", int8)):
        v, _ = e.encode(inputs)
        c = (v * ref).sum(axis=1)
        cos[name] = {"mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5)}
    hb = handbook_chunks()
    # torch's recall equals fp32 ONNX's (cosine 0.99999); int8 is what could move it
    recall = {
        name: round(doc_recall_at_5(e, hb), 4) for name, e in (("onnx", onnx), ("onnx_int8", int8))
    }
    query = engine.query_inputs(["how many vacation days do I get per year?"])
    single = {
        "torch": single_query_ms(engine.encode, query),
        "onnx": single_query_ms(onnx.encode, query),
        "onnx_int8": single_query_ms(int8.encode, query),
    }

    fastembed: dict[str, Any] = {}
    if not args.no_peers:
        import tempfile

        from bench._peers import run_peer

        with tempfile.TemporaryDirectory() as tmp:
            tf = Path(tmp) / "texts.json"
            tf.write_text(json.dumps(inputs))
            out = Path(tmp) / "fastembed.npy"
            ours_before = min(paths["onnx"]() for _ in range(max(1, rounds // 2)))
            peer = run_peer(
                "fastembed_embed.py",
                "--graph",
                str(onnx.graph),
                "--model-dir",
                str(engine.spec.path),
                "--texts",
                str(tf),
                "--query",
                query[0],
                "--rounds",
                str(max(1, rounds // 2)),
                "--out",
                str(out),
            )
            ours_after = min(paths["onnx"]() for _ in range(max(1, rounds // 2)))
            fv = np.load(out)
        ours_best = min(ours_before, ours_after)
        c = (fv * ref).sum(axis=1)
        fastembed = {
            "chunks_per_s": round(n / min(peer["seconds"]), 1),
            "single_query_ms": round(statistics.median(peer["single_query_ms"]), 2),
            "cosine_to_torch": {"mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5)},
            "threads": peer["threads"],
            "ours_onnx_best_s_around_it": [round(ours_before, 3), round(ours_after, 3)],
            "onnx_over_fastembed": round(min(peer["seconds"]) / ours_best, 3),
        }

    int8_ok = cos["onnx_int8"]["mean"] >= 0.99 and abs(recall["onnx_int8"] - recall["onnx"]) < 0.01
    print(
        f"embedder ({engine.model_id}, cpu, torch threads {torch.get_num_threads()}): {n} chunks, "
        f"{tokens} tokens, {rounds} paired rounds, load {load_before} -> {load_avg()}"
    )
    for k in paths:
        print(
            f"  {k:10s}: {cps[k]:8.1f} chunks/s  {tokens * cps[k] / n:9.0f} tokens/s (best round)"
        )
    for k, v in med.items():
        print(f"  {k}: median {v:.2f}x  rounds {', '.join(f'{x:.2f}' for x in ratio[k])}")
    print(f"  cosine to torch: {cos}; doc recall@5 (test half): {recall}")
    print(f"  single-query encode p50 ms: {single}")
    if fastembed:
        print(f"  fastembed (same graph): {fastembed}")
    targets = {
        "at least as fast as plain encode (default CPU path)": target(
            ">= 1.0x", round(med["onnx_over_plain"], 3), med["onnx_over_plain"] >= 1.0
        ),
        "ONNX path vs plain SentenceTransformer.encode": target(
            ">= 2.0x", round(med["onnx_over_plain"], 3), med["onnx_over_plain"] >= 2.0
        ),
        "ONNX query-time single-query encode p50 (ms)": target(
            "< 5", single["onnx"], single["onnx"] < 5
        ),
        "ONNX fp32 cosine to torch": target(
            ">= 0.999", cos["onnx"]["min"], cos["onnx"]["min"] >= 0.999
        ),
        "int8 adoptable (cosine >= 0.99, recall@5 moves < 0.01)": target(
            "both",
            f"cos {cos['onnx_int8']['mean']}, recall {recall['onnx_int8']} vs {recall['onnx']}",
            int8_ok,
        ),
        "1000 chunks in < 5 min": target(
            "< 300 s", round(1000 / cps["onnx"], 1), 1000 / cps["onnx"] < 300
        ),
    }
    if fastembed:
        r = fastembed["onnx_over_fastembed"]
        targets["ONNX path vs fastembed (same graph)"] = target(">= 1.0x", r, r >= 1.0)
    write_result(
        "embedder",
        {
            "config": {
                "model": engine.model_id,
                "device": "cpu",
                "chunks": n,
                "tokens": tokens,
                "rounds": rounds,
                "torch_threads": torch.get_num_threads(),
                "default_backend_here": chosen_backend(EmbeddingSettings()),
                "load_avg": [load_before, load_avg()],
            },
            "metrics": {
                "chunks_per_s": {k: round(v, 1) for k, v in cps.items()},
                "padding_fraction": {
                    k: round(1 - st.tokens / st.padded_tokens, 4) for k, st in stats.items()
                },
                "plain_padding_fraction": round(plain_padding, 4),
                "cosine_to_torch": cos,
                "doc_recall_at_5_test": recall,
                "single_query_p50_ms": single,
                "fastembed": fastembed,
            },
            "ratios": {
                **{k: round(v, 3) for k, v in med.items()},
                "per_round": {k: [round(x, 3) for x in v] for k, v in ratio.items()},
                **({"onnx_over_fastembed": fastembed["onnx_over_fastembed"]} if fastembed else {}),
            },
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
