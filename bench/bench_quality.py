"""Retrieval quality on the 37signals handbook: recall@5 and nDCG@10, k-NN vs BM25 vs hybrid.

The handbook is ingested the way a customer's documents are: half of its files are converted to
PDF at run time (fpdf2, headings as larger bold text, tables as tables; written to a temp dir),
the rest stay Markdown. Every file goes through the product's own path:
``parse_document`` -> ``chunk_document`` (the embedding model's tokenizer, chunk sizes from
settings, capped at the model's window exactly as the parser worker does) -> the in-process
MiniLM embedder -> the embedded LanceDB store (or OpenSearch with ``--index opensearch``). The
labelled questions in ``bench/quality/questions.yaml`` are then asked in three modes: k-NN
alone and BM25 alone (the baselines) and hybrid (RRF fusion, ``datatorag.retrieval.hybrid.search``).
Metric definitions: ``bench/quality/metrics.py``.

    .venv/bin/python -m bench.bench_quality            # settings chunking + 256/32 + 128/16
    .venv/bin/python -m bench.bench_quality --quick    # settings chunking, 20 questions
    .venv/bin/python -m bench.bench_quality --index opensearch --opensearch-url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import itertools
import os
import re
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from bench._common import target, write_result
from bench.quality import corpus_dir, corpus_documents, load_questions
from bench.quality.metrics import (
    Question,
    Retrieved,
    matches,
    ndcg_at_k,
    recall_at_k,
    unanswerable,
)
from datatorag.config import OpenSearchSettings, Settings
from datatorag.domain.models import Chunk, ChunkRecord, SearchHit
from datatorag.ports import Embedder, VectorIndex

# The LanceDB adapter's queries log a Rust deprecation warning each; keep the summary readable.
os.environ.setdefault("LANCEDB_LOG", "error")

TENANT = "bench-quality"
SOURCE = "handbook"
RECALL_K = 5
NDCG_K = 10
DIAGNOSTIC_DEPTH = 50  # how deep to look for a missed answer in each retriever's own list
MODES = ("knn", "bm25", "hybrid")
BASELINES = ("knn", "bm25")
RELEVANCE_FLOOR = 0.8  # BRIEF seed target: "relevance > 80%" (here: hybrid recall@5)
QUICK_QUESTIONS = 20
# Fusion diagnostics (not tuning: the question set is too small to tune on without overfitting):
# how hybrid moves with each retriever's candidate depth, the RRF constant and a k-NN weight.
SWEEP_CANDIDATES = (10, 20, 50)
SWEEP_RRF_K = (10, 30, 60)
SWEEP_KNN_WEIGHT = (1.0, 1.5, 2.0, 3.0)


# ---- corpus: half PDF, half Markdown ---------------------------------------------------------


@dataclass(frozen=True)
class SourceDoc:
    name: str  # the corpus file the labels refer to, e.g. "benefits-and-perks.md"
    filename: str  # what is ingested: the same name, or its .pdf rendering
    data: bytes
    doc_id: str
    version: str


def build_corpus(src: Path, pdf_dir: Path) -> list[SourceDoc]:
    """Every other document (sorted by name) becomes a PDF; the rest stay Markdown."""
    docs: list[SourceDoc] = []
    for n, path in enumerate(corpus_documents(src)):
        text = path.read_text(encoding="utf-8")
        if n % 2 == 1:
            data = markdown_to_pdf(text, title=_first_heading(text) or path.stem)
            filename = path.with_suffix(".pdf").name
            (pdf_dir / filename).write_bytes(data)
        else:
            data, filename = text.encode("utf-8"), path.name
        version = hashlib.sha256(data).hexdigest()[:16]
        docs.append(SourceDoc(path.name, filename, data, _doc_id(path.name), version))
    return docs


def _doc_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(name).stem.lower()).strip("-")


def _first_heading(markdown: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", markdown, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_FONT_FILES = {
    "": "DejaVuSans.ttf",
    "B": "DejaVuSans-Bold.ttf",
    "I": "DejaVuSans-Oblique.ttf",
    "BI": "DejaVuSans-BoldOblique.ttf",
}
_LATIN1 = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
    }
)


def markdown_to_pdf(markdown: str, *, title: str) -> bytes:
    """Render Markdown as a PDF: headings, paragraphs, lists and ruled tables (landscape when
    the document has tables, so the level columns stay readable)."""
    from fpdf import FPDF
    from markdown_it import MarkdownIt

    # emoji (e.g. the lock after internal links) have no glyph in any text font
    markdown = "".join(ch for ch in markdown if ord(ch) <= 0xFFFF and ch != "\ufe0f")
    body = MarkdownIt("commonmark").enable("table").render(markdown)
    body = body.replace("<table>", '<table border="1">')
    has_table = "<table" in body
    pdf = FPDF(orientation="L" if has_table else "P", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    family = _unicode_font(pdf)
    if family is None:  # no DejaVu on this machine: core font, Latin-1 text
        family = "helvetica"
        body = unicodedata.normalize("NFKC", body).translate(_LATIN1)
        body = body.encode("latin-1", "replace").decode("latin-1")
    pdf.set_title(html.unescape(title))
    pdf.add_page()
    pdf.set_font(family, size=8 if has_table else 10)
    pdf.write_html(
        body, font_family=family, warn_on_tags_not_matching=False, table_line_separators=True
    )
    return bytes(pdf.output())


def _unicode_font(pdf: Any) -> str | None:
    for folder in _FONT_DIRS:
        if all((folder / f).is_file() for f in _FONT_FILES.values()):
            for style, file in _FONT_FILES.items():
                pdf.add_font("dejavu", style, str(folder / file))
            return "dejavu"
    return None


# ---- parse, chunk, embed, index ----------------------------------------------------------------


@dataclass(frozen=True)
class Chunking:
    label: str  # as asked: "settings (512/50)" or "256/32"
    max_tokens: int  # effective, after the parser worker's caps
    overlap_tokens: int


def effective_chunking(label: str, max_tokens: int, overlap: int, model_window: int) -> Chunking:
    """The parser worker caps a chunk at the model's window (or its tail would be truncated
    silently) and the overlap at a quarter of the chunk; the benchmark measures the same."""
    effective = min(max_tokens, model_window)
    return Chunking(label, effective, min(overlap, effective // 4))


@dataclass
class Ingested:
    chunking: Chunking
    chunks: list[tuple[SourceDoc, Chunk]]
    doc_types: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    def corpus(self) -> list[Retrieved]:
        return [Retrieved(doc.name, chunk.text) for doc, chunk in self.chunks]


def parse_and_chunk(docs: list[SourceDoc], tokenizer: Any, chunking: Chunking) -> Ingested:
    from datatorag.chunking import chunk_document
    from datatorag.parsing import parse_document

    started = time.perf_counter()
    out: list[tuple[SourceDoc, Chunk]] = []
    doc_types: dict[str, str] = {}
    for doc in docs:
        parsed = parse_document(doc.data, filename=doc.filename)
        doc_types[doc.name] = parsed.doc_type
        chunks = chunk_document(
            parsed,
            tokenizer,
            max_tokens=chunking.max_tokens,
            overlap_tokens=chunking.overlap_tokens,
        )
        out.extend((doc, c) for c in chunks)
    return Ingested(chunking, out, doc_types, {"parse_chunk_s": time.perf_counter() - started})


async def index_chunks(index: VectorIndex, embedder: Embedder, ingested: Ingested) -> None:
    started = time.perf_counter()
    texts = [c.text for _, c in ingested.chunks]
    titles = [c.title for _, c in ingested.chunks]
    vectors = await embedder.embed_documents(texts, titles)
    ingested.seconds["embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    records = [
        ChunkRecord(
            id=ChunkRecord.make_id(doc.doc_id, doc.version, c.index),
            tenant=TENANT,
            doc_id=doc.doc_id,
            version=doc.version,
            chunk_index=c.index,
            text=c.text,
            title=c.title,
            section=c.section,
            page_start=c.page_start,
            page_end=c.page_end,
            source=SOURCE,
            path=doc.filename,
            doc_type=ingested.doc_types[doc.name],
            vector=vectors[j].tolist(),
        )
        for j, (doc, c) in enumerate(ingested.chunks)
    ]
    await index.ensure()
    await index.upsert(records)
    ingested.seconds["index_s"] = time.perf_counter() - started
    count = await index.count(TENANT)
    if count != len(records):
        raise RuntimeError(
            f"index holds {count} chunks of tenant {TENANT}, expected {len(records)}"
        )


async def drop_chunks(index: VectorIndex, docs: list[SourceDoc]) -> None:
    for doc in docs:
        await index.delete_document(TENANT, doc.doc_id)


async def drop_opensearch(index: Any) -> None:
    """Leave a shared server as found: the bench's own indices (its prefix) and template."""
    prefix = index.settings.index_prefix
    if not prefix.startswith("datatorag-bench-quality-"):  # never touch another prefix
        raise RuntimeError(f"refusing to delete indices of prefix {prefix!r}")
    await index.client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    await index.client.indices.delete_index_template(name=index.template_name, ignore=[404])


# ---- evaluation --------------------------------------------------------------------------------


@dataclass
class QuestionResult:
    question: Question
    vector: list[float]
    ranked: dict[str, list[SearchHit]]  # mode -> top NDCG_K hits
    recall: dict[str, float]
    ndcg: dict[str, float]


async def evaluate(
    index: VectorIndex,
    embedder: Embedder,
    questions: list[Question],
    ingested: Ingested,
    docs_by_id: dict[str, SourceDoc],
) -> tuple[list[QuestionResult], float]:
    from datatorag.retrieval.hybrid import search

    corpus = ingested.corpus()
    vectors = await embedder.embed_queries([q.question for q in questions])
    started = time.perf_counter()
    results: list[QuestionResult] = []
    for q, vector in zip(questions, vectors, strict=True):
        ranked: dict[str, list[SearchHit]] = {}
        for mode in MODES:
            ranked[mode] = await search(
                index,
                None,
                TENANT,
                q.question,
                NDCG_K,
                mode=mode,
                query_vector=vector.tolist(),
                audience=None,  # the whole corpus
            )
        retrieved = {m: _retrieved(hits, docs_by_id) for m, hits in ranked.items()}
        results.append(
            QuestionResult(
                q,
                vector.tolist(),
                ranked,
                recall={m: recall_at_k(q, r, RECALL_K) for m, r in retrieved.items()},
                ndcg={m: ndcg_at_k(q, r, NDCG_K, corpus) for m, r in retrieved.items()},
            )
        )
    per_query_ms = (time.perf_counter() - started) * 1000 / max(1, len(questions) * len(MODES))
    return results, per_query_ms


def _retrieved(hits: list[SearchHit], docs_by_id: dict[str, SourceDoc]) -> list[Retrieved]:
    return [Retrieved(docs_by_id[h.chunk.doc_id].name, h.chunk.text) for h in hits]


def summarise(results: list[QuestionResult]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        row: dict[str, Any] = {
            f"recall@{RECALL_K}": round(fmean(r.recall[mode] for r in results), 4),
            f"ndcg@{NDCG_K}": round(fmean(r.ndcg[mode] for r in results), 4),
        }
        for style in ("keyword", "semantic"):
            sub = [r for r in results if r.question.style == style]
            if sub:
                row[style] = {
                    f"recall@{RECALL_K}": round(fmean(r.recall[mode] for r in sub), 4),
                    f"ndcg@{NDCG_K}": round(fmean(r.ndcg[mode] for r in sub), 4),
                    "questions": len(sub),
                }
        out[mode] = row
    return out


async def misses(
    index: VectorIndex,
    results: list[QuestionResult],
    docs_by_id: dict[str, SourceDoc],
    corpus: list[Retrieved],
) -> list[dict[str, Any]]:
    """Hybrid's misses at recall@5, with where each retriever ranked the answer (depth 50).
    Hybrid's deep list fuses the same candidate lists as the measured top-10 query."""
    from datatorag.retrieval.hybrid import default_candidates, search

    fused_from = default_candidates(NDCG_K)

    out: list[dict[str, Any]] = []
    for r in results:
        if r.recall["hybrid"] >= 1.0:
            continue
        q = r.question
        deep = {
            mode: _retrieved(
                await search(
                    index,
                    None,
                    TENANT,
                    q.question,
                    DIAGNOSTIC_DEPTH,
                    mode=mode,
                    query_vector=r.vector,
                    candidates=max(fused_from, DIAGNOSTIC_DEPTH) if mode == "hybrid" else None,
                    audience=None,
                ),
                docs_by_id,
            )
            for mode in MODES
        }
        top = _retrieved(r.ranked["hybrid"], docs_by_id)[:RECALL_K]
        lost = {(lb.doc, lb.must_contain) for lb in unanswerable(q, corpus)}
        for label in q.answers:
            if any(matches(label, c) for c in top):
                continue
            out.append(
                {
                    "id": q.id,
                    "style": q.style,
                    "question": q.question,
                    "expected": f"{label.doc}: {label.must_contain!r}"
                    if label.must_contain
                    else label.doc,
                    "answer_in_index": (label.doc, label.must_contain) not in lost,
                    "rank": {m: _first_rank(label, deep[m]) for m in MODES},
                    "got": [_describe(h) for h in r.ranked["hybrid"][:3]],
                }
            )
    return out


def _first_rank(label: Any, ranked: list[Retrieved]) -> int | None:
    return next((i for i, c in enumerate(ranked, start=1) if matches(label, c)), None)


def _describe(hit: SearchHit) -> str:
    where = hit.chunk.section or hit.chunk.title or ""
    return f"{hit.chunk.path} [{where[:40]}]"


def split_of(position: int) -> str:
    """Held-out protocol: fusion settings are chosen on the "dev" half of the questions (even
    positions) and reported on the "test" half they were not chosen on (odd positions)."""
    return "dev" if position % 2 == 0 else "test"


async def fusion_sweep(
    index: VectorIndex,
    results: list[QuestionResult],
    ingested: Ingested,
    docs_by_id: dict[str, SourceDoc],
) -> list[dict[str, Any]]:
    from datatorag.retrieval.hybrid import HYBRID_RRF_K, HYBRID_WEIGHTS, default_candidates, search

    corpus = ingested.corpus()
    default = (default_candidates(NDCG_K), HYBRID_RRF_K, HYBRID_WEIGHTS["knn"])
    rows = []
    for combo in itertools.product(SWEEP_CANDIDATES, SWEEP_RRF_K, SWEEP_KNN_WEIGHT):
        candidates, rrf_k, weight = combo
        per: dict[str, dict[str, list[float]]] = {
            sp: {"recall": [], "ndcg": []} for sp in ("all", "dev", "test")
        }
        for pos, r in enumerate(results):
            hits = await search(
                index,
                None,
                TENANT,
                r.question.question,
                NDCG_K,
                mode="hybrid",
                candidates=candidates,
                query_vector=r.vector,
                rrf_k=rrf_k,
                weights={"knn": weight, "bm25": 1.0},
                audience=None,
            )
            got = _retrieved(hits, docs_by_id)
            rec = recall_at_k(r.question, got, RECALL_K)
            nd = ndcg_at_k(r.question, got, NDCG_K, corpus)
            for sp in ("all", split_of(pos)):
                per[sp]["recall"].append(rec)
                per[sp]["ndcg"].append(nd)
        row = {
            "candidates": candidates,
            "rrf_k": rrf_k,
            "knn_weight": weight,
            "default": combo == default,
        }
        for sp, m in per.items():
            suffix = "" if sp == "all" else f"_{sp}"
            row[f"recall@{RECALL_K}{suffix}"] = round(fmean(m["recall"]), 4)
            row[f"ndcg@{NDCG_K}{suffix}"] = round(fmean(m["ndcg"]), 4)
        rows.append(row)
    return rows


def held_out_selection(rows: list[dict[str, Any]], results: list[QuestionResult]) -> dict[str, Any]:
    """The setting best on the dev half, with its figures and k-NN's/BM25's on the test half."""
    r_key, n_key = f"recall@{RECALL_K}", f"ndcg@{NDCG_K}"
    best = max(rows, key=lambda x: (x[f"{n_key}_dev"], x[f"{r_key}_dev"], -x["candidates"]))
    test = [r for pos, r in enumerate(results) if split_of(pos) == "test"]
    single = {
        m: {
            r_key: round(fmean(r.recall[m] for r in test), 4),
            n_key: round(fmean(r.ndcg[m] for r in test), 4),
        }
        for m in ("knn", "bm25")
    }
    chosen = {r_key: best[f"{r_key}_test"], n_key: best[f"{n_key}_test"]}
    return {
        "chosen_on_dev": {k: best[k] for k in ("candidates", "rrf_k", "knn_weight")},
        "test_questions": len(test),
        "test": {"hybrid": chosen, **single},
        "hybrid_at_least_best_single_on_test": all(
            chosen[key] >= max(single["knn"][key], single["bm25"][key]) - 1e-9
            for key in (r_key, n_key)
        ),
    }


# ---- running one configuration -----------------------------------------------------------------


async def open_index(
    args: argparse.Namespace, settings: Settings, model_id: str, dim: int, workdir: Path, tag: str
) -> VectorIndex:
    if args.index == "opensearch":
        from datatorag.adapters.opensearch.index import OpenSearchIndex

        os_settings = settings.opensearch.model_copy(
            update={"index_prefix": f"datatorag-bench-quality-{tag}"}
        )
        return OpenSearchIndex.from_settings(
            settings.model_copy(update={"opensearch": os_settings}), model_id=model_id, dim=dim
        )
    from datatorag.adapters.embedded.lancedb_index import LanceDbIndex

    return LanceDbIndex(workdir / f"lancedb-{tag}", dim=dim, table=f"chunks_{tag}")


async def run_config(
    args: argparse.Namespace,
    settings: Settings,
    embedder: Any,
    tokenizer: Any,
    docs: list[SourceDoc],
    questions: list[Question],
    chunking: Chunking,
    workdir: Path,
    sweep: bool = False,
) -> dict[str, Any]:
    ingested = parse_and_chunk(docs, tokenizer, chunking)
    tag = f"{chunking.max_tokens}-{chunking.overlap_tokens}"
    index = await open_index(args, settings, embedder.model_id, embedder.dim, workdir, tag)
    docs_by_id = {d.doc_id: d for d in docs}
    try:
        await index.ensure()
        if args.index == "opensearch":  # a shared server: start from a clean slate
            await drop_chunks(index, docs)
        await index_chunks(index, embedder, ingested)
        results, per_query_ms = await evaluate(index, embedder, questions, ingested, docs_by_id)
        corpus = ingested.corpus()
        missed = await misses(index, results, docs_by_id, corpus)
        swept = await fusion_sweep(index, results, ingested, docs_by_id) if sweep else []
        selection = held_out_selection(swept, results) if swept else None
    finally:
        if args.index == "opensearch":
            await drop_opensearch(index)
        await index.close()
    lost = [
        f"{q.id}: {lb.doc} {lb.must_contain!r}" for q in questions for lb in unanswerable(q, corpus)
    ]
    return {
        "chunking": {
            "asked": chunking.label,
            "max_tokens": chunking.max_tokens,
            "overlap_tokens": chunking.overlap_tokens,
        },
        "chunks": len(ingested.chunks),
        "mean_chunk_tokens": round(fmean(c.token_count for _, c in ingested.chunks), 1),
        "modes": summarise(results),
        "hybrid_misses": missed,
        "fusion_sweep": swept,
        "fusion_selection": selection,
        "answers_not_in_any_chunk": lost,
        "per_question": {
            r.question.id: {m: [round(r.recall[m], 3), round(r.ndcg[m], 3)] for m in MODES}
            for r in results
        },
        "seconds": {k: round(v, 2) for k, v in ingested.seconds.items()},
        "per_query_ms": round(per_query_ms, 2),
    }


# ---- reporting ---------------------------------------------------------------------------------


def print_config(res: dict[str, Any], n_questions: int) -> None:
    ch = res["chunking"]
    print(
        f"\nchunking {ch['asked']} -> {ch['max_tokens']}/{ch['overlap_tokens']} tokens: "
        f"{res['chunks']} chunks (mean {res['mean_chunk_tokens']} tokens), "
        f"{n_questions} questions"
    )
    r_key, n_key = f"recall@{RECALL_K}", f"ndcg@{NDCG_K}"
    print(f"  {'mode':<8}{r_key:>10}{n_key:>10}   {'keyword r/n':>13}   {'semantic r/n':>13}")
    for mode in MODES:
        row = res["modes"][mode]
        styles = [
            f"{row[s][r_key]:.3f}/{row[s][n_key]:.3f}" if s in row else "-"
            for s in ("keyword", "semantic")
        ]
        print(
            f"  {mode:<8}{row[r_key]:>10.3f}{row[n_key]:>10.3f}   {styles[0]:>13}   {styles[1]:>13}"
        )


def print_sweep(res: dict[str, Any]) -> None:
    if not res["fusion_sweep"]:
        return
    sel = res.get("fusion_selection")
    if sel:
        r_key, n_key = f"recall@{RECALL_K}", f"ndcg@{NDCG_K}"
        print(
            f"\nheld-out fusion check: chosen on the dev half {sel['chosen_on_dev']}; "
            f"on the {sel['test_questions']} test questions:"
        )
        for mode, m in sel["test"].items():
            print(f"  {mode:<8}{m[r_key]:>10.3f}{m[n_key]:>10.3f}")
        print(
            "  hybrid >= best single retriever on test: "
            f"{sel['hybrid_at_least_best_single_on_test']}"
        )
    r_key, n_key = f"recall@{RECALL_K}", f"ndcg@{NDCG_K}"
    print(
        f"\nhybrid fusion diagnostics (chunking {res['chunking']['asked']}; a guide for the "
        "fusion defaults, not a tuned result):"
    )
    print(f"  {'candidates':>10}{'rrf_k':>7}{'knn w':>7}{r_key:>10}{n_key:>10}")
    for row in sorted(res["fusion_sweep"], key=lambda x: (-x[n_key], -x[r_key])):
        mark = "  <- product default" if row["default"] else ""
        print(
            f"  {row['candidates']:>10}{row['rrf_k']:>7}{row['knn_weight']:>7.1f}"
            f"{row[r_key]:>10.3f}{row[n_key]:>10.3f}{mark}"
        )


def print_misses(res: dict[str, Any]) -> None:
    missed = res["hybrid_misses"]
    print(
        f"\nhybrid misses at recall@{RECALL_K} ({len(missed)}; rank = first answer chunk per "
        f"retriever within {DIAGNOSTIC_DEPTH}, '-' = not found):"
    )
    for m in missed:
        ranks = " ".join(f"{k}={v if v is not None else '-'}" for k, v in m["rank"].items())
        flag = "" if m["answer_in_index"] else "  [answer phrase in no chunk: parsing/chunking]"
        print(
            f"  {m['id']} ({m['style']}) {m['question']}\n"
            f"      want {m['expected']}  {ranks}{flag}\n"
            f"      got  {'; '.join(m['got'])}"
        )
    if res["answers_not_in_any_chunk"]:
        print(
            "  answer phrases found in no indexed chunk: "
            + ", ".join(res["answers_not_in_any_chunk"])
        )


# ---- main --------------------------------------------------------------------------------------


def _parse_chunkings(spec: str, settings: Settings) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item == "settings":
            c = settings.chunking
            out.append(
                (f"settings ({c.max_tokens}/{c.overlap_tokens})", c.max_tokens, c.overlap_tokens)
            )
            continue
        m = re.fullmatch(r"(\d+)/(\d+)", item)
        if not m:
            raise SystemExit(f"--chunking: {item!r} is not 'settings' or MAX/OVERLAP (e.g. 256/32)")
        out.append((item, int(m.group(1)), int(m.group(2))))
    return out


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.bench_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"settings chunking only, first {QUICK_QUESTIONS} questions",
    )
    p.add_argument("--index", choices=("lancedb", "opensearch"), default="lancedb")
    p.add_argument("--opensearch-url", default=None, help="with --index opensearch")
    p.add_argument(
        "--chunking",
        default="settings,256/32,128/16",
        help="comma-separated: 'settings' and/or MAX/OVERLAP token pairs",
    )
    p.add_argument("--questions", type=Path, default=None, help="another questions.yaml")
    p.add_argument("--no-sweep", action="store_true", help="skip the fusion diagnostics")
    args = p.parse_args(argv)
    if args.index == "opensearch" and not args.opensearch_url:
        p.error("--index opensearch needs --opensearch-url URL")
    if args.quick:
        args.chunking = "settings"
        args.no_sweep = True
    return args


async def amain(argv: list[str] | None = None) -> dict[str, Any]:
    from datatorag.embedding.engine import load_tokenizer
    from datatorag.embedding.local import LocalEmbedder

    args = _args(argv)
    settings = (
        Settings(opensearch=OpenSearchSettings(url=args.opensearch_url))
        if args.opensearch_url
        else Settings()
    )
    questions = load_questions(args.questions) if args.questions else load_questions()
    if args.quick:
        questions = questions[:QUICK_QUESTIONS]
    src = corpus_dir()
    started = time.perf_counter()
    embedder = LocalEmbedder(settings.embedding)
    tokenizer = load_tokenizer(settings.embedding.model)
    load_s = time.perf_counter() - started
    configs = [
        effective_chunking(label, mt, ov, embedder.max_seq)
        for label, mt, ov in _parse_chunkings(args.chunking, settings)
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            workdir = Path(tmp)
            (workdir / "pdf").mkdir()
            started = time.perf_counter()
            docs = build_corpus(src, workdir / "pdf")
            convert_s = time.perf_counter() - started
            n_pdf = sum(d.filename.endswith(".pdf") for d in docs)
            print(
                f"corpus {src.name}: {len(docs)} documents ({n_pdf} converted to PDF in "
                f"{convert_s:.1f}s, {len(docs) - n_pdf} Markdown); index {args.index}; "
                f"model {embedder.model_id} (window {embedder.max_seq} tokens)"
            )
            runs = []
            for n, chunking in enumerate(configs):
                res = await run_config(
                    args,
                    settings,
                    embedder,
                    tokenizer,
                    docs,
                    questions,
                    chunking,
                    workdir,
                    sweep=n == 0 and not args.no_sweep,
                )
                print_config(res, len(questions))
                runs.append(res)
    finally:
        await embedder.close()

    main = runs[0]
    print_sweep(main)
    print_misses(main)
    data = result_json(args, main, runs, questions, docs, n_pdf, load_s, convert_s)
    name = "quality" if args.index == "lancedb" else f"quality-{args.index}"
    path = write_result(name, data)
    met = all(t["met"] for t in data["targets"].values())
    print(
        f"\ntargets {'met' if met else 'NOT met'}: "
        + "; ".join(
            f"{k}: {v['actual']} vs {v['target']} {'ok' if v['met'] else 'MISSED'}"
            for k, v in data["targets"].items()
        )
    )
    print(f"wrote {path}")
    return data


def result_json(
    args: argparse.Namespace,
    main: dict[str, Any],
    runs: list[dict[str, Any]],
    questions: list[Question],
    docs: list[SourceDoc],
    n_pdf: int,
    load_s: float,
    convert_s: float,
) -> dict[str, Any]:
    r_key, n_key = f"recall@{RECALL_K}", f"ndcg@{NDCG_K}"
    modes = main["modes"]
    best = {key: max(modes[b][key] for b in BASELINES) for key in (r_key, n_key)}
    hybrid = modes["hybrid"]
    targets = {
        f"hybrid {r_key} >= max(knn, bm25)": target(
            best[r_key], hybrid[r_key], hybrid[r_key] >= best[r_key]
        ),
        f"hybrid {n_key} >= max(knn, bm25)": target(
            best[n_key], hybrid[n_key], hybrid[n_key] >= best[n_key]
        ),
        f"hybrid {r_key} > {RELEVANCE_FLOOR} (BRIEF seed: relevance > 80%)": target(
            RELEVANCE_FLOOR, hybrid[r_key], hybrid[r_key] > RELEVANCE_FLOOR
        ),
    }
    sel = main.get("fusion_selection")
    if sel:
        t = sel["test"]
        targets["held-out: fusion chosen on dev, hybrid >= max(knn, bm25) on test"] = target(
            {key: max(t["knn"][key], t["bm25"][key]) for key in (r_key, n_key)},
            t["hybrid"],
            sel["hybrid_at_least_best_single_on_test"],
        )
    return {
        "metrics": {
            "index": args.index,
            "quick": args.quick,
            "questions": len(questions),
            "documents": {"total": len(docs), "pdf": n_pdf, "markdown": len(docs) - n_pdf},
            "chunking": main["chunking"],
            "chunks": main["chunks"],
            "hybrid": hybrid,
            "hybrid_misses": main["hybrid_misses"],
            "fusion_sweep": main["fusion_sweep"],
            "fusion_selection": main.get("fusion_selection"),
            "answers_not_in_any_chunk": main["answers_not_in_any_chunk"],
            "per_question": main["per_question"],
            "other_chunkings": [
                {k: r[k] for k in ("chunking", "chunks", "mean_chunk_tokens", "modes")}
                | {"hybrid_misses": [m["id"] for m in r["hybrid_misses"]]}
                for r in runs[1:]
            ],
            "seconds": main["seconds"]
            | {"model_load_s": round(load_s, 2), "pdf_convert_s": round(convert_s, 2)},
            "per_query_ms": main["per_query_ms"],
        },
        "baseline": {m: modes[m] for m in BASELINES},
        "ratios": {
            f"hybrid/max(knn,bm25) {key}": round(hybrid[key] / best[key], 4) if best[key] else None
            for key in (r_key, n_key)
        },
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    asyncio.run(amain(argv))  # missed targets are reported in the summary and JSON, not exit codes
    return 0


if __name__ == "__main__":
    sys.exit(main())
