"""Parser benchmark: pages/s of our parse + chunk path against a bare pdfplumber ``extract_text``.

Corpus: generated 10-page text PDFs (30 by default) with headings, a running header, a
"Page n of N" footer and one ruled table each (10% of pages have a table). Both paths run in this
one process on the same bytes. Tokenizers run single-threaded so that the per-core figure is
honest; "per core" divides pages by the process CPU time (all threads), "wall" by elapsed time.

    .venv/bin/python -m bench.bench_parser           # 30 docs x 10 pages
    .venv/bin/python -m bench.bench_parser --quick   # 5 docs, smoke run
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # before tokenizers is imported
os.environ.setdefault("RAYON_NUM_THREADS", "1")

from bench._common import target, write_result
from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.parsing import parse_document
from tests.fixtures.documents import text_pdf

TARGET_PAGES_PER_S_PER_CORE = 100.0
PAGES_PER_DOC = 10


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 documents, one round")
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of our path (median kept)")
    args = parser.parse_args(argv)
    n_docs, rounds = (5, 1) if args.quick else (args.docs, args.rounds)

    corpus = [
        text_pdf(
            PAGES_PER_DOC, table_page=(i % PAGES_PER_DOC) + 1, seed=i + 1, paragraphs_per_page=5
        )
        for i in range(n_docs)
    ]
    pages = n_docs * PAGES_PER_DOC
    tokenizer = load_chunk_tokenizer()
    chunk_counts: list[int] = []

    def ours() -> None:
        chunk_counts.clear()
        for i, data in enumerate(corpus):
            doc = parse_document(data, filename=f"doc{i}.pdf")
            chunk_counts.append(len(chunk_document(doc, tokenizer, 512, 50)))

    def parse_only() -> None:
        for i, data in enumerate(corpus):
            parse_document(data, filename=f"doc{i}.pdf")

    def pdfplumber_text() -> None:
        import pdfplumber

        for data in corpus:
            with pdfplumber.open(io.BytesIO(data)) as pdf:
                for page in pdf.pages:
                    page.extract_text()

    # warm up: imports, PDFium init, tokenizer caches
    parse_document(corpus[0], filename="warm.pdf")
    chunk_document(parse_document(corpus[0], filename="warm.pdf"), tokenizer)

    runs = [_timed(ours) for _ in range(rounds)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    _, parse_cpu = _timed(parse_only)
    base_wall, base_cpu = _timed(pdfplumber_text)

    ours_core = pages / cpu if cpu else float("inf")
    base_core = pages / base_cpu if base_cpu else float("inf")
    metrics = {
        "documents": n_docs,
        "pages": pages,
        "pages_with_tables": n_docs,
        "chunks": sum(chunk_counts),
        "rounds": rounds,
        "pages_per_s_wall": round(pages / wall, 1),
        "pages_per_s_per_core": round(ours_core, 1),
        "parse_only_pages_per_s_per_core": round(pages / parse_cpu, 1) if parse_cpu else None,
        "ms_per_10_page_doc": round(wall / n_docs * 1000, 2),
        "cpu_s": round(cpu, 3),
    }
    baseline = {
        "what": "pdfplumber open + extract_text() of every page, same PDFs, same process",
        "pages_per_s_wall": round(pages / base_wall, 1),
        "pages_per_s_per_core": round(base_core, 1),
        "cpu_s": round(base_cpu, 3),
    }
    ratios = {"pages_per_s_per_core_vs_pdfplumber": round(ours_core / base_core, 1)}
    targets = {
        "pages_per_s_per_core": target(
            TARGET_PAGES_PER_S_PER_CORE,
            metrics["pages_per_s_per_core"],
            ours_core >= TARGET_PAGES_PER_S_PER_CORE,
        )
    }
    result = {
        "metrics": metrics,
        "baseline": baseline,
        "ratios": ratios,
        "targets": targets,
        "quick": args.quick,
    }
    path = write_result("parser", result)

    print(
        f"parser bench: {n_docs} PDFs x {PAGES_PER_DOC} pages ({n_docs} table pages), "
        f"{sum(chunk_counts)} chunks of <= 512 tokens"
    )
    print(
        f"  ours (parse + chunk): {metrics['pages_per_s_per_core']:>8.1f} pages/s per core "
        f"({metrics['pages_per_s_wall']:.1f} wall; parse alone "
        f"{metrics['parse_only_pages_per_s_per_core']:.1f})"
    )
    print(f"  pdfplumber text only: {baseline['pages_per_s_per_core']:>8.1f} pages/s per core")
    print(
        f"  ratio {ratios['pages_per_s_per_core_vs_pdfplumber']}x; target >= "
        f"{TARGET_PAGES_PER_S_PER_CORE:.0f} pages/s per core: "
        f"{'met' if targets['pages_per_s_per_core']['met'] else 'NOT met'}"
    )
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
