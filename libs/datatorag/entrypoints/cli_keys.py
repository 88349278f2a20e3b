"""``datatorag keys``: API keys in the registry (SQLite embedded, the DynamoDB table in production).

The logic is ``datatorag.gateway.api_keys``; this is the command line over it. A key is printed
once, at creation; the registry keeps only its salted hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from datatorag.config import Settings
from datatorag.domain.principal import ROLES, Role
from datatorag.ports import Registry

T = TypeVar("T")
keys_app = typer.Typer(
    no_args_is_help=True,
    help="API keys: create (printed once), list, revoke; only salted hashes are stored.",
)


def _with_registry(fn: Callable[[Registry], Awaitable[T]]) -> T:
    from datatorag.bootstrap.factory import make_registry

    async def run() -> T:
        registry = make_registry(Settings())
        try:
            return await fn(registry)
        finally:
            await registry.close()

    return asyncio.run(run())


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for")],
    role: Annotated[str, typer.Option(help="reader | admin")] = "reader",
    group: Annotated[
        list[str] | None, typer.Option("--group", help="a group the key belongs to (repeat)")
    ] = None,
    name: Annotated[str, typer.Option(help="what the key is for (shown in listings)")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key and print it (the only time it is shown)."""
    from datatorag.gateway.api_keys import create_key

    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}")
    chosen: Role = "admin" if role == "admin" else "reader"
    try:
        made = _with_registry(
            lambda r: create_key(
                r,
                tenant,
                role=chosen,
                groups=group or [],
                name=name,
                created_by="cli",
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    rec = made.record
    if as_json:
        typer.echo(json.dumps({"key": made.key, **_public(rec.model_dump(mode="json"))}))
        return
    typer.echo(made.key)
    groups = ",".join(rec.groups) or "-"
    print(
        f"key id {rec.key_id}: tenant {rec.tenant}, role {rec.role}, groups {groups}."
        " Store the key now: it is not shown again.",
        file=sys.stderr,
    )


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("salt", "hash", "algorithm")}


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every key's id, prefix, tenant, role, groups and state (never a key or hash)."""
    records = _with_registry(lambda r: r.api_keys(tenant))
    if as_json:
        typer.echo(json.dumps([_public(r.model_dump(mode="json")) for r in records], indent=2))
        return
    if not records:
        typer.echo("no keys")
        return
    for r in records:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        groups = ",".join(r.groups) or "-"
        typer.echo(
            f"{r.key_id}  {r.prefix}…  {r.tenant:12} {r.role:6} groups={groups}  {state}"
            f"  created {r.created_at:%Y-%m-%d %H:%M}  {r.name}".rstrip()
        )


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key id (from `keys list`)")]) -> None:
    """Revoke a key: refused by every gateway within DATATORAG_API_KEY_CACHE_S."""
    from datatorag.gateway.api_keys import revoke_key

    if _with_registry(lambda r: revoke_key(r, key_id, by="cli")):
        typer.echo(f"revoked {key_id}")
        return
    typer.echo(f"no active key {key_id}", err=True)
    raise typer.Exit(1)


@keys_app.command("hash")
def digest() -> None:
    """Read a static key from stdin and print its ``sha256:<hex>`` form for
    DATATORAG_API_KEYS / DATATORAG_ADMIN_API_KEYS outside embedded mode."""
    key = sys.stdin.readline().strip()
    if not key:
        raise typer.BadParameter("no key on stdin")
    typer.echo(f"sha256:{hashlib.sha256(key.encode()).hexdigest()}")
