"""Citation markers in a streamed answer: ``[n]`` for a number that was not retrieved never
reaches the client, even mid-stream.

Text passes through at once except from a ``[`` to its ``]`` (at most ``MAX_HELD`` characters),
which is held until it is known to be a citation group; its unknown numbers are then removed.
"""

from __future__ import annotations

import re
from collections.abc import Collection

MAX_HELD = 24
_GROUP = re.compile(r"^\[(\d+(?:\s*,\s*\d+)*)\]$")


class MarkerFilter:
    def __init__(self, valid: Collection[int]) -> None:
        self.valid = set(valid)
        self._held = ""
        self.removed = 0

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if self._held:
                self._held += ch
                if ch == "]":
                    out.append(self._resolve(self._held))
                    self._held = ""
                elif len(self._held) > MAX_HELD or not (ch.isdigit() or ch in ", "):
                    out.append(self._held)  # not a citation group
                    self._held = ""
            elif ch == "[":
                self._held = ch
            else:
                out.append(ch)
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _resolve(self, group: str) -> str:
        m = _GROUP.match(group)
        if m is None:
            return group
        numbers = [int(n) for n in m.group(1).split(",")]
        kept = [n for n in numbers if n in self.valid]
        self.removed += len(numbers) - len(kept)
        return "".join(f"[{n}]" for n in kept)
