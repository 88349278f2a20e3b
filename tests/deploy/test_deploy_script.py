"""deploy/cloudformation/deploy.sh against a fake ``aws`` CLI (tests/fakes/aws_cli.py): the stacks
in order, each given only parameters its template declares and the stack names of the stacks it
imports from; init on ECS; the teardown in reverse; the Helm values it prints validate against the
chart's values.schema.json and render. shellcheck keeps the script clean."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._cfn import ECS_ORDER, EKS_ORDER, STACK_PARAMS, exports, imports, template
from tests.deploy._paths import CFN_DIR, CHART, ROOT, load_yaml
from tests.deploy.conftest import DeployTools, require_module

SCRIPT = CFN_DIR / "deploy.sh"
SAMPLE_OUTPUTS = Path(__file__).with_name("aws_sample_outputs.json")


class FakeAws:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.log = tmp / "aws.jsonl"
        self.bin = tmp / "bin"
        self.bin.mkdir()
        shim = self.bin / "aws"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.fakes.aws_cli "$@"\n')
        shim.chmod(0o755)

    def run(
        self, params: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        pfile = self.dir / "params.env"
        pfile.write_text(params)
        full_env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}",
            "FAKE_AWS_LOG": str(self.log),
            "FAKE_AWS_OUTPUTS": str(SAMPLE_OUTPUTS),
            "FAKE_AWS_STATE": str(self.dir / "state.json"),
            **(env or {}),
        }
        full_env.pop("AWS_REGION", None)
        full_env.pop("AWS_DEFAULT_REGION", None)
        return subprocess.run(
            ["bash", str(SCRIPT), "-f", str(pfile), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=full_env,
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def deploys(self) -> list[dict[str, Any]]:
        return [
            c
            for c in self.calls()
            if (c["service"], c["operation"]) == ("cloudformation", "deploy")
        ]


EKS_PARAMS = """# a comment
Platform=eks
Region=eu-west-1
Prefix=datatorag
DefaultTenant=acme
AvailabilityZoneCount=3
NatGateways=per-az
AlarmEmail=oncall@example.com
PublicAccessCidrs=203.0.113.0/24,198.51.100.0/24
"""
ECS_PARAMS = """Platform=ecs
Region=eu-west-1
DefaultTenant=acme
ImageTag=0.2.0
CertificateArn=arn:aws:acm:eu-west-1:123456789012:certificate/0000
AdminPrincipalArn=arn:aws:iam::123456789012:role/platform-admin
"""


@pytest.fixture
def fake_aws(tmp_path: Path) -> FakeAws:
    return FakeAws(tmp_path)


def test_shellcheck_clean(shellcheck: Path) -> None:
    proc = subprocess.run(
        [str(shellcheck), "--severity=style", str(SCRIPT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sample_outputs_are_outputs_of_the_templates() -> None:
    """The fake answers with these: each must be a real output of its stack's template."""
    samples = json.loads(SAMPLE_OUTPUTS.read_text())
    for stack, values in samples.items():
        names = set(template(stack).get("Outputs", {}))
        assert set(values) <= names, (stack, set(values) - names)


def _check_deploys(fake: FakeAws, order: tuple[str, ...]) -> list[dict[str, Any]]:
    deploys = fake.deploys()
    assert [d["opts"]["--stack-name"][0] for d in deploys] == [f"datatorag-{s}" for s in order]
    for stack, d in zip(order, deploys, strict=True):
        assert d["opts"]["--template-file"] == [str(CFN_DIR / f"{stack}.yaml")]
        assert d["opts"]["--capabilities"] == ["CAPABILITY_NAMED_IAM"]
        assert d["opts"]["--region"] == ["eu-west-1"]
        overrides = dict(p.split("=", 1) for p in d["opts"]["--parameter-overrides"])
        declared = set(template(stack)["Parameters"])
        assert set(overrides) <= declared, (stack, set(overrides) - declared)
        # every stack it imports from is named, and was deployed before it
        for source, _ in imports(stack):
            param = next(p for p, s in STACK_PARAMS.items() if s == source)
            assert overrides[param] == f"datatorag-{source}", (stack, param)
            assert order.index(source) < order.index(stack)
        # required parameters (no default) are all given
        for name, spec in template(stack)["Parameters"].items():
            if "Default" not in spec:
                assert name in overrides, (stack, name)
    return deploys


def test_deploy_eks_in_order_with_one_parameter_file(fake_aws: FakeAws) -> None:
    proc = fake_aws.run(EKS_PARAMS, "deploy")
    assert proc.returncode == 0, proc.stderr
    deploys = _check_deploys(fake_aws, EKS_ORDER)
    by_stack = {
        d["opts"]["--stack-name"][0].removeprefix("datatorag-"): dict(
            p.split("=", 1) for p in d["opts"]["--parameter-overrides"]
        )
        for d in deploys
    }
    # a value typed once reaches every stack that declares it
    assert by_stack["network"]["AvailabilityZoneCount"] == "3"
    assert by_stack["models"]["AvailabilityZoneCount"] == "3"
    assert by_stack["eks"]["PublicAccessCidrs"] == "203.0.113.0/24,198.51.100.0/24"
    # no admin given: the caller's role (from its assumed-role session)
    admin = "arn:aws:iam::123456789012:role/PlatformAdmin"
    assert by_stack["opensearch"]["AdminPrincipalArn"] == admin
    assert by_stack["eks"]["AdminPrincipalArn"] == admin
    assert "LoadBalancerFullName" not in by_stack["alarms"]
    # the generated API key became its digest with the tenant, once; the key is shown once
    key = "GeneratedRandomKey0123456789abcdefGHIJKL"
    puts = [c for c in fake_aws.calls() if c["operation"] == "put-secret-value"]
    digest = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert [p["opts"]["--secret-string"][0] for p in puts] == [f"{digest}=acme"]
    assert key in proc.stderr
    samples = json.loads(SAMPLE_OUTPUTS.read_text())
    assert (
        f"aws eks update-kubeconfig --region eu-west-1 --name {samples['eks']['ClusterName']}"
        in (proc.stdout)
    )
    assert "nvidia-device-plugin" in proc.stdout
    # the chart mounts the sources and lands uploads itself: no patching after the install
    assert "kubectl -n datatorag patch" not in proc.stdout
    assert "-f values-aws.yaml --wait" in proc.stdout
    assert f'bucket: "{samples["storage"]["LandingBucketName"]}"' in proc.stdout
    assert not [c for c in fake_aws.calls() if c["service"] == "ecs"]
    # a second deploy does not re-seed the key
    proc = fake_aws.run(EKS_PARAMS, "deploy")
    assert proc.returncode == 0, proc.stderr
    assert len([c for c in fake_aws.calls() if c["operation"] == "put-secret-value"]) == 1


def test_deploy_ecs_runs_init_and_prints_the_endpoints(fake_aws: FakeAws) -> None:
    proc = fake_aws.run(ECS_PARAMS, "deploy")
    assert proc.returncode == 0, proc.stderr
    deploys = _check_deploys(fake_aws, ECS_ORDER)
    alarms = dict(p.split("=", 1) for p in deploys[-1]["opts"]["--parameter-overrides"])
    samples = json.loads(SAMPLE_OUTPUTS.read_text())
    assert alarms["LoadBalancerFullName"] == samples["ecs"]["LoadBalancerFullName"]
    services = dict(p.split("=", 1) for p in deploys[-2]["opts"]["--parameter-overrides"])
    assert services["ImageTag"] == "0.2.0"
    calls = fake_aws.calls()
    (run,) = [c for c in calls if c["operation"] == "run-task"]
    assert run["opts"]["--task-definition"] == [samples["ecs-services"]["InitTaskDefinition"]]
    net = run["opts"]["--network-configuration"][0]
    assert f"subnets=[{samples['network']['PrivateSubnetIds']}]" in net
    assert "assignPublicIp=DISABLED" in net
    ops = [c["operation"] for c in calls]
    assert ops.index("run-task") < ops.index("wait") < ops.index("describe-tasks")
    assert samples["ecs"]["GatewayUrl"] in proc.stdout
    assert samples["ecs"]["GrpcEndpoint"] in proc.stdout


def test_deploy_named_stacks_only(fake_aws: FakeAws) -> None:
    """The security stack first (the image repository), images pushed, then the rest."""
    proc = fake_aws.run(ECS_PARAMS, "deploy", "security")
    assert proc.returncode == 0, proc.stderr
    assert [d["opts"]["--stack-name"][0] for d in fake_aws.deploys()] == ["datatorag-security"]
    assert not [c for c in fake_aws.calls() if c["operation"] == "run-task"]
    proc = fake_aws.run(ECS_PARAMS, "deploy", "nosuch")
    assert proc.returncode != 0 and "no stack nosuch on the ecs path" in proc.stderr


def test_a_failed_init_fails_the_deploy(fake_aws: FakeAws) -> None:
    proc = fake_aws.run(ECS_PARAMS, "deploy", env={"FAKE_AWS_INIT_EXIT": "1"})
    assert proc.returncode != 0
    assert "datatorag init exited with 1" in proc.stderr


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("KubernetesVersoin=1.31", "KubernetesVersoin: no template of the eks path declares"),
        ("Prefix=again", "Prefix given twice"),
        ("StorageStackName=x", "StorageStackName is set by deploy.sh"),
        ("not a pair", "not Key=Value"),
    ],
)
def test_bad_parameter_files_are_refused_before_any_call(
    fake_aws: FakeAws, line: str, error: str
) -> None:
    proc = fake_aws.run(EKS_PARAMS + line + "\n", "deploy")
    assert proc.returncode != 0
    assert error in proc.stderr
    assert fake_aws.calls() == []


def test_ecs_only_parameters_are_refused_on_eks(fake_aws: FakeAws) -> None:
    proc = fake_aws.run(
        EKS_PARAMS + "CertificateArn=arn:aws:acm:eu-west-1:1:certificate/x\n", "plan"
    )
    assert proc.returncode != 0 and "CertificateArn" in proc.stderr


@pytest.mark.parametrize("platform", ["eks", "ecs"])
def test_the_example_parameter_files_are_valid(fake_aws: FakeAws, platform: str) -> None:
    example = (CFN_DIR / f"params.{platform}.example.env").read_text()
    proc = fake_aws.run(example, "plan")
    assert proc.returncode == 0, proc.stderr
    order = EKS_ORDER if platform == "eks" else ECS_ORDER
    assert f"datatorag-{order[-2]} <- {order[-2]}.yaml" in proc.stdout


def test_plan_calls_nothing_and_lists_the_stacks(fake_aws: FakeAws) -> None:
    proc = fake_aws.run(EKS_PARAMS, "plan")
    assert proc.returncode == 0, proc.stderr
    stacks = [line.split(" <- ")[0] for line in proc.stdout.splitlines() if " <- " in line]
    assert stacks == [f"datatorag-{s}" for s in EKS_ORDER]
    assert fake_aws.calls() == []


def test_teardown_in_reverse_order(fake_aws: FakeAws) -> None:
    assert fake_aws.run(ECS_PARAMS, "deploy").returncode == 0
    log_len = len(fake_aws.calls())
    proc = fake_aws.run(ECS_PARAMS, "teardown", "--purge")
    assert proc.returncode == 0, proc.stderr
    calls = fake_aws.calls()[log_len:]
    deletes = [c["opts"]["--stack-name"][0] for c in calls if c["operation"] == "delete-stack"]
    assert deletes == [f"datatorag-{s}" for s in reversed(ECS_ORDER)]
    ops = [c["operation"] for c in calls]
    # the ALB's deletion protection goes first; purge deletes the secrets without recovery
    assert ops.index("modify-load-balancer-attributes") < ops.index("delete-stack")
    assert ops.count("delete-secret") == 6
    assert "kept (DeletionPolicy Retain" in proc.stderr


# --- the Helm values ---------------------------------------------------------------------------


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def helm_values(fake_aws: FakeAws, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    assert fake_aws.run(EKS_PARAMS, "deploy").returncode == 0
    proc = fake_aws.run(EKS_PARAMS, "helm-values")
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "values-aws.yaml"
    path.write_text(proc.stdout)
    return path, load_yaml(path)


def test_helm_values_validate_against_the_charts_schema(
    helm_values: tuple[Path, dict[str, Any]],
) -> None:
    jsonschema = require_module("jsonschema", "jsonschema")
    _, values = helm_values
    schema = json.loads((CHART / "values.schema.json").read_text())
    merged = _merge(load_yaml(CHART / "values.yaml"), values)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(merged)
    samples = json.loads(SAMPLE_OUTPUTS.read_text())
    for service, key in (
        ("connector", "Connector"),
        ("parser", "Parser"),
        ("embedder", "Embedder"),
        ("indexer", "Indexer"),
        ("query-gateway", "QueryGateway"),
    ):
        role = values["services"][service]["serviceAccount"]["roleArn"]
        assert role == samples["eks"][f"{key}RoleArn"]
    assert values["init"]["serviceAccount"]["roleArn"] == samples["eks"]["InitRoleArn"]
    assert values["config"]["uploads"] == {
        "bucket": samples["storage"]["LandingBucketName"],
        "prefix": samples["storage"]["LandingPrefix"],
    }
    assert values["config"]["aws"] == {
        "region": "eu-west-1",
        "bucket": samples["storage"]["BucketName"],
        "registryTable": samples["storage"]["RegistryTableName"],
        "sse": "aws:kms",
        "kmsKeyId": samples["security"]["KmsKeyArn"],
    }
    assert values["config"]["queues"]["visibilityTimeoutS"] == int(
        samples["storage"]["VisibilityTimeout"]
    )
    assert values["config"]["opensearch"]["url"] == samples["opensearch"]["DomainEndpoint"]
    assert values["image"]["repository"] == samples["security"]["ImageRepositoryUri"]
    assert values["model"]["volume"] == {"type": "none"}  # minilm is bundled
    # a value the schema refuses would be caught: the check is real
    broken = _merge(merged, {"config": {"aws": {"sse": "aws:kms:typo"}}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_helm_values_render_the_chart(
    helm_values: tuple[Path, dict[str, Any]], deploy_tools: DeployTools
) -> None:
    path, _ = helm_values
    out = deploy_tools.template(path).stdout
    docs = [d for d in __import__("yaml").safe_load_all(out) if d]
    samples = json.loads(SAMPLE_OUTPUTS.read_text())
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    release = template("eks")["Parameters"]["ServiceAccountName"]["Default"]
    for service, key in (("connector", "Connector"), ("query-gateway", "QueryGateway")):
        sa = accounts[f"{release}-{service}"]  # the subject the service's role trusts
        assert (
            sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            == samples["eks"][f"{key}RoleArn"]
        )
    env = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-env")
    )
    assert env["data"]["DATATORAG_AWS_BUCKET"] == samples["storage"]["BucketName"]
    assert env["data"]["DATATORAG_OPENSEARCH_AUTH"] == "sigv4"
    trust = template("eks")["Resources"]["ConnectorRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert '${Namespace}:${ServiceAccountName}-connector"' in trust["Fn::Sub"][0]
    # DeployTools renders into the namespace the roles' trust defaults to
    assert template("eks")["Parameters"]["Namespace"]["Default"] == "datatorag"


def test_every_output_deploy_sh_reads_is_exported_or_an_output() -> None:
    """deploy.sh reads outputs by name: each must exist in its stack's template."""
    import re

    text = SCRIPT.read_text()
    for stack, key in re.findall(r"output ([a-z-]+) \"?([A-Z][A-Za-z]+)", text):
        outputs = template(stack).get("Outputs", {})
        assert key in outputs or key.endswith("${key}"), (stack, key)
    assert exports("storage")  # sanity: the helper reads real templates
