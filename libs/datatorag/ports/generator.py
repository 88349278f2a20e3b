"""Generator port: the model (or the extractive answerer) that writes an answer from numbered
sources.

The answering layer (``datatorag.answering``) builds the request: the question, the numbered
sources it retrieved, and the chat ``messages`` in which those sources are fenced as data. An LLM
adapter sends ``messages`` as they are; a generator that needs no prompt (the extractive one)
reads ``question`` and ``sources``. What comes back is text with ``[n]`` markers; the answering
layer checks it (citations, support, abstention), never the adapter.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class SourcePassage:
    """A retrieved passage as a generator sees it: ``[n]`` is how the answer cites it."""

    n: int
    text: str
    title: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class GenerationRequest:
    question: str
    sources: tuple[SourcePassage, ...]
    messages: tuple[ChatMessage, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    request_id: str | None = None  # forwarded to providers that log it, and into our logs
    tenant: str = ""  # scopes any per-request cache a generator keeps; never sent to a provider


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    """The last event of every stream."""

    usage: Usage
    finish_reason: str  # stop | length | end_turn | ... as the provider says it
    model: str


GenerationEvent = TextDelta | Finished


@dataclass(frozen=True)
class Generation:
    text: str
    usage: Usage
    finish_reason: str
    model: str


ErrorKind = Literal["unavailable", "timeout", "stalled", "malformed", "misconfigured", "rejected"]


@dataclass
class GeneratorError(Exception):
    """Every failure of a generator, in words an operator can act on.

    ``kind``: ``unavailable`` (connection refused, 5xx, throttled), ``timeout`` / ``stalled``
    (no first token in time, or a gap between tokens), ``malformed`` (a response that is not the
    documented shape), ``misconfigured`` (bad key, unknown model, bad URL: retrying cannot help),
    ``rejected`` (the provider refused this request, e.g. too long for the model).
    """

    provider: str
    kind: ErrorKind
    reason: str
    status: int | None = None
    details: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.provider}: {self.kind}: {self.reason}")

    def __str__(self) -> str:
        return f"{self.provider}: {self.kind}: {self.reason}"


class Generator(abc.ABC):
    """Contract (``datatorag.testing.conformance.generator``):

    * ``stream`` yields zero or more ``TextDelta`` and then exactly one ``Finished``; the deltas
      joined are the answer text. ``generate`` returns the same text in one piece.
    * Every failure is a ``GeneratorError`` (never a transport exception); a stream closed early
      by its consumer (``aclose``) releases its connection and raises nothing.
    * Concurrent calls are independent.
    * ``name`` is the provider (``extractive``, ``openai``, ``bedrock``); ``model`` the model id.
    """

    name: str
    model: str

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    async def generate(self, request: GenerationRequest) -> Generation:
        parts: list[str] = []
        finished: Finished | None = None
        stream = self.stream(request)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                else:
                    finished = event
        finally:
            await _aclose(stream)
        if finished is None:
            raise GeneratorError(self.name, "malformed", "the stream ended without finishing")
        return Generation("".join(parts), finished.usage, finished.finish_reason, finished.model)

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``GeneratorError`` when the provider cannot be reached or is misconfigured."""

    async def close(self) -> None:
        pass


async def _aclose(stream: AsyncIterator[GenerationEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
