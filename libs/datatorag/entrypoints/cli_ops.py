"""Operator commands: dead letters (``datatorag dlq``), ``reindex`` to a new model and
``rebuild-index`` from stored vectors. Each works on either mode's adapters (settings decide)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from datatorag.config import Settings

STAGES = ("parse", "embed", "index")
dlq_app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: messages a stage gave up on, with the reason and receive count.",
)
Stage = Annotated[str, typer.Option("--stage", help="parse | embed | index")]
Ids = Annotated[list[str] | None, typer.Argument(help="message ids (default: all)")]


def _queue(settings: Settings, stage: str) -> Any:
    from datatorag.bootstrap.factory import make_queue

    if stage not in STAGES:
        raise typer.BadParameter(f"--stage must be one of {', '.join(STAGES)}, not {stage!r}")
    return make_queue(settings, stage)


async def _peek_all(queue: Any, limit: int) -> list[Any]:
    """Every DLQ message up to ``limit`` (a peek; an SQS peek is repeated until nothing new)."""
    seen: dict[str, Any] = {}
    for _ in range(max(1, limit // 10) + 3):
        fresh = [m for m in await queue.dlq_messages(10) if m.id not in seen]
        if not fresh and seen:
            break
        for m in fresh:
            seen[m.id] = m
        if len(seen) >= limit or not fresh:
            break
    return list(seen.values())[:limit]


def _run(coro_fn: Any, stage: str) -> Any:
    settings = Settings()

    async def go() -> Any:
        queue = _queue(settings, stage)
        try:
            return await coro_fn(queue)
        finally:
            await queue.close()

    return asyncio.run(go())


def _describe(m: Any) -> dict[str, Any]:
    try:
        body = json.loads(m.body)
    except ValueError:
        body = {}
    return {
        "id": m.id,
        "receive_count": m.receive_count,
        "reason": m.attributes.get("reason") or "receive count over the limit (redrive policy)",
        "type": body.get("type"),
        "tenant": body.get("tenant"),
        "doc_id": body.get("doc_id"),
    }


@dlq_app.command("list")
def dlq_list(
    stage: Stage,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The stage's dead letters: id, receive count, reason, document."""
    messages = _run(lambda q: _peek_all(q, limit), stage)
    rows = [_describe(m) for m in messages]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no dead letters in the {stage} queue's DLQ")
        return
    for r in rows:
        typer.echo(
            f"{r['id']}  receives {r['receive_count']}  {r['type']} "
            f"{r['tenant']}/{r['doc_id']}  reason: {r['reason']}"
        )


@dlq_app.command("show")
def dlq_show(
    stage: Stage, message_id: Annotated[str, typer.Argument(help="a message id from `list`")]
) -> None:
    """One dead letter in full: reason, receive count, attributes and body."""
    messages = _run(lambda q: _peek_all(q, 10_000), stage)
    found = next((m for m in messages if m.id == message_id), None)
    if found is None:
        typer.echo(f"no dead letter {message_id} in the {stage} queue's DLQ", err=True)
        raise typer.Exit(1)
    out = _describe(found) | {"attributes": found.attributes}
    try:
        out["body"] = json.loads(found.body)
    except ValueError:
        out["body"] = found.body
    typer.echo(json.dumps(out, indent=2))


@dlq_app.command("redrive")
def dlq_redrive(stage: Stage, ids: Ids = None) -> None:
    """Send dead letters back to the stage's queue (all, or the given ids). Idempotent: a second
    redrive finds nothing left; the stages skip work already done."""
    n = _run(lambda q: q.redrive_dlq(ids or None), stage)
    typer.echo(f"redrove {n} message(s) to the {stage} queue")


@dlq_app.command("purge")
def dlq_purge(
    stage: Stage,
    ids: Ids = None,
    yes: Annotated[bool, typer.Option("--yes", help="no confirmation prompt")] = False,
) -> None:
    """Delete dead letters for good (all, or the given ids)."""
    if not ids and not yes:
        typer.confirm(f"delete every dead letter of the {stage} queue?", abort=True)
    n = _run(lambda q: q.purge_dlq(ids or None), stage)
    typer.echo(f"purged {n} message(s) from the {stage} queue's DLQ")


def reindex(
    model: Annotated[str | None, typer.Option("--model", help="the new model's directory")] = None,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="drop the unfinished build for --model")
    ] = False,
    drop_retired_now: Annotated[
        bool, typer.Option("--drop-retired", help="only drop retired indexes past their grace")
    ] = False,
    grace_hours: Annotated[
        float, typer.Option(help="keep the replaced index this long before dropping it")
    ] = 24.0,
) -> None:
    """Build the new model's index blue/green from the stored chunks (no fetch, no parse) while
    queries keep using the old one, then swap. Resumable: run it again after a crash or Ctrl-C.
    """
    from datatorag.bootstrap.index_build import (
        BuildParts,
        check_model_dir,
        reindex_builder,
        run_build,
    )
    from datatorag.entrypoints.progress import BuildBar
    from datatorag.pipeline.index_build import drop_retired

    settings = Settings()
    if drop_retired_now:

        async def gc() -> list[str]:
            parts = BuildParts(settings)
            try:
                return await drop_retired(parts.blobstore, parts.admin)
            finally:
                await parts.close()

        dropped = asyncio.run(gc())
        typer.echo(f"dropped {len(dropped)} retired index(es): {', '.join(dropped) or '-'}")
        return
    if not model:
        raise typer.BadParameter("--model DIR is required", param_hint="--model")
    try:
        spec = check_model_dir(model)  # before anything changes
    except ValueError as exc:
        typer.echo(f"reindex: {exc}", err=True)
        raise typer.Exit(2) from exc
    bar = BuildBar(f"reindex -> {spec.model_id}")

    async def go() -> dict[str, Any] | str | None:
        parts = BuildParts(settings)
        try:
            builder, retire = await reindex_builder(parts, model, on_progress=bar)
            if cancel:
                return await builder.cancel_build()
            return (await run_build(builder, parts, retire, grace_hours * 3600)).as_dict()
        finally:
            await parts.close()

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt:
        bar.stop()
        typer.echo("reindex paused: the old index still serves; run it again to resume", err=True)
        raise typer.Exit(130) from None
    finally:
        bar.stop()
    if cancel:
        typer.echo(f"cancelled: dropped {result or 'nothing (no build under way)'}")
        return
    assert isinstance(result, dict)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(
        f"next: set DATATORAG_EMBEDDING_MODEL={model} for the embedder, indexer and gateway and "
        "restart them; run this command once more afterwards to pick up documents indexed "
        "meanwhile (cached: nothing is embedded twice)"
    )


def rebuild_index(
    grace_hours: Annotated[
        float, typer.Option(help="keep the replaced index this long before dropping it")
    ] = 24.0,
) -> None:
    """Recreate the index (lost, or corrupt) from the stored embedded records: no model runs.
    Versions whose records are missing are listed; `reindex` embeds them again."""
    from datatorag.bootstrap.index_build import BuildParts, rebuild_builder, run_build
    from datatorag.entrypoints.progress import BuildBar

    settings = Settings()
    bar = BuildBar("rebuild-index")

    async def go() -> Any:
        parts = BuildParts(settings)
        try:
            return await run_build(rebuild_builder(parts, bar), parts, [], grace_hours * 3600)
        finally:
            await parts.close()

    try:
        progress = asyncio.run(go())
    finally:
        bar.stop()
    typer.echo(json.dumps(progress.as_dict(), indent=2))
    for ref in progress.missing:
        typer.echo(f"missing stored vectors: {ref}", err=True)
    raise typer.Exit(1 if progress.missing else 0)
