"""The gRPC ``Answer`` stream: a real grpc.aio server and client on the same stores and
``QueryService`` as REST, so both give the same answer."""

from __future__ import annotations

import grpc
import pytest

from datatorag.config import AnswerSettings
from datatorag.gateway.grpc_gen import gateway_pb2 as pb
from datatorag.gateway.grpc_gen import gateway_pb2_grpc as pb_grpc
from datatorag.gateway.grpc_server import grpc_server_for_app
from datatorag.testing.stack import sample_stack
from tests.conformance.factories_embedder import _free_port, shared_local_embedder

pytestmark = pytest.mark.asyncio(loop_scope="session")

CARRY = "How many days of unused PTO carry over into the next year?"
KEY = (("authorization", "Bearer key-acme"),)


@pytest.fixture(scope="module")
async def served(tmp_path_factory):
    async with sample_stack(tmp_path_factory.mktemp("answers-grpc"), shared_local_embedder()) as st:
        app = st.app(answer=AnswerSettings(cache_entries=0))
        server, port = grpc_server_for_app(app, "127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        yield st, app, pb_grpc.QueryGatewayStub(channel)
        await channel.close()
        await server.stop(None)


async def _events(stub, request: pb.AnswerRequest, metadata=KEY) -> list[pb.AnswerEvent]:
    return [e async for e in stub.Answer(request, metadata=metadata)]


async def test_grpc_and_rest_give_the_same_answer(served) -> None:
    st, app, stub = served
    events = await _events(stub, pb.AnswerRequest(query=CARRY, k=5))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "citations" and kinds[-1] == "done" and "delta" in kinds
    done = events[-1].done
    assert "".join(e.delta.text for e in events if e.HasField("delta")) == done.answer
    async with st.client(app, "key-acme") as c:
        rest = (await c.post("/v1/answer", json={"query": CARRY, "k": 5})).json()
    assert done.answer == rest["answer"] and done.provider == rest["provider"] == "extractive"
    assert not done.abstained and done.confidence == pytest.approx(rest["confidence"])
    assert [(c.n, c.doc_id, c.pages, list(c.chunk_ids), c.quote) for c in done.citations] == [
        (c["n"], c["doc_id"], c["pages"], c["chunk_ids"], c["quote"]) for c in rest["citations"]
    ]
    assert done.usage.output_tokens == rest["usage"]["output_tokens"]
    assert "retrieval_ms" in done.timings


async def test_grpc_abstains_like_rest(served) -> None:
    _, _, stub = served
    events = await _events(stub, pb.AnswerRequest(query="Can I bring my dog to work?"))
    done = events[-1].done
    assert done.abstained and done.abstain_reason == "low_evidence" and not done.citations


async def test_grpc_errors_carry_status_and_code(served) -> None:
    st, _, stub = served
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await _events(stub, pb.AnswerRequest(query="  "))
    assert empty.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert dict(empty.value.trailing_metadata() or ())["error-code"] == "validation_error"
    with pytest.raises(grpc.aio.AioRpcError) as unauth:
        await _events(stub, pb.AnswerRequest(query=CARRY), metadata=(("x-api-key", "nope"),))
    assert unauth.value.code() is grpc.StatusCode.UNAUTHENTICATED

    from datatorag.adapters.llm.openai_chat import OpenAIChatGenerator

    dead = f"http://127.0.0.1:{_free_port()}/v1"
    app = st.app(lambda scorer: [OpenAIChatGenerator(dead, "m")], answer=AnswerSettings())
    server, port = grpc_server_for_app(app, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            down = pb_grpc.QueryGatewayStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as unavailable:
                await _events(down, pb.AnswerRequest(query=CARRY))
    finally:
        await server.stop(None)
    assert unavailable.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "openai: unavailable" in (unavailable.value.details() or "")
    assert dict(unavailable.value.trailing_metadata() or ())["error-code"] == "provider_unavailable"
