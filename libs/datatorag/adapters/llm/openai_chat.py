"""Any OpenAI-compatible Chat Completions endpoint (vLLM, Ollama, LiteLLM, OpenAI, Azure OpenAI)
over httpx.

``POST {base_url}/chat/completions`` with ``{"model", "messages", "stream", "max_tokens",
"temperature"}``; streaming adds ``"stream_options": {"include_usage": true}`` and reads the
server-sent events ``data: {chat.completion.chunk}`` up to ``data: [DONE]``, the usage in the
last chunk (whose ``choices`` is empty). Azure OpenAI: ``base_url`` is the deployment URL and
``azure_api_version`` is sent as ``?api-version=``, the key as ``api-key``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from datatorag.ports import (
    Finished,
    Generation,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    TextDelta,
    Usage,
)

NAME = "openai"


class OpenAIChatGenerator(Generator):
    name = NAME

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        azure_api_version: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"openai base URL must be http(s)://..., got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Accept": "application/json"}
        if api_key:
            headers["api-key" if azure_api_version else "Authorization"] = (
                api_key if azure_api_version else f"Bearer {api_key}"
            )
        self._params = {"api-version": azure_api_version} if azure_api_version else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    def _body(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": stream,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _headers(self, request: GenerationRequest) -> dict[str, str]:
        return {"X-Request-ID": request.request_id} if request.request_id else {}

    async def generate(self, request: GenerationRequest) -> Generation:
        try:
            resp = await self._client.post(
                f"{self.base_url}/chat/completions",
                json=self._body(request, stream=False),
                params=self._params,
                headers=self._headers(request),
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if resp.status_code != 200:
            raise _status_error(resp.status_code, resp.text)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            usage = data.get("usage") or {}
            return Generation(
                text=text,
                usage=Usage(
                    int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                ),
                finish_reason=str(choice.get("finish_reason") or "stop"),
                model=str(data.get("model") or self.model),
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GeneratorError(
                NAME, "malformed", f"not a chat.completion object: {_excerpt(resp.text)}"
            ) from exc

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        usage = Usage()
        finish = "stop"
        model = self.model
        done = False
        try:
            async with self._client.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=self._body(request, stream=True),
                params=self._params,
                headers=self._headers(request),
            ) as resp:
                if resp.status_code != 200:
                    raise _status_error(
                        resp.status_code, (await resp.aread()).decode(errors="replace")
                    )
                kind = resp.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    body = (await resp.aread()).decode(errors="replace")
                    raise GeneratorError(
                        NAME,
                        "malformed",
                        f"expected text/event-stream, got {kind!r}: {_excerpt(body)}",
                    )
                async for data in _sse_data(resp):
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = _json(data)
                    if "error" in chunk:
                        err = chunk["error"]
                        message = err.get("message") if isinstance(err, dict) else str(err)
                        raise GeneratorError(NAME, "unavailable", f"error in stream: {message}")
                    model = str(chunk.get("model") or model)
                    if chunk.get("usage"):
                        u = chunk["usage"]
                        usage = Usage(
                            int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
                        )
                    choices = chunk.get("choices")
                    if not isinstance(choices, list):
                        raise GeneratorError(
                            NAME, "malformed", f"chunk without choices: {_excerpt(data)}"
                        )
                    for choice in choices:
                        delta = choice.get("delta") or {}
                        content = delta.get("content")
                        if content:
                            if not isinstance(content, str):
                                raise GeneratorError(NAME, "malformed", "delta content is not text")
                            yield TextDelta(content)
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if not done:
            raise GeneratorError(NAME, "malformed", "the event stream ended before data: [DONE]")
        yield Finished(usage, finish, model)

    async def check(self) -> None:
        try:
            resp = await self._client.get(f"{self.base_url}/models", params=self._params)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if resp.status_code in (401, 403):
            raise _status_error(resp.status_code, resp.text)
        if resp.status_code >= 500:
            raise _status_error(resp.status_code, resp.text)

    async def close(self) -> None:
        await self._client.aclose()


async def _sse_data(resp: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    lines: list[str] = []
    async for line in resp.aiter_lines():
        if line == "":
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        field, _, value = line.partition(":")
        if field == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _json(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise GeneratorError(NAME, "malformed", f"event is not JSON: {_excerpt(data)}") from exc
    if not isinstance(value, dict):
        raise GeneratorError(NAME, "malformed", f"event is not an object: {_excerpt(data)}")
    return value


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _message(body: str) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except ValueError:
        pass
    return _excerpt(body) or "(empty body)"


def _status_error(status: int, body: str) -> GeneratorError:
    message = f"HTTP {status}: {_message(body)}"
    if status in (401, 403, 404):
        return GeneratorError(NAME, "misconfigured", message, status=status)
    if status in (400, 413, 422):
        return GeneratorError(NAME, "rejected", message, status=status)
    return GeneratorError(NAME, "unavailable", message, status=status)


def _transport_error(exc: httpx.HTTPError) -> GeneratorError:
    if isinstance(exc, httpx.TimeoutException):
        return GeneratorError(NAME, "timeout", f"{type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return GeneratorError(NAME, "misconfigured", str(exc))
    return GeneratorError(NAME, "unavailable", f"{type(exc).__name__}: {exc}".rstrip(": "))
