"""Export a sentence-transformers model to one ONNX graph, once, into a cache keyed by its hash.

The graph is the model's whole forward (Transformer -> Pooling -> Dense... ), inputs
``input_ids`` and ``attention_mask`` of any batch and length, output ``sentence_embedding``
(not normalised: the engine normalises, as the torch path does). The cache key is a SHA-256 of the
model directory's files, so new weights under the same path never reuse a stale graph. Exporting
needs torch; loading a cached graph does not (the ONNX engine imports neither torch nor
transformers).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from datatorag.domain.errors import DependencyError
from datatorag.embedding.model_dir import ModelSpec
from datatorag.observability.log import get_logger

log = get_logger(__name__)

_SKIP = {"README.md", ".gitattributes"}
# lengths traced into the example inputs; every axis is dynamic in the graph
_EXAMPLE_SHAPE = (2, 16)
OPSET = 17
_FUSABLE = ("bert", "roberta", "xlm-roberta", "mpnet")  # what ORT's "bert" optimizer fuses


def default_cache_dir() -> Path:
    root = os.environ.get("DATATORAG_CACHE") or str(Path.home() / ".cache" / "datatorag")
    return Path(root) / "onnx"


def model_hash(path: Path) -> str:
    """SHA-256 over the relative path and content of every file that defines the model."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if rel.name in _SKIP or rel.parts[0] in ("onnx", "openvino"):
            continue
        h.update(str(rel).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def onnx_paths(spec: ModelSpec, cache_dir: Path | None) -> tuple[Path, Path]:
    """(fp32 graph, int8 graph) for this model's weights."""
    root = (cache_dir or default_cache_dir()) / f"{spec.model_id}-{model_hash(spec.path)}"
    return root / "model.onnx", root / "model.int8.onnx"


def ensure_onnx(spec: ModelSpec, cache_dir: Path | None, *, int8: bool) -> Path:
    """The cached graph, exported (and quantised) first when it is not there yet.

    A default cache that cannot be written (a container's read-only root filesystem: the home
    directory is not writable there) is replaced by one under the temporary directory, with a
    warning; a configured ``cache_dir`` that cannot be written is an error naming it."""
    fp32, q8 = onnx_paths(spec, cache_dir)
    needed = [fp32] + ([q8] if int8 else [])
    if not all(p.is_file() for p in needed) and not _writable(fp32.parent):
        if cache_dir is not None:
            raise DependencyError(
                "embedding model",
                f"the ONNX cache {cache_dir} cannot be written to export {spec.model_id}'s graph:"
                " make it writable or set DATATORAG_EMBEDDING_ONNX_CACHE_DIR elsewhere",
            )
        fallback = Path(tempfile.gettempdir()) / "datatorag" / "onnx"
        log.warning(
            "onnx cache not writable, exporting under the temporary directory",
            cache=str(fp32.parent.parent),
            instead=str(fallback),
        )
        fp32, q8 = onnx_paths(spec, fallback)
    if not fp32.is_file():
        _export(spec, fp32)
    if not int8:
        return fp32
    if not q8.is_file():
        _quantise(fp32, q8)
    return q8


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


def _export(spec: ModelSpec, dest: Path) -> None:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyError(
            "embedding model",
            f"no ONNX graph for {spec.model_id} in {dest.parent} and torch is not installed to "
            "export one: export it where torch is (any datatorag with backend=onnx) or use "
            "DATATORAG_EMBEDDING_BACKEND=torch",
        ) from exc

    class _Forward(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.model({"input_ids": input_ids, "attention_mask": attention_mask})
            return out["sentence_embedding"]

    model = SentenceTransformer(
        str(spec.path),
        device="cpu",
        local_files_only=True,
        # eager attention traces to the MatMul/Softmax pattern that ONNX Runtime's transformer
        # optimizer fuses into one Attention kernel (SDPA traces to a graph it cannot fuse)
        model_kwargs={"torch_dtype": torch.float32, "attn_implementation": "eager"},
    ).eval()
    ids = torch.ones(_EXAMPLE_SHAPE, dtype=torch.long)
    mask = torch.ones(_EXAMPLE_SHAPE, dtype=torch.long)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name and renamed: a crash never leaves a half graph in the cache
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tmp_path = Path(tmp) / dest.name
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                _Forward(model),
                (ids, mask),
                str(tmp_path),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency
            )
        _fuse(tmp_path, spec)
        extra = [p for p in Path(tmp).iterdir() if p != tmp_path]  # external weights (> 2 GB)
        for p in extra:
            p.replace(dest.parent / p.name)
        tmp_path.replace(dest)
    log.info("embedding model exported to ONNX", model=spec.model_id, path=str(dest))


def _fuse(path: Path, spec: ModelSpec) -> None:
    """BERT-family encoders (MiniLM): ONNX Runtime's transformer optimizer fuses attention,
    embedding + LayerNorm, skip + LayerNorm and bias + GELU (measured ~2x on CPU over the plain
    graph). Other architectures keep the exported graph; the session's own optimisations apply."""
    import json

    model_type = json.loads((spec.path / "config.json").read_text()).get("model_type")
    if model_type not in _FUSABLE:
        return
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0)
    fused.save_model_to_file(str(path))


def _quantise(src: Path, dest: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tmp_path = Path(tmp) / dest.name
        # weights per output channel, MatMuls only (the fused Attention keeps fp32 internals)
        quantize_dynamic(
            str(src),
            str(tmp_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
        tmp_path.replace(dest)
    log.info("ONNX graph quantised to int8", path=str(dest))
