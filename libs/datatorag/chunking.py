"""Split a parsed document into chunks sized in tokens of the embedding model's tokenizer.

Blocks are cut into units (sentences of a paragraph, rows of a table, a heading), all units are
tokenised in one batch call with offsets, and units are packed greedily into chunks of at most
``max_tokens`` tokens *including the model's special tokens* ([CLS]/[SEP], <bos>/<eos>):
- a chunk never spans two sections, except that a section holding only its heading, or only a
  few tokens (a title and a byline), joins the next one: such a scrap is not worth a chunk;
- a paragraph that does not fit the rest of a half-full chunk starts the next chunk whole;
- a sentence longer than a chunk is cut at token boundaries (at word starts where possible);
- consecutive chunks of one section share ``overlap_tokens`` tokens, starting at a word; in a
  table whose block has ``header_row`` set, the header row opens each chunk instead;
- every chunk keeps the document title, its section and its first and last page.
Finally all chunk texts are re-tokenised in one batch, so ``token_count`` is the real count and
a chunk that came out too long (tokenizers whose joins are not additive) is cut again.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tokenizers import Encoding, Tokenizer

from datatorag.domain.errors import DependencyError
from datatorag.domain.models import Chunk
from datatorag.embedding.model_dir import MINILM, resolve_model
from datatorag.parsing.model import ParsedDocument

DEFAULT_MAX_TOKENS = 512
DEFAULT_OVERLAP_TOKENS = 50

# sentence end: . ! ? (optionally closed by a quote/bracket) then space then an opening char
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9\u00c0-\u024f])")
_BLOCK_SEP = "\n\n"
_SENT_SEP = " "
_ROW_SEP = "\n"
# a paragraph moves whole to the next chunk when the current one is at least this full
_PARAGRAPH_MOVE_FILL = 0.5
# a section this small (a title and a byline) runs on into the next section's chunk
_SCRAP_TOKENS = 32


@dataclass
class _Part:
    """A run of text placed in a chunk: a unit, a piece of one, or an overlap tail."""

    text: str
    offsets: list[tuple[int, int]]  # token character spans within ``text``
    page: int | None
    sep: str  # separator before this part when it is not the first in its chunk
    body: bool  # False for headings
    exact: bool = True  # False for a piece cut inside a word: its own tokenisation may differ

    @property
    def tokens(self) -> int:
        return len(self.offsets)


class _TokenizerAdapter:
    """The Rust tokenizer behind a HF fast tokenizer, with truncation and padding switched off
    (MiniLM's tokenizer.json ships with both set to 128)."""

    def __init__(self, tokenizer: Any) -> None:
        backend = (
            tokenizer
            if isinstance(tokenizer, Tokenizer)
            else getattr(tokenizer, "backend_tokenizer", None)
        )
        if backend is None:
            raise TypeError(
                "chunking needs a fast (Rust) tokenizer with offsets; "
                f"got {type(tokenizer).__name__}"
            )
        self.tok = Tokenizer.from_str(backend.to_str())
        self.tok.no_truncation()
        self.tok.no_padding()
        self.special = len(self.tok.encode("", add_special_tokens=True).ids)
        self.block_sep_cost = len(self.tok.encode(_BLOCK_SEP, add_special_tokens=False).ids)
        # WordPiece behind a whitespace-splitting pre-tokenizer (BERT, MiniLM): the tokens of
        # "a b" are exactly the tokens of "a" then of "b", so sums need no re-count
        pre = type(self.tok.pre_tokenizer).__name__ if self.tok.pre_tokenizer else ""
        self.additive = (
            type(self.tok.model).__name__ == "WordPiece"
            and pre in ("BertPreTokenizer", "Whitespace", "WhitespaceSplit")
            and self.block_sep_cost == 0
        )

    def encode(self, texts: list[str], *, special: bool = False) -> list[Encoding]:
        """One batch call; offsets are tracked (``encode_batch_fast`` would skip them)."""
        return self.tok.encode_batch(texts, add_special_tokens=special) if texts else []

    def count(self, texts: list[str]) -> list[int]:
        """Token counts including special tokens; no offsets needed, so the fast path."""
        if not texts:
            return []
        fast = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
        return [len(e.ids) for e in fast(texts, add_special_tokens=True)]


@lru_cache(maxsize=4)
def load_chunk_tokenizer(model: str = MINILM) -> Tokenizer:
    """The embedding model's tokenizer straight from its ``tokenizer.json``: the same tokens as
    ``load_tokenizer()`` without importing transformers (seconds of start-up for a parser)."""
    spec = resolve_model(model)
    path = spec.path / "tokenizer.json"
    if not path.is_file():
        # A parser never imports transformers (or torch): the fast tokenizer's file is required.
        raise DependencyError(
            "embedding model",
            f"{spec.path} has no tokenizer.json; save the model with its fast tokenizer "
            "(AutoTokenizer.from_pretrained(...).save_pretrained(dir))",
        )
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()  # MiniLM's file truncates and pads to 128: wrong for counting
    tok.no_padding()
    return tok


_ADAPTERS: dict[int, tuple[Any, _TokenizerAdapter]] = {}
_ADAPTERS_LOCK = threading.Lock()


def _adapter(tokenizer: Any) -> _TokenizerAdapter:
    with _ADAPTERS_LOCK:
        hit = _ADAPTERS.get(id(tokenizer))
        if hit is not None and hit[0] is tokenizer:
            return hit[1]
        adapter = _TokenizerAdapter(tokenizer)
        if len(_ADAPTERS) > 8:
            _ADAPTERS.clear()
        _ADAPTERS[id(tokenizer)] = (tokenizer, adapter)
        return adapter


def chunk_document(
    doc: ParsedDocument,
    tokenizer: Any,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunks of ``doc``; each is at most ``max_tokens`` tokens by ``tokenizer`` (special tokens
    included), indexed 0..n-1, never empty."""
    tok = _adapter(tokenizer)
    budget = max_tokens - tok.special
    if budget < 8:
        raise ValueError(
            f"max_tokens={max_tokens} leaves no room after {tok.special} special tokens"
        )
    overlap = max(0, min(overlap_tokens, budget // 2))

    units = _units(doc)
    encodings = tok.encode([u[0] for u in units])
    block_tokens: dict[int, int] = {}
    for unit, enc in zip(units, encodings, strict=True):
        block_tokens[unit[4]] = block_tokens.get(unit[4], 0) + len(enc.ids)
    packer = _Packer(budget, overlap, tok.block_sep_cost)
    current_section: str | None = None
    block_of_unit = -1
    for (text, page, section, kind, block_id, sep), enc in zip(units, encodings, strict=True):
        if section != current_section or block_of_unit < 0:
            packer.section_break(section)
            current_section = section
        first_of_block = block_id != block_of_unit
        if first_of_block:
            packer.header = None
            packer.block_start(block_tokens[block_id])
            block_of_unit = block_id
        offsets = [(int(o[0]), int(o[1])) for o in enc.offsets]
        part = _Part(text, offsets, page, sep, kind != "heading")
        pieces = _split_long(part, budget - overlap)
        for piece in pieces:
            packer.add(piece)
        # a short header row opens every later chunk of its table (in place of the overlap)
        header = first_of_block and kind == "table" and doc.blocks[block_id].header_row
        if header and len(pieces) == 1 and part.tokens <= budget // 4:
            packer.header = _Part(text, offsets, page, sep, True)
    packer.close(keep_overlap=False)
    return _finalise(doc, packer.chunks, tok, max_tokens)


def _units(doc: ParsedDocument) -> list[tuple[str, int | None, str | None, str, int, str]]:
    """(text, page, section, kind, block index, separator before it) per unit."""
    units = []
    for i, block in enumerate(doc.blocks):
        text = block.text.strip()
        if not text:
            continue
        if block.kind == "table":
            pieces, inner = [r for r in text.split("\n") if r.strip()], _ROW_SEP
        elif block.kind == "heading":
            pieces, inner = [text], _SENT_SEP
        else:
            pieces, inner = [s for s in _SENTENCE_END.split(text) if s.strip()], _SENT_SEP
        for j, piece in enumerate(pieces):
            units.append(
                (
                    piece.strip(),
                    block.page,
                    block.section,
                    block.kind,
                    i,
                    _BLOCK_SEP if j == 0 else inner,
                )
            )
    return units


def _split_long(part: _Part, window: int) -> list[_Part]:
    """Cut a unit longer than ``window`` tokens into pieces of at most ``window`` tokens,
    preferring to cut where a word starts."""
    if part.tokens <= window:
        return [part]
    pieces = []
    start = 0
    n = part.tokens
    while start < n:
        end = min(start + window, n)
        if end < n:
            # back off to a word start within the last quarter of the window
            for cut in range(end, start + max(1, window * 3 // 4), -1):
                if _word_start(part, cut):
                    end = cut
                    break
        c0, c1 = part.offsets[start][0], part.offsets[end - 1][1] if end < n else len(part.text)
        text = part.text[c0:c1]
        offsets = [(a - c0, b - c0) for a, b in part.offsets[start:end]]
        exact = _word_start(part, start) and (end == n or _word_start(part, end))
        pieces.append(
            _Part(
                text,
                offsets,
                part.page,
                part.sep if start == 0 else _SENT_SEP,
                part.body,
                exact and part.exact,
            )
        )
        start = end
    return pieces


def _word_start(part: _Part, i: int) -> bool:
    return i == 0 or part.offsets[i][0] > part.offsets[i - 1][1]


class _Packer:
    def __init__(self, budget: int, overlap: int, block_sep_cost: int) -> None:
        self.budget = budget
        self.overlap = overlap
        self.block_sep_cost = block_sep_cost
        self.chunks: list[tuple[list[_Part], str | None]] = []
        self.parts: list[_Part] = []
        self.used = 0
        self.section: str | None = None
        self.fresh = 0  # parts in self.parts that are new (not overlap from the previous chunk)
        self.closed_in_section = False  # a chunk of the current section was already emitted
        self.header: _Part | None = None  # the header row of the table being packed

    def _cost(self, part: _Part) -> int:
        if not self.parts:
            return part.tokens
        return part.tokens + (self.block_sep_cost if part.sep == _BLOCK_SEP else 0)

    def section_break(self, section: str | None) -> None:
        fresh = self.parts[len(self.parts) - self.fresh :]
        # a scrap is a whole section that came out tiny, not the small tail of a long one
        scrap = not self.closed_in_section and sum(p.tokens for p in fresh) < min(
            _SCRAP_TOKENS, self.budget // 8
        )
        if any(p.body for p in fresh) and not scrap:
            self.close(keep_overlap=False)
        elif not self.fresh:
            self.parts, self.used = [], 0  # an overlap tail never crosses into a new section
        self.section = section
        self.closed_in_section = False

    def block_start(self, block_tokens: int) -> None:
        """Move a whole paragraph to the next chunk when it would not fit the rest of this one."""
        if (
            self.fresh
            and self.used >= self.budget * _PARAGRAPH_MOVE_FILL
            and self.used + block_tokens > self.budget
            and block_tokens + self.overlap <= self.budget
        ):
            self.close(keep_overlap=True)

    def add(self, part: _Part) -> None:
        if self.parts and self.used + self._cost(part) > self.budget:
            self.close(keep_overlap=True)
            if self.parts and self.used + self._cost(part) > self.budget:
                self.parts, self.used = [], 0  # no room for the overlap before this piece
        self.used += self._cost(part)
        self.parts.append(part)
        self.fresh += 1

    def close(self, *, keep_overlap: bool) -> None:
        if not self.fresh:
            self.parts, self.used = [], 0
            return
        self.chunks.append((self.parts, self.section))
        self.closed_in_section = True
        if keep_overlap and self.header is not None:
            tail = [self.header]
        else:
            tail = self._tail() if keep_overlap and self.overlap else []
        self.parts = tail
        self.used = sum(p.tokens for p in tail) + self.block_sep_cost * sum(
            1 for p in tail[1:] if p.sep == _BLOCK_SEP
        )
        self.fresh = 0

    def _tail(self) -> list[_Part]:
        """The last ``overlap`` tokens of the chunk, starting at a word. A sentence fragment of
        less than half the overlap in front of whole sentences is left out."""
        need = self.overlap
        tail: list[_Part] = []
        for part in reversed(self.parts):
            if part.tokens <= need:
                tail.insert(0, part)
                need -= part.tokens
                if need == 0:
                    break
                continue
            start = part.tokens - need
            while start < part.tokens and not _word_start(part, start):
                start += 1
            if start < part.tokens and not (tail and part.tokens - start < self.overlap // 2):
                c0 = part.offsets[start][0]
                offsets = [(a - c0, b - c0) for a, b in part.offsets[start:]]
                tail.insert(
                    0, _Part(part.text[c0:], offsets, part.page, part.sep, part.body, part.exact)
                )
            break
        if tail and not any(p.body for p in tail):
            return []
        return tail


def _render(parts: list[_Part]) -> str:
    out = []
    for i, part in enumerate(parts):
        if i:
            out.append(part.sep)
        out.append(part.text)
    return "".join(out).strip()


def _finalise(
    doc: ParsedDocument,
    packed: list[tuple[list[_Part], str | None]],
    tok: _TokenizerAdapter,
    max_tokens: int,
) -> list[Chunk]:
    drafts = []
    counts: list[int | None] = []
    for parts, section in packed:
        text = _render(parts)
        if not text:
            continue
        pages = [p.page for p in parts if p.page is not None]
        drafts.append((text, section, min(pages) if pages else None, max(pages) if pages else None))
        exact = tok.additive and all(p.exact for p in parts)
        counts.append(sum(p.tokens for p in parts) + tok.special if exact else None)
    # one batch call re-counts what cannot be summed exactly (and cuts it again if too long)
    recount = [i for i, c in enumerate(counts) if c is None]
    for i, c in zip(recount, tok.count([drafts[i][0] for i in recount]), strict=True):
        counts[i] = c
    chunks: list[Chunk] = []
    for (text, section, p0, p1), count in zip(drafts, counts, strict=True):
        assert count is not None
        pieces = [(text, count)]
        if count > max_tokens:
            pieces = _recut(text, tok, max_tokens)
        for piece, count in pieces:
            chunks.append(
                Chunk(
                    index=len(chunks),
                    text=piece,
                    title=doc.title,
                    section=section,
                    page_start=p0,
                    page_end=p1,
                    token_count=count,
                )
            )
    return chunks


def _recut(text: str, tok: _TokenizerAdapter, max_tokens: int) -> list[tuple[str, int]]:
    """Cut an over-long chunk by tokens until every piece measures within ``max_tokens``."""
    window = max_tokens - tok.special
    out: list[tuple[str, int]] = []
    pending = [text]
    while pending:
        piece = pending.pop(0)
        enc = tok.encode([piece])[0]
        part = _Part(piece, [(int(o[0]), int(o[1])) for o in enc.offsets], None, _SENT_SEP, True)
        for sub in _split_long(part, window):
            count = tok.count([sub.text])[0]
            if count > max_tokens and window > 8:
                window -= max(1, count - max_tokens)
                pending.insert(0, sub.text)
                continue
            if sub.text.strip():
                out.append((sub.text.strip(), count))
    return out
