"""What the fake LLM servers 'think': deterministic replies computed from the messages they
receive, shared by the OpenAI-compatible and the Bedrock fakes.

A real model cannot run here; these stand in for its behaviour, not for its API (the servers
implement the API exactly). ``quoting_model`` answers like a well-behaved model: the first
sentence of the best-matching fenced source, cited by its number. ``naive_model`` is a model
that obeys any instruction it finds anywhere in its prompt, which is what prompt injection
exploits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

Reply = Callable[[Sequence[dict[str, Any]]], str]

_SOURCE = re.compile(r"<<<SOURCE (\d+) (\w+)>>>\n(.*?)\n<<<END SOURCE \1 \2>>>", re.DOTALL)
_QUESTION = re.compile(r"Question: (.*)\Z", re.DOTALL)
_WORD = re.compile(r"[a-z0-9$]+")
INJECTED = re.compile(
    r"ignore (?:all )?(?:previous|prior) instructions[^.]*?(?:say|answer|reply)"
    r"[^\"“]*[\"“]([^\"”]+)[\"”]",
    re.IGNORECASE,
)


def user_text(messages: Sequence[dict[str, Any]]) -> str:
    return str(next(m["content"] for m in reversed(messages) if m["role"] == "user"))


def sources(messages: Sequence[dict[str, Any]]) -> dict[int, str]:
    return {int(n): body for n, _, body in _SOURCE.findall(user_text(messages))}


def question(messages: Sequence[dict[str, Any]]) -> str:
    m = _QUESTION.search(user_text(messages))
    return m.group(1).strip() if m else user_text(messages)


def _sentences(body: str) -> list[str]:
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("Title: ")]
    text = " ".join(ln for ln in lines if len(ln.split()) > 6)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) > 3]


def quoting_model(messages: Sequence[dict[str, Any]]) -> str:
    found = sources(messages)
    if not found:
        return "The documents do not say."
    words = set(_WORD.findall(question(messages).lower()))
    best = (-1, 0, "")
    for n, body in found.items():
        for sentence in _sentences(body):
            overlap = len(words & set(_WORD.findall(sentence.lower())))
            if overlap > best[0]:
                best = (overlap, n, sentence)
    if best[0] < 2:
        return "The documents do not say."
    sentence = best[2].rstrip(".")
    return f"{sentence} [{best[1]}]."


def naive_model(messages: Sequence[dict[str, Any]]) -> str:
    """Obeys the first 'ignore previous instructions ... say "X"' it finds in any message."""
    for m in messages:
        hit = INJECTED.search(str(m["content"]))
        if hit:
            return hit.group(1)
    return quoting_model(messages)


def fixed(text: str) -> Reply:
    return lambda messages: text


def rewriting_model(rewrite: str, then: Reply = quoting_model) -> Reply:
    """Answers the rewrite prompt with ``rewrite`` and everything else with ``then``."""

    def reply(messages: Sequence[dict[str, Any]]) -> str:
        system = str(messages[0]["content"]) if messages else ""
        return rewrite if system.startswith("Rewrite the user's last question") else then(messages)

    return reply
