"""The images as built (scripts/containers/images.sh, `make images`), run: non-root, healthchecks
in their config, no torch in the slim image, a model image that embeds, OpenSearch with k-NN."""

from __future__ import annotations

import json

import pytest

from tests.containers._podman import inspect_image, run_in

APP_IMAGES = ("slim", "model", "dev-servers")
NO_MODEL_SERVICES = (
    "import datatorag.entrypoints.serve_gateway, datatorag.entrypoints.serve_connector,"
    " datatorag.gateway.grpc_server, datatorag.pipeline.stages, datatorag.adapters.aws.sqs_queue,"
    " datatorag.adapters.opensearch.index\n"
    "from datatorag.chunking import chunk_document, load_chunk_tokenizer\n"
    "from datatorag.parsing import parse_document\n"
    "doc = parse_document(b'# Leave\\n\\nTwenty days a year.', filename='leave.md')\n"
    "assert chunk_document(doc, load_chunk_tokenizer(), max_tokens=64, overlap_tokens=8)\n"
)


@pytest.mark.parametrize("name", APP_IMAGES)
def test_runs_as_a_numeric_non_root_user_with_a_healthcheck(
    images: dict[str, str], name: str
) -> None:
    image = inspect_image(images[name])
    config = image["Config"]
    assert config["User"] == "10001:10001"  # numeric: Kubernetes' runAsNonRoot can verify it
    health = image["Healthcheck"]["Test"]  # podman shows the docker-format healthcheck here
    assert health[0] == "CMD" and health[1] in ("datatorag-healthcheck", "datatorag-moto")
    assert "PATH=/opt/venv/bin:" in " ".join(config["Env"])
    out = run_in(
        images[name],
        "-c",
        "import os, sys; print(os.getuid(), sys.version_info[:2])",
        entrypoint="python3",
    )
    assert out.split(None, 1) == ["10001", "(3, 11)\n"]


def test_slim_image_runs_every_no_model_service_without_torch(images: dict[str, str]) -> None:
    code = NO_MODEL_SERVICES + (
        "import importlib.util, json, sys\n"
        "print(json.dumps({'installed': [m for m in ('torch', 'transformers',"
        " 'sentence_transformers', 'triton') if importlib.util.find_spec(m)],"
        " 'nvidia': [p for p in sys.path if 'nvidia' in p]}))\n"
    )
    out = json.loads(run_in(images["slim"], "-c", code, entrypoint="python3").splitlines()[-1])
    assert out == {"installed": [], "nvidia": []}
    # the parser OCRs with Tesseract: the binary and its English model are in the image
    assert "eng" in run_in(images["slim"], "--list-langs", entrypoint="tesseract")


def test_model_image_embeds_with_the_bundled_model_and_carries_cuda(images: dict[str, str]) -> None:
    code = (
        "import json, torch\n"
        "from datatorag.config import EmbeddingSettings\n"
        "from datatorag.embedding.engine import EmbeddingEngine\n"
        "e = EmbeddingEngine(EmbeddingSettings(model='minilm', device='cpu'))\n"
        "v, _ = e.encode(e.query_inputs(['how many vacation days do I get?']))\n"
        "print(json.dumps({'dim': len(v[0]), 'cuda': torch.version.cuda,"
        " 'cuda_available': torch.cuda.is_available()}))\n"
    )
    out = json.loads(run_in(images["model"], "-c", code, entrypoint="python3").splitlines()[-1])
    assert out["dim"] == 384
    # PyPI's torch wheels bring the CUDA runtime: the same image serves GPU nodes
    assert out["cuda"] is not None and int(out["cuda"].split(".")[0]) >= 12
    assert out["cuda_available"] is False  # no GPU here; CPU is the fallback, not an error


def test_dev_servers_image_has_moto_and_the_ftp_server(images: dict[str, str]) -> None:
    out = run_in(
        images["dev-servers"],
        "-c",
        "import moto, pyftpdlib, datatorag.adapters.aws.provision; print(moto.__version__)",
        entrypoint="python3",
    )
    assert out.strip().count(".") == 2


def test_opensearch_image_has_knn(images: dict[str, str]) -> None:
    out = run_in(
        images["opensearch"], "list", entrypoint="/usr/share/opensearch/bin/opensearch-plugin"
    )
    assert "opensearch-knn" in out.split()
