"""``datatorag ask`` and ``datatorag eval`` against a real gateway over HTTP (uvicorn on a
local port, the sample corpus in LanceDB, MiniLM)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from datatorag.entrypoints.cli import app as cli
from datatorag.observability.log import configure
from datatorag.runtime import UvicornServer
from datatorag.testing.stack import sample_stack
from tests.conformance.factories_embedder import _free_port, shared_local_embedder

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory):
    # the gateway runs in this process: its request logs must not land in the CLI's stdout
    configure("WARNING", "console")
    async with sample_stack(tmp_path_factory.mktemp("cli"), shared_local_embedder()) as st:
        port = _free_port()
        server = UvicornServer(st.app(), "127.0.0.1", port)
        await server.start()
        yield f"http://127.0.0.1:{port}"
        await server.stop()


async def _cli(*args: str):
    # the CLI is synchronous: run it off the loop that serves the gateway
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_ask_streams_the_answer_then_numbered_sources(gateway) -> None:
    result = await _cli(
        "ask", "How many days of unused PTO carry over?", "--url", gateway, "--api-key", "key-acme"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "5 days" in out and "[1]" in out
    sources = out[out.index("Sources:") :]
    assert "[1] Paid Time Off and Leave Policy  (p. 1 — 2. Carryover and Payout)" in sources
    assert "pto-and-leave-policy.pdf" in sources and "“" in sources  # the quote


async def test_ask_json_and_errors(gateway) -> None:
    ok = await _cli(
        "ask", "Can I bring my dog?", "--url", gateway, "--api-key", "key-acme", "--json"
    )
    assert ok.exit_code == 0 and json.loads(ok.output)["abstained"] is True
    bad_key = await _cli("ask", "PTO?", "--url", gateway, "--api-key", "wrong")
    assert bad_key.exit_code == 1 and "401" in bad_key.output
    down = await _cli("ask", "PTO?", "--url", f"http://127.0.0.1:{_free_port()}")
    assert down.exit_code == 2 and "cannot reach the gateway" in down.output


async def test_eval_prints_the_table_and_json(gateway, tmp_path) -> None:
    questions = tmp_path / "q.jsonl"
    label = {"file": "holiday-calendar-2025.pdf", "phrase": "2 floating holidays"}
    rows = [
        {
            "id": "q1",
            "question": "How many floating holidays do I get per year?",
            "labels": [label],
        },
        {"id": "u1", "question": "Can I bring my dog to work?", "answerable": False},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = await _cli("eval", str(questions), "--url", gateway, "--api-key", "key-acme")
    assert table.exit_code == 0, table.output
    assert "| retrieval recall@5" in table.output and "| abstention recall" in table.output
    report = await _cli("eval", str(questions), "--url", gateway, "--api-key", "key-acme", "--json")
    summary = json.loads(report.output)["summary"]
    assert summary["recall_at_k"] == 1.0 and summary["abstention_recall"] == 1.0
    assert summary["citation_precision"] == 1.0
    missing = await _cli("eval", str(tmp_path / "none.jsonl"), "--url", gateway)
    assert missing.exit_code == 2 and "cannot read the questions" in missing.output
