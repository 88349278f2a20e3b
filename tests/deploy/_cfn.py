"""Reading the CloudFormation templates as data: their imports and exports, and IAM policy
statements with resources resolved to comparable strings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from tests.deploy._paths import CFN_DIR, load_cfn

# deploy.sh's order (``deploy.sh plan`` prints it; test_deploy_script checks they agree)
EKS_ORDER = ("security", "network", "storage", "opensearch", "iam", "models", "eks", "alarms")
ECS_ORDER = (
    *("security", "network", "storage", "opensearch", "iam", "models"),
    *("ecs", "ecs-services", "alarms"),
)
STACKS = tuple(dict.fromkeys(EKS_ORDER + ECS_ORDER))
# the *StackName parameter naming each stack
STACK_PARAMS = {
    "SecurityStackName": "security",
    "NetworkStackName": "network",
    "StorageStackName": "storage",
    "OpenSearchStackName": "opensearch",
    "IamStackName": "iam",
    "ModelsStackName": "models",
    "EcsStackName": "ecs",
}


@cache
def template(stack: str) -> dict[str, Any]:
    return load_cfn(CFN_DIR / f"{stack}.yaml")


def template_path(stack: str) -> Path:
    return CFN_DIR / f"{stack}.yaml"


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def imports(stack: str) -> set[tuple[str, str]]:
    """(exporting stack, export name without its stack) for every Fn::ImportValue."""
    out = set()
    for node in walk(template(stack)):
        if isinstance(node, dict) and "Fn::ImportValue" in node:
            value = node["Fn::ImportValue"]
            sub = value.get("Fn::Sub") if isinstance(value, dict) else None
            m = re.fullmatch(r"\$\{(\w+StackName)\}-(\w+)", sub or "")
            assert m, f"{stack}: an import not of the form ${{XStackName}}-Name: {value}"
            out.add((STACK_PARAMS[m.group(1)], m.group(2)))
    return out


def exports(stack: str) -> dict[str, dict[str, Any]]:
    """Export name without the stack -> the output."""
    out = {}
    for output in template(stack).get("Outputs", {}).values():
        if "Export" in output:
            name = output["Export"]["Name"]["Fn::Sub"]
            assert name.startswith("${AWS::StackName}-"), name
            out[name.removeprefix("${AWS::StackName}-")] = output
    return out


def resolve(node: Any, context: dict[str, str] | None = None) -> str:
    """A resource expression as a string: parameters stay ``${Name}``, pseudo parameters
    ``${AWS::...}``, an import becomes ``import:<stack>:<Name>``."""
    context = context or {}
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Fn::ImportValue":
            ((stack, name),) = _import_target(arg)
            return f"import:{stack}:{name}"
        if fn == "Ref":
            return context.get(arg, "${" + arg + "}")
        if fn == "Fn::GetAtt":
            return f"getatt:{'.'.join(arg)}"
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            values = {**context, **{k: resolve(v, context) for k, v in variables.items()}}
            return re.sub(r"\$\{([\w:]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(resolve(i, context) for i in items)
    raise AssertionError(f"cannot resolve {node!r}")


def _import_target(arg: Any) -> set[tuple[str, str]]:
    sub = arg["Fn::Sub"]
    m = re.fullmatch(r"\$\{(\w+StackName)\}-(\w+)", sub)
    assert m, sub
    return {(STACK_PARAMS[m.group(1)], m.group(2))}


def resources_of(value: Any) -> list[Any]:
    if isinstance(value, dict) and "Fn::Split" in value:
        raise AssertionError("a split resource list cannot be compared; list the ARNs")
    return value if isinstance(value, list) else [value]


def policy_grants(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs an IAM policy document allows (Allow statements, no conditions)."""
    out = set()
    for stmt in document["Statement"]:
        assert stmt["Effect"] == "Allow", stmt
        assert "Condition" not in stmt, f"conditions are not compared: {stmt}"
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        for action in actions:
            assert "*" not in action, f"wildcard action {action}"
            for r in resources_of(stmt["Resource"]):
                out.add((action, resolve(r)))
    return out
