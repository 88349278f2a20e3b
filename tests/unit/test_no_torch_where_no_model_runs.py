"""Services that never run a model never import torch (it is ~3 GB and seconds of start-up; the
slim image has none). import-linter forbids the imports statically; this proves it at run time,
including what third-party packages pull in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "sentence_transformers", "triton")

PROGRAMS = {
    # the gateway in production: wiring, REST, gRPC, the HTTP embedder client, OpenSearch
    "query-gateway": "import datatorag.entrypoints.serve_gateway, datatorag.gateway.grpc_server,"
    " datatorag.embedding.http, datatorag.adapters.opensearch.index",
    # the connector: every source kind, the scheduler, S3/SQS/DynamoDB adapters
    "connector": "import datatorag.entrypoints.serve_connector, datatorag.connectors.builder,"
    " datatorag.adapters.aws.sqs_queue, datatorag.adapters.aws.dynamodb_registry",
    # the parser, including loading the chunk tokenizer and chunking a document
    "parser": "from datatorag.chunking import chunk_document, load_chunk_tokenizer\n"
    "from datatorag.parsing import parse_document\n"
    "import datatorag.pipeline.stages\n"
    "doc = parse_document(b'# Leave\\n\\nTwenty days a year.', filename='leave.md')\n"
    "assert chunk_document(doc, load_chunk_tokenizer(), max_tokens=64, overlap_tokens=8)",
    "indexer": "import datatorag.entrypoints.serve, datatorag.adapters.opensearch.index,"
    " datatorag.adapters.embedded.lancedb_index",
}


@pytest.mark.parametrize("service", sorted(PROGRAMS))
def test_service_imports_no_model_runtime(service: str) -> None:
    code = PROGRAMS[service] + (
        f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
