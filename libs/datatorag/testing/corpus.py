"""Index a folder of documents in-process, the way the pipeline does, for tests, benchmarks and
the evaluation harness: ``parse_document`` -> ``chunk_document`` (the embedding model's
tokenizer, settings' chunk sizes) -> ``embed_documents`` -> ``upsert``, with registry records
marked INDEXED so a gateway on these stores sees ordinary documents. Content-addressed ids and
versions, like the connector's: the same file indexes to the same chunk ids."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from datatorag.chunking import chunk_document, load_chunk_tokenizer
from datatorag.config import ChunkingSettings, sample_corpus
from datatorag.domain.models import ChunkRecord, DocumentRecord, DocumentStatus
from datatorag.embedding.passage import passage_text
from datatorag.parsing import parse_document
from datatorag.ports import Embedder, Registry, VectorIndex


def corpus_files(folder: Path, exclude_dirs: Iterable[str] = ("_src",)) -> list[Path]:
    skip = set(exclude_dirs)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not (set(p.relative_to(folder).parts[:-1]) & skip)
    )


async def index_folder(
    index: VectorIndex,
    embedder: Embedder,
    tenant: str,
    folder: Path | None = None,
    *,
    source: str = "samples",
    registry: Registry | None = None,
    chunking: ChunkingSettings | None = None,
    extra: dict[str, bytes] | None = None,
) -> list[ChunkRecord]:
    """Index every file of ``folder`` (default: the shipped sample corpus, without ``_src``) and
    the ``extra`` documents (name -> bytes) for ``tenant``; returns the chunk records."""
    folder = folder or sample_corpus()
    chunking = chunking or ChunkingSettings()
    tokenizer = load_chunk_tokenizer()
    docs = [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in corpus_files(folder)]
    docs += list((extra or {}).items())
    records: list[ChunkRecord] = []
    for seq, (name, data) in enumerate(docs, start=1):
        digest = hashlib.sha256(data).hexdigest()
        doc_id = hashlib.sha256(f"{tenant}/{source}/{name}".encode()).hexdigest()[:16]
        version = digest[:16]
        parsed = parse_document(data, filename=name)
        chunks = chunk_document(
            parsed,
            tokenizer,
            max_tokens=chunking.max_tokens,
            overlap_tokens=chunking.overlap_tokens,
        )
        vectors = await embedder.embed_documents(
            [passage_text(c.text, c.title or parsed.title, c.section) for c in chunks],
            [c.title or parsed.title for c in chunks],
        )
        doc_records = [
            ChunkRecord(
                id=ChunkRecord.make_id(doc_id, version, c.index),
                tenant=tenant,
                doc_id=doc_id,
                version=version,
                chunk_index=c.index,
                text=c.text,
                title=c.title or parsed.title,
                section=c.section,
                page_start=c.page_start,
                page_end=c.page_end,
                source=source,
                path=name,
                doc_type=parsed.doc_type,
                vector=vectors[j].tolist(),
            )
            for j, c in enumerate(chunks)
        ]
        await index.upsert(doc_records)
        records.extend(doc_records)
        if registry is not None:
            await registry.put_version(
                DocumentRecord(
                    tenant=tenant,
                    doc_id=doc_id,
                    version=version,
                    seq=seq,
                    source=source,
                    path=name,
                    content_hash=digest,
                    title=parsed.title,
                    doc_type=parsed.doc_type,
                    size=len(data),
                )
            )
            await registry.advance(
                tenant, doc_id, version, DocumentStatus.INDEXED, chunk_count=len(doc_records)
            )
    return records
