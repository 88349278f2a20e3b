"""Answers: extractive latency, the time to first token the gateway adds over an LLM provider,
and the evaluation table of the sample corpus's labelled questions.

Everything runs on the product's own parts: the sample corpus parsed and chunked by the
product's readers, embedded by MiniLM into the embedded LanceDB store, the gateway served by
uvicorn on a local port and driven over HTTP (the load generator shares its event loop, as in
bench_query). The LLM is the local OpenAI-compatible fake server (tests/fakes) with a fixed
latency: ``--first-token-ms`` before the first token, ``--token-ms`` between tokens.

* ``extractive``: p50/p95 of ``POST /v1/answer`` (answer cache off) at 1 and 10 concurrent
  clients over the labelled questions.
* ``ttft``: with ``DATATORAG_ANSWER_PROVIDERS=openai``, the client's time to the first ``delta``
  event at 10 clients, against the provider's own time to first token measured by streaming
  from the fake directly at the same concurrency. *Added by the answer layer* = client TTFT -
  the request's retrieval time (``timings.retrieval_ms``, the search a ``/v1/query`` pays too,
  measured by bench_query) - that request's own provider TTFT (the fake records when it received
  the request and when it wrote the first token, matched by ``X-Request-ID``). The gate in front
  of an LLM is lexical, so it costs no model call before the first token.
* ``eval``: ``datatorag.evaluation.run_eval`` over ``samples/acme-hr-questions.jsonl``, and a
  sweep of the extractive abstention threshold over the answers' confidences (what
  ``DATATORAG_ANSWER_MIN_EVIDENCE`` was calibrated on).

    .venv/bin/python -m bench.bench_answer [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import percentiles, target, write_result
from datatorag.adapters.llm.openai_chat import OpenAIChatGenerator
from datatorag.config import AnswerSettings, EmbeddingSettings
from datatorag.embedding.local import LocalEmbedder
from datatorag.evaluation import load_questions, run_eval, sample_questions
from datatorag.observability.log import configure
from datatorag.runtime import UvicornServer
from datatorag.testing.stack import SampleStack, sample_stack
from tests.fakes.openai_server import FakeOpenAI

os.environ.setdefault("LANCEDB_LOG", "error")
KEY = "key-acme"
TTFT_TARGET_MS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve(app: Any) -> tuple[UvicornServer, str]:
    port = free_port()
    server = UvicornServer(app, "127.0.0.1", port)
    await server.start()
    return server, f"http://127.0.0.1:{port}"


async def load(
    url: str, questions: list[str], clients: int, requests: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """``requests`` answers from ``clients`` concurrent clients; client-side latency in ms."""
    latencies: list[float] = []
    bodies: list[dict[str, Any]] = []
    todo = iter(range(requests))

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        ) as c:
            for i in todo:
                started = time.perf_counter()
                resp = await c.post("/v1/answer", json={"query": questions[i % len(questions)]})
                latencies.append((time.perf_counter() - started) * 1000)
                resp.raise_for_status()
                bodies.append(resp.json())

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, bodies


async def extractive(st: SampleStack, questions: list[str], quick: bool) -> dict[str, Any]:
    """Each phase on a fresh app: its sentence-vector cache starts cold, as after a restart,
    and warms as questions repeat (each question is asked ``requests / len(questions)`` times)."""
    out: dict[str, Any] = {}
    for clients, requests in ((1, len(questions)), (10, 3 * len(questions))):
        if quick:
            requests = min(requests, 30)
        server, url = await serve(st.app(answer=AnswerSettings(cache_entries=0)))
        try:
            await load(url, ["How many sick days do I get?"], 1, 2)  # warm-up: code paths
            started = time.perf_counter()
            latencies, bodies = await load(url, questions, clients, requests)
            wall = time.perf_counter() - started
            server_ms = [b["took_ms"] for b in bodies]
            out[f"clients_{clients}"] = {
                "requests": requests,
                "client_ms": percentiles(latencies),
                "gateway_took_ms": percentiles(server_ms),
                "answers_per_s": round(requests / wall, 2),
            }
            ms = out[f"clients_{clients}"]["client_ms"]
            print(
                f"extractive, {clients:2d} clients: p50 {ms['p50']:.0f} ms  p95 {ms['p95']:.0f} ms"
                f"  {requests / wall:.1f} answers/s",
                flush=True,
            )
        finally:
            await server.stop()
    return out


async def _first_delta(client: httpx.AsyncClient, question: str) -> tuple[float, dict[str, Any]]:
    """Client time to the first ``delta`` event, and the final answer object (with the
    request id under ``_request_id``)."""
    import json

    started = time.perf_counter()
    first = None
    event = ""
    done: dict[str, Any] = {}
    async with client.stream(
        "POST", "/v1/answer", json={"query": question, "stream": True}
    ) as resp:
        resp.raise_for_status()
        request_id = resp.headers["x-request-id"]
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "delta" and first is None:
                    first = (time.perf_counter() - started) * 1000
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
    assert first is not None, "no delta"
    done["_request_id"] = request_id
    return first, done


async def _provider_first_token(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    """Time to the first non-empty content delta when streaming from the provider directly."""
    started = time.perf_counter()
    first = None
    async with client.stream(
        "POST", url, json=body, headers={"Authorization": "Bearer sk-test"}
    ) as resp:
        async for line in resp.aiter_lines():
            if first is None and '"content": "' in line and '"content": ""' not in line:
                first = (time.perf_counter() - started) * 1000
    if first is None:
        raise RuntimeError("no token")
    return first


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, what: str) -> None:
    async with httpx.AsyncClient(timeout=2) as c:
        for _ in range(3000):  # torch imports slowly on a busy 2-core box
            if proc.returncode is not None:
                raise RuntimeError(f"the {what} process exited with {proc.returncode}")
            try:
                if (await c.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the {what} did not start")


async def _spawn(*args: str, stdout: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.answer_procs", *args, stdout=stdout, env={**os.environ}
    )


@dataclass
class Provider:
    """The fake LLM, in this process or its own: where it is, and what it recorded."""

    base_url_v1: str
    model: str
    api_key: str
    state: Callable[[], Awaitable[tuple[dict[str, float], dict[str, Any]]]]


@asynccontextmanager
async def provider_at(
    shape: str, first_token_ms: float, token_ms: float
) -> AsyncIterator[Provider]:
    if shape == "embedded":
        fake = FakeOpenAI(first_token_s=first_token_ms / 1000, token_s=token_ms / 1000)
        await fake.start()

        async def local() -> tuple[dict[str, float], dict[str, Any]]:
            own = {rid: (f - r) * 1000 for rid, (r, f) in fake.first_token.items()}
            return own, dict(fake.bodies[-1])

        try:
            yield Provider(fake.base_url_v1, fake.model, fake.api_key, local)
        finally:
            await fake.stop()
        return
    proc = await _spawn(
        "llm",
        "--first-token-ms",
        str(first_token_ms),
        "--token-ms",
        str(token_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake provider did not start: {line!r}")
        base = f"http://127.0.0.1:{int(line.split()[1])}"

        async def remote() -> tuple[dict[str, float], dict[str, Any]]:
            async with httpx.AsyncClient(timeout=30) as c:
                data = (await c.get(f"{base}/_bench/state")).json()
            return data["first_token_ms"], data["last_body"]

        yield Provider(f"{base}/v1", "test-model", "sk-test", remote)
    finally:
        proc.terminate()
        await proc.wait()


@asynccontextmanager
async def gateway_url(st: SampleStack, llm: Provider, shape: str) -> AsyncIterator[str]:
    """``embedded``: the gateway, the model, the provider and the clients in this process (as
    ``datatorag up`` with the clients on the same machine); ``production``: the embedder
    service, the gateway (embedding over HTTP) and the provider each in its own process, as
    deployed, so neither the clients' nor the provider's work runs on the gateway's event loop
    and the model's forward passes do not hold its interpreter."""
    if shape == "embedded":

        def providers(scorer: Any) -> list[OpenAIChatGenerator]:
            return [OpenAIChatGenerator(llm.base_url_v1, llm.model, api_key=llm.api_key)]

        app = st.app(providers, answer=AnswerSettings(cache_entries=0, providers="openai"))
        server, url = await serve(app)
        try:
            yield url
        finally:
            await server.stop()
        return
    eport, gport = free_port(), free_port()
    procs = [await _spawn("embedder", "--port", str(eport))]
    try:
        await _wait_ready(f"http://127.0.0.1:{eport}/v1/model", procs[0], "embedder")
        assert st.settings.api_keys is not None
        args = {
            "--port": str(gport),
            "--root": str(st.settings.data_dir),
            "--embedder-url": f"http://127.0.0.1:{eport}",
            "--llm-url": llm.base_url_v1,
            "--llm-model": llm.model,
            "--llm-key": llm.api_key,
            "--api-keys": st.settings.api_keys.get_secret_value(),
        }
        procs.append(await _spawn("gateway", *(x for kv in args.items() for x in kv)))
        url = f"http://127.0.0.1:{gport}"
        await _wait_ready(f"{url}/healthz", procs[1], "gateway")
        yield url
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


async def ttft_at(
    st: SampleStack,
    questions: list[str],
    clients: int,
    per_client: int,
    first_token_ms: float,
    token_ms: float,
    shape: str = "production",
) -> dict[str, Any]:
    async with (
        provider_at(shape, first_token_ms, token_ms) as llm,
        gateway_url(st, llm, shape) as url,
    ):
        return await _ttft_run(url, llm, questions, clients, per_client, first_token_ms, shape)


async def _ttft_run(
    url: str,
    llm: Provider,
    questions: list[str],
    clients: int,
    per_client: int,
    first_token_ms: float,
    shape: str,
) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    ) as c:
        for q in questions[:3]:
            await _first_delta(c, q)  # warm-up
        _, body = await llm.state()  # a real prompt of this gateway, sent directly

        async def direct() -> list[float]:
            async with httpx.AsyncClient(timeout=60) as d:
                endpoint = f"{llm.base_url_v1}/chat/completions"
                return [await _provider_first_token(d, endpoint, body) for _ in range(per_client)]

        runs = await asyncio.gather(*(direct() for _ in range(clients)))
        provider = [x for xs in runs for x in xs]
        samples: list[tuple[float, dict[str, Any]]] = []

        async def through_gateway(offset: int) -> None:
            for i in range(per_client):
                q = questions[(offset * per_client + i) % len(questions)]
                samples.append(await _first_delta(c, q))

        await asyncio.gather(*(through_gateway(k) for k in range(clients)))
    own, _ = await llm.state()
    provider_p50 = statistics.median(provider)
    answered = [(t, d) for t, d in samples if d["_request_id"] in own]
    gateway = [t for t, _ in samples]

    def provider_ms(d: dict[str, Any]) -> float:
        return own[d["_request_id"]]

    # what this request waited for beyond its own retrieval and its own provider's first token
    added = [t - d["timings"]["retrieval_ms"] - provider_ms(d) for t, d in answered]
    result = {
        "shape": shape,
        "clients": clients,
        "requests": len(samples),
        "answered_by_llm": len(answered),
        "provider_fixed_first_token_ms": first_token_ms,
        "provider_ttft_ms": percentiles(provider),
        "provider_own_ttft_in_gateway_requests_ms": percentiles(
            [provider_ms(d) for _, d in answered]
        ),
        "gateway_ttft_ms": percentiles(gateway),
        "retrieval_ms": percentiles([d["timings"]["retrieval_ms"] for _, d in answered]),
        "evidence_gate_ms": percentiles([d["timings"]["evidence_ms"] for _, d in answered]),
        "added_by_answer_layer_ms": percentiles(added),
        "added_incl_retrieval_ms": percentiles([t - provider_p50 for t in gateway]),
    }
    print(
        f"TTFT ({shape}) at {clients} clients: provider p50 {provider_p50:.1f} ms, gateway p50 "
        f"{result['gateway_ttft_ms']['p50']:.1f} / p95 {result['gateway_ttft_ms']['p95']:.1f} ms, "
        f"retrieval p95 {result['retrieval_ms']['p95']:.1f} ms, gate p95 "
        f"{result['evidence_gate_ms']['p95']:.1f} ms, added by the answer layer p95 "
        f"{result['added_by_answer_layer_ms']['p95']:.2f} ms",
        flush=True,
    )
    return result


async def ttft(
    st: SampleStack, questions: list[str], first_token_ms: float, token_ms: float, quick: bool
) -> dict[str, Any]:
    return {
        shape: {
            f"clients_{n}": await ttft_at(st, questions, n, per, first_token_ms, token_ms, shape)
            for n, per in ((1, 10 if quick else 40), (10, 3 if quick else 10))
        }
        for shape in ("production", "embedded")
    }


def sweep(report: Any) -> list[dict[str, Any]]:
    """Abstention and answers at other thresholds, from the confidences of one run."""
    rows = []
    for t in [x / 100 for x in range(30, 61, 2)]:
        answerable = [r for r in report.results if r.answerable]
        unanswerable = [r for r in report.results if not r.answerable]
        abstain = [r for r in report.results if r.confidence < t]
        true = sum(1 for r in abstain if not r.answerable)
        hits = sum(1 for r in answerable if r.confidence >= t and r.correct_citations)
        rows.append(
            {
                "threshold": t,
                "abstention_precision": round(true / len(abstain), 3) if abstain else None,
                "abstention_recall": round(true / len(unanswerable), 3),
                "answer_hit_rate": round(hits / len(answerable), 3),
            }
        )
    return rows


async def evaluation(st: SampleStack) -> tuple[Any, list[dict[str, Any]]]:
    server, url = await serve(st.app(answer=AnswerSettings(cache_entries=0)))
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
        ) as c:
            report = await run_eval(c, load_questions(sample_questions()), k=5)
    finally:
        await server.stop()
    return report, sweep(report)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    configure("WARNING", "console")
    embedder = LocalEmbedder(EmbeddingSettings())
    labelled = load_questions(sample_questions())
    questions = [q.question for q in labelled]
    answerable = [q.question for q in labelled if q.answerable]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        async with sample_stack(Path(tmp), embedder) as st:
            print(f"sample corpus indexed in {time.perf_counter() - started:.1f}s", flush=True)
            if args.ttft_only:
                return await ttft(st, answerable, args.first_token_ms, args.token_ms, args.quick)
            report, rows = await evaluation(st)
            print(report.table(), flush=True)
            for line in report.misses():
                print(f"  {line}")
            ext = await extractive(st, questions, args.quick)
            first = await ttft(st, answerable, args.first_token_ms, args.token_ms, args.quick)
    added_p95 = first["production"]["clients_10"]["added_by_answer_layer_ms"]["p95"]
    data = {
        "extractive": ext,
        "ttft": first,
        "eval": {"table": report.table(), "summary": report.summary, "threshold_sweep": rows},
        "targets": {
            "ttft added by the answer layer p95 @10 clients (ms)": target(
                f"< {TTFT_TARGET_MS:g}", round(added_p95, 2), added_p95 < TTFT_TARGET_MS
            ),
            "abstention recall on unanswerable questions": target(
                ">= 0.9",
                round(report.summary["abstention_recall"], 3),
                report.summary["abstention_recall"] >= 0.9,
            ),
            "citation precision": target(
                ">= 0.9",
                round(report.summary["citation_precision"], 3),
                report.summary["citation_precision"] >= 0.9,
            ),
        },
    }
    write_result("answer", data)
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--first-token-ms", type=float, default=200.0)
    ap.add_argument("--token-ms", type=float, default=5.0)
    ap.add_argument("--ttft-only", action="store_true", help="time to first token only")
    asyncio.run(amain(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
