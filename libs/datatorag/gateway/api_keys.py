"""API keys kept in the registry: created, listed and revoked with ``datatorag keys``.

A key reads ``dtr_<key_id>_<secret>``: ``key_id`` (16 hex digits) finds its record, the secret
(256 random bits) is checked against the record's salted hash. The registry never holds a key,
only ``scrypt(secret, salt)``: hashlib's scrypt is in the standard library (no extra dependency)
and memory-hard (RFC 7914), so a leaked registry table cannot be brute-forced on GPUs; with
256-bit secrets even a fast hash would hold, scrypt adds depth. Verifying costs ~50 ms of one
core, so a verified key is cached for ``DATATORAG_API_KEY_CACHE_S`` (by a SHA-256 of the whole
key, never the key): a revocation reaches every replica within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datatorag.domain.models import utcnow
from datatorag.domain.principal import ROLES, Principal, Role
from datatorag.ports import ApiKeyRecord, Registry

KEY_PREFIX = "dtr_"
_KEY = re.compile(r"^dtr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
ALGORITHM = "scrypt:n=16384,r=8,p=1"
_ALGORITHM = re.compile(r"^scrypt:n=(\d+),r=(\d+),p=(\d+)$")
_GROUP = re.compile(r"^[A-Za-z0-9._:@/-]{1,128}$")
_CACHE_ENTRIES = 10_000


class KeyRejected(Exception):
    """The key is not one the registry accepts; the message says why (never the key)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str  # shown once, at creation; only its hash is stored
    record: ApiKeyRecord


def looks_like_registry_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _derive(secret: str, salt: bytes, algorithm: str) -> bytes:
    match = _ALGORITHM.match(algorithm)
    if match is None:
        raise KeyRejected(f"unknown key hash algorithm {algorithm!r}")
    n, r, p = (int(g) for g in match.groups())
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n + (1 << 20)
    )


def subject_of(key_id: str) -> str:
    return f"key:{key_id}"


def principal_of(record: ApiKeyRecord) -> Principal:
    return Principal(
        record.tenant, subject_of(record.key_id), frozenset(record.groups), role=record.role
    )


def check_groups(groups: Sequence[str]) -> list[str]:
    bad = [g for g in groups if not _GROUP.match(g)]
    if bad:
        raise ValueError(
            f"group names are 1-128 letters, digits or ._:@/-; not {', '.join(map(repr, bad))}"
        )
    return sorted(set(groups))


def new_key(
    tenant: str,
    *,
    role: Role = "reader",
    groups: Sequence[str] = (),
    name: str = "",
    created_by: str | None = None,
) -> NewKey:
    if not tenant.strip():
        raise ValueError("a key needs a tenant")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    key = f"{KEY_PREFIX}{key_id}_{secret}"
    record = ApiKeyRecord(
        key_id=key_id,
        tenant=tenant.strip(),
        role=role,
        groups=check_groups(groups),
        name=name,
        algorithm=ALGORITHM,
        salt=salt.hex(),
        hash=_derive(secret, salt, ALGORITHM).hex(),
        prefix=key[: len(KEY_PREFIX) + 16 + 5],
        created_at=utcnow(),
        created_by=created_by,
    )
    return NewKey(key, record)


def verify(record: ApiKeyRecord, secret: str) -> bool:
    expected = bytes.fromhex(record.hash)
    return hmac.compare_digest(
        _derive(secret, bytes.fromhex(record.salt), record.algorithm), expected
    )


async def create_key(
    registry: Registry,
    tenant: str,
    *,
    role: Role = "reader",
    groups: Sequence[str] = (),
    name: str = "",
    created_by: str | None = None,
) -> NewKey:
    made = new_key(tenant, role=role, groups=groups, name=name, created_by=created_by)
    if not await registry.put_api_key(made.record):  # 64 random bits: a clash is a bug
        raise RuntimeError(f"key id {made.record.key_id} already exists")
    return made


async def revoke_key(registry: Registry, key_id: str, *, by: str | None = None) -> bool:
    return await registry.revoke_api_key(key_id, by=by)


class RegistryKeys:
    """Principals for ``dtr_`` keys, from the registry, verified keys cached briefly."""

    def __init__(
        self,
        registry: Registry,
        *,
        cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.cache_s = cache_s
        self._clock = clock
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._inflight: dict[bytes, asyncio.Future[Principal]] = {}

    async def principal(self, key: str) -> Principal:
        """The key's principal; ``KeyRejected`` saying why not."""
        match = _KEY.match(key)
        if match is None:
            raise KeyRejected("malformed API key")
        fingerprint = hashlib.sha256(key.encode()).digest()
        now = self._clock()
        hit = self._verified.get(fingerprint)
        if hit is not None and hit[0] > now:
            return hit[1]
        # one verification per key at a time: concurrent first requests of a key share it
        pending = self._inflight.get(fingerprint)
        if pending is None:
            pending = asyncio.ensure_future(self._verify(*match.groups()))
            self._inflight[fingerprint] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(fingerprint, None))
        principal = await asyncio.shield(pending)
        if self.cache_s > 0:
            if len(self._verified) >= _CACHE_ENTRIES:
                self._verified = {k: v for k, v in self._verified.items() if v[0] > now}
                if len(self._verified) >= _CACHE_ENTRIES:
                    self._verified.clear()
            self._verified[fingerprint] = (now + self.cache_s, principal)
        return principal

    async def _verify(self, key_id: str, secret: str) -> Principal:
        record = await self.registry.get_api_key(key_id)
        # scrypt takes ~50 ms of a core: off the event loop, so other requests go on meanwhile
        if record is None or not await asyncio.to_thread(verify, record, secret):
            raise KeyRejected("invalid API key")
        if record.revoked_at is not None:
            raise KeyRejected("API key revoked")
        return principal_of(record)
