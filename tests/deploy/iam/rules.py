"""The explicit part of the derivation: what each service runs, which names hold ports, where
AWS is called directly, and how operations become IAM actions. Extend these tables when the code
grows a service, a port receiver or an AWS call the derivation refuses to guess."""

from __future__ import annotations

from dataclasses import dataclass

from datatorag import ports
from datatorag.ports.blobstore import PROBE_PREFIX
from tests.deploy._paths import ROOT

PKG_DIR = ROOT / "libs" / "datatorag"
PKG = "datatorag"

# --- what each service runs --------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    entries: tuple[str, ...]  # "module:function" or "module:Class.method"
    # blob prefixes this service only reads (it writes every other prefix its code names)
    read_only_prefixes: frozenset[str] = frozenset()


SERVICES: dict[str, Service] = {
    "connector": Service(
        ("datatorag.entrypoints.serve_connector:serve_connector",),
        read_only_prefixes=frozenset({"chunks", "embedded"}),  # the stall reaper checks them
    ),
    "parser": Service(
        (
            "datatorag.entrypoints.serve:serve_worker",
            "datatorag.bootstrap.components:parser_worker",
        ),
        read_only_prefixes=frozenset({"raw"}),
    ),
    "embedder": Service(
        (
            "datatorag.entrypoints.serve:serve_worker",
            "datatorag.bootstrap.components:embedder_worker",
        ),
        read_only_prefixes=frozenset({"chunks"}),
    ),
    "indexer": Service(
        (
            "datatorag.entrypoints.serve:serve_worker",
            "datatorag.bootstrap.components:indexer_worker",
        ),
        read_only_prefixes=frozenset({"embedded"}),
    ),
    "query-gateway": Service(("datatorag.entrypoints.serve_gateway:serve_gateway",)),
    # the `datatorag init` Job (the chart's init-job.yaml)
    "init": Service(("datatorag.bootstrap.provisioning:provision",)),
}

# Built from settings; what a service takes from them is read from the Components accessors.
OPAQUE = ("datatorag.bootstrap.components:Components", "datatorag.bootstrap.factory:")
COMPONENTS = "datatorag.bootstrap.components:Components"
# the names a Components goes by (``c = Components(settings)``, ``def f(c: Components)``,
# ``self.c = c``)
COMPONENTS_NAMES = ("c", "components")
ACCESSORS = {
    "queue": "queue",
    "registry": "registry",
    "blobstore": "blobstore",
    "index": "index",
    "embedding_cache": "embedding_cache",
}
# Components methods that wrap an adapter in package code the service then runs: the closure
# follows their body (``document_embedder``: the model behind ``CachedEmbedder`` and the cache)
COMPONENTS_FOLLOWED = frozenset({"document_embedder"})
# factory functions called directly (datatorag init) build the same adapters
FACTORY = {
    "make_queue": "queue",
    "make_registry": "registry",
    "make_blobstore": "blobstore",
    "make_vector_index": "index",
    "make_embedding_cache": "embedding_cache",
}
# Code for the embedded mode only (``if settings.mode is Mode.EMBEDDED:``, the ``else`` of
# ``... is Mode.PRODUCTION``) never runs under these roles: the derivation leaves it out.
MODE_ENUM = "Mode"
PRODUCTION_MODE = "PRODUCTION"
LOGICAL_QUEUES = ("parse", "embed", "index")

# --- ports and their production adapters ------------------------------------------------------

PORTS: dict[str, type] = {
    "queue": ports.Queue,
    "blobstore": ports.BlobStore,
    "registry": ports.Registry,
    "index": ports.VectorIndex,
    "embedding_cache": ports.EmbeddingCache,
}
PORT_ADAPTERS = {
    "queue": "datatorag.adapters.aws.sqs_queue:SqsQueue",
    "blobstore": "datatorag.adapters.aws.s3_blobstore:S3BlobStore",
    "registry": "datatorag.adapters.aws.dynamodb_registry:DynamoDbRegistry",
    "index": "datatorag.adapters.opensearch.index:OpenSearchIndex",
    # in the registry's table (``DATATORAG_AWS_REGISTRY_TABLE``)
    "embedding_cache": "datatorag.adapters.aws.dynamodb_embedding_cache:DynamoDbEmbeddingCache",
}
# receiver names (last attribute, leading underscores dropped) that hold a port
RECEIVERS = {
    "queue": "queue",
    "queues": "queue",
    "out": "queue",
    "index_queue": "queue",
    "parse_queue": "queue",
    "registry": "registry",
    "reg": "registry",
    "blobstore": "blobstore",
    "index": "index",
    "cache": "embedding_cache",  # CachedEmbedder.cache
    "embedding_cache": "embedding_cache",
}
# blob keys by where the code takes them from: key builders, message fields, the cursor store
BLOB_PREFIXES = {
    "raw_key": "raw",
    "blob_key": "raw",
    "chunks_key": "chunks",
    "records_key": "embedded",
    "records_prefix": "embedded",  # every model's records of a document (deletion lists them)
    "BlobCursorStore": "state",
}
# the blob store's readiness check writes and deletes one object under PROBE_PREFIX
BLOB_CHECK_PREFIX = PROBE_PREFIX.strip("/")
BLOB_READS = frozenset({"get", "open", "head", "exists"})
BLOB_WRITES = frozenset({"put", "put_stream"})

# AWS calls made outside the port adapters, and what they touch
DIRECT_TARGETS = {
    "datatorag.connectors.s3:S3Source": "landing",
    "datatorag.connectors.landing:S3Landing": "landing",
    "datatorag.connectors.secrets:SecretResolver": "secrets",
    "datatorag.adapters.aws.provision:": "provisioned",
    # answers, when DATATORAG_ANSWER_PROVIDERS names bedrock: the configured model
    "datatorag.adapters.aws.bedrock:BedrockGenerator": "model",
}

# --- operations -> IAM actions ----------------------------------------------------------------

IAM_PREFIX = {
    "sqs": "sqs",
    "s3": "s3",
    "dynamodb": "dynamodb",
    "secretsmanager": "secretsmanager",
    "bedrock-runtime": "bedrock",
}
# operations authorised by another action (everything else is "<prefix>:<Operation>")
OPERATION_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sqs", "SendMessageBatch"): ("sqs:SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("sqs:DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("sqs:ChangeMessageVisibility",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "PutPublicAccessBlock"): ("s3:PutBucketPublicAccessBlock",),
    ("s3", "PutBucketEncryption"): ("s3:PutEncryptionConfiguration",),
    ("s3", "PutBucketLifecycleConfiguration"): ("s3:PutLifecycleConfiguration",),
    # Converse is authorised as the model invocation it makes
    ("bedrock-runtime", "Converse"): ("bedrock:InvokeModel",),
    ("bedrock-runtime", "ConverseStream"): ("bedrock:InvokeModelWithResponseStream",),
    # a transaction is authorised item by item (see TRANSACT_ITEM_ACTIONS)
    ("dynamodb", "TransactWriteItems"): (),
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
S3_BUCKET_ACTIONS = frozenset(
    {
        "s3:ListBucket",
        "s3:CreateBucket",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
    }
)
# `datatorag init` creates what is missing; CloudFormation owns these, so its role lacks them
# and init fails loudly (AccessDenied) instead of creating a resource outside the stacks.
CLOUDFORMATION_OWNS = frozenset(
    {
        "sqs:CreateQueue",
        "s3:CreateBucket",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutLifecycleConfiguration",
        "dynamodb:CreateTable",
        "dynamodb:UpdateTable",
    }
)
# data under the deployment's KMS key: what a reader and a writer need of the key (DynamoDB and
# OpenSearch decrypt under the grants they create with the table and the domain)
KMS_FOR = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
    "sqs:ReceiveMessage": ("kms:Decrypt",),
    "s3:GetObject": ("kms:Decrypt",),
    # multipart uploads decrypt the parts' data key when completing
    "s3:PutObject": ("kms:GenerateDataKey", "kms:Decrypt"),
    "secretsmanager:GetSecretValue": ("kms:Decrypt",),
}
ES_VERBS = {
    "GET": "es:ESHttpGet",
    "HEAD": "es:ESHttpHead",
    "POST": "es:ESHttpPost",
    "PUT": "es:ESHttpPut",
    "DELETE": "es:ESHttpDelete",
    "PATCH": "es:ESHttpPatch",
}
# opensearch-py helpers and the API they call
OPENSEARCH_HELPERS = {"async_bulk": "bulk", "async_streaming_bulk": "bulk", "async_scan": "search"}


class DerivationError(AssertionError):
    """The code does something the derivation does not know how to authorise: say how."""
