"""Amazon Bedrock (Claude and any other Converse model) via aiobotocore: ``Converse`` for one
piece, ``ConverseStream`` (an ``application/vnd.amazon.eventstream`` response) for streaming.

Requests are SigV4-signed by botocore with credentials from the standard chain (environment,
profile, IRSA web identity on EKS, instance role). Converse wants the conversation to start with
a user turn and to alternate; consecutive turns of one role are merged, and the system prompt
goes in ``system``. botocore's own retries are off (one attempt): the provider chain decides
what happens after a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EventStreamError,
    NoCredentialsError,
    ReadTimeoutError,
)

from datatorag.adapters.aws.session import AwsClients, AwsConnection, error_code
from datatorag.ports import (
    ChatMessage,
    Finished,
    Generation,
    GenerationEvent,
    GenerationRequest,
    Generator,
    GeneratorError,
    TextDelta,
    Usage,
)

NAME = "bedrock"
SERVICE = "bedrock-runtime"
_UNAVAILABLE = frozenset(
    {
        "throttlingexception",
        "serviceunavailableexception",
        "internalserverexception",
        "modelnotreadyexception",
        "modeltimeoutexception",
        "modelstreamerrorexception",
        "modelerrorexception",
        "serviceQuotaExceededException".lower(),
    }
)
_MISCONFIGURED = frozenset(
    {
        "accessdeniedexception",
        "resourcenotfoundexception",
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "expiredtokenexception",
    }
)


class BedrockGenerator(Generator):
    name = NAME

    def __init__(
        self,
        model_id: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        clients: AwsClients | None = None,
    ) -> None:
        self.model = model_id
        self._owns_clients = clients is None
        self.clients = clients or AwsClients(
            AwsConnection(
                region=region,
                endpoint_url=endpoint_url,
                read_timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s,
                max_attempts=0,  # botocore: retries after the first attempt
            )
        )

    def _kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        system = [m.content for m in request.messages if m.role == "system"]
        kwargs: dict[str, Any] = {
            "modelId": self.model,
            "messages": _turns(request.messages),
            "inferenceConfig": {
                "maxTokens": request.max_tokens,
                "temperature": request.temperature,
            },
        }
        if system:
            kwargs["system"] = [{"text": "\n\n".join(system)}]
        return kwargs

    async def generate(self, request: GenerationRequest) -> Generation:
        client = await self.clients.client(SERVICE)
        try:
            resp = await client.converse(**self._kwargs(request))
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc) from exc
        try:
            blocks = resp["output"]["message"]["content"]
            text = "".join(b["text"] for b in blocks if "text" in b)
            usage = resp.get("usage") or {}
            return Generation(
                text=text,
                usage=Usage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))),
                finish_reason=str(resp.get("stopReason") or "end_turn"),
                model=self.model,
            )
        except (KeyError, TypeError) as exc:
            raise GeneratorError(NAME, "malformed", f"unexpected Converse response: {exc}") from exc

    async def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        client = await self.clients.client(SERVICE)
        usage = Usage()
        finish = "end_turn"
        stopped = False
        try:
            resp = await client.converse_stream(**self._kwargs(request))
            events = resp["stream"]
            try:
                async for event in events:
                    if "contentBlockDelta" in event:
                        text = event["contentBlockDelta"].get("delta", {}).get("text")
                        if text:
                            yield TextDelta(text)
                    elif "messageStop" in event:
                        finish = str(event["messageStop"].get("stopReason") or finish)
                        stopped = True
                    elif "metadata" in event:
                        u = event["metadata"].get("usage") or {}
                        usage = Usage(int(u.get("inputTokens", 0)), int(u.get("outputTokens", 0)))
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise GeneratorError(
                NAME, "malformed", f"unexpected ConverseStream event: {exc}"
            ) from exc
        if not stopped:
            raise GeneratorError(NAME, "malformed", "the event stream ended without messageStop")
        yield Finished(usage, finish, self.model)

    async def check(self) -> None:
        if not await self.clients.has_credentials():
            raise GeneratorError(NAME, "misconfigured", "no AWS credentials in the standard chain")

    async def close(self) -> None:
        if self._owns_clients:
            await self.clients.close()


def _turns(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if not turns and m.role == "assistant":
            continue  # Converse starts with the user
        if turns and turns[-1]["role"] == m.role:
            turns[-1]["content"][0]["text"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": [{"text": m.content}]})
    return turns


def _error(exc: ClientError | BotoCoreError) -> GeneratorError:
    if isinstance(exc, NoCredentialsError):
        return GeneratorError(NAME, "misconfigured", "no AWS credentials in the standard chain")
    if isinstance(exc, ReadTimeoutError):
        return GeneratorError(NAME, "timeout", str(exc))
    if not isinstance(exc, ClientError):
        return GeneratorError(NAME, "unavailable", f"{type(exc).__name__}: {exc}")
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    reason = f"{code or 'error'}: {exc.response.get('Error', {}).get('Message') or exc}"
    low = code.lower()
    if low in _MISCONFIGURED:
        return GeneratorError(NAME, "misconfigured", reason, status=status)
    if low == "validationexception":
        return GeneratorError(NAME, "rejected", reason, status=status)
    if isinstance(exc, EventStreamError) or low in _UNAVAILABLE or (status or 500) >= 500:
        return GeneratorError(NAME, "unavailable", reason, status=status)
    return GeneratorError(NAME, "rejected", reason, status=status)
