# DatatoRAG — everything a developer or CI runs. The venv lives outside the clone (scripts/venv.sh).
SHELL := /bin/bash
PY := .venv/bin/python
# The shared venv holds dependencies only; this clone's code comes from its own root.
export PYTHONPATH := $(CURDIR)/libs:$(CURDIR)
PYTEST_ARGS ?=

.PHONY: install run test test-fast test-images bench bench-quick bench-gpu bench-peers lint fmt images deploy-aws opensearch-start opensearch-stop clean

install:            ## create/refresh the cached virtualenv and install the project (editable)
	@bash scripts/venv.sh >/dev/null

run: install        ## the whole product on one machine: ingest the sample corpus, gateway on :8080
	bin/datatorag up

test: install       ## every test but the container ones; starts OpenSearch, moto, FTP/SFTP servers as local processes
	.venv/bin/pytest -q -ra --ignore=tests/containers $(PYTEST_ARGS)

test-fast: install  ## unit + embedded conformance only (no external servers)
	.venv/bin/pytest -q -ra tests/unit tests/conformance -k "not sqs and not s3 and not dynamodb and not opensearch" $(PYTEST_ARGS)

bench: install      ## all benchmarks; results in .bench/results, summary in BENCHMARKS.md
	$(PY) -m bench.run

bench-quick: install
	$(PY) -m bench.run --quick

bench-gpu: install  ## on a lent GPU (< 5 min): EmbeddingGemma architecture, bf16 vs fp32, MFU, engine vs plain encode
	$(PY) -m bench.bench_gpu

bench-peers:        ## create (once) the peers' venv: ChromaDB, fastembed, Haystack (never in .venv)
	@bash bench/peers/venv.sh

LINT_PATHS := libs services tests bench samples

lint: install       ## ruff (rules + format), mypy (strict), import-linter (layers, no torch where no model runs)
	.venv/bin/ruff check $(LINT_PATHS)
	.venv/bin/ruff format --check $(LINT_PATHS)
	.venv/bin/mypy
	.venv/bin/lint-imports

fmt: install        ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix $(LINT_PATHS)
	.venv/bin/ruff format $(LINT_PATHS)

images:             ## the images with podman (slim, model, dev-servers, opensearch) from a local Debian base
	bash scripts/containers/images.sh

test-images: install images  ## build the images, run them, run docker-compose.yml under podman-compose (host network)
	.venv/bin/pytest -q -ra tests/containers $(PYTEST_ARGS)

AWS_PARAMS ?= deploy/cloudformation/params.env
AWS_CMD ?= deploy
deploy-aws:         ## AWS stacks in order (AWS_PARAMS=<file>, AWS_CMD=deploy|plan|outputs|helm-values|teardown)
	bash deploy/cloudformation/deploy.sh -f $(AWS_PARAMS) $(AWS_CMD)

opensearch-start:
	bash scripts/opensearch.sh start

opensearch-stop:
	bash scripts/opensearch.sh stop

clean:
	rm -rf data .bench .pytest_cache
