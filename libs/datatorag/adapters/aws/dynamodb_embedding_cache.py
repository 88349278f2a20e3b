"""Embedding cache on DynamoDB (production), in the registry's table by default.

One item per (model, key): ``pk = EMB#<model>#<key>``, ``sk = V``, ``v`` the float32 vector as
binary (3 KiB for 768 dimensions, far under the 400 KB item cap). The items carry neither the
registry's status nor its ``lsi1sk``, so they never appear in its indexes. Reads are
``BatchGetItem`` (100 keys a call), writes ``BatchWriteItem`` (25 a call); unprocessed keys and
items are retried with a short backoff, as the DynamoDB documentation asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from datatorag.adapters.aws.session import (
    AwsClients,
    AwsConnection,
    aws_errors,
    dependency_check,
)
from datatorag.config import Settings
from datatorag.domain.errors import TransientError
from datatorag.ports.embedding_cache import EmbeddingCache

_GET_BATCH = 100
_PUT_BATCH = 25
_RETRIES = 8


def _pk(model: str, key: str) -> str:
    return f"EMB#{model}#{key}"


class DynamoDbEmbeddingCache(EmbeddingCache):
    def __init__(self, table: str, *, clients: AwsClients | AwsConnection | None = None) -> None:
        if not table:
            raise ValueError("DynamoDB table name must not be empty")
        self.table = table
        self._owns_clients = not isinstance(clients, AwsClients)
        self._clients = clients if isinstance(clients, AwsClients) else AwsClients(clients)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clients: AwsClients | None = None
    ) -> DynamoDbEmbeddingCache:
        aws = settings.aws
        return cls(aws.registry_table, clients=clients or AwsConnection.from_settings(aws))

    @property
    def _what(self) -> str:
        return f"dynamodb table {self.table} (embedding cache)"

    async def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        ddb = await self._clients.client("dynamodb")
        wanted = list(dict.fromkeys(keys))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(wanted), _GET_BATCH):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {"pk": {"S": _pk(model, k)}, "sk": {"S": "V"}}
                        for k in wanted[i : i + _GET_BATCH]
                    ],
                    "ProjectionExpression": "pk, v",
                }
            }
            for attempt in range(_RETRIES):
                async with aws_errors(self._what):
                    resp = await ddb.batch_get_item(RequestItems=request)
                prefix = f"EMB#{model}#"
                for item in resp.get("Responses", {}).get(self.table, []):
                    key = item["pk"]["S"].removeprefix(prefix)
                    out[key] = np.frombuffer(item["v"]["B"], dtype=np.float32).copy()
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                await asyncio.sleep(0.05 * 2**attempt)
            else:
                raise TransientError(f"{self._what}: keys left unprocessed after {_RETRIES} tries")
        return out

    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        ddb = await self._clients.client("dynamodb")
        items = list(vectors.items())
        for i in range(0, len(items), _PUT_BATCH):
            writes: list[dict[str, Any]] = [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": {"S": _pk(model, k)},
                            "sk": {"S": "V"},
                            "v": {"B": np.ascontiguousarray(v, dtype=np.float32).tobytes()},
                        }
                    }
                }
                for k, v in items[i : i + _PUT_BATCH]
            ]
            request: dict[str, Any] = {self.table: writes}
            for attempt in range(_RETRIES):
                async with aws_errors(self._what):
                    resp = await ddb.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if not request:
                    break
                await asyncio.sleep(0.05 * 2**attempt)
            else:
                raise TransientError(f"{self._what}: items left unprocessed after {_RETRIES} tries")

    async def check(self) -> None:
        async with dependency_check(self._what):
            ddb = await self._clients.client("dynamodb")
            await ddb.describe_table(TableName=self.table)

    async def close(self) -> None:
        if self._owns_clients:
            await self._clients.close()
