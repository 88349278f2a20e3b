"""The processes of the production-shaped answer bench: the embedder service and a gateway that
embeds over HTTP, each in its own process, as on EKS (the bench process plays the clients and
the LLM provider, which in production are on other machines too).

    python -m bench.answer_procs embedder --port P
    python -m bench.answer_procs llm --first-token-ms 200 --token-ms 5     (prints "PORT n")
    python -m bench.answer_procs gateway --port P --root DIR --embedder-url U --llm-url V
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from datatorag.observability.log import configure
from datatorag.runtime import UvicornServer, freeze_heap, run_service

os.environ.setdefault("LANCEDB_LOG", "error")


async def embedder(port: int) -> None:
    from datatorag.config import EmbeddingSettings
    from datatorag.embedding.local import LocalEmbedder
    from datatorag.embedding.service import create_embed_app

    settings = EmbeddingSettings()
    emb = LocalEmbedder(settings)
    server = UvicornServer(create_embed_app(emb, settings.microbatch_wait_ms), "127.0.0.1", port)
    freeze_heap()
    await server.start()
    await asyncio.Event().wait()


async def llm(first_token_ms: float, token_ms: float) -> None:
    """The fake OpenAI-compatible provider, plus ``GET /_bench/state``: its own time to first
    token per request id and the last request body (for the direct measurement)."""
    from aiohttp import web

    from tests.fakes.openai_server import FakeOpenAI

    fake = FakeOpenAI(first_token_s=first_token_ms / 1000, token_s=token_ms / 1000)

    async def state(_: web.Request) -> web.Response:
        own = {rid: (f - r) * 1000 for rid, (r, f) in fake.first_token.items()}
        last = fake.bodies[-1] if fake.bodies else None
        return web.json_response({"first_token_ms": own, "last_body": last})

    fake.app.router.add_get("/_bench/state", state)
    await fake.start()
    print(f"PORT {fake.port}", flush=True)
    await asyncio.Event().wait()


async def gateway(args: argparse.Namespace) -> None:
    from datatorag.adapters.embedded.lancedb_index import LanceDbIndex
    from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
    from datatorag.adapters.llm.openai_chat import OpenAIChatGenerator
    from datatorag.config import AnswerSettings, Settings
    from datatorag.embedding.http import HttpEmbedder
    from datatorag.gateway import GatewayDeps, create_app

    root = Path(args.root)
    emb = await HttpEmbedder(args.embedder_url).connect()
    index = LanceDbIndex(root / "lancedb", dim=emb.dim, table=f"chunks_sample_{emb.dim}")
    await index.ensure()
    settings = Settings(
        data_dir=root,
        api_keys=args.api_keys,
        answer=AnswerSettings(cache_entries=0, providers="openai"),
    )

    def providers(_scorer: Any) -> list[OpenAIChatGenerator]:
        return [OpenAIChatGenerator(args.llm_url, args.llm_model, api_key=args.llm_key)]

    deps = GatewayDeps(
        settings=settings,
        index=index,
        embedder=emb,
        registry=SqliteRegistry(root / "registry.sqlite3"),
        answer_providers=providers,
    )
    server = UvicornServer(create_app(deps), "127.0.0.1", args.port)
    freeze_heap()  # as serve_gateway does
    await server.start()
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("embedder")
    e.add_argument("--port", type=int, required=True)
    f = sub.add_parser("llm")
    f.add_argument("--first-token-ms", type=float, required=True)
    f.add_argument("--token-ms", type=float, required=True)
    g = sub.add_parser("gateway")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--root", required=True)
    g.add_argument("--embedder-url", required=True)
    g.add_argument("--llm-url", required=True)
    g.add_argument("--llm-model", required=True)
    g.add_argument("--llm-key", required=True)
    g.add_argument("--api-keys", required=True)
    args = ap.parse_args()
    configure("WARNING", "console")
    # uvloop, as every service runs (datatorag.runtime.run_service)
    if args.what == "embedder":
        run_service(embedder(args.port))
    elif args.what == "llm":
        run_service(llm(args.first_token_ms, args.token_ms))
    else:
        run_service(gateway(args))


if __name__ == "__main__":
    main()
