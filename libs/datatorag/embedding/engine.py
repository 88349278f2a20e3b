"""The embedding engine: a sentence-transformers model driven with our own batching.

Why not just ``SentenceTransformer.encode``: we tokenise once, sort by length and form batches by a
*token budget* (short chunks go in big batches, long ones in small), so padding stays low and
memory flat; we run under ``torch.inference_mode`` in bf16 on GPU (EmbeddingGemma overflows in
fp16) and fp32 on CPU. The model modules (Transformer -> Pooling -> Dense... -> Normalize) are the
model's own, so EmbeddingGemma and MiniLM go through the same code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from datatorag.config import EmbeddingSettings
from datatorag.embedding import batching
from datatorag.embedding.batching import EncodeStats
from datatorag.embedding.model_dir import MINILM, ModelSpec, resolve_model
from datatorag.observability import metrics
from datatorag.observability.log import get_logger

log = get_logger(__name__)


__all__ = ["EmbeddingEngine", "EncodeStats", "load_tokenizer"]


class EmbeddingEngine(batching.PromptedEngine):
    """Thread-safe (one forward at a time) synchronous encoder."""

    backend = "torch"

    def __init__(self, settings: EmbeddingSettings) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # a "Loading weights" bar per start is noise in logs (untyped in transformers)
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        self.settings = settings
        self.spec: ModelSpec = resolve_model(settings.model)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        dtype = settings.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if dtype == "float16" and self.spec.is_gemma:
            raise ValueError("EmbeddingGemma overflows in float16; use bfloat16 or float32")
        self.dtype = getattr(torch, dtype)
        started = time.perf_counter()
        self.model = SentenceTransformer(
            str(self.spec.path),
            device=device,
            local_files_only=True,
            truncate_dim=settings.truncate_dim,
            model_kwargs={"torch_dtype": self.dtype},
        )
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.max_seq = min(
            settings.max_seq_tokens, self.model.max_seq_length or settings.max_seq_tokens
        )
        self.dim = int(settings.truncate_dim or self.model.get_embedding_dimension() or 0)
        self.model_id = self.spec.model_id
        self._lock = threading.Lock()
        self._torch = torch
        self._log_loaded(started, device=device, dtype=dtype)

    def token_lengths(self, inputs: Sequence[str]) -> list[int]:
        ids = self.tokenizer(list(inputs), truncation=True, max_length=self.max_seq)["input_ids"]
        return [len(x) for x in ids]

    # encoding --------------------------------------------------------------------------------
    def encode(self, inputs: Sequence[str]) -> tuple[np.ndarray, EncodeStats]:
        """Encode prompt-formatted inputs; rows come back in input order, L2-normalised."""
        started = time.perf_counter()
        n = len(inputs)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32), EncodeStats(0, 0, 0, 0, 0.0)
        enc = self.tokenizer(
            list(inputs),
            truncation=True,
            max_length=self.max_seq,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = enc["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        out = np.empty((n, self.dim), dtype=np.float32)
        padded = batches = 0
        torch = self._torch
        with self._lock, torch.inference_mode():
            for idx, longest in batching.token_budget_batches(
                lengths, self.settings.batch_size, self.max_seq
            ):
                batch = self.tokenizer.pad(
                    {"input_ids": [ids[j] for j in idx]}, padding=True, return_tensors="pt"
                )
                features = {k: v.to(self.device) for k, v in batch.items()}
                t0 = time.perf_counter()
                emb = self.model.forward(features)["sentence_embedding"]
                if self.settings.truncate_dim:
                    emb = emb[:, : self.settings.truncate_dim]
                emb = torch.nn.functional.normalize(emb.float(), p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                metrics.EMBED_BATCH_SECONDS.observe(time.perf_counter() - t0)
                padded += longest * len(idx)
                batches += 1
        return out, batching.encoded(n, lengths, padded, batches, started)


@lru_cache(maxsize=4)
def load_tokenizer(model: str = MINILM) -> Any:
    """The embedding model's own tokenizer as transformers loads it (benchmarks and tests compare
    the chunker's tokens with it; the parser itself reads ``tokenizer.json`` directly)."""
    from transformers import AutoTokenizer

    spec = resolve_model(model)
    return AutoTokenizer.from_pretrained(str(spec.path), local_files_only=True)
