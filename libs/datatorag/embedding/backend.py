"""Which engine runs the model: ``DATATORAG_EMBEDDING_BACKEND`` = auto | torch | onnx."""

from __future__ import annotations

import json
from pathlib import Path

from datatorag.config import EmbeddingSettings
from datatorag.embedding.batching import Engine
from datatorag.embedding.model_dir import resolve_model

# architectures whose export is verified against torch (cosine >= 0.999, tests/unit); others
# (EmbeddingGemma) take ONNX only when asked for explicitly
ONNX_AUTO_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "mpnet"})


def chosen_backend(settings: EmbeddingSettings) -> str:
    """auto: ONNX Runtime on CPU when it is installed and the model is a BERT-family encoder
    (the faster CPU path, measured in bench/bench_embedder.py), torch otherwise and on every
    GPU (bf16)."""
    if settings.backend != "auto":
        return settings.backend
    from datatorag.embedding.onnx_engine import onnxruntime_available

    if settings.device.startswith("cuda") or not onnxruntime_available():
        return "torch"
    spec = resolve_model(settings.model)
    model_type = json.loads((spec.path / "config.json").read_text()).get("model_type")
    if model_type not in ONNX_AUTO_MODEL_TYPES:
        return "torch"
    if settings.device == "auto" and _cuda_present():
        return "torch"
    return "onnx"


def _cuda_present() -> bool:
    """Asked of torch only where an NVIDIA driver is there: a CPU-only process that loads a cached
    ONNX graph never imports torch."""
    if not Path("/dev/nvidiactl").exists():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def create_engine(settings: EmbeddingSettings) -> Engine:
    if chosen_backend(settings) == "onnx":
        from datatorag.embedding.onnx_engine import OnnxEmbeddingEngine

        return OnnxEmbeddingEngine(settings)
    from datatorag.embedding.engine import EmbeddingEngine

    return EmbeddingEngine(settings)
