"""Where the deployment artefacts live, and how to read the YAML flavours they use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "datatorag"
CFN_DIR = ROOT / "deploy" / "cloudformation"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY_TOOLS = ROOT / "scripts" / "deploy-tools.sh"

# Each service's command name, as `datatorag serve <name>` takes it.
SERVICES = ("connector", "parser", "embedder", "indexer", "query-gateway")
WORKERS = ("connector", "parser", "indexer")  # health/metrics on DATATORAG_HEALTH_PORT


class CfnLoader(yaml.SafeLoader):
    """CloudFormation YAML: ``!Ref x`` -> ``{"Ref": x}``, ``!Sub s`` -> ``{"Fn::Sub": s}``."""


def _cfn_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_cfn(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class ComposeLoader(yaml.SafeLoader):
    """Compose override YAML: ``!reset`` (drop what the base file set) reads as "!reset",
    ``!override`` (replace instead of merge) as the value it carries."""


ComposeLoader.add_constructor("!reset", lambda loader, node: "!reset")
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_scalar(node)
    ),
)


def load_yaml_with_resets(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=ComposeLoader)
