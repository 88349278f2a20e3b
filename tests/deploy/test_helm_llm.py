"""The chart's self-hosted LLM: with ``llm.enabled`` a vLLM Deployment and Service on GPU nodes
serve a model from a volume, and the gateway's answer settings point at them; ``helm lint
--strict`` and ``kubeconform -strict`` pass, and the gateway environment builds the settings the
code reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._paths import CHART
from tests.deploy._settings_env import settings_from, unknown_datatorag_vars
from tests.deploy.conftest import DeployTools, KubeSchemas
from tests.deploy.test_helm import RELEASE, container_env, of_kind

pytestmark = pytest.mark.timeout(1800)
LLM_VALUES = CHART / "ci" / "llm-values.yaml"


@pytest.fixture(scope="module")
def docs(deploy_tools: DeployTools) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(deploy_tools.template(LLM_VALUES).stdout) if d]


def test_lint_and_kubeconform_strict(
    deploy_tools: DeployTools, kube_schemas: KubeSchemas, tmp_path: Path
) -> None:
    lint = deploy_tools.helm("lint", "--strict", str(CHART), "-f", str(LLM_VALUES))
    assert "0 chart(s) failed" in lint.stdout
    for kube in kube_schemas.versions:
        path = tmp_path / f"llm-{kube}.yaml"
        path.write_text(deploy_tools.template(LLM_VALUES, kube_version=kube).stdout)
        proc = subprocess.run(
            [str(deploy_tools.kubeconform_bin), "-strict", "-summary", "-output", "json",
             "-kubernetes-version", kube, "-schema-location", kube_schemas.location, str(path)],
            check=False, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["summary"]["invalid"] == 0


def test_vllm_serves_the_mounted_model_on_a_gpu_node(docs) -> None:
    deployment = of_kind(docs, "Deployment")[f"{RELEASE}-llm"]
    spec = deployment["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["image"].startswith("vllm/vllm-openai:")
    args = c["args"]
    assert args[args.index("--model") + 1] == "/models/llm/Qwen2.5-7B-Instruct"
    assert args[args.index("--served-model-name") + 1] == "Qwen/Qwen2.5-7B-Instruct"
    assert "--enable-prefix-caching" in args
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    (weights,) = [m for m in c["volumeMounts"] if m["name"] == "weights"]
    assert weights == {"name": "weights", "mountPath": "/models/llm", "readOnly": True}
    volume = next(v for v in spec["volumes"] if v["name"] == "weights")
    assert volume["hostPath"] == {"path": "/opt/datatorag/llm-models", "type": "Directory"}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    # scheduled by the limit; no label stock EKS GPU nodes lack
    assert "nodeSelector" not in spec
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    service = of_kind(docs, "Service")[f"{RELEASE}-llm"]
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_gateway_answers_with_the_in_cluster_llm_first(docs) -> None:
    env = container_env(docs, "query-gateway")
    assert unknown_datatorag_vars(env) == []
    settings = settings_from({k: v for k, v in env.items() if isinstance(v, str)})
    assert settings.answer.provider_chain() == ["openai", "extractive"]
    assert settings.answer.openai_base_url == f"http://{RELEASE}-llm:8000/v1"
    assert settings.answer.openai_model == "Qwen/Qwen2.5-7B-Instruct"
    assert "DATATORAG_ANSWER_OPENAI_API_KEY" not in env  # the in-cluster vLLM needs none


def test_without_the_llm_the_gateway_answers_extractively(deploy_tools: DeployTools) -> None:
    docs = [d for d in yaml.safe_load_all(deploy_tools.template().stdout) if d]
    assert f"{RELEASE}-llm" not in of_kind(docs, "Deployment")
    env = container_env(docs, "query-gateway")
    assert settings_from(
        {k: v for k, v in env.items() if isinstance(v, str)}
    ).answer.provider_chain() == ["extractive"]
    keyed = deploy_tools.template(
        set_values=("config.answer.providers=openai\\,extractive",
                    "config.answer.openaiBaseUrl=https://llm.example/v1",
                    "secrets.openaiApiKey.existingSecret=llm-key"),
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(keyed.stdout) if d]
    env = container_env(docs, "query-gateway")
    assert env["DATATORAG_ANSWER_OPENAI_API_KEY"] == {
        "secretKeyRef": {"name": "llm-key", "key": "api-key"}
    }
    assert env["DATATORAG_ANSWER_OPENAI_BASE_URL"] == "https://llm.example/v1"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("llm.modelPath=/elsewhere/model", "must be inside llm.volume.mountPath"),
        ("config.answer.providers=gpt", "/config/answer/providers"),
        ("llm.volume.type=nfs", "/llm/volume/type"),
    ],
)
def test_bad_llm_values_are_refused(deploy_tools: DeployTools, setting: str, message: str) -> None:
    proc = deploy_tools.template(LLM_VALUES, set_values=(setting,), check=False)
    assert proc.returncode != 0 and message in proc.stderr
