"""Gateway overhead of the edge (authentication + ACL filter + rate limit): p95 at 10 clients
against the same query without them, in the same run.

One gateway process serves the sample corpus (real LanceDB and SQLite stores, the real MiniLM
query embedding) on several ports, one app per variant over the same stores and one shared
``QueryService``:

* **bare**: the edge resolves every request to a fixed admin principal (who sees every document of
  the tenant, so no audience filter runs), no limit: the baseline without authentication, ACL
  filter and rate limit;
* **static key**: ``DATATORAG_API_KEYS`` (SHA-256, constant time) and the in-process buckets;
* **registry key**: a ``dtr_`` key from the registry (scrypt, then the verified-key cache) and
  the in-process buckets;
* **redis**: the static key with the buckets in a local ``redis-server`` (when installed).

Rounds interleave the variants (shuffled each round) so load drift on a shared machine hits all
of them alike. The keyed variants' principals are readers: their searches carry the document-
audience filter inside the index query, so the ratio prices authentication + ACL + rate limit.

    .venv/bin/python -m bench.bench_edge [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import percentiles, target, write_result

KEY = "bench-edge-key"
CLIENTS = 10
QUERIES = [
    "how many vacation days do I get",
    "parental leave weeks",
    "who approves travel expenses",
    "remote work policy",
    "sick leave notice",
    "expense report deadline",
    "health insurance enrolment",
    "code of conduct harassment",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(spec: dict[str, Any]) -> None:
    from pydantic import SecretStr

    from datatorag.config import EmbeddingSettings, Settings
    from datatorag.domain.principal import Principal
    from datatorag.embedding.local import LocalEmbedder
    from datatorag.gateway import GatewayDeps, create_app
    from datatorag.gateway.api_keys import create_key
    from datatorag.gateway.service import QueryService
    from datatorag.runtime import UvicornServer
    from datatorag.testing.stack import sample_stack

    class Fixed:
        async def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
            # an admin: no audience filter either, so the baseline has none of the three
            return Principal("acme", "bench", role="admin")

        async def aclose(self) -> None:
            pass

    from datatorag.observability.log import configure

    configure("WARNING", "json")  # no audit line per request on the benchmark's pipe
    embedder = LocalEmbedder(EmbeddingSettings())
    root = Path(spec["root"])
    limits = {"per_s": 1e9, "burst": 1e9, "auth_failures_per_min": 1e9, "auth_failure_burst": 1e9}
    base = Settings(data_dir=root, api_keys=f"{KEY}=acme", rate_limit=limits)
    async with sample_stack(root, embedder, settings=base) as st:
        made = await create_key(st.registry, "acme")
        deps = GatewayDeps(settings=base, index=st.index, embedder=embedder, registry=st.registry)
        service = QueryService(deps)
        servers = []
        for name, port in spec["ports"].items():
            settings = base
            if name == "redis":
                settings = base.model_copy(update={"edge_redis_url": SecretStr(spec["redis_url"])})
            app = create_app(
                GatewayDeps(
                    settings=settings, index=st.index, embedder=embedder, registry=st.registry
                ),
                service,
            )
            if name == "bare":
                app.state.edge.authenticator = Fixed()
                app.state.edge.limits_on = False
            server = UvicornServer(app, "127.0.0.1", port)
            await server.start()
            servers.append(server)
        print(json.dumps({"registry_key": made.key}), flush=True)
        await asyncio.Event().wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def _round(url: str, headers: dict[str, str], n: int) -> list[float]:
    import httpx

    latencies: list[float] = []
    queue = list(range(n))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
            while queue:
                i = queue.pop()
                started = time.perf_counter()
                resp = await c.post("/v1/search", json={"query": QUERIES[i % len(QUERIES)], "k": 5})
                latencies.append((time.perf_counter() - started) * 1000)
                if resp.status_code != 200:
                    raise SystemExit(f"{url}: {resp.status_code} {resp.text[:200]}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return latencies


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    redis_proc = None
    redis_url = None
    variants = ["bare", "static key", "registry key"]
    if shutil.which("redis-server"):
        port = _free_port()
        redis_proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        redis_url = f"redis://127.0.0.1:{port}/0"
        variants.append("redis")
    root = tempfile.mkdtemp(prefix="bench-edge-")
    spec = {"root": root, "ports": {v: _free_port() for v in variants}, "redis_url": redis_url}
    env = {**os.environ, "DATATORAG_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_edge", "--serve", json.dumps(spec),
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        registry_key = None
        while registry_key is None:  # the child may log to stdout first
            line = await asyncio.wait_for(proc.stdout.readline(), 600)
            if not line:
                raise SystemExit("the gateway process exited before serving")
            if line.startswith(b'{"registry_key"'):
                registry_key = json.loads(line)["registry_key"]
        drain = asyncio.create_task(_drain(proc.stdout))  # never let the child block on a pipe
        headers = {
            "bare": {},
            "static key": {"Authorization": f"Bearer {KEY}"},
            "registry key": {"Authorization": f"Bearer {registry_key}"},
            "redis": {"Authorization": f"Bearer {KEY}"},
        }
        urls = {v: f"http://127.0.0.1:{p}" for v, p in spec["ports"].items()}
        for v in variants:  # warm up: model, caches, connections
            await _round(urls[v], headers[v], 40)
        samples: dict[str, list[float]] = {v: [] for v in variants}
        rng = random.Random(7)
        for _ in range(args.rounds):
            order = variants[:]
            rng.shuffle(order)
            for v in order:
                samples[v] += await _round(urls[v], headers[v], args.per_round)
    finally:
        proc.terminate()
        await proc.wait()
        if "drain" in locals():
            drain.cancel()
        shutil.rmtree(root, ignore_errors=True)
    admit_us = await _admit_cost(redis_url)
    stats = {v: percentiles(s) | {"n": len(s)} for v, s in samples.items()}
    base = stats["bare"]["p95"]
    ratios = {v: round(stats[v]["p95"] / base, 3) for v in variants if v != "bare"}
    worst = max(ratios.values())
    if redis_proc is not None:
        redis_proc.terminate()
        redis_proc.wait()
    return {
        "admit_us": admit_us,
        "clients": CLIENTS,
        "rounds": args.rounds,
        "latency_ms": stats,
        "p95_ratio_to_bare": ratios,
        "targets": {
            "edge p95 within 5% of bare (10 clients)": target("<= 1.05", worst, worst <= 1.05)
        },
    }


async def _admit_cost(redis_url: str | None, n: int = 2000) -> dict[str, float]:
    """The edge alone: microseconds per ``Edge.admit`` (credential check + bucket), per variant,
    against the bare edge - a figure the machine's load does not swamp."""
    from pydantic import SecretStr

    from datatorag.config import Settings
    from datatorag.gateway.api_keys import create_key
    from datatorag.gateway.edge import Edge
    from datatorag.testing.memory import MemoryRegistry

    registry = MemoryRegistry()
    made = await create_key(registry, "acme")
    base = Settings(api_keys=f"{KEY}=acme", rate_limit={"per_s": 1e9, "burst": 1e9})
    variants = {
        "bare": (Edge.from_settings(base, registry), None),
        "static key": (Edge.from_settings(base, registry), f"Bearer {KEY}"),
        "registry key": (Edge.from_settings(base, registry), f"Bearer {made.key}"),
    }
    variants["bare"][0].limits_on = False
    if redis_url:
        with_redis = base.model_copy(update={"edge_redis_url": SecretStr(redis_url)})
        variants["redis"] = (Edge.from_settings(with_redis, registry), f"Bearer {KEY}")
    out: dict[str, float] = {}
    for name, (edge, auth) in variants.items():
        header = auth or f"Bearer {KEY}"
        for _ in range(50):  # warm: the registry key's one scrypt, connections
            await edge.admit(header, None, "10.0.0.1")
        started = time.perf_counter()
        for _ in range(n):
            await edge.admit(header, None, "10.0.0.1")
        out[name] = round((time.perf_counter() - started) / n * 1e6, 1)
        await edge.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--per-round", type=int, default=None)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(json.loads(args.serve)))
        return
    args.rounds = args.rounds or (4 if args.quick else 12)
    args.per_round = args.per_round or (100 if args.quick else 200)
    result = asyncio.run(_bench(args))
    path = write_result("edge", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
