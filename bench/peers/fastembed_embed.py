"""The fastembed side of bench/bench_embedder.py, run in the peers' venv (bench/peers/venv.sh).

fastembed is given *our* exported ONNX graph (its output is the pooled sentence embedding, so
pooling is disabled and fastembed normalises), the model's own tokenizer files, the same texts and
the same thread count. Prints one JSON object: seconds per round, single-query latencies, and
where the vectors were saved (for the cosine check).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType

TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", required=True, help="the exported model.onnx")
    ap.add_argument("--model-dir", required=True, help="the model's directory (tokenizer files)")
    ap.add_argument("--texts", required=True, help="JSON list of prompt-formatted inputs")
    ap.add_argument("--query", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", required=True, help="where to save the vectors (.npy)")
    args = ap.parse_args()
    texts = json.loads(Path(args.texts).read_text())
    threads = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in TOKENIZER_FILES:
            src = Path(args.model_dir) / name
            if src.is_file():
                shutil.copy(src, d / name)
        os.symlink(Path(args.graph).resolve(), d / "model.onnx")
        TextEmbedding.add_custom_model(
            model="datatorag/bench-model",
            pooling=PoolingType.DISABLED,
            normalization=True,
            sources=ModelSource(hf="datatorag/bench-model"),
            dim=384,
            model_file="model.onnx",
            output_name="sentence_embedding",
        )
        model = TextEmbedding(
            "datatorag/bench-model", specific_model_path=str(d), threads=threads, lazy_load=False
        )
        list(model.embed(texts[:64], batch_size=args.batch))  # warm-up
        seconds, vectors = [], None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            vectors = np.stack(list(model.embed(texts, batch_size=args.batch)))
            seconds.append(time.perf_counter() - t0)
        single = []
        for _ in range(60):
            t0 = time.perf_counter()
            list(model.embed([args.query]))
            single.append((time.perf_counter() - t0) * 1000)
    assert vectors is not None
    np.save(args.out, vectors.astype(np.float32))
    print(json.dumps({"seconds": seconds, "single_query_ms": single[10:], "threads": threads}))


if __name__ == "__main__":
    main()
