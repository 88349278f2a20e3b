"""The AWS actions each service's code calls, read from the source (``test_iam_from_code``).

How a service's needs are derived, so that a role can be checked to grant exactly them:

1. **What a service runs** (``SERVICES``): its entry functions. From there the closure follows
   every package function or class the code names (imports resolved, function-local ones too),
   except the adapter container and factory (``OPAQUE``): which adapters a service holds is read
   from the ``Components`` accessors its code touches (``c.queue("parse")``, ``c.registry``,
   ``c.index()`` ...), each bringing the port methods ``Components`` itself calls on it (``check``,
   ``ensure``).
2. **Port calls** in the closure: ``<receiver>.<method>`` where the receiver is named like a
   port (``RECEIVERS``: ``registry``, ``blobstore``, ``queue``, ``out`` ...) and the method is one
   of that port's. A queue receiver is bound to the logical queue it was built from where the
   code says so (``Worker(c.queue("parse"), ...)`` binds ``Worker.queue``;
   ``self.queues["embed"]``); an unbound one could be any queue the service holds. A blob call's
   prefix follows its key (``raw_key(...)``, ``message.chunks_key``, a caller's argument).
3. **Adapters** (``PORT_ADAPTERS``): each port method of the production adapter is walked (its
   own and inherited helpers, helper classes of its module) for aiobotocore client calls, i.e.
   calls of the botocore operations of the service the module makes clients for, plus operations
   named as strings (paginators, waiters, ``_call("put_item")``). SQS calls are attributed to the
   queue or its DLQ by following the ``QueueUrl``/``QueueName`` argument back to ``self.name`` or
   ``self.dlq_name``. OpenSearch calls become HTTP verbs, read from opensearch-py's own source.
4. **Direct AWS callers** outside the adapters (``DIRECT_TARGETS``: the S3 source, the landing
   zone, the secret resolver, ``datatorag init``'s provisioning) are walked the same way.
5. Operations map to IAM actions (``OPERATION_ACTIONS``; others are ``service:Operation``); the
   KMS actions follow from what is encrypted (``KMS_FOR``).

The result is a set of ``(action, resource)`` pairs per service; resources are symbolic names
(``queue:parse``, ``dlq:parse``, ``objects:documents/raw``, ``table:registry``, ``domain``, ...)
that the test maps to the template's ARNs.
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import botocore.exceptions
import botocore.session
from botocore import xform_name

from datatorag import ports
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
ACCESSORS = {"queue": "queue", "registry": "registry", "blobstore": "blobstore", "index": "index"}
# factory functions called directly (datatorag init) build the same adapters
FACTORY = {
    "make_queue": "queue",
    "make_registry": "registry",
    "make_blobstore": "blobstore",
    "make_vector_index": "index",
}
LOGICAL_QUEUES = ("parse", "embed", "index")

# --- ports and their production adapters ------------------------------------------------------

PORTS: dict[str, type] = {
    "queue": ports.Queue,
    "blobstore": ports.BlobStore,
    "registry": ports.Registry,
    "index": ports.VectorIndex,
}
PORT_ADAPTERS = {
    "queue": "datatorag.adapters.aws.sqs_queue:SqsQueue",
    "blobstore": "datatorag.adapters.aws.s3_blobstore:S3BlobStore",
    "registry": "datatorag.adapters.aws.dynamodb_registry:DynamoDbRegistry",
    "index": "datatorag.adapters.opensearch.index:OpenSearchIndex",
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
}
# blob keys by where the code takes them from: key builders, message fields, the cursor store
BLOB_PREFIXES = {
    "raw_key": "raw",
    "blob_key": "raw",
    "chunks_key": "chunks",
    "records_key": "embedded",
    "BlobCursorStore": "state",
}
BLOB_READS = frozenset({"get", "open", "head", "exists"})
BLOB_WRITES = frozenset({"put", "put_stream"})

# AWS calls made outside the port adapters, and what they touch
DIRECT_TARGETS = {
    "datatorag.connectors.s3:S3Source": "landing",
    "datatorag.connectors.landing:S3Landing": "landing",
    "datatorag.connectors.secrets:SecretResolver": "secrets",
    "datatorag.adapters.aws.provision:": "provisioned",
}

# --- operations -> IAM actions ----------------------------------------------------------------

IAM_PREFIX = {"sqs": "sqs", "s3": "s3", "dynamodb": "dynamodb", "secretsmanager": "secretsmanager"}
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
# data under the deployment's KMS key: what a reader and a writer need of the key
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


# --- parsing the package ----------------------------------------------------------------------


@dataclass
class Func:
    qualname: str  # module:name or module:Class.name
    module: str
    cls: str | None
    node: ast.FunctionDef | ast.AsyncFunctionDef

    @property
    def params(self) -> list[str]:
        a = self.node.args
        names = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
        return names[1:] if self.cls and names[:1] == ["self"] else names


@dataclass
class Klass:
    qualname: str
    module: str
    node: ast.ClassDef
    bases: list[str] = field(default_factory=list)  # resolved package classes
    methods: dict[str, str] = field(default_factory=dict)  # name -> Func.qualname


class Package:
    def __init__(self, root: Path = PKG_DIR) -> None:
        self.funcs: dict[str, Func] = {}
        self.classes: dict[str, Klass] = {}
        self.imports: dict[str, dict[str, str]] = {}
        self.modules: dict[str, ast.Module] = {}
        for path in sorted(root.rglob("*.py")):
            if "grpc_gen" in path.parts:
                continue
            rel = path.relative_to(root.parent).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self._add_module(".".join(parts), ast.parse(path.read_text()))
        for k in self.classes.values():
            k.bases = [
                b
                for b in (self.resolve(k.module, None, base) for base in k.node.bases)
                if b and b in self.classes
            ]

    def _add_module(self, module: str, tree: ast.Module) -> None:
        self.modules[module] = tree
        self.imports[module] = _imports(module, tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                q = f"{module}:{node.name}"
                self.funcs[q] = Func(q, module, None, node)
            elif isinstance(node, ast.ClassDef):
                kq = f"{module}:{node.name}"
                klass = Klass(kq, module, node)
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        q = f"{kq}.{item.name}"
                        self.funcs[q] = Func(q, module, node.name, item)
                        klass.methods[item.name] = q
                self.classes[kq] = klass

    def local_names(self, module: str, func: Func | None) -> dict[str, str]:
        names = {
            n.name: f"{module}:{n.name}"
            for n in self.modules[module].body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        names.update(self.imports[module])
        if func is not None:  # imports inside the function ("imported where used")
            names.update(_imports(module, ast.walk(func.node)))
        return names

    def resolve(self, module: str, func: Func | None, node: ast.expr) -> str | None:
        """The package object a name or dotted attribute refers to, as module:name."""
        names = self.local_names(module, func)
        if isinstance(node, ast.Name):
            target = names.get(node.id)
            return target if target and target.split(":")[0].startswith(PKG) else None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            mod = names.get(node.value.id)
            if mod and ":" not in mod and mod.startswith(PKG):
                return f"{mod}:{node.attr}"
        return None

    def method(self, klass: str, name: str) -> Func | None:
        """A method of a package class, inherited ones included."""
        k = self.classes.get(klass)
        if k is None:
            return None
        if name in k.methods:
            return self.funcs[k.methods[name]]
        for base in k.bases:
            found = self.method(base, name)
            if found:
                return found
        return None

    def all_methods(self, klass: str) -> list[Func]:
        k = self.classes[klass]
        seen = {n: self.funcs[q] for n, q in k.methods.items()}
        for base in k.bases:
            for f in self.all_methods(base):
                seen.setdefault(f.node.name, f)
        return list(seen.values())

    def class_of(self, f: Func) -> str | None:
        return f"{f.module}:{f.cls}" if f.cls else None


def _imports(module: str, nodes: Iterable[ast.AST]) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module
            if node.level:  # relative import
                pkg = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*pkg, node.module])
            for alias in node.names:
                out[alias.asname or alias.name] = f"{base}:{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = alias.name
    # "from datatorag.x import y" where y is a module
    return out


def _body_nodes(func: Func) -> Iterator[ast.AST]:
    """Nodes of the function's body, annotations left out (types are not calls)."""
    for stmt in func.node.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.AnnAssign):
                continue
            yield node


def _receiver(node: ast.expr) -> tuple[str, str | None] | None:
    """The port-like name an attribute is read from, and a literal subscript if any:
    ``self.deps.registry`` -> (registry, None), ``self.queues["parse"]`` -> (queues, parse)."""
    literal = None
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            literal = node.slice.value
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_"), literal
    if isinstance(node, ast.Name):
        return node.id.lstrip("_"), literal
    return None


def port_methods(kind: str) -> frozenset[str]:
    cls = PORTS[kind]
    return frozenset(
        n
        for n, _ in inspect.getmembers(cls)
        if not n.startswith("_") and n not in ("name", "max_receives", "visibility_timeout_s")
    )


# --- botocore and opensearch-py ---------------------------------------------------------------


@functools.cache
def operations(service: str) -> dict[str, str]:
    """snake_case client method -> operation name, from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@functools.cache
def waiter_operation(service: str, waiter: str) -> str:
    """The operation a waiter polls ("" when the service has no such waiter)."""
    session = botocore.session.get_session()
    try:
        model = session.get_waiter_model(service)
        name = "".join(part.title() for part in waiter.split("_"))
        return str(model.get_waiter(name).operation)
    except (botocore.exceptions.UnknownServiceError, ValueError):
        return ""


@functools.cache
def opensearch_verbs() -> dict[str, str]:
    """'indices.exists_alias' / 'search' -> the HTTP method opensearch-py sends, read from
    ``perform_request("VERB", ...)`` in its async client source."""
    import opensearchpy._async.client as client_pkg

    out: dict[str, str] = {}
    root = Path(client_pkg.__file__).parent
    for path in root.glob("*.py"):
        ns = "" if path.stem in ("__init__", "client") else path.stem + "."
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "perform_request"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    out.setdefault(ns + node.name, str(call.args[0].value))
                    break
    return out


# --- walking code for AWS calls ----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One AWS API call site: IAM actions and what it touches within its adapter."""

    actions: tuple[str, ...]
    target: str  # queue|dlq|bucket|objects|table|indexes|domain|any
    where: str


def _clients_made(tree: ast.AST) -> set[str]:
    """Services a module makes aiobotocore clients for: ``.client("s3")``."""
    out = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "client"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in IAM_PREFIX
        ):
            out.add(str(node.args[0].value))
    return out


def _iam_actions(service: str, op: str, func: Func) -> tuple[str, ...]:
    if (service, op) in OPERATION_ACTIONS:
        actions = OPERATION_ACTIONS[(service, op)]
        if op == "TransactWriteItems":  # the item operations the transaction is built from
            keys = {
                k.value
                for node in _body_nodes(func)
                if isinstance(node, ast.Dict)
                for k in node.keys
                if isinstance(k, ast.Constant) and k.value in TRANSACT_ITEM_ACTIONS
            }
            actions = tuple(TRANSACT_ITEM_ACTIONS[k] for k in sorted(keys))
            if not actions:
                raise DerivationError(f"{func.qualname}: a transaction with unknown items")
        return actions
    return (f"{IAM_PREFIX[service]}:{op}",)


class AwsWalker:
    """AWS calls reachable from a function, with the SQS queue/DLQ each one names."""

    def __init__(self, pkg: Package) -> None:
        self.pkg = pkg

    def services_of(self, func: Func) -> set[str]:
        return _clients_made(self.pkg.modules[func.module])

    def calls(self, func: Func, env: dict[str, frozenset[str]] | None = None) -> set[Call]:
        return self._walk(func, env or {}, set())

    def _walk(
        self, func: Func, env: dict[str, frozenset[str]], seen: set[tuple[str, str]]
    ) -> set[Call]:
        key = (func.qualname, repr(sorted(env.items())))
        if key in seen:
            return set()
        seen.add(key)
        services = self.services_of(func)
        out: set[Call] = set()
        klass = self.pkg.class_of(func)
        for node in _body_nodes(func):
            if not isinstance(node, ast.Call):
                continue
            out |= self._aws_call(func, node, services, env)
            target = node.func
            # self.helper(...) / self._call("put_item", ...)
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and klass
            ):
                callee = self.pkg.method(klass, target.attr)
                if callee is not None:
                    out |= self._walk(callee, self._bind(callee, node, env, func), seen)
                continue
            # module-level helpers and helper classes of the same package
            ref = self.pkg.resolve(func.module, func, target)
            if ref is None and isinstance(target, ast.Attribute):
                ref = self.pkg.resolve(func.module, func, target.value)  # Helper.start(...)
            if ref in self.pkg.funcs:
                callee = self.pkg.funcs[ref]
                out |= self._walk(callee, self._bind(callee, node, env, func), seen)
            elif ref in self.pkg.classes and ref.split(":")[0] == func.module:
                for m in self.pkg.all_methods(ref):
                    out |= self._walk(m, {}, seen)
        return out

    def _bind(
        self, callee: Func, call: ast.Call, env: dict[str, frozenset[str]], caller: Func
    ) -> dict[str, frozenset[str]]:
        params = callee.params
        bound: dict[str, frozenset[str]] = {}
        for i, arg in enumerate(call.args):
            if i < len(params):
                bound[params[i]] = self._queue_target(arg, env, caller)
        for kw in call.keywords:
            if kw.arg:
                bound[kw.arg] = self._queue_target(kw.value, env, caller)
        return {k: v for k, v in bound.items() if v}

    def _queue_target(
        self, node: ast.expr, env: dict[str, frozenset[str]], func: Func
    ) -> frozenset[str]:
        """Whether an expression names this queue or its DLQ (SQS adapter only)."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "self" and node.attr == "name":
                return frozenset({"queue"})
            if node.value.id == "self" and node.attr == "dlq_name":
                return frozenset({"dlq"})
        if isinstance(node, ast.Await):
            return self._queue_target(node.value, env, func)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_url"
            and node.args
        ):
            return self._queue_target(node.args[0], env, func)
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            return self._assigned(node.id, env, func)
        return frozenset()

    def _assigned(self, name: str, env: dict[str, frozenset[str]], func: Func) -> frozenset[str]:
        found: set[str] = set()
        for node in _body_nodes(func):
            if not isinstance(node, ast.Assign):
                continue
            for tgt in node.targets:
                if isinstance(tgt, ast.Name) and tgt.id == name:
                    found |= self._queue_target(node.value, env, func)
                elif isinstance(tgt, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(tgt.elts, node.value.elts, strict=False):
                        if isinstance(t, ast.Name) and t.id == name:
                            found |= self._queue_target(v, env, func)
        return frozenset(found)

    def _aws_call(
        self, func: Func, node: ast.Call, services: set[str], env: dict[str, frozenset[str]]
    ) -> set[Call]:
        out: set[Call] = set()
        if not isinstance(node.func, ast.Attribute):
            return out
        name = node.func.attr
        where = f"{func.qualname}:{node.lineno}"
        for service in services:
            ops = operations(service)
            op: str | None = None
            if name in ops:
                op = ops[name]
            elif name == "get_paginator" and _str_arg(node) in ops:
                op = ops[str(_str_arg(node))]
            elif name == "get_waiter" and _str_arg(node):
                op = waiter_operation(service, str(_str_arg(node)))
                if op not in ops.values():
                    continue
            elif (
                _str_arg(node) in ops
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                # self._call("put_item", ...): an operation dispatched by name
                op = ops[str(_str_arg(node))]
            if op is None:
                continue
            actions = _iam_actions(service, op, func)
            for action in actions:
                out.add(Call((action,), self._target(service, op, action, node, env, func), where))
        return out

    def _target(
        self,
        service: str,
        op: str,
        action: str,
        node: ast.Call,
        env: dict[str, frozenset[str]],
        func: Func,
    ) -> str:
        if service == "sqs":
            for kw in node.keywords:
                if kw.arg in ("QueueUrl", "QueueName"):
                    got = self._queue_target(kw.value, env, func)
                    if len(got) == 1:
                        return next(iter(got))
                    return "any"
            return "any"
        if service == "s3":
            return "bucket" if action in S3_BUCKET_ACTIONS else "objects"
        if service == "dynamodb":
            return "indexes" if op == "Query" else "table"
        return "any"


def _str_arg(node: ast.Call) -> str | None:
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def opensearch_calls(pkg: Package, func: Func, seen: set[str] | None = None) -> set[Call]:
    """es:ESHttp* actions of the opensearch-py calls reachable from an OpenSearchIndex method."""
    seen = seen if seen is not None else set()
    if func.qualname in seen:
        return set()
    seen.add(func.qualname)
    verbs = opensearch_verbs()
    out: set[Call] = set()
    klass = pkg.class_of(func)
    for node in _body_nodes(func):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        api: str | None = None
        if isinstance(f, ast.Name) and f.id in OPENSEARCH_HELPERS:
            api = OPENSEARCH_HELPERS[f.id]
        elif isinstance(f, ast.Attribute):
            chain = _attr_chain(f)
            # self._client.indices.put_alias -> indices.put_alias; self._client.search -> search
            if len(chain) >= 3 and chain[0] == "self" and chain[1].lstrip("_") == "client":
                api = ".".join(chain[2:])
            elif chain[:1] == ["self"] and len(chain) == 2 and klass:
                callee = pkg.method(klass, chain[1])
                if callee is not None:
                    out |= opensearch_calls(pkg, callee, seen)
        if api is None or api == "close":
            continue
        if api not in verbs:
            raise DerivationError(f"{func.qualname}: opensearch-py API {api!r} has no HTTP verb")
        out.add(Call((ES_VERBS[verbs[api]],), "domain", f"{func.qualname}:{node.lineno}"))
    # lambdas and nested functions (the group refresh) are in the body too
    return out


def _attr_chain(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


# --- a service's closure and what it touches ---------------------------------------------------


@dataclass
class Usage:
    """What one service's code does with ports and AWS."""

    funcs: set[str] = field(default_factory=set)
    built: set[str] = field(default_factory=set)  # queue:<logical>, registry, blobstore, index
    # (port kind, logical queue or None, method, where, blob prefixes)
    port_calls: set[tuple[str, str | None, str, str, frozenset[str]]] = field(default_factory=set)
    direct: set[tuple[str, Call]] = field(default_factory=set)  # (target group, call)

    @property
    def prefixes(self) -> set[str]:
        return {p for *_, prefixes in self.port_calls for p in prefixes}


def _opaque(qualname: str) -> bool:
    return any(qualname.startswith(o) for o in OPAQUE)


def _direct_group(qualname: str) -> str | None:
    for prefix, group in DIRECT_TARGETS.items():
        if qualname.startswith(prefix if prefix.endswith(":") else prefix + "."):
            return group
    return None


def closure(pkg: Package, service: Service) -> tuple[set[str], set[str]]:
    """Functions a service runs, and the adapters it builds through the factory."""
    funcs: set[str] = set()
    built: set[str] = set()
    todo = list(service.entries)
    while todo:
        q = todo.pop()
        if q in funcs or _opaque(q):
            if q.startswith("datatorag.bootstrap.factory:") and q.split(":")[1] in FACTORY:
                kind = FACTORY[q.split(":")[1]]
                built |= {f"queue:{lq}" for lq in LOGICAL_QUEUES} if kind == "queue" else {kind}
            continue
        if q in pkg.classes:
            todo += [m.qualname for m in pkg.all_methods(q)]
            continue
        if q not in pkg.funcs:
            continue
        funcs.add(q)
        func = pkg.funcs[q]
        for node in _body_nodes(func):
            if isinstance(node, ast.Name | ast.Attribute):
                ref = pkg.resolve(func.module, func, node)
                if ref:
                    todo.append(ref)
    return funcs, built


def service_usage(pkg: Package, service: Service) -> Usage:
    funcs, built = closure(pkg, service)
    usage = Usage(funcs=funcs, built=built)
    bindings = _queue_bindings(pkg, funcs)
    for q in sorted(funcs):
        _scan(pkg, pkg.funcs[q], usage, bindings)
    for b in list(usage.built):
        usage.port_calls |= _components_calls(pkg, b)
    return usage


def _scan(pkg: Package, func: Func, usage: Usage, bindings: dict[tuple[str, str], str]) -> None:
    klass = pkg.class_of(func)
    for node in _body_nodes(func):
        if isinstance(node, ast.Call):
            usage.built |= {f"queue:{lq}" for lq in _queue_literals(node)}
        if isinstance(node, ast.Attribute):
            _port_call(pkg, node, func, klass, usage, bindings)
            _accessor(node, usage)
    group = _direct_group(func.qualname)
    if group is not None:
        for call in AwsWalker(pkg).calls(func):
            usage.direct.add((group, call))
    elif _makes_aws_calls(pkg, func):
        raise DerivationError(
            f"{func.qualname} calls AWS directly: add it to DIRECT_TARGETS with what it touches"
        )


def _makes_aws_calls(pkg: Package, func: Func) -> bool:
    walker = AwsWalker(pkg)
    services = walker.services_of(func)
    return bool(services) and any(
        walker._aws_call(func, node, services, {})
        for node in _body_nodes(func)
        if isinstance(node, ast.Call)
    )


def _port_call(
    pkg: Package,
    node: ast.Attribute,
    func: Func,
    klass: str | None,
    usage: Usage,
    bindings: dict[tuple[str, str], str],
) -> None:
    rec = _receiver(node.value)
    if rec is None:
        return
    name, literal = rec
    kind = RECEIVERS.get(name)
    if kind is None or node.attr not in port_methods(kind):
        return
    where = f"{func.qualname}:{node.lineno}"
    logical: str | None = None
    prefixes: frozenset[str] = frozenset()
    if kind == "queue":
        logical = literal
        if logical is None and klass and isinstance(node.value, ast.Attribute):
            logical = bindings.get((klass, name))
    elif kind == "blobstore" and node.attr not in ("check", "close"):
        call = _call_of(func, node)
        if call is None or not call.args:
            raise DerivationError(f"{where}: a blob store call without a key")
        prefixes = frozenset(_key_prefixes(pkg, call.args[0], func, usage.funcs, where, 3))
    usage.port_calls.add((kind, logical, node.attr, where, prefixes))


def _call_of(func: Func, attr: ast.Attribute) -> ast.Call | None:
    for node in _body_nodes(func):
        if isinstance(node, ast.Call) and node.func is attr:
            return node
    return None


def _key_prefixes(
    pkg: Package, expr: ast.expr, func: Func, funcs: set[str], where: str, depth: int
) -> set[str]:
    """The blob prefixes a key expression can carry: ``message.blob_key`` (raw),
    ``chunks_key(...)``, a variable assigned from one, a parameter (its callers' arguments),
    a key method of a store class named in BLOB_PREFIXES."""
    if isinstance(expr, ast.Attribute) and expr.attr in BLOB_PREFIXES:
        return {BLOB_PREFIXES[expr.attr]}
    if isinstance(expr, ast.Call):
        ref = pkg.resolve(func.module, func, expr.func)
        if ref and ref.split(":")[1] in BLOB_PREFIXES:
            return {BLOB_PREFIXES[ref.split(":")[1]]}
        if func.cls in BLOB_PREFIXES:  # self.key(...) of the cursor store
            return {BLOB_PREFIXES[func.cls]}
    if isinstance(expr, ast.Name) and depth > 0:
        assigned = [
            n.value
            for n in _body_nodes(func)
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
        ]
        if assigned:
            return set().union(
                *(_key_prefixes(pkg, v, func, funcs, where, depth - 1) for v in assigned)
            )
        if expr.id in func.params:
            out: set[str] = set()
            for caller, arg in _call_sites(pkg, func, expr.id, funcs):
                out |= _key_prefixes(pkg, arg, caller, funcs, where, depth - 1)
            if out:
                return out
    raise DerivationError(
        f"{where}: cannot tell which blob prefix this key has; name it in BLOB_PREFIXES"
    )


def _call_sites(
    pkg: Package, func: Func, param: str, funcs: set[str]
) -> Iterator[tuple[Func, ast.expr]]:
    index = func.params.index(param)
    for q in sorted(funcs):
        caller = pkg.funcs[q]
        for node in _body_nodes(caller):
            if not isinstance(node, ast.Call):
                continue
            if pkg.resolve(caller.module, caller, node.func) != func.qualname:
                continue
            if index < len(node.args):
                yield caller, node.args[index]
            for kw in node.keywords:
                if kw.arg == param:
                    yield caller, kw.value


def _accessor(node: ast.Attribute, usage: Usage) -> None:
    """``c.registry``, ``c.index()``, ``c.stage_deps()`` on a Components."""
    rec = _receiver(node.value)
    if rec is None or rec[0] not in ("c", "components"):
        return
    if node.attr in ("registry", "blobstore", "index"):
        usage.built.add(node.attr)
    elif node.attr == "stage_deps":
        usage.built |= {"registry", "blobstore"}


def _queue_literals(node: ast.AST) -> set[str]:
    """Logical names given to ``c.queue(...)``: a literal, else every logical queue."""
    out: set[str] = set()
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "queue"
            and (r := _receiver(call.func.value))
            and r[0] in ("c", "components")
            and call.args
        ):
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
            else:  # a variable: every logical queue it could be
                out |= set(LOGICAL_QUEUES)
    return out


def _queue_bindings(pkg: Package, funcs: set[str]) -> dict[tuple[str, str], str]:
    """(class, attribute) -> logical queue, from ``Cls(..., param=c.queue("x"))`` calls in the
    service's code whose class stores the parameter as ``self.<attr> = <param>``."""
    out: dict[tuple[str, str], str] = {}
    for q in sorted(funcs):
        f = pkg.funcs[q]
        for call in _body_nodes(f):
            if not isinstance(call, ast.Call):
                continue
            cls = pkg.resolve(f.module, f, call.func)
            if cls not in pkg.classes:
                continue
            init = pkg.method(cls, "__init__")
            if init is None:
                continue
            args = [(init.params[i], a) for i, a in enumerate(call.args) if i < len(init.params)]
            args += [(kw.arg, kw.value) for kw in call.keywords if kw.arg]
            for param, value in args:
                literals = _queue_literals(value) if isinstance(value, ast.Call) else set()
                if len(literals) != 1:
                    continue
                for attr in _stored_as(init, param):
                    if out.get((cls, attr), literals) != literals:
                        raise DerivationError(f"{cls}.{attr} is bound to two queues")
                    out[(cls, attr)] = next(iter(literals))
    return out


def _stored_as(init: Func, param: str) -> set[str]:
    return {
        t.attr.lstrip("_")
        for node in ast.walk(init.node)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Name)
        and node.value.id == param
        for t in node.targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }


def _components_calls(
    pkg: Package, built: str
) -> set[tuple[str, str | None, str, str, frozenset[str]]]:
    """The port methods Components calls on an adapter it builds (readiness checks, ensure)."""
    kind, _, logical = built.partition(":")
    accessor = pkg.method(COMPONENTS, ACCESSORS[kind])
    if accessor is None:
        raise DerivationError(f"Components has no accessor for {kind}")
    methods = port_methods(kind)
    out: set[tuple[str, str | None, str, str, frozenset[str]]] = set()
    for node in ast.walk(accessor.node):
        if isinstance(node, ast.Attribute) and node.attr in methods:
            rec = _receiver(node.value)
            if rec and rec[0] != "self":
                out.add((kind, logical or None, node.attr, accessor.qualname, frozenset()))
    return out


# --- from usage to (action, resource) ---------------------------------------------------------


class Derivation:
    """The derivation over one copy of the package (tests change a copy to see it react)."""

    def __init__(self, root: Path = PKG_DIR) -> None:
        self.pkg = Package(root)
        self._adapter: dict[tuple[str, str], frozenset[Call]] = {}
        self._usage: dict[str, Usage] = {}

    def adapter_calls(self, kind: str, method: str) -> frozenset[Call]:
        if (kind, method) not in self._adapter:
            func = self.pkg.method(PORT_ADAPTERS[kind], method)
            if func is None:
                raise DerivationError(f"{PORT_ADAPTERS[kind]} has no method {method}")
            calls = (
                opensearch_calls(self.pkg, func)
                if kind == "index"
                else AwsWalker(self.pkg).calls(func)
            )
            self._adapter[(kind, method)] = frozenset(calls)
        return self._adapter[(kind, method)]

    def usage(self, service_name: str) -> Usage:
        if service_name not in self._usage:
            self._usage[service_name] = service_usage(self.pkg, SERVICES[service_name])
        return self._usage[service_name]

    def required(self, service_name: str) -> dict[tuple[str, str], set[str]]:
        """``(action, resource) -> where in the code`` for one service."""
        return _required(self, service_name)


@functools.cache
def derivation() -> Derivation:
    return Derivation()


def _resource(kind: str, logical: str | None, target: str, prefix: str | None = None) -> list[str]:
    if kind == "queue":
        names = [logical] if logical else list(LOGICAL_QUEUES)
        if target == "queue":
            return [f"queue:{n}" for n in names]
        if target == "dlq":
            return [f"dlq:{n}" for n in names]
        return [f"{t}:{n}" for n in names for t in ("queue", "dlq")]
    if kind == "blobstore":
        return ["bucket:documents"] if target == "bucket" else [f"objects:documents/{prefix}"]
    if kind == "registry":
        return (
            ["table:registry", "table:registry/index"]
            if target == "indexes"
            else ["table:registry"]
        )
    if kind == "index":
        return ["domain"]
    raise DerivationError(kind)


def _required(d: Derivation, service_name: str) -> dict[tuple[str, str], set[str]]:
    service = SERVICES[service_name]
    usage = d.usage(service_name)
    need: dict[tuple[str, str], set[str]] = {}

    def add(action: str, resource: str, where: str) -> None:
        need.setdefault((action, resource), set()).add(where)

    built_queues = {b.split(":")[1] for b in usage.built if b.startswith("queue:")}
    for kind, logical, method, where, call_prefixes in sorted(usage.port_calls, key=str):
        if kind == "queue":
            queues = [logical] if logical else sorted(built_queues)
        else:
            queues = [None]
            if kind not in usage.built:
                raise DerivationError(f"{service_name}: {where} uses a {kind} it never builds")
        for call in d.adapter_calls(kind, method):
            for lq in queues:
                if kind == "blobstore" and call.target == "objects":
                    writes = method in BLOB_WRITES
                    for prefix in sorted(call_prefixes):
                        if writes and prefix in service.read_only_prefixes:
                            continue
                        for r in _resource(kind, lq, call.target, prefix):
                            add(call.actions[0], r, f"{where} -> {call.where}")
                    continue
                for r in _resource(kind, lq, call.target):
                    add(call.actions[0], r, f"{where} -> {call.where}")
    for group, call in usage.direct:
        action = call.actions[0]
        if group == "provisioned" and action in CLOUDFORMATION_OWNS:
            continue
        for r in _direct_resources(group, call):
            add(action, r, call.where)
    for (action, _), wheres in list(need.items()):
        for kms in KMS_FOR.get(action, ()):
            need.setdefault((kms, "key"), set()).update(wheres)
    return need


def _direct_resources(group: str, call: Call) -> list[str]:
    action = call.actions[0]
    if group == "landing":
        return ["bucket:landing"] if action in S3_BUCKET_ACTIONS else ["objects:landing"]
    if group == "secrets":
        return ["secrets"]
    if group == "provisioned":  # datatorag init: the configured queues, bucket and table
        if action.startswith("sqs:"):
            return [f"{t}:{q}" for q in LOGICAL_QUEUES for t in ("queue", "dlq")]
        if action.startswith("s3:"):
            return ["bucket:documents"] if action in S3_BUCKET_ACTIONS else []
        return ["table:registry"]
    raise DerivationError(group)
