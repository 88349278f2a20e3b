"""AWS API calls reachable from a function: aiobotocore client operations (botocore's service
models say which method names are operations) and opensearch-py APIs (their HTTP verbs read from
opensearch-py's source), each mapped to IAM actions."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import botocore.exceptions
import botocore.session
from botocore import xform_name

from tests.deploy.iam.rules import (
    ES_VERBS,
    IAM_PREFIX,
    OPENSEARCH_HELPERS,
    OPERATION_ACTIONS,
    S3_BUCKET_ACTIONS,
    TRANSACT_ITEM_ACTIONS,
    DerivationError,
)
from tests.deploy.iam.source import Func, Package, body_nodes

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


def _clients_made(tree: ast.Module) -> set[str]:
    """Services a module makes aiobotocore clients for: ``.client("s3")``, or
    ``.client(SERVICE)`` with ``SERVICE = "bedrock-runtime"`` at the module's top."""
    constants = {
        t.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    out = set()
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "client"
            and node.args
        ):
            continue
        arg = node.args[0]
        name = arg.value if isinstance(arg, ast.Constant) else None
        if isinstance(arg, ast.Name):
            name = constants.get(arg.id)
        if name in IAM_PREFIX:
            out.add(str(name))
        elif isinstance(name, str) and name.islower() and "." not in name:
            raise DerivationError(
                f"{ast.unparse(node)}: an AWS client for {name!r}: name its IAM prefix in "
                "IAM_PREFIX (and its operations' actions in OPERATION_ACTIONS)"
            )
    return out


def _iam_actions(service: str, op: str, func: Func) -> tuple[str, ...]:
    if (service, op) in OPERATION_ACTIONS:
        actions = OPERATION_ACTIONS[(service, op)]
        if op == "TransactWriteItems":  # the item operations the transaction is built from
            keys = {
                k.value
                for node in body_nodes(func)
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
        for node in body_nodes(func):
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
        for node in body_nodes(func):
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
    for node in body_nodes(func):
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
