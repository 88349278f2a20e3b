"""The ONNX Runtime engine: the same vectors as the torch engine, a graph exported once per model
hash, and a process that loads a cached graph imports no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datatorag.config import EmbeddingSettings
from datatorag.domain.errors import DependencyError
from datatorag.embedding.backend import chosen_backend, create_engine
from datatorag.embedding.engine import EmbeddingEngine
from datatorag.embedding.model_dir import MINILM, resolve_model
from datatorag.embedding.onnx_engine import OnnxEmbeddingEngine
from datatorag.embedding.onnx_export import model_hash, onnx_paths

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("DATATORAG_CORPORA_DIR", REPO.parent / "shared" / "corpora"))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Real handbook passages of many lengths (1 to ~300 tokens: some truncated at 256)."""
    files = sorted(CORPUS.rglob("*.md"))
    assert files, f"no corpus under {CORPUS}"
    words = " ".join(f.read_text(errors="ignore") for f in files[:6]).split()
    rng = np.random.default_rng(3)
    out = []
    for n in [1, 2, 5, 9, 17, 40, 80, 150, 240, 400] * 4:
        start = int(rng.integers(0, len(words) - n))
        out.append(" ".join(words[start : start + n]))
    return out


@pytest.fixture(scope="module")
def onnx_engine() -> OnnxEmbeddingEngine:
    return OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx"))


@pytest.fixture(scope="module")
def torch_engine() -> EmbeddingEngine:
    return EmbeddingEngine(EmbeddingSettings(backend="torch"))


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (what it imports is its own), the repository on its path."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'libs'}:{REPO}"},
        check=False,
    )


def test_onnx_vectors_match_torch(
    onnx_engine: OnnxEmbeddingEngine, torch_engine: EmbeddingEngine, texts: list[str]
) -> None:
    assert onnx_engine.token_lengths(texts) == torch_engine.token_lengths(texts)
    assert max(onnx_engine.token_lengths(texts)) == onnx_engine.max_seq == 256  # truncation
    ours, stats = onnx_engine.encode(texts)
    ref, _ = torch_engine.encode(texts)
    assert ours.shape == ref.shape == (len(texts), 384) and ours.dtype == np.float32
    assert stats.batches >= 2  # batch shapes other than the traced example
    cosine = (ours * ref).sum(axis=1)
    assert cosine.min() >= 0.999, cosine.min()
    queries = onnx_engine.query_inputs(["how many vacation days do I get?"])
    q_cos = float(onnx_engine.encode(queries)[0][0] @ torch_engine.encode(queries)[0][0])
    assert q_cos >= 0.999


def test_truncated_dimension_is_renormalised(texts: list[str]) -> None:
    engine = OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx", truncate_dim=128))
    out, _ = engine.encode(texts[:5])
    assert out.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_graph_is_cached_by_the_model_hash(tmp_path: Path) -> None:
    spec = resolve_model(MINILM)
    copy = tmp_path / "model"
    shutil.copytree(spec.path, copy)
    assert model_hash(copy) == model_hash(spec.path)
    cache = tmp_path / "cache"
    settings = EmbeddingSettings(model=str(copy), backend="onnx", onnx_cache_dir=cache)
    first = OnnxEmbeddingEngine(settings)
    assert first.graph.is_file() and first.graph.parent.parent == cache
    stamp = first.graph.stat().st_mtime_ns
    second = OnnxEmbeddingEngine(settings)
    assert second.graph == first.graph and second.graph.stat().st_mtime_ns == stamp  # no re-export
    # new weights under the same path: a new key, never the stale graph
    (copy / "1_Pooling" / "config.json").write_text(
        (copy / "1_Pooling" / "config.json").read_text() + " "
    )
    assert onnx_paths(resolve_model(str(copy)), cache)[0] != first.graph
    assert not [p for p in first.graph.parent.iterdir() if p.name.startswith("tmp")]


def test_cached_graph_loads_without_torch(onnx_engine: OnnxEmbeddingEngine) -> None:
    """The query gateway may embed with ONNX: the engine and its imports pull in no torch."""
    code = (
        "import sys\n"
        "from datatorag.config import EmbeddingSettings\n"
        "from datatorag.embedding.local import LocalEmbedder\n"
        "e = LocalEmbedder(EmbeddingSettings())\n"
        "v, _ = e.engine.encode(e.engine.query_inputs(['paid time off']))\n"
        "assert e.engine.backend == 'onnx', e.engine.backend\n"
        "assert v.shape == (1, 384)\n"
        "mods = ('torch', 'transformers', 'sentence_transformers')\n"
        "bad = [m for m in mods if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_no_cached_graph_and_no_torch_is_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "from datatorag.config import EmbeddingSettings\n"
        "from datatorag.domain.errors import DependencyError\n"
        "from datatorag.embedding.onnx_engine import OnnxEmbeddingEngine\n"
        f"s = EmbeddingSettings(backend='onnx', onnx_cache_dir={str(tmp_path)!r})\n"
        "try:\n"
        "    OnnxEmbeddingEngine(s)\n"
        "except DependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch is not installed" in out.stdout and str(tmp_path) in out.stdout
    assert "DATATORAG_EMBEDDING_BACKEND=torch" in out.stdout
    assert not list(tmp_path.rglob("*.onnx"))


def test_backend_choice() -> None:
    assert chosen_backend(EmbeddingSettings(backend="torch")) == "torch"
    assert chosen_backend(EmbeddingSettings(backend="onnx")) == "onnx"
    assert chosen_backend(EmbeddingSettings(backend="auto", device="cuda")) == "torch"
    assert chosen_backend(EmbeddingSettings(backend="auto", device="cpu")) == "onnx"
    assert create_engine(EmbeddingSettings(backend="torch")).backend == "torch"


def test_auto_keeps_unverified_architectures_on_torch(tmp_path: Path) -> None:
    """auto picks ONNX only for the encoders whose export is verified here (BERT family)."""
    copy = tmp_path / "model"
    shutil.copytree(resolve_model(MINILM).path, copy)
    config = copy / "config.json"
    config.write_text(
        config.read_text().replace('"model_type": "bert"', '"model_type": "gemma3_text"')
    )
    assert chosen_backend(EmbeddingSettings(model=str(copy), device="cpu")) == "torch"
    assert chosen_backend(EmbeddingSettings(model=str(copy), backend="onnx")) == "onnx"
    with pytest.raises(ValueError, match="CPU only"):
        OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx", device="cuda"))


def test_bad_backend_name_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        EmbeddingSettings(backend="tensorrt")  # type: ignore[arg-type]


def test_int8_graph_stays_close(onnx_engine: OnnxEmbeddingEngine, texts: list[str]) -> None:
    q8 = OnnxEmbeddingEngine(EmbeddingSettings(backend="onnx", onnx_int8=True))
    assert q8.graph.name == "model.int8.onnx"
    # the MatMul weights are int8; the token-embedding table stays fp32 (Gather is not quantised)
    assert q8.graph.stat().st_size < onnx_engine.graph.stat().st_size * 0.7
    cosine = (q8.encode(texts)[0] * onnx_engine.encode(texts)[0]).sum(axis=1)
    assert cosine.mean() >= 0.98, cosine.mean()


def test_missing_tokenizer_json_is_named(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(resolve_model(MINILM).path, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(DependencyError, match=r"tokenizer\.json"):
        OnnxEmbeddingEngine(
            EmbeddingSettings(model=str(copy), backend="onnx", onnx_cache_dir=tmp_path / "c")
        )


def test_an_unwritable_default_cache_falls_back_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's read-only root: the home cache cannot be made, the graph goes to /tmp."""
    import tempfile

    from datatorag.embedding.onnx_export import ensure_onnx

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DATATORAG_CACHE", str(blocker / "cache"))  # mkdir fails under a file
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    spec = resolve_model(MINILM)
    graph, _ = onnx_paths(spec, tmp_path / "tmp" / "datatorag" / "onnx")
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"exported before")  # as a first start would have left it
    assert ensure_onnx(spec, None, int8=False) == graph
    # a configured cache is never swapped behind the operator's back: the error names it
    with pytest.raises(DependencyError, match="cannot be written") as refused:
        ensure_onnx(spec, blocker / "configured", int8=False)
    assert str(blocker / "configured") in str(refused.value)
