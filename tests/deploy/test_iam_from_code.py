"""Every service's IAM policy grants exactly the AWS actions its code calls, on exactly the
resources it touches: derived from the source (``tests/deploy/iam/``), compared with
``deploy/cloudformation/iam.yaml``; the EKS and ECS roles carry those policies and nothing else.

When this fails after a code change, the message names the call site: add the action to that
service's policy in iam.yaml (or remove the grant nobody calls any more).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import iam as code
from tests.deploy._cfn import policy_grants, resolve, template

# symbolic resources of the derivation -> the ARN expressions of iam.yaml
BUCKET = "import:storage:BucketArn"
SYMBOLS = {
    **{f"queue:{q}": f"import:storage:{q.title()}QueueArn" for q in code.LOGICAL_QUEUES},
    **{f"dlq:{q}": f"import:storage:{q.title()}DeadLetterQueueArn" for q in code.LOGICAL_QUEUES},
    "bucket:documents": BUCKET,
    **{
        f"objects:documents/{p}": f"{BUCKET}/{p}/*"
        for p in ("raw", "chunks", "embedded", "state", "_readyz")
    },
    "bucket:landing": "import:storage:LandingBucketArn",
    "objects:landing": "import:storage:LandingBucketArn/*",
    "table:registry": "import:storage:RegistryTableArn",
    "table:registry/index": "import:storage:RegistryTableArn/index/*",
    "domain": "import:opensearch:DomainArn/*",
    "key": "import:security:KmsKeyArn",
    # the model is a parameter of the iam stack (granted only while it is set, see CONFIGURED)
    "model:bedrock": (
        "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${BedrockModelId}"
    ),
    "secrets": (
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
        "import:security:ConnectorSecretsPath*"
    ),
}
POLICIES = {
    "connector": "ConnectorPolicy",
    "parser": "ParserPolicy",
    "embedder": "EmbedderPolicy",
    "indexer": "IndexerPolicy",
    "query-gateway": "QueryGatewayPolicy",
    "init": "InitPolicy",
}


# the iam stack's conditions as the comparison deploys it: every optional feature the code can
# be configured for is on (Bedrock answers, the model in the stack's region); test_bedrock_*
# checks the grant goes away with the feature
CONFIGURED = {"AnswersWithBedrock": True, "BedrockInStackRegion": True}


def _deployed(node: Any, conditions: dict[str, bool]) -> Any:
    """A template fragment with its ``Fn::If`` decided and ``AWS::NoValue`` dropped."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return _deployed(yes if conditions[name] else no, conditions)
        return {k: _deployed(v, conditions) for k, v in node.items()}
    if isinstance(node, list):
        items = [_deployed(v, conditions) for v in node]
        return [i for i in items if i != {"Ref": "AWS::NoValue"}]
    return node


def granted(service: str, conditions: dict[str, bool] = CONFIGURED) -> set[tuple[str, str]]:
    policy = template("iam")["Resources"][POLICIES[service]]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return policy_grants(_deployed(policy["Properties"]["PolicyDocument"], conditions))


def needed(derivation: code.Derivation, service: str) -> dict[tuple[str, str], set[str]]:
    return {
        (action, SYMBOLS[resource]): where
        for (action, resource), where in derivation.required(service).items()
    }


def diff(derivation: code.Derivation, service: str) -> tuple[list[str], list[str]]:
    need, have = needed(derivation, service), granted(service)
    missing = [
        f"{a} on {r} (called at {sorted(w)[0]})"
        for (a, r), w in sorted(need.items())
        if (a, r) not in have
    ]
    extra = [f"{a} on {r}" for a, r in sorted(have - need.keys())]
    return missing, extra


@pytest.mark.parametrize("service", list(code.SERVICES))
def test_policy_grants_exactly_what_the_code_calls(service: str) -> None:
    missing, extra = diff(code.derivation(), service)
    assert not missing, f"{service}'s policy in iam.yaml lacks:\n  " + "\n  ".join(missing)
    assert not extra, f"{service}'s policy grants what its code never calls:\n  " + "\n  ".join(
        extra
    )


def test_bedrock_is_granted_only_while_configured() -> None:
    """Only the gateway answers (with Bedrock when DATATORAG_ANSWER_PROVIDERS names it); without
    BedrockModelId its policy is exactly the rest of what its code calls."""
    d = code.derivation()
    bedrock = {(a, r) for (a, r) in needed(d, "query-gateway") if a.startswith("bedrock:")}
    assert {a for a, _ in bedrock} == {
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    }
    for s in code.SERVICES:
        if s != "query-gateway":
            assert not {a for a, _ in d.required(s) if a.startswith("bedrock:")}, s
    off = {**CONFIGURED, "AnswersWithBedrock": False}
    assert granted("query-gateway", off) == set(needed(d, "query-gateway")) - bedrock
    other_region = {**CONFIGURED, "BedrockInStackRegion": False}
    assert {r for a, r in granted("query-gateway", other_region) if a.startswith("bedrock:")} == {
        "arn:${AWS::Partition}:bedrock:${BedrockRegion}::foundation-model/${BedrockModelId}"
    }


def test_the_split_follows_the_pipeline() -> None:
    """What the issue asks of the roles, as plain facts of the derived sets."""
    d = code.derivation()
    need = {s: set(d.required(s)) for s in code.SERVICES}
    assert ("sqs:SendMessage", "queue:parse") in need["connector"]
    assert ("s3:PutObject", "objects:documents/raw") in need["connector"]
    assert ("secretsmanager:GetSecretValue", "secrets") in need["connector"]
    assert ("s3:GetObject", "objects:landing") in need["connector"]
    assert ("sqs:ReceiveMessage", "queue:parse") in need["parser"]
    assert ("sqs:DeleteMessage", "queue:parse") in need["parser"]
    assert ("sqs:SendMessage", "queue:embed") in need["parser"]
    assert ("s3:PutObject", "objects:documents/chunks") in need["parser"]
    assert ("s3:PutObject", "objects:documents/raw") not in need["parser"]
    assert ("es:ESHttpPost", "domain") in need["indexer"]
    # the embedding cache lives in the registry's table
    assert ("dynamodb:BatchGetItem", "table:registry") in need["embedder"]
    assert ("dynamodb:BatchWriteItem", "table:registry") in need["embedder"]
    # every blob store's readiness check writes (and deletes) its probe object, and only there
    for s in code.SERVICES:
        if any(r.startswith("objects:documents/") for _, r in need[s]):
            assert ("s3:PutObject", "objects:documents/_readyz") in need[s], s
            assert ("s3:DeleteObject", "objects:documents/_readyz") in need[s], s
    # the gateway reads; it touches no queue, puts no object but the readiness probe and the
    # uploads it lands (S3Landing), and every other write it makes is an admin delete's
    # (datatorag.lifecycle.deletion)
    gateway = need["query-gateway"]
    assert not {a for a, _ in gateway if a.startswith("sqs:")}
    assert {r for a, r in gateway if a == "s3:PutObject"} == {
        "objects:documents/_readyz",
        "objects:landing",
    }
    writes = {
        "s3:DeleteObject",
        "s3:PutObject",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    for (action, resource), where in d.required("query-gateway").items():
        if action in writes and resource not in ("objects:documents/_readyz", "objects:landing"):
            outside = sorted(w for w in where if not w.startswith("datatorag.lifecycle.deletion:"))
            assert not outside, (action, resource, outside)
    assert {r for a, r in gateway if a == "s3:DeleteObject"} == {
        f"objects:documents/{p}" for p in ("raw", "chunks", "embedded", "_readyz")
    }
    # CloudFormation owns the resources: `datatorag init` may not create them
    assert not {a for a, _ in need["init"]} & code.CLOUDFORMATION_OWNS
    # and the withheld actions are ones init's code really calls (no stale entry)
    usage = d.usage("init")
    assert {c.actions[0] for _, c in usage.direct} >= code.CLOUDFORMATION_OWNS


def test_a_new_call_in_the_code_fails_loudly(tmp_path: Path) -> None:
    """A copy of the package whose parser also deletes its raw document: the derivation finds
    the call and the parser's policy no longer matches, naming the call site."""
    root = tmp_path / "datatorag"
    shutil.copytree(code.PKG_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    stages = root / "pipeline" / "stages.py"
    text = stages.read_text()
    anchor = "            data = await self.deps.blobstore.get(message.blob_key)\n"
    assert anchor in text
    added = "            await self.deps.blobstore.delete(message.blob_key)\n"
    stages.write_text(text.replace(anchor, anchor + added))
    line = stages.read_text().splitlines().index(added.rstrip("\n")) + 1
    missing, extra = diff(code.Derivation(root), "parser")
    assert len(missing) == 1, missing
    assert missing[0].startswith(
        "s3:DeleteObject on import:storage:BucketArn/raw/* (called at "
        f"datatorag.pipeline.stages:ParseStage.handle:{line} -> "
        "datatorag.adapters.aws.s3_blobstore:S3BlobStore.delete:"
    ), missing
    assert extra == []


def test_a_new_aws_caller_must_say_what_it_touches(tmp_path: Path) -> None:
    """A direct aiobotocore call outside the known call sites is refused, not guessed."""
    root = tmp_path / "datatorag"
    shutil.copytree(code.PKG_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    gateway = root / "entrypoints" / "serve_gateway.py"
    gateway.write_text(
        gateway.read_text()
        + "\n\nasync def _sneaky(clients):\n"
        + '    s3 = await clients.client("s3")\n'
        + '    await s3.delete_bucket(Bucket="x")\n'
    )
    text = gateway.read_text().replace(
        "    c = Components(settings)\n", "    c = Components(settings)\n    await _sneaky(c)\n", 1
    )
    gateway.write_text(text)
    with pytest.raises(code.DerivationError, match="_sneaky calls AWS directly"):
        code.Derivation(root).required("query-gateway")


# --- the roles that carry the policies ------------------------------------------------------


def _policy_imports(role: dict[str, Any]) -> list[str]:
    return [resolve(p) for p in role["Properties"]["ManagedPolicyArns"]]


def test_eks_roles_carry_their_service_policy_only() -> None:
    resources = template("eks")["Resources"]
    roles = {
        "connector": "ConnectorRole",
        "parser": "ParserRole",
        "embedder": "EmbedderRole",
        "indexer": "IndexerRole",
        "query-gateway": "QueryGatewayRole",
        "init": "InitRole",
    }
    for service, logical in roles.items():
        role = resources[logical]
        assert _policy_imports(role) == [f"import:iam:{POLICIES[service]}Arn"]
        assert "Policies" not in role["Properties"]
        trust, variables = role["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"]
        assert '"Principal": {"Federated": "${OidcProvider}"}' in trust
        assert '"Action": "sts:AssumeRoleWithWebIdentity"' in trust
        sub = f"system:serviceaccount:${{Namespace}}:${{ServiceAccountName}}-{service}"
        assert f'"${{Issuer}}:sub": "{sub}"' in trust
        assert '"${Issuer}:aud": "sts.amazonaws.com"' in trust
        assert variables["Issuer"] == {
            "Fn::Select": [
                1,
                {"Fn::Split": ["//", {"Fn::GetAtt": ["Cluster", "OpenIdConnectIssuerUrl"]}]},
            ]
        }
        assert role["Properties"]["RoleName"] == {"Fn::Sub": f"${{Prefix}}-eks-{service}"}
    # one account per service in the chart: no role holds another service's policy
    assert set(roles.values()) | {"KedaOperatorRole"} == {
        k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and k.endswith("Role")
    } - {"ClusterRole", "NodeRole", "VpcCniRole", "EbsCsiRole", "EfsCsiRole"}


def test_ecs_task_roles_equal_the_eks_roles() -> None:
    resources = template("ecs-services")["Resources"]
    for service, policy in POLICIES.items():
        logical = policy.removesuffix("Policy") + "TaskRole"
        role = resources[logical]
        assert _policy_imports(role) == [f"import:iam:{policy}Arn"], service
        assert "Policies" not in role["Properties"]
        assert "ecs-tasks.amazonaws.com" in str(role["Properties"]["AssumeRolePolicyDocument"])
        task = next(
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::ECS::TaskDefinition"
            and r["Properties"]["TaskRoleArn"] == {"Fn::GetAtt": [logical, "Arn"]}
        )
        assert task["Family"] == {"Fn::Sub": f"${{Prefix}}-{service}"}


def test_opensearch_maps_the_roles_that_call_it() -> None:
    """The security-plugin mappings name the roles whose policies hold es:ESHttp* actions."""
    d = code.derivation()
    callers = {s for s in code.SERVICES if any(a.startswith("es:") for a, _ in d.required(s))}
    assert callers == {"indexer", "query-gateway", "init"}
    mappings = template("opensearch")["Resources"]["SecurityConfig"]["Properties"]["Mappings"]
    mapped = {resolve(arn) for backend in mappings.values() for arn in backend}
    for service in callers:
        for platform in ("eks", "ecs"):
            account = "arn:${AWS::Partition}:iam::${AWS::AccountId}"
            arn = f"{account}:role/${{Prefix}}-{platform}-{service}"
            assert arn in mapped, arn
