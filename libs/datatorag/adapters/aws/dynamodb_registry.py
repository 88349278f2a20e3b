"""``Registry`` on Amazon DynamoDB via aiobotocore: one table, conditional writes.

Table schema (single-table design; on-demand capacity; created by ``provision.ensure_table``)::

    key: pk (S, partition), sk (S, sort)

    item          pk                       sk            other attributes
    ------------  -----------------------  ------------  --------------------------------------
    version       DOC#<tenant>#<doc_id>    V#<version>   every DocumentRecord field
                                                         (status S, status_rank N, seq N,
                                                         updated_at S, groups L of S (absent
                                                         on items from before audiences:
                                                         everyone), ...), is_current N
                                                         (1, current only),
                                                         lsi1sk S = V#<seq, 20 digits>
    current ptr   DOC#<tenant>#<doc_id>    CURRENT       version S, seq N
    lease         LEASE#<name>             LEASE         owner S, expires_at N (epoch s)
    sync run      SYNC#<tenant>#<source>   RUN#<run_id>  data S (SyncRun JSON),
                                                         lsi1sk S = R#<started_at ISO>
    source        SOURCES#<tenant>         SRC#<source>  data S (SourceRecord JSON)
    API key       APIKEYS                  KEY#<key_id>  data S (ApiKeyRecord JSON: a salted hash,
                                                         never the key), tenant S, revoked N

    GSI by_status   partition status (S), sort updated_at (S: ISO-8601 UTC, fixed width, so it
                    sorts by time); projection ALL. Only version items carry both attributes, so
                    it holds exactly the document versions: "FAILED in the last hour", "stalled".
                    Six statuses make six GSI partitions: fine for document-registry write
                    rates (on-demand GSI partitions take 1000 writes/s each); tenant and source
                    are filters on it.
    LSI by_time     sort lsi1sk (S); projection ALL. Versions newest ``seq`` first, sync runs newest
                    first, without reading the whole item collection.

Conditional writes keep the registry right under concurrent, duplicated and late messages:

* ``put_version``: ``attribute_not_exists(pk)`` (put-if-absent).
* ``advance``: ``status_rank < :rank`` - a status only moves forward (``DocumentStatus.rank``).
* current pointer: a transaction moves it only from the version it was read at to a version with
  a higher ``seq`` and flips ``is_current`` on both versions, so ``find`` and ``stalled`` can
  keep to current versions with a filter.
* leases: a put that succeeds only when the lease is absent, expired or held by the same owner.
* API keys: put-if-absent by key id; a revoke is a put conditioned on ``revoked = 0``. All keys
  share one item collection: there are few, they are listed rarely, and the gateway caches them.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from datatorag.adapters.aws.session import (
    AwsClients,
    AwsConnection,
    aws_errors,
    dependency_check,
    error_code,
)
from datatorag.config import AwsSettings, Settings
from datatorag.domain.audience import DEFAULT_GROUPS, normalise_groups, visible
from datatorag.domain.errors import DependencyError
from datatorag.domain.models import DocumentRecord, DocumentStatus, utcnow
from datatorag.ports.registry import (
    ApiKeyRecord,
    Registry,
    SourceRecord,
    SyncRun,
    check_advance_fields,
)

STATUS_INDEX = "by_status"
TIME_INDEX = "by_time"
CURRENT_SK = "CURRENT"
LEASE_SK = "LEASE"
API_KEYS_PK = "APIKEYS"
_PROMOTE_ATTEMPTS = 20


def table_definition() -> dict[str, Any]:
    """``CreateTable`` arguments (less the name) for the registry table."""
    return {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "lsi1sk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "updated_at", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": TIME_INDEX,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "lsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


# -- attribute values ---------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    """Fixed-width UTC timestamp: string order is time order (GSI sort key)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _av(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, datetime):
        return {"S": _iso(value)}
    if isinstance(value, dict):
        return {"M": {str(k): _av(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_av(v) for v in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")


def _py(av: dict[str, Any]) -> Any:
    ((kind, value),) = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _py(v) for k, v in value.items()}
    if kind == "L":
        return [_py(v) for v in value]
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def _doc_pk(tenant: str, doc_id: str) -> str:
    return f"DOC#{tenant}#{doc_id}"


def _version_sk(version: str) -> str:
    return f"V#{version}"


def _seq_key(seq: int) -> str:
    return f"V#{seq:020d}"


def _record_item(record: DocumentRecord) -> dict[str, Any]:
    item = {
        "pk": _av(_doc_pk(record.tenant, record.doc_id)),
        "sk": _av(_version_sk(record.version)),
        "lsi1sk": _av(_seq_key(record.seq)),
        "status_rank": _av(record.status.rank),
    }
    for name, value in record.model_dump().items():
        if value is not None and not (name == "metadata" and not value):
            item[name] = _av(value)
    return item


def _record_from(item: dict[str, Any]) -> DocumentRecord:
    fields = {k: _py(v) for k, v in item.items() if k in DocumentRecord.model_fields}
    fields.setdefault("groups", DEFAULT_GROUPS)  # an item from before audiences
    return DocumentRecord.model_validate(fields)


class DynamoDbRegistry(Registry):
    def __init__(self, table: str, *, clients: AwsClients | AwsConnection | None = None) -> None:
        if not table:
            raise ValueError("DynamoDB table name must not be empty")
        self.table = table
        # shared clients are the caller's to close; a connection (or none) makes our own
        self._owns_clients = not isinstance(clients, AwsClients)
        self._clients = clients if isinstance(clients, AwsClients) else AwsClients(clients)

    @classmethod
    def from_settings(
        cls, settings: Settings | AwsSettings, *, clients: AwsClients | None = None
    ) -> DynamoDbRegistry:
        aws = settings.aws if isinstance(settings, Settings) else settings
        return cls(aws.registry_table, clients=clients or AwsConnection.from_settings(aws))

    @property
    def _what(self) -> str:
        return f"dynamodb table {self.table}"

    async def _ddb(self) -> Any:
        return await self._clients.client("dynamodb")

    async def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        ddb = await self._ddb()
        try:
            async with aws_errors(self._what):
                reply: dict[str, Any] = await getattr(ddb, op)(TableName=self.table, **kwargs)
                return reply
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise DependencyError(self._what, "does not exist") from exc
            raise

    async def _conditional(self, op: str, **kwargs: Any) -> bool:
        """Run a conditional write; False when its condition did not hold."""
        try:
            await self._call(op, **kwargs)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        resp = await self._call("get_item", Key={"pk": _av(pk), "sk": _av(sk)}, ConsistentRead=True)
        return resp.get("Item")

    async def _query(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """All items of a query, page after page."""
        while True:
            resp = await self._call("query", **kwargs)
            for item in resp.get("Items") or []:
                yield item
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # -- versions -------------------------------------------------------------------------------

    async def put_version(self, record: DocumentRecord) -> bool:
        stored = await self._conditional(
            "put_item",
            Item=_record_item(record),
            ConditionExpression="attribute_not_exists(pk)",
        )
        seq = record.seq
        if not stored:
            # Already there. Still try to promote it: a crash between the put and the promotion
            # must not leave a version that a redelivered message can never make current.
            existing = await self._get_item(
                _doc_pk(record.tenant, record.doc_id), _version_sk(record.version)
            )
            if existing is None:
                return False
            seq = int(existing["seq"]["N"])
        await self._promote(record.tenant, record.doc_id, record.version, seq)
        return stored

    async def _promote(self, tenant: str, doc_id: str, version: str, seq: int) -> bool:
        """Make ``version`` current unless a version with a higher ``seq`` already is."""
        pk = _doc_pk(tenant, doc_id)
        for _ in range(_PROMOTE_ATTEMPTS):
            pointer = await self._get_item(pk, CURRENT_SK)
            if pointer is not None:
                old_version, old_seq = pointer["version"]["S"], int(pointer["seq"]["N"])
                if old_version == version or old_seq > seq:
                    return False
            ops: list[dict[str, Any]] = []
            pointer_put: dict[str, Any] = {
                "TableName": self.table,
                "Item": {
                    "pk": _av(pk),
                    "sk": _av(CURRENT_SK),
                    "version": _av(version),
                    "seq": _av(seq),
                },
            }
            if pointer is None:
                pointer_put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                pointer_put["ConditionExpression"] = "#v = :old AND #seq = :old_seq"
                pointer_put["ExpressionAttributeNames"] = {"#v": "version", "#seq": "seq"}
                pointer_put["ExpressionAttributeValues"] = {
                    ":old": _av(old_version),
                    ":old_seq": _av(old_seq),
                }
            ops.append({"Put": pointer_put})
            ops.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": _av(pk), "sk": _av(_version_sk(version))},
                        "UpdateExpression": "SET is_current = :one",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":one": _av(1)},
                    }
                }
            )
            if pointer is not None:
                ops.append(
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": _av(pk), "sk": _av(_version_sk(old_version))},
                            "UpdateExpression": "REMOVE is_current",
                        }
                    }
                )
            ddb = await self._ddb()
            try:
                async with aws_errors(self._what):
                    await ddb.transact_write_items(TransactItems=ops)
                return True
            except Exception as exc:
                # lost a race with another promotion (or a transaction conflict): read again
                if error_code(exc) not in ("TransactionCanceledException", "TransactionConflict"):
                    raise
                await asyncio.sleep(0.01)
        raise RuntimeError(f"could not settle the current version of {tenant}/{doc_id}")

    async def advance(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        status: DocumentStatus,
        **fields: object,
    ) -> bool:
        status = DocumentStatus(status)
        check_advance_fields(fields)
        # validate the values against the record model before writing them
        DocumentRecord.model_validate(
            {
                "tenant": tenant,
                "doc_id": doc_id,
                "version": version,
                "seq": 0,
                "source": "-",
                "path": "-",
                "content_hash": "-",
                **fields,
            }
        )
        names = {"#status": "status", "#updated": "updated_at", "#rank": "status_rank"}
        values = {
            ":status": _av(status.value),
            ":rank": _av(status.rank),
            ":now": _av(_iso(utcnow())),
        }
        sets = ["#status = :status", "#rank = :rank", "#updated = :now"]
        removes: list[str] = []
        for i, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{i}"] = name
            if value is None or (name == "metadata" and not value):
                removes.append(f"#f{i}")
            else:
                values[f":f{i}"] = _av(value)
                sets.append(f"#f{i} = :f{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return await self._conditional(
            "update_item",
            Key={"pk": _av(_doc_pk(tenant, doc_id)), "sk": _av(_version_sk(version))},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND #rank < :rank",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    async def set_marker(
        self, tenant: str, doc_id: str, version: str, key: str, value: str | None
    ) -> None:
        # One map attribute; its member is named through an expression name, so any key works.
        # SET on a member needs the map to exist: the first marker writes the whole map.
        pk, sk = _av(_doc_pk(tenant, doc_id)), _av(_version_sk(version))
        names = {"#m": "metadata", "#k": key}
        if value is None:
            await self._conditional(
                "update_item", Key={"pk": pk, "sk": sk}, UpdateExpression="REMOVE #m.#k",
                ConditionExpression="attribute_exists(#m)", ExpressionAttributeNames=names,
            )  # fmt: skip
            return
        member = await self._conditional(
            "update_item", Key={"pk": pk, "sk": sk}, UpdateExpression="SET #m.#k = :v",
            ConditionExpression="attribute_exists(pk) AND attribute_exists(#m)",
            ExpressionAttributeNames=names, ExpressionAttributeValues={":v": _av(value)},
        )  # fmt: skip
        if not member:
            await self._conditional(
                "update_item", Key={"pk": pk, "sk": sk}, UpdateExpression="SET #m = :m",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#m)",
                ExpressionAttributeNames={"#m": "metadata"},
                ExpressionAttributeValues={":m": _av({key: value})},
            )  # fmt: skip

    async def set_groups(
        self, tenant: str, doc_id: str, version: str, groups: Sequence[str]
    ) -> bool:
        return await self._conditional(
            "update_item",
            Key={"pk": _av(_doc_pk(tenant, doc_id)), "sk": _av(_version_sk(version))},
            UpdateExpression="SET #g = :g, #updated = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#g": "groups", "#updated": "updated_at"},
            ExpressionAttributeValues={
                ":g": _av(list(normalise_groups(groups))),
                ":now": _av(_iso(utcnow())),
            },
        )

    async def get(self, tenant: str, doc_id: str, version: str) -> DocumentRecord | None:
        item = await self._get_item(_doc_pk(tenant, doc_id), _version_sk(version))
        return _record_from(item) if item else None

    async def current(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        pointer = await self._get_item(_doc_pk(tenant, doc_id), CURRENT_SK)
        if pointer is None:
            return None
        return await self.get(tenant, doc_id, pointer["version"]["S"])

    async def versions(self, tenant: str, doc_id: str) -> list[DocumentRecord]:
        items = self._query(
            IndexName=TIME_INDEX,
            KeyConditionExpression="pk = :pk AND begins_with(lsi1sk, :v)",
            ExpressionAttributeValues={":pk": _av(_doc_pk(tenant, doc_id)), ":v": _av("V#")},
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return [_record_from(item) async for item in items]

    # -- operator queries (GSI by_status) -------------------------------------------------------

    async def _by_status(
        self,
        status: DocumentStatus,
        *,
        tenant: str | None,
        source: str | None,
        current_only: bool,
        before: str | None = None,
        audience: frozenset[str] | None = None,
    ) -> AsyncGenerator[DocumentRecord, None]:
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": _av(status.value)}
        key = "#status = :status"
        if before is not None:
            names["#updated"] = "updated_at"
            values[":before"] = _av(before)
            key += " AND #updated < :before"
        filters = []
        if tenant is not None:
            names["#tenant"] = "tenant"
            values[":tenant"] = _av(tenant)
            filters.append("#tenant = :tenant")
        if source is not None:
            names["#source"] = "source"
            values[":source"] = _av(source)
            filters.append("#source = :source")
        if current_only:
            filters.append("attribute_exists(is_current)")
        kwargs: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": key,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,  # newest updated_at first
        }
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        async for item in self._query(**kwargs):
            record = _record_from(item)
            # the audience is matched as the page is read, before the merge counts the limit
            # (a FilterExpression would do the same read; this also reads items without groups)
            if visible(record.groups, audience):
                yield record

    async def _merged(
        self, statuses: Sequence[DocumentStatus], limit: int, **kwargs: Any
    ) -> list[DocumentRecord]:
        """Newest first across statuses; each status stream is already newest first."""
        streams = [self._by_status(s, **kwargs) for s in statuses]
        heap: list[tuple[float, int, DocumentRecord]] = []

        async def push(i: int) -> None:
            try:
                record = await anext(streams[i])
            except StopAsyncIteration:
                return
            heapq.heappush(heap, (-record.updated_at.timestamp(), i, record))

        for i in range(len(streams)):
            await push(i)
        out: list[DocumentRecord] = []
        while heap and len(out) < limit:
            _, i, record = heapq.heappop(heap)
            out.append(record)
            await push(i)
        for stream in streams:
            await stream.aclose()
        return out

    async def find(
        self,
        *,
        tenant: str | None = None,
        status: DocumentStatus | Sequence[DocumentStatus] | None = None,
        source: str | None = None,
        all_versions: bool = False,
        limit: int = 1000,
        audience: frozenset[str] | None = None,
    ) -> list[DocumentRecord]:
        if limit <= 0:
            return []
        if status is None:
            statuses: list[DocumentStatus] = list(DocumentStatus)
        elif isinstance(status, str):
            statuses = [DocumentStatus(status)]
        else:
            statuses = [DocumentStatus(s) for s in status]
        return await self._merged(
            list(dict.fromkeys(statuses)),
            limit,
            tenant=tenant,
            source=source,
            current_only=not all_versions,
            audience=audience,
        )

    async def stalled(
        self, older_than_s: float, *, tenant: str | None = None
    ) -> list[DocumentRecord]:
        cutoff = _iso(datetime.fromtimestamp(time.time() - older_than_s, UTC))
        pending = [s for s in DocumentStatus if not s.is_final]
        return await self._merged(
            pending, 1_000_000, tenant=tenant, source=None, current_only=True, before=cutoff
        )

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        now = time.time()
        return await self._conditional(
            "put_item",
            Item={
                "pk": _av(f"LEASE#{name}"),
                "sk": _av(LEASE_SK),
                "owner": _av(owner),
                "expires_at": _av(now + ttl_s),
            },
            ConditionExpression=(
                "attribute_not_exists(pk) OR expires_at <= :now OR #owner = :owner"
            ),
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":now": _av(now), ":owner": _av(owner)},
        )

    async def release_lease(self, name: str, owner: str) -> None:
        await self._conditional(
            "delete_item",
            Key={"pk": _av(f"LEASE#{name}"), "sk": _av(LEASE_SK)},
            ConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": _av(owner)},
        )

    # -- sync runs ------------------------------------------------------------------------------

    async def record_sync_run(self, run: SyncRun) -> None:
        await self._call(
            "put_item",
            Item={
                "pk": _av(f"SYNC#{run.tenant}#{run.source}"),
                "sk": _av(f"RUN#{run.run_id}"),
                "lsi1sk": _av(f"R#{_iso(run.started_at)}#{run.run_id}"),
                "data": _av(run.model_dump_json()),
            },
        )

    async def sync_runs(self, tenant: str, source: str, limit: int = 20) -> list[SyncRun]:
        if limit <= 0:
            return []
        resp = await self._call(
            "query",
            IndexName=TIME_INDEX,
            KeyConditionExpression="pk = :pk AND begins_with(lsi1sk, :r)",
            ExpressionAttributeValues={":pk": _av(f"SYNC#{tenant}#{source}"), ":r": _av("R#")},
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
        return [SyncRun.model_validate_json(item["data"]["S"]) for item in resp.get("Items") or []]

    # -- sources --------------------------------------------------------------------------------

    async def put_source(self, record: SourceRecord) -> None:
        await self._call(
            "put_item",
            Item={
                "pk": _av(f"SOURCES#{record.tenant}"),
                "sk": _av(f"SRC#{record.source}"),
                "data": _av(record.model_dump_json()),
            },
        )

    async def get_source(self, tenant: str, source: str) -> SourceRecord | None:
        item = await self._get_item(f"SOURCES#{tenant}", f"SRC#{source}")
        return None if item is None else SourceRecord.model_validate_json(item["data"]["S"])

    async def sources(self, tenant: str) -> list[SourceRecord]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
            ExpressionAttributeValues={":pk": _av(f"SOURCES#{tenant}"), ":s": _av("SRC#")},
            ConsistentRead=True,
        )
        return [SourceRecord.model_validate_json(i["data"]["S"]) async for i in items]

    # -- API keys -------------------------------------------------------------------------------

    def _key_item(self, record: ApiKeyRecord) -> dict[str, Any]:
        return {
            "pk": _av(API_KEYS_PK),
            "sk": _av(f"KEY#{record.key_id}"),
            "tenant": _av(record.tenant),
            "revoked": _av(0 if record.revoked_at is None else 1),
            "data": _av(record.model_dump_json()),
        }

    async def put_api_key(self, record: ApiKeyRecord) -> bool:
        return await self._conditional(
            "put_item",
            Item=self._key_item(record),
            ConditionExpression="attribute_not_exists(pk)",
        )

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        item = await self._get_item(API_KEYS_PK, f"KEY#{key_id}")
        return None if item is None else ApiKeyRecord.model_validate_json(item["data"]["S"])

    async def api_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :k)",
            "ExpressionAttributeValues": {":pk": _av(API_KEYS_PK), ":k": _av("KEY#")},
            "ConsistentRead": True,
        }
        if tenant is not None:
            kwargs["FilterExpression"] = "tenant = :t"
            kwargs["ExpressionAttributeValues"][":t"] = _av(tenant)
        found = [
            ApiKeyRecord.model_validate_json(i["data"]["S"]) async for i in self._query(**kwargs)
        ]
        found.sort(key=lambda k: (_iso(k.created_at), k.key_id))
        return found

    async def revoke_api_key(
        self, key_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> bool:
        record = await self.get_api_key(key_id)
        if record is None or record.revoked_at is not None:
            return False
        revoked = record.model_copy(update={"revoked_at": at or utcnow(), "revoked_by": by})
        return await self._conditional(
            "put_item",
            Item=self._key_item(revoked),
            ConditionExpression="revoked = :zero",
            ExpressionAttributeValues={":zero": _av(0)},
        )

    # -- health ---------------------------------------------------------------------------------

    async def check(self) -> None:
        async with dependency_check(self._what):
            ddb = await self._ddb()
            desc = (await ddb.describe_table(TableName=self.table))["Table"]
        if desc.get("TableStatus") not in ("ACTIVE", "UPDATING"):
            raise DependencyError(self._what, f"is {desc.get('TableStatus')}")
        indexes = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes") or []}
        indexes |= {i["IndexName"] for i in desc.get("LocalSecondaryIndexes") or []}
        missing = {STATUS_INDEX, TIME_INDEX} - indexes
        if missing:
            raise DependencyError(
                self._what, f"lacks index {', '.join(sorted(missing))} (run `datatorag init`)"
            )
        async with dependency_check(self._what):  # a read as the services make one
            await ddb.get_item(
                TableName=self.table,
                Key={"pk": _av("readyz"), "sk": _av(CURRENT_SK)},
                ConsistentRead=True,
            )

    async def close(self) -> None:
        if self._owns_clients:
            await self._clients.close()


__all__ = ["DynamoDbRegistry", "table_definition"]
