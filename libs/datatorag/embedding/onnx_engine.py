"""The embedding engine on ONNX Runtime: the same model, batching and prompts, without torch.

The graph comes from ``onnx_export`` (exported once from the shipped weights, cached by their
hash). Tokenisation is the model's own ``tokenizer.json`` through the ``tokenizers`` library, so a
service that loads a cached graph imports neither torch nor transformers. CPU only: on a GPU the
torch engine runs bf16, which is the faster path there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from datatorag.config import EmbeddingSettings
from datatorag.domain.errors import DependencyError
from datatorag.embedding import batching
from datatorag.embedding.batching import EncodeStats
from datatorag.embedding.model_dir import ModelSpec, resolve_model
from datatorag.embedding.onnx_export import ensure_onnx
from datatorag.observability import metrics
from datatorag.observability.log import get_logger

log = get_logger(__name__)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxEmbeddingEngine(batching.PromptedEngine):
    """Thread-safe (one forward at a time) synchronous encoder on ONNX Runtime (CPU)."""

    backend = "onnx"
    device = "cpu"

    def __init__(self, settings: EmbeddingSettings) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if settings.device not in ("auto", "cpu"):
            raise ValueError(f"the ONNX backend runs on CPU only, not {settings.device!r}")
        self.settings = settings
        self.spec: ModelSpec = resolve_model(settings.model)
        self.dtype = "int8" if settings.onnx_int8 else "float32"
        started = time.perf_counter()
        tok_file = self.spec.path / "tokenizer.json"
        if not tok_file.is_file():
            raise DependencyError(
                "embedding model", f"{tok_file} missing (the ONNX backend tokenises with it)"
            )
        self.graph = ensure_onnx(self.spec, settings.onnx_cache_dir, int8=settings.onnx_int8)
        config = json.loads((self.spec.path / "config.json").read_text())
        window = self.spec.max_seq_length or int(config.get("max_position_embeddings") or 512)
        self.max_seq = min(settings.max_seq_tokens, window)
        self.tokenizer: Any = Tokenizer.from_file(str(tok_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq)
        self.pad_id = _pad_id(self.spec, self.tokenizer)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = len(os.sched_getaffinity(0))
        # idle threads that spin steal the CPU from the event loop (see embedding/__init__.py)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.graph), opts, providers=["CPUExecutionProvider"]
        )
        full_dim = int(self.session.get_outputs()[0].shape[-1])
        self.dim = int(settings.truncate_dim or full_dim)
        self.model_id = self.spec.model_id
        self._lock = threading.Lock()
        self._log_loaded(started, backend="onnx", dtype=self.dtype)

    def _ids(self, inputs: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(inputs))]

    def token_lengths(self, inputs: Sequence[str]) -> list[int]:
        return [len(x) for x in self._ids(inputs)]

    def encode(self, inputs: Sequence[str]) -> tuple[np.ndarray, EncodeStats]:
        """Encode prompt-formatted inputs; rows come back in input order, L2-normalised."""
        started = time.perf_counter()
        n = len(inputs)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32), EncodeStats(0, 0, 0, 0, 0.0)
        ids = self._ids(inputs)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        out = np.empty((n, self.dim), dtype=np.float32)
        padded = batches = 0
        with self._lock:
            for idx, longest in batching.token_budget_batches(
                lengths, self.settings.batch_size, self.max_seq
            ):
                input_ids = np.full((len(idx), longest), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(idx), longest), dtype=np.int64)
                for row, j in enumerate(idx):
                    input_ids[row, : lengths[j]] = ids[j]
                    mask[row, : lengths[j]] = 1
                t0 = time.perf_counter()
                (emb,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
                emb = np.asarray(emb[:, : self.dim], dtype=np.float32)
                emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                out[idx] = emb
                metrics.EMBED_BATCH_SECONDS.observe(time.perf_counter() - t0)
                padded += longest * len(idx)
                batches += 1
        return out, batching.encoded(n, lengths, padded, batches, started)


def _pad_id(spec: ModelSpec, tokenizer: Any) -> int:
    """The pad token's id as the model's tokenizer_config names it (0 when it names none)."""
    cfg = spec.path / "tokenizer_config.json"
    token: Any = None
    if cfg.is_file():
        token = json.loads(cfg.read_text()).get("pad_token")
    if isinstance(token, dict):
        token = token.get("content")
    found = tokenizer.token_to_id(token) if isinstance(token, str) else None
    return int(found) if found is not None else 0
