"""``IndexAdmin`` over ``MemoryVectorIndex`` objects (tests)."""

from __future__ import annotations

import asyncio

from datatorag.ports.vector_index import IndexAdmin, VectorIndex
from datatorag.testing.memory.vector_index import MemoryVectorIndex


class MemoryIndexAdmin(IndexAdmin):
    def __init__(self) -> None:
        self.indexes: dict[str, MemoryVectorIndex] = {}
        self.aliases: dict[str, str] = {}

    @staticmethod
    def _logical(model_id: str, dim: int) -> str:
        return f"{model_id}-{dim}"

    async def create(self, model_id: str, dim: int) -> str:
        await asyncio.sleep(0)
        logical = self._logical(model_id, dim)
        name = f"{logical}-v{len(await self.list(model_id, dim)) + 1}"
        while name in self.indexes:
            name += "x"
        self.indexes[name] = MemoryVectorIndex(dim)
        return name

    def open(self, name: str, dim: int) -> VectorIndex:
        index = self.indexes[name]
        if index.dim != dim:
            raise ValueError(f"{name} holds {index.dim}-d vectors, not {dim}-d")
        return index

    def open_serving(self, model_id: str, dim: int) -> VectorIndex:
        name = self.aliases.get(self._logical(model_id, dim))
        if name is None:
            raise KeyError(f"nothing serves {self._logical(model_id, dim)}")
        return self.indexes[name]

    async def promote(self, model_id: str, dim: int, name: str) -> list[str]:
        await asyncio.sleep(0)
        if name not in self.indexes:
            raise ValueError(f"index {name!r} does not exist")
        logical = self._logical(model_id, dim)
        old = self.aliases.get(logical)
        self.aliases[logical] = name
        return [] if old is None or old == name else [old]

    async def serving(self, model_id: str, dim: int) -> str | None:
        await asyncio.sleep(0)
        return self.aliases.get(self._logical(model_id, dim))

    async def list(self, model_id: str, dim: int) -> list[str]:
        await asyncio.sleep(0)
        prefix = f"{self._logical(model_id, dim)}-v"
        return [n for n in self.indexes if n.startswith(prefix)]

    async def drop(self, name: str, *, force: bool = False) -> None:
        await asyncio.sleep(0)
        if name in self.aliases.values():
            if not force:
                raise ValueError(f"index {name!r} is serving; promote another first")
            self.aliases = {k: v for k, v in self.aliases.items() if v != name}
        self.indexes.pop(name, None)
