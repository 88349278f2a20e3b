"""A local Amazon Bedrock Runtime endpoint for ``Converse`` and ``ConverseStream``, reached by
aiobotocore through ``endpoint_url``.

* ``POST /model/{modelId}/converse`` and ``POST /model/{modelId}/converse-stream`` (the model id
  URL-encoded), SigV4-signed: the ``Authorization`` header must be ``AWS4-HMAC-SHA256`` with a
  credential scope for service ``bedrock``, and ``X-Amz-Date`` must be present.
* The body is checked as the API documents it: ``messages`` start with a ``user`` turn and
  alternate, each ``content`` a list of ``{"text"}`` blocks; ``system`` a list of ``{"text"}``;
  ``inferenceConfig`` with ``maxTokens`` and ``temperature``; nothing else. A violation is a
  400 ``ValidationException`` and is recorded in ``violations``.
* Errors are rest-json: the status, ``X-Amzn-ErrorType: <Code>`` and ``{"message"}``.
* ``ConverseStream`` answers ``application/vnd.amazon.eventstream``: binary messages (prelude
  with total and header lengths and its CRC32, string headers ``:event-type``,
  ``:content-type``, ``:message-type``, the JSON payload, the message CRC32) for
  ``messageStart``, one ``contentBlockDelta`` per token, ``contentBlockStop``, ``messageStop``
  and ``metadata`` (usage and latency); a fault mid-stream is an ``exception`` message
  (``:exception-type``).

Faults for the next calls (``fail_next``): ``"throttled"`` (429 ThrottlingException),
``"http_500"`` (InternalServerException), ``"stall"`` (one token, then silence),
``"stream_exception"`` (a modelStreamErrorException message after some tokens),
``"access_denied"`` (403 AccessDeniedException).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakes._http import FakeServer
from tests.fakes.llm_models import Reply, quoting_model

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding."""
    encoded = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        encoded += bytes([len(n)]) + n + bytes([7]) + len(v).to_bytes(2, "big") + v
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return event_message(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body).encode(),
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message}, status=status, headers={"X-Amzn-ErrorType": code}
    )


class FakeBedrock(FakeServer):
    def __init__(self, *, model: str = MODEL, reply: Reply = quoting_model) -> None:
        super().__init__()
        self.model = model
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.faults: list[str] = []
        self.signed_regions: list[str] = []
        r = self.app.router
        r.add_post("/model/{model_id}/converse", self._converse)
        r.add_post("/model/{model_id}/converse-stream", self._converse_stream)

    def fail_next(self, *faults: str) -> None:
        self.faults.extend(faults)

    def _check(self, request: web.Request, body: Any) -> str | None:
        auth = request.headers.get("Authorization", "")
        if (
            not auth.startswith("AWS4-HMAC-SHA256 Credential=")
            or "/bedrock/aws4_request" not in auth
        ):
            return f"not SigV4-signed for bedrock: {auth[:80]!r}"
        if "X-Amz-Date" not in request.headers:
            return "X-Amz-Date missing"
        self.signed_regions.append(auth.split("/")[2])
        if not isinstance(body, dict):
            return "body must be an object"
        unknown = set(body) - {"messages", "system", "inferenceConfig"}
        if unknown:
            return f"unexpected fields {sorted(unknown)}"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages must be a non-empty list"
        for i, m in enumerate(messages):
            expected = "user" if i % 2 == 0 else "assistant"
            if m.get("role") != expected:
                return f"messages[{i}].role must be {expected} (turns alternate, user first)"
            content = m.get("content")
            if (
                not isinstance(content, list)
                or not content
                or not all(
                    isinstance(b, dict) and set(b) == {"text"} and isinstance(b["text"], str)
                    for b in content
                )
            ):
                return f"messages[{i}].content must be a list of text blocks"
        if messages[-1]["role"] != "user":
            return "the conversation must end with a user turn"
        system = body.get("system")
        if system is not None and not (
            isinstance(system, list) and all(set(b) == {"text"} for b in system)
        ):
            return "system must be a list of text blocks"
        config = body.get("inferenceConfig", {})
        if set(config) - {"maxTokens", "temperature", "topP", "stopSequences"}:
            return "unexpected inferenceConfig fields"
        if not isinstance(config.get("maxTokens", 1), int) or config.get("maxTokens", 1) < 1:
            return "maxTokens must be a positive integer"
        return None

    async def _prepare(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        model_id = unquote(request.match_info["model_id"])
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = self._check(request, body)
        if problem is not None:
            self.violations.append(problem)
            return None, _error(400, "ValidationException", problem)
        if model_id != self.model:
            return None, _error(
                404, "ResourceNotFoundException", f"The model {model_id} does not exist"
            )
        assert isinstance(body, dict)
        self.bodies.append(body)
        fault = self.faults[0] if self.faults else None
        if fault == "throttled":
            self.faults.pop(0)
            return None, _error(429, "ThrottlingException", "Too many requests, please wait")
        if fault == "http_500":
            self.faults.pop(0)
            return None, _error(500, "InternalServerException", "Internal server error")
        if fault == "access_denied":
            self.faults.pop(0)
            return None, _error(403, "AccessDeniedException", "You don't have access to the model")
        return body, None

    def _messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The conversation as chat messages (what the shared fake models read)."""
        out = [{"role": "system", "content": b["text"]} for b in body.get("system", [])]
        for m in body["messages"]:
            out.append({"role": m["role"], "content": "".join(b["text"] for b in m["content"])})
        return out

    async def _converse(self, request: web.Request) -> web.Response:
        body, error = await self._prepare(request)
        if error is not None:
            return error
        assert body is not None
        text = self.reply(self._messages(body))
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": _tokens(body),
                    "outputTokens": len(text.split()),
                    "totalTokens": _tokens(body) + len(text.split()),
                },
                "metrics": {"latencyMs": 12},
            }
        )

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        body, error = await self._prepare(request)
        if error is not None:
            return error
        assert body is not None
        fault = self.faults.pop(0) if self.faults else None
        text = self.reply(self._messages(body))
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await resp.prepare(request)
        await resp.write(_event("messageStart", {"role": "assistant"}))
        tokens = [t + " " for t in text.split(" ")]
        tokens[-1] = tokens[-1].rstrip(" ")
        for i, token in enumerate(tokens):
            await resp.write(
                _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": token}})
            )
            if fault == "stall":
                await asyncio.sleep(3600)
            if fault == "stream_exception" and i == 1:
                await resp.write(
                    event_message(
                        {
                            ":exception-type": "modelStreamErrorException",
                            ":content-type": "application/json",
                            ":message-type": "exception",
                        },
                        json.dumps({"message": "The model stream failed"}).encode(),
                    )
                )
                return resp
        await resp.write(_event("contentBlockStop", {"contentBlockIndex": 0}))
        await resp.write(_event("messageStop", {"stopReason": "end_turn"}))
        await resp.write(
            _event(
                "metadata",
                {
                    "usage": {
                        "inputTokens": _tokens(body),
                        "outputTokens": len(tokens),
                        "totalTokens": _tokens(body) + len(tokens),
                    },
                    "metrics": {"latencyMs": 12},
                },
            )
        )
        return resp


def _tokens(body: dict[str, Any]) -> int:
    words = sum(len(b["text"].split()) for m in body["messages"] for b in m["content"])
    return words + sum(len(b["text"].split()) for b in body.get("system", []))
