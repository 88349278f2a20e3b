"""From what a service does to the (IAM action, resource) pairs it needs."""

from __future__ import annotations

import functools
from pathlib import Path

from tests.deploy.iam.aws_calls import AwsWalker, Call, opensearch_calls
from tests.deploy.iam.rules import (
    BLOB_WRITES,
    CLOUDFORMATION_OWNS,
    KMS_FOR,
    LOGICAL_QUEUES,
    PKG_DIR,
    PORT_ADAPTERS,
    S3_BUCKET_ACTIONS,
    SERVICES,
    DerivationError,
)
from tests.deploy.iam.services import Usage, service_usage
from tests.deploy.iam.source import Package

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
    if kind == "embedding_cache":  # items in the registry's table, never in its indexes
        return ["table:registry"]
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
                    if not call_prefixes:
                        raise DerivationError(f"{where}: an object call without a key prefix")
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
    if group == "model":  # the Bedrock model the gateway answers with
        return ["model:bedrock"]
    if group == "provisioned":  # datatorag init: the configured queues, bucket and table
        if action.startswith("sqs:"):
            return [f"{t}:{q}" for q in LOGICAL_QUEUES for t in ("queue", "dlq")]
        if action.startswith("s3:"):
            return ["bucket:documents"] if action in S3_BUCKET_ACTIONS else []
        return ["table:registry"]
    raise DerivationError(group)
