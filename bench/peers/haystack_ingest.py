"""The Haystack 2.x side of bench/bench_ingestion.py, run in the peers' venv (bench/peers/venv.sh).

Haystack's own indexing pipeline as its documentation builds it: PyPDFToDocument ->
DocumentCleaner -> DocumentSplitter (words, sized like our chunks) ->
SentenceTransformersDocumentEmbedder (the same local MiniLM directory, CPU) -> DocumentWriter
into an InMemoryDocumentStore. Timed from the PDFs on disk to the last document written. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
from haystack import Pipeline
from haystack.components.converters import PyPDFToDocument
from haystack.components.embedders import SentenceTransformersDocumentEmbedder
from haystack.components.preprocessors import DocumentCleaner, DocumentSplitter
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pdfs", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--words", type=int, default=190, help="~256 MiniLM tokens")
    ap.add_argument("--overlap", type=int, default=37, help="~50 tokens")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    files = sorted(Path(args.pdfs).glob("*.pdf"))
    store = InMemoryDocumentStore()
    p = Pipeline()
    p.add_component("convert", PyPDFToDocument())
    p.add_component("clean", DocumentCleaner())
    p.add_component(
        "split",
        DocumentSplitter(split_by="word", split_length=args.words, split_overlap=args.overlap),
    )
    p.add_component(
        "embed",
        SentenceTransformersDocumentEmbedder(
            model=args.model_dir,
            local_files_only=True,
            progress_bar=False,
            batch_size=64,
            normalize_embeddings=True,
        ),
    )
    p.add_component("write", DocumentWriter(document_store=store))
    p.connect("convert", "clean")
    p.connect("clean", "split")
    p.connect("split", "embed")
    p.connect("embed", "write")
    p.warm_up()  # model load, outside the timing as ours is
    t0 = time.perf_counter()
    p.run({"convert": {"sources": files}})
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "docs": len(files),
                "chunks": store.count_documents(),
                "seconds": seconds,
                "torch_threads": torch.get_num_threads(),
                "cpus": len(os.sched_getaffinity(0)),
            }
        )
    )


if __name__ == "__main__":
    main()
