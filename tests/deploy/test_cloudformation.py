"""CloudFormation stacks: cfn-lint, and what the code needs from each resource (the registry
table exactly as ``dynamodb_registry.table_definition`` makes it, queues as ``datatorag init``
converges them, a private encrypted versioned bucket, a VPC OpenSearch domain with fine-grained
access, IRSA roles)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.aws.dynamodb_registry import table_definition
from datatorag.adapters.aws.provision import DLQ_RETENTION_S
from datatorag.config import QueueNames
from tests.deploy._paths import CFN_DIR, CHART, load_cfn, load_yaml

TEMPLATES = sorted(CFN_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def storage() -> dict[str, Any]:
    return load_cfn(CFN_DIR / "storage.yaml")


def resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == rtype}


def test_templates_exist() -> None:
    assert {p.name for p in TEMPLATES} == {"storage.yaml", "opensearch.yaml", "iam.yaml"}


def test_cfn_lint(cfn_lint: Path, tmp_path: Path) -> None:
    """Our templates pass, informational rules included (-c I); a broken copy in the same run
    (one cfn-lint start-up, which is slow) shows the linter really checks."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (CFN_DIR / "storage.yaml")
        .read_text()
        .replace("BillingMode: PAY_PER_REQUEST", "BillingMode: ON_DEMAND")
    )
    proc = subprocess.run(
        [
            str(cfn_lint),
            "-c",
            "I",
            "--format",
            "parseable",
            "--",
            *map(str, TEMPLATES),
            str(broken),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    findings = [line for line in proc.stdout.splitlines() if line.strip()]
    ours = [f for f in findings if not f.startswith(str(broken))]
    assert ours == [], "\n".join(ours) + proc.stderr
    assert any("ON_DEMAND" in f for f in findings), proc.stdout + proc.stderr
    assert proc.returncode != 0


def test_registry_table_is_the_adapters_table(storage: dict[str, Any]) -> None:
    (table,) = resources(storage, "AWS::DynamoDB::Table").values()
    want = table_definition()

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {i[key]: i for i in items}

    assert table["BillingMode"] == want["BillingMode"]
    assert by_name(table["AttributeDefinitions"], "AttributeName") == by_name(
        want["AttributeDefinitions"], "AttributeName"
    )
    assert table["KeySchema"] == want["KeySchema"]
    assert by_name(table["GlobalSecondaryIndexes"], "IndexName") == by_name(
        want["GlobalSecondaryIndexes"], "IndexName"
    )
    assert by_name(table["LocalSecondaryIndexes"], "IndexName") == by_name(
        want["LocalSecondaryIndexes"], "IndexName"
    )
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TableName"] == {"Fn::Sub": "${Prefix}-registry"}


def test_queues_match_what_init_converges_to(storage: dict[str, Any]) -> None:
    """``datatorag init`` rewrites queue attributes that differ from the configuration: the
    stack's defaults must equal the chart's values, or every init would fight the stack."""
    queues = resources(storage, "AWS::SQS::Queue")
    params = storage["Parameters"]
    chart = load_yaml(CHART / "values.yaml")["config"]["queues"]
    app = QueueNames()
    assert params["VisibilityTimeout"]["Default"] == chart["visibilityTimeoutS"]
    assert params["MaxReceiveCount"]["Default"] == chart["maxReceives"] == app.max_receives
    assert params["ReceiveWaitTime"]["Default"] == chart["waitTimeS"] == app.wait_time_s
    assert params["Prefix"]["Default"] == "datatorag"
    for stage in ("parse", "embed", "index"):
        name = getattr(app, stage)  # datatorag-parse, ...
        assert chart[stage] == name
        work, dlq = queues[f"{stage.title()}Queue"], queues[f"{stage.title()}DeadLetterQueue"]
        assert work["QueueName"] == {"Fn::Sub": f"${{Prefix}}-{stage}"}
        assert dlq["QueueName"] == {"Fn::Sub": f"${{Prefix}}-{stage}{app.dlq_suffix}"}
        assert dlq["MessageRetentionPeriod"] == DLQ_RETENTION_S
        assert work["VisibilityTimeout"] == {"Ref": "VisibilityTimeout"}
        assert work["ReceiveMessageWaitTimeSeconds"] == {"Ref": "ReceiveWaitTime"}
        assert work["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [f"{stage.title()}DeadLetterQueue", "Arn"]},
            "maxReceiveCount": {"Ref": "MaxReceiveCount"},
        }
        for q in (work, dlq):  # encrypted either way
            assert "SqsManagedSseEnabled" in q and "KmsMasterKeyId" in q
    assert len(queues) == 6


def test_bucket_is_private_encrypted_and_versioned(storage: dict[str, Any]) -> None:
    (bucket,) = resources(storage, "AWS::S3::Bucket").values()
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == {
        "Fn::If": ["UseKms", "aws:kms", "AES256"]
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    ids = {r["Id"] for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert {"abort-incomplete-multipart-uploads", "expire-noncurrent-versions"} <= ids
    (policy,) = resources(storage, "AWS::S3::BucketPolicy").values()
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert storage["Resources"]["DocumentBucket"]["DeletionPolicy"] == "Retain"


def test_opensearch_domain_in_vpc_encrypted_with_fine_grained_access() -> None:
    t = load_cfn(CFN_DIR / "opensearch.yaml")
    (domain,) = resources(t, "AWS::OpenSearchService::Domain").values()
    assert domain["EngineVersion"] == "OpenSearch_2.19"
    assert domain["VPCOptions"]["SubnetIds"] == {"Ref": "SubnetIds"}
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True
    assert domain["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True
    fgac = domain["AdvancedSecurityOptions"]
    assert fgac["Enabled"] is True and fgac["InternalUserDatabaseEnabled"] is False
    assert fgac["MasterUserOptions"]["MasterUserARN"] == {"Ref": "MasterUserArn"}
    (stmt,) = domain["AccessPolicies"]["Statement"]
    principals = stmt["Principal"]["AWS"]
    assert {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${WorkloadRoleName}"
    } in principals
    (sg,) = resources(t, "AWS::EC2::SecurityGroup").values()
    (ingress,) = sg["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert "CidrIp" not in ingress  # only the cluster's security group


def test_irsa_roles() -> None:
    t = load_cfn(CFN_DIR / "iam.yaml")
    role = t["Resources"]["WorkloadRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Fn::Sub"]
    assert "sts:AssumeRoleWithWebIdentity" in trust
    assert (
        '"${OidcIssuer}:sub": "system:serviceaccount:${Namespace}:${ServiceAccountName}"' in trust
    )
    assert '"${OidcIssuer}:aud": "sts.amazonaws.com"' in trust
    actions = {
        a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]
    }
    # what the adapters call: SQS consume/extend/ack/send, S3 objects, DynamoDB items + queries
    assert {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
    } <= actions
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:DescribeTable",
        "dynamodb:ConditionCheckItem",
    } <= actions
    assert {"es:ESHttpGet", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete"} <= actions
    # CloudFormation owns the resources: the pods may not create or delete them
    assert not actions & {
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "dynamodb:CreateTable",
        "dynamodb:DeleteTable",
    }
    assert role["RoleName"] == {"Ref": "WorkloadRoleName"}
    assert (
        t["Parameters"]["WorkloadRoleName"]["Default"]
        == load_cfn(CFN_DIR / "opensearch.yaml")["Parameters"]["WorkloadRoleName"]["Default"]
    )
    # the chart's service account is what the trust policy names
    chart = load_yaml(CHART / "values.yaml")
    assert t["Parameters"]["ServiceAccountName"]["Default"] == "datatorag"
    assert chart["serviceAccount"]["create"] is True


def test_storage_exports_what_iam_imports(storage: dict[str, Any]) -> None:
    exports = {
        o["Export"]["Name"]["Fn::Sub"].replace("${AWS::StackName}", "${StorageStackName}")
        for o in storage["Outputs"].values()
        if "Export" in o
    }
    text = (CFN_DIR / "iam.yaml").read_text()
    imported = set()
    for line in text.splitlines():
        if "Fn::ImportValue" in line:
            imported.add(line.split('!Sub "', 1)[1].split('"', 1)[0])
    assert imported and imported <= exports
