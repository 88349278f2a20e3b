"""A cross-encoder reranker loaded from a local directory (never a hub), like the embedding model.

Any sentence-transformers ``CrossEncoder`` directory works (e.g. an ms-marco MiniLM cross-encoder
copied onto a volume); the model runs in one dedicated thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from datatorag.domain.errors import DependencyError
from datatorag.ports.reranker import Reranker


class CrossEncoderReranker(Reranker):
    def __init__(
        self, model_dir: str | Path, *, device: str = "cpu", max_length: int = 512, batch: int = 32
    ) -> None:
        path = Path(model_dir).expanduser()
        if not (path / "config.json").is_file():
            raise DependencyError("reranker", f"{path} is not a model directory (no config.json)")
        from sentence_transformers import CrossEncoder

        self.model: Any = CrossEncoder(
            str(path), device=device, max_length=max_length, local_files_only=True
        )
        self.model_id = path.name.lower()
        self.batch = batch
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")

    def _predict(self, query: str, passages: list[str]) -> list[float]:
        out = self.model.predict(
            [(query, p) for p in passages], batch_size=self.batch, show_progress_bar=False
        )
        return [float(x) for x in out]

    async def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._predict, query, list(passages))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
