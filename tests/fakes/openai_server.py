"""A local OpenAI-compatible Chat Completions server, following the documented API exactly.

* ``POST /v1/chat/completions`` with ``Authorization: Bearer <key>`` and a JSON body
  ``{"model", "messages": [{"role", "content"}], "stream", "max_tokens", "temperature",
  "stream_options"}``. The request is checked: unknown fields, a wrong model, roles other than
  system/user/assistant, non-string content, ``stream_options`` without ``stream`` are 400s with
  the documented error object ``{"error": {"message", "type", "param", "code"}}``, and every
  violation is recorded in ``violations``; a bad key is 401 (``invalid_api_key``), an unknown
  model 404 (``model_not_found``).
* Not streaming: a ``chat.completion`` object with ``usage``.
* Streaming: ``text/event-stream`` of ``data: {chat.completion.chunk}`` lines: the role first,
  then one chunk per token, a chunk with ``finish_reason``, the usage chunk (``choices: []``,
  sent because ``stream_options.include_usage`` is true), then ``data: [DONE]``.
* ``GET /v1/models``: the model list.

Faults for the next calls (``fail_next``): ``"http_500"``, ``"http_429"``, ``"stall"`` (the
role chunk and one token, then silence), ``"slow"`` (``delay_s`` before the first byte),
``"malformed"`` (a data line that is not JSON), ``"error_event"`` (an ``error`` object in the
stream after some tokens), ``"no_done"`` (the stream ends without ``[DONE]``).
``first_token_s`` / ``token_s`` make every response slow by a fixed latency (benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes._http import FakeServer
from tests.fakes.llm_models import Reply, quoting_model

ALLOWED = {"model", "messages", "stream", "max_tokens", "temperature", "stream_options"}
ROLES = {"system", "user", "assistant"}


def _error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status)


class FakeOpenAI(FakeServer):
    def __init__(
        self,
        *,
        model: str = "test-model",
        api_key: str = "sk-test",
        reply: Reply = quoting_model,
        first_token_s: float = 0.0,
        token_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.api_key = api_key
        self.reply = reply
        self.first_token_s = first_token_s
        self.token_s = token_s
        self.delay_s = 30.0
        self.bodies: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.faults: list[str] = []
        self.completed = 0
        # X-Request-ID -> (received, first content token written), time.perf_counter() clock:
        # the provider's own time to first token, as a benchmark in this process sees it
        self.first_token: dict[str, tuple[float, float]] = {}
        self.app.router.add_post("/v1/chat/completions", self._completions)
        self.app.router.add_get("/v1/models", self._models)

    def fail_next(self, *faults: str) -> None:
        self.faults.extend(faults)

    @property
    def base_url_v1(self) -> str:
        return f"{self.base_url}/v1"

    async def _models(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]}
        )

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        unknown = set(body) - ALLOWED
        if unknown:
            return f"Unrecognized request argument supplied: {', '.join(sorted(unknown))}"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty array"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or set(m) != {"role", "content"}:
                return f"messages[{i}] must have exactly 'role' and 'content'"
            if m["role"] not in ROLES:
                return f"messages[{i}].role {m['role']!r} is not one of {sorted(ROLES)}"
            if not isinstance(m["content"], str):
                return f"messages[{i}].content must be a string"
        if messages[-1]["role"] != "user":
            return "the last message must be from the user"
        if not isinstance(body.get("stream", False), bool):
            return "'stream' must be a boolean"
        if "stream_options" in body:
            if not body.get("stream"):
                return "stream_options is only allowed when stream is true"
            if body["stream_options"] != {"include_usage": True}:
                return "stream_options must be {'include_usage': true}"
        elif body.get("stream"):
            return "a streaming request must ask for usage (stream_options.include_usage)"
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            return "max_tokens must be a positive integer"
        temperature = body.get("temperature")
        if temperature is not None and not (
            isinstance(temperature, int | float) and 0 <= temperature <= 2
        ):
            return "temperature must be between 0 and 2"
        return None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = await request.json()
        except ValueError:
            self.violations.append("body is not JSON")
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        problem = self._check(body)
        if problem is not None:
            self.violations.append(problem)
            return _error(400, problem, "invalid_request_error")
        if body["model"] != self.model:
            return _error(
                404,
                f"The model `{body['model']}` does not exist",
                "invalid_request_error",
                "model_not_found",
            )
        self.bodies.append(body)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "http_500":
            return _error(
                500, "The server had an error while processing your request.", "server_error"
            )
        if fault == "http_429":
            return _error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded")
        if fault == "slow":
            await asyncio.sleep(self.delay_s)
        text = self.reply(body["messages"])
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        if not body.get("stream"):
            await asyncio.sleep(self.first_token_s)
            self.completed += 1
            return web.json_response(
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(text.split()),
                        "total_tokens": prompt_tokens + len(text.split()),
                    },
                }
            )
        return await self._stream(request, text, prompt_tokens, fault, received)

    async def _stream(
        self,
        request: web.Request,
        text: str,
        prompt_tokens: int,
        fault: str | None,
        received: float,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await asyncio.sleep(self.first_token_s)
        await send({"role": "assistant", "content": ""})
        tokens = [t + " " for t in text.split(" ")]
        tokens[-1] = tokens[-1].rstrip(" ")
        for i, token in enumerate(tokens):
            if i and self.token_s:
                await asyncio.sleep(self.token_s)
            await send({"content": token})
            if i == 0 and "X-Request-ID" in request.headers:
                self.first_token[request.headers["X-Request-ID"]] = (received, time.perf_counter())
            if fault == "stall":
                await asyncio.sleep(3600)
            if fault == "malformed" and i == 1:
                await resp.write(b"data: {not json\n\n")
                return resp
            if fault == "error_event" and i == 2:
                err = {"error": {"message": "upstream model crashed", "type": "server_error"}}
                await resp.write(f"data: {json.dumps(err)}\n\n".encode())
                return resp
        await send({}, "stop")
        usage = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(tokens),
                "total_tokens": prompt_tokens + len(tokens),
            },
        }
        await resp.write(f"data: {json.dumps(usage)}\n\n".encode())
        if fault != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        self.completed += 1
        return resp
