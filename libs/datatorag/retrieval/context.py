"""An LLM-ready context block built from search hits, with numbered citations.

Hits arrive best first. Adjacent chunks of the same document version overlap by design (the
chunker repeats ``overlap`` tokens), so when both are retrieved they are merged into one passage
with the repeated words dropped; a chunk whose text another passage already holds is skipped.
Passages keep the order of their best hit and are added until the budget is spent.

Block format (one passage per citation)::

    [1] Leave policy — p. 3–4 — doc hr-1a2b — chunks 5–6
    <passage text>

    [2] ...
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from datatorag.domain.models import ChunkRecord, SearchHit

_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")
# A passage cut to fit the budget is only worth including when this much room is left.
MIN_PASSAGE_CHARS = 200


def approx_tokens(text: str) -> int:
    """~4 characters per token for English prose: a model-agnostic budget estimate."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    version: str
    title: str | None
    path: str
    source: str
    page_start: int | None
    page_end: int | None
    chunk_indexes: tuple[int, ...]
    chunk_ids: tuple[str, ...]

    @property
    def pages(self) -> str | None:
        if self.page_start is None:
            return None
        end = self.page_end if self.page_end is not None else self.page_start
        return f"p. {self.page_start}" if end == self.page_start else f"pp. {self.page_start}–{end}"

    @property
    def label(self) -> str:
        parts = [f"[{self.n}] {self.title or self.path}"]
        if self.pages:
            parts.append(self.pages)
        parts.append(f"doc {self.doc_id}")
        first, last = self.chunk_indexes[0], self.chunk_indexes[-1]
        parts.append(f"chunk {first}" if first == last else f"chunks {first}–{last}")
        return " — ".join(parts)


@dataclass
class Context:
    text: str
    citations: list[Citation]
    truncated: bool = False  # a passage was cut or left out for the budget
    skipped_duplicates: int = 0
    # chunk ids of the hits that made it into the block
    used_chunk_ids: list[str] = field(default_factory=list)
    # per citation (same order): the passage text in the block and the chunks it was built from
    passages: list[str] = field(default_factory=list)
    chunks: list[list[ChunkRecord]] = field(default_factory=list)


@dataclass
class _Passage:
    chunks: list[ChunkRecord]
    text: str
    best: int  # position of its best hit, for ordering


def build_context(
    hits: Sequence[SearchHit],
    *,
    max_chars: int = 8000,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> Context:
    """Numbered passages from ``hits`` within ``max_chars`` (and ``max_tokens`` if given)."""
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    passages, duplicates = _passages(hits)

    def fits(text: str) -> bool:
        if len(text) > max_chars:
            return False
        return max_tokens is None or count_tokens(text) <= max_tokens

    blocks: list[str] = []
    citations: list[Citation] = []
    used: list[str] = []
    texts: list[str] = []
    members: list[list[ChunkRecord]] = []
    truncated = False
    for passage in passages:
        citation = _citation(len(citations) + 1, passage.chunks)
        block = f"{citation.label}\n{passage.text}"
        candidate = "\n\n".join([*blocks, block])
        if not fits(candidate):
            # Out of budget: cut this passage to fit when enough room is left, then stop.
            truncated = True
            cut = _cut_to_fit(blocks, citation.label, passage.text, fits)
            if cut is not None:
                blocks.append(cut)
                citations.append(citation)
                used.extend(c.id for c in passage.chunks)
                texts.append(cut[len(citation.label) + 1 :])
                members.append(passage.chunks)
            break
        blocks.append(block)
        citations.append(citation)
        used.extend(c.id for c in passage.chunks)
        texts.append(passage.text)
        members.append(passage.chunks)
    return Context(
        text="\n\n".join(blocks),
        citations=citations,
        truncated=truncated,
        skipped_duplicates=duplicates,
        used_chunk_ids=used,
        passages=texts,
        chunks=members,
    )


def _passages(hits: Sequence[SearchHit]) -> tuple[list[_Passage], int]:
    """Group hits into passages: runs of consecutive chunks of one document version merge."""
    seen_ids: set[str] = set()
    chunks: list[tuple[int, ChunkRecord]] = []
    for position, hit in enumerate(hits):
        if hit.chunk.id in seen_ids:
            continue
        seen_ids.add(hit.chunk.id)
        chunks.append((position, hit.chunk))

    by_doc: dict[tuple[str, str, str], list[tuple[int, ChunkRecord]]] = {}
    for position, chunk in chunks:
        by_doc.setdefault((chunk.tenant, chunk.doc_id, chunk.version), []).append((position, chunk))

    passages: list[_Passage] = []
    for group in by_doc.values():
        group.sort(key=lambda pc: pc[1].chunk_index)
        run: list[tuple[int, ChunkRecord]] = []
        for item in group:
            if run and item[1].chunk_index != run[-1][1].chunk_index + 1:
                passages.append(_merge(run))
                run = []
            run.append(item)
        if run:
            passages.append(_merge(run))
    passages.sort(key=lambda p: p.best)

    # Drop passages whose text another (better-ranked) passage already contains: the same
    # file ingested twice, or a chunk entirely inside its neighbour's overlap.
    kept: list[_Passage] = []
    duplicates = 0
    for passage in passages:
        norm = _norm(passage.text)
        if not norm or any(norm in _norm(k.text) for k in kept):
            duplicates += 1
            continue
        kept.append(passage)
    return kept, duplicates + (len(hits) - len(chunks))


def _merge(run: list[tuple[int, ChunkRecord]]) -> _Passage:
    text = run[0][1].text.strip()
    for _, chunk in run[1:]:
        text = _join_overlapping(text, chunk.text.strip())
    return _Passage(chunks=[c for _, c in run], text=text, best=min(p for p, _ in run))


def _join_overlapping(a: str, b: str, max_overlap_words: int = 400) -> str:
    """``a`` + ``b`` without the words ``b`` repeats from the end of ``a``."""
    a_words = a.split()
    b_matches = list(_WORD.finditer(b))
    b_words = [m.group() for m in b_matches]
    longest = min(len(a_words), len(b_words), max_overlap_words)
    for n in range(longest, 0, -1):
        if a_words[-n:] == b_words[:n]:
            rest = b[b_matches[n].start() :] if n < len(b_matches) else ""
            return f"{a} {rest}".rstrip() if rest else a
    return f"{a}\n{b}"


def _cut_to_fit(
    blocks: list[str], label: str, text: str, fits: Callable[[str], bool]
) -> str | None:
    """The longest word-boundary prefix of ``text`` (with an ellipsis) that fits, or None when
    less than ``MIN_PASSAGE_CHARS`` of it would."""
    lo, hi, best = MIN_PASSAGE_CHARS, len(text), None
    while lo <= hi:
        mid = (lo + hi) // 2
        cut = text[:mid]
        if mid < len(text) and " " in cut:
            cut = cut[: cut.rfind(" ")]
        block = f"{label}\n{cut.rstrip()} …"
        if fits("\n\n".join([*blocks, block])):
            best, lo = block, mid + 1
        else:
            hi = mid - 1
    return best


def _citation(n: int, chunks: list[ChunkRecord]) -> Citation:
    first = chunks[0]
    starts = [c.page_start for c in chunks if c.page_start is not None]
    ends = [c.page_end if c.page_end is not None else c.page_start for c in chunks]
    ends_known = [e for e in ends if e is not None]
    return Citation(
        n=n,
        doc_id=first.doc_id,
        version=first.version,
        title=first.title,
        path=first.path,
        source=first.source,
        page_start=min(starts) if starts else None,
        page_end=max(ends_known) if ends_known else None,
        chunk_indexes=tuple(c.chunk_index for c in chunks),
        chunk_ids=tuple(c.id for c in chunks),
    )


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()
