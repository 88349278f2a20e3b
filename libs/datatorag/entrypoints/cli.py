"""The ``datatorag`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from datatorag.config import ConfigError, Settings
from datatorag.observability.log import configure

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="DatatoRAG: documents in, cited answers out.",
    # a traceback must never print local variables: they hold keys and tokens
    pretty_exceptions_show_locals=False,
)


def _settings() -> Settings:
    return Settings()


def _gateway_url(settings: Settings, url: str | None) -> str:
    return url or f"http://{settings.gateway_host}:{settings.gateway_port}"


def _api_key(settings: Settings, key: str | None) -> str:
    """``--api-key`` / ``DATATORAG_API_KEY``, else the first plain static key (embedded mode's
    dev key); a digest is no key."""
    if key:
        return key
    plain = [k for k in settings.tenant_for_key() if not k.startswith("sha256:")]
    if not plain:
        raise typer.BadParameter("pass --api-key (or set DATATORAG_API_KEY)")
    return plain[0]


@app.command()
def up(
    source: Annotated[
        Path | None, typer.Option(help="folder to ingest (default: the sample corpus)")
    ] = None,
    sync_interval: Annotated[
        float, typer.Option(help="seconds between syncs of each source")
    ] = 60.0,
) -> None:
    """Run everything in one process on the embedded adapters and ingest the sample corpus."""
    from datatorag.entrypoints.up import run_up
    from datatorag.runtime import exit_process, run_service

    settings = _settings()
    # The progress lines are the interface of `up`; logs only speak up for warnings unless asked.
    import os

    level = settings.log_level if "DATATORAG_LOG_LEVEL" in os.environ else "WARNING"
    fmt = (
        settings.log_format
        if "DATATORAG_LOG_FORMAT" in os.environ
        else ("console" if sys.stderr.isatty() else "json")
    )
    configure(level, fmt)
    run_service(run_up(settings, source_dir=source, sync_interval_s=sync_interval))
    exit_process(0)


@app.command()
def serve(
    service: Annotated[
        str, typer.Argument(help="connector | parser | embedder | indexer | query-gateway")
    ],
) -> None:
    """Run one service as a long-running worker."""
    from datatorag.entrypoints.serve import run

    run(service, _settings())


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="your question")],
    k: Annotated[int, typer.Option(help="how many chunks")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid | knn | bm25")] = "hybrid",
    url: Annotated[str | None, typer.Option(help="gateway URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="DATATORAG_API_KEY")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw response")] = False,
) -> None:
    """Ask the running gateway; prints the top chunks with citations."""
    settings = _settings()
    try:
        resp = httpx.post(
            f"{_gateway_url(settings, url)}/v1/search",
            json={"query": text, "k": k, "mode": mode},
            headers={"Authorization": f"Bearer {_api_key(settings, api_key)}"},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the gateway: {exc} (is `datatorag up` running?)", err=True)
        raise typer.Exit(2) from exc
    if resp.status_code != 200:
        typer.echo(f"error {resp.status_code}: {resp.text}", err=True)
        raise typer.Exit(1)
    body = resp.json()
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    for n, hit in enumerate(body.get("hits", []), 1):
        c = hit.get("citation", {})
        ps, pe = c.get("page_start"), c.get("page_end")
        pages = "" if ps is None else (f"p. {ps}" if ps == pe or pe is None else f"pp. {ps}-{pe}")
        typer.echo(
            f"[{n}] {c.get('title') or c.get('path')}  {pages}  (score {hit.get('score', 0):.4f})"
        )
        typer.echo(f"    {c.get('path')}  doc {c.get('doc_id')} chunk {c.get('chunk_index')}")
        snippet = " ".join(hit.get("text", "").split())
        typer.echo(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n")


def _sse_events(resp: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "message", list[str]()
    for line in resp.iter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _print_sources(answer: dict[str, Any]) -> None:
    if not answer.get("citations"):
        return
    typer.echo("\nSources:")
    for c in answer["citations"]:
        where = " — ".join(x for x in (c.get("pages"), c.get("section")) if x)
        typer.echo(
            f"  [{c['n']}] {c.get('title') or c['path']}{'  (' + where + ')' if where else ''}"
        )
        typer.echo(f"      {c['path']}  doc {c['doc_id']}  chunks {', '.join(c['chunk_ids'])}")
        if c.get("quote"):
            typer.echo(f"      “{c['quote']}”")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="your question")],
    k: Annotated[int, typer.Option(help="how many chunks to answer from")] = 5,
    url: Annotated[str | None, typer.Option(help="gateway URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="DATATORAG_API_KEY")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the final answer object")] = False,
) -> None:
    """Ask the running gateway for an answer; streams it, then lists the numbered sources."""
    settings = _settings()
    body = {"query": question, "k": k, "stream": True}
    headers = {"Authorization": f"Bearer {_api_key(settings, api_key)}"}
    final: dict[str, Any] | None = None
    streamed = False
    try:
        with httpx.stream(
            "POST",
            f"{_gateway_url(settings, url)}/v1/answer",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(120, connect=10),
        ) as resp:
            if resp.status_code != 200:
                typer.echo(
                    f"error {resp.status_code}: {resp.read().decode(errors='replace')}", err=True
                )
                raise typer.Exit(1)
            for event, data in _sse_events(resp):
                if event == "delta" and not as_json:
                    typer.echo(data["text"], nl=False)
                    streamed = True
                elif event == "reset" and not as_json:
                    typer.echo(
                        f"\n[{data['provider']} failed: {data['reason']}; trying the next provider]"
                    )
                elif event == "error":
                    typer.echo(f"\nerror: {data['error']['message']}", err=True)
                    raise typer.Exit(1)
                elif event == "done":
                    final = data
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the gateway: {exc} (is `datatorag up` running?)", err=True)
        raise typer.Exit(2) from exc
    if final is None:
        typer.echo("\nerror: the answer stream ended early", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(final, indent=2, ensure_ascii=False))
        return
    if streamed:
        typer.echo("")
    if final["grounding"]["revised"] and not final["abstained"]:
        typer.echo(f"\n(checked against the sources) {final['answer']}")
    _print_sources(final)
    typer.echo(f"\n{final['provider']} · {final['took_ms']:.0f} ms")


@app.command(name="eval")
def evaluate(
    questions: Annotated[
        Path | None,
        typer.Argument(help="labelled questions (JSONL); default: those of the sample corpus"),
    ] = None,
    k: Annotated[int, typer.Option(help="chunks per question")] = 5,
    url: Annotated[str | None, typer.Option(help="gateway URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="DATATORAG_API_KEY")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    misses: Annotated[bool, typer.Option(help="list the questions answered wrongly")] = False,
) -> None:
    """Run labelled questions through the gateway: retrieval recall@k / MRR / nDCG, citation
    precision, abstention precision/recall and latency."""
    from datatorag.evaluation import load_questions, run_eval, sample_questions
    from datatorag.evaluation.harness import EvalError

    settings = _settings()
    try:
        items = load_questions(questions or sample_questions())
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read the questions: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def run() -> Any:
        async with httpx.AsyncClient(
            base_url=_gateway_url(settings, url),
            headers={"Authorization": f"Bearer {_api_key(settings, api_key)}"},
            timeout=120,
        ) as client:
            return await run_eval(client, items, k=k)

    try:
        report = asyncio.run(run())
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the gateway: {exc} (is `datatorag up` running?)", err=True)
        raise typer.Exit(2) from exc
    except EvalError as exc:  # the gateway refused a request; say which
        typer.echo(f"evaluation failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(report.to_json())
        return
    typer.echo(report.table())
    if misses:
        for line in report.misses():
            typer.echo(f"  {line}")


@app.command()
def status(
    state: Annotated[
        str | None,
        typer.Option("--status", help="FETCHED|PARSED|EMBEDDED|INDEXED|FAILED|DELETED|stalled"),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="live progress: states, throughput, ETA (Ctrl-C ends)")
    ] = False,
    interval: Annotated[float, typer.Option(help="seconds between looks (--watch)")] = 2.0,
) -> None:
    """Per-document state from the registry, with failure reasons."""
    from datatorag.bootstrap.factory import make_registry
    from datatorag.domain.models import DocumentRecord, DocumentStatus

    settings = _settings()
    if watch:
        from datatorag.entrypoints.progress import IngestBar

        async def watching() -> None:
            reg = make_registry(settings)
            bar = IngestBar()
            try:
                while True:
                    bar.update(await reg.find(tenant=tenant, limit=10_000_000))
                    await asyncio.sleep(interval)
            finally:
                bar.stop()
                await reg.close()

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the watch
            asyncio.run(watching())
        return

    async def run() -> list[DocumentRecord]:
        reg = make_registry(settings)
        try:
            if state == "stalled":
                return await reg.stalled(settings.stalled_after_s, tenant=tenant)
            st = DocumentStatus(state.upper()) if state else None
            return await reg.find(tenant=tenant, status=st, limit=100_000)
        finally:
            await reg.close()

    records = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    if not records:
        typer.echo("no documents")
        return
    for r in sorted(records, key=lambda r: (r.tenant, r.path)):
        extra = f"  {r.chunk_count} chunks" if r.chunk_count is not None else ""
        reason = f"  reason: {r.reason}" if r.reason else ""
        typer.echo(f"{r.status.value:9} {r.tenant}/{r.source}: {r.path}{extra}{reason}")


@app.command()
def sync(
    source_id: Annotated[str, typer.Argument(help="source id from the sources file")],
    url: Annotated[str | None, typer.Option(help="gateway URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="DATATORAG_API_KEY")] = None,
) -> None:
    """Ask the gateway to sync a source now."""
    settings = _settings()
    resp = httpx.post(
        f"{_gateway_url(settings, url)}/v1/sources/{source_id}/sync",
        headers={"Authorization": f"Bearer {_api_key(settings, api_key)}"},
        timeout=30,
    )
    typer.echo(resp.text)
    raise typer.Exit(0 if resp.status_code < 300 else 1)


@app.command()
def init() -> None:
    """Create queues (with DLQs and redrive), bucket, table, index template and alias.

    Idempotent: run it on every deploy."""
    from datatorag.bootstrap.provisioning import provision

    settings = _settings()
    configure(settings.log_level, settings.log_format)
    for line in asyncio.run(provision(settings)):
        typer.echo(line)


from datatorag.entrypoints.cli_keys import keys_app  # noqa: E402
from datatorag.entrypoints.cli_ops import dlq_app, rebuild_index, reindex  # noqa: E402

app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
app.command("reindex")(reindex)
app.command("rebuild-index")(rebuild_index)


def main() -> None:
    try:
        app(prog_name="datatorag")
    except ConfigError as exc:  # the message names the setting, never its (secret) value
        print(f"datatorag: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
