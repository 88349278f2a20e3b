"""CloudFormation stacks: cfn-lint and checkov over every template (one run each), the wiring
between the stacks (every import has an export of an earlier stack), and what the code needs from
each resource (the registry table exactly as ``dynamodb_registry.table_definition`` makes it,
queues as ``datatorag init`` converges them, private encrypted buckets, a VPC OpenSearch domain
with fine-grained access and its logs, the GPU node group the chart's embedder expects, the alarms
the MVP plan lists). The IAM policies are checked against the code in test_iam_from_code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.aws.dynamodb_registry import table_definition
from datatorag.adapters.aws.provision import DLQ_RETENTION_S
from datatorag.config import QueueNames
from tests.deploy._cfn import (
    ECS_ORDER,
    EKS_ORDER,
    STACK_PARAMS,
    STACKS,
    exports,
    imports,
    template,
    walk,
)
from tests.deploy._paths import CFN_DIR, CHART, COMPOSE_FILE, load_yaml

TEMPLATES = sorted(CFN_DIR.glob("*.yaml"))
KMS = {"Fn::ImportValue": {"Fn::Sub": "${SecurityStackName}-KmsKeyArn"}}
# `aws cloudformation deploy --template-file` uploads a template inline up to this size
INLINE_TEMPLATE_LIMIT = 51_200


def resources(t: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in t["Resources"].items() if v["Type"] == rtype}


def test_templates_are_the_stacks() -> None:
    assert {p.stem for p in TEMPLATES} == set(STACKS)
    for p in TEMPLATES:
        assert p.stat().st_size <= INLINE_TEMPLATE_LIMIT, f"{p.name} needs an S3 upload"


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
        timeout=600,
    )
    findings = [line for line in proc.stdout.splitlines() if line.strip()]
    ours = [f for f in findings if not f.startswith(str(broken))]
    assert ours == [], "\n".join(ours) + proc.stderr
    assert any("ON_DEMAND" in f for f in findings), proc.stdout + proc.stderr
    assert proc.returncode != 0


def _checkov_skips() -> dict[tuple[str, str], str]:
    """(resource, check) -> justification, from the templates' Metadata.checkov.skip."""
    out = {}
    for p in TEMPLATES:
        for name, res in template(p.stem)["Resources"].items():
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                out[(f"{res['Type']}.{name}", skip["id"])] = skip.get("comment", "")
    return out


def test_checkov(checkov: Path, tmp_path: Path) -> None:
    """No failed check; every skipped one is justified in the template, and every
    justification in the templates is for a check that would fail (none left stale)."""
    proc = subprocess.run(
        [
            str(checkov),
            *("-d", str(CFN_DIR)),
            *("--framework", "cloudformation"),
            "--skip-download",  # no Prisma Cloud calls: the bundled checks only
            *("-o", "json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (cfn,) = [r for r in reports if r["check_type"] == "cloudformation"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in cfn["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert cfn["summary"]["parsing_errors"] == 0
    assert cfn["summary"]["passed"] > 300  # it really looked at the resources
    skipped = {
        (c["resource"], c["check_id"]): c["check_result"].get("suppress_comment") or ""
        for c in cfn["results"]["skipped_checks"]
    }
    justified = _checkov_skips()
    assert set(skipped) == set(justified), (skipped, justified)
    assert all(len(why) > 20 for why in justified.values()), justified


# --- wiring ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [EKS_ORDER, ECS_ORDER], ids=["eks", "ecs"])
def test_every_import_has_an_export_of_an_earlier_stack(order: tuple[str, ...]) -> None:
    for i, stack in enumerate(order):
        for source, name in sorted(imports(stack)):
            assert source in order[:i], f"{stack} imports {source}-{name}; {source} comes later"
            output = exports(source).get(name)
            assert output is not None, f"{stack} imports {source}-{name}, which is not exported"
            assert "Condition" not in output, f"{source}-{name} is exported only conditionally"


def test_stack_name_parameters_default_to_the_stacks() -> None:
    for stack in STACKS:
        for name, spec in template(stack)["Parameters"].items():
            if name.endswith("StackName"):
                assert spec["Default"] == f"datatorag-{STACK_PARAMS[name]}", (stack, name)
        # every stack takes the same naming prefix, within the tightest name it builds (the
        # OpenSearch domain: 3-28 characters; bucket names: 63 with account and region)
        prefix = template(stack)["Parameters"]["Prefix"]
        assert prefix["Default"] == "datatorag", stack
        assert prefix["AllowedPattern"] == "^[a-z][a-z0-9-]{2,20}$", stack


def test_everything_that_encrypts_uses_the_one_key() -> None:
    """Queues, buckets, table, logs, EFS, OpenSearch, EKS secrets, ECR, SNS: the security key."""
    seen = 0
    for stack in STACKS:
        for name, res in template(stack)["Resources"].items():
            props = res.get("Properties", {})
            rtype = res["Type"]
            if rtype == "AWS::SQS::Queue":
                assert props["KmsMasterKeyId"] == KMS, name
            elif rtype == "AWS::Logs::LogGroup":
                assert props["KmsKeyId"] == KMS, name
            elif rtype == "AWS::SNS::Topic":
                assert props["KmsMasterKeyId"] == KMS, name
            elif rtype == "AWS::EFS::FileSystem":
                assert props["Encrypted"] is True and props["KmsKeyId"] == KMS, name
            elif rtype == "AWS::DynamoDB::Table":
                assert props["SSESpecification"]["KMSMasterKeyId"] == KMS, name
            elif rtype == "AWS::EKS::Cluster":
                assert props["EncryptionConfig"][0]["Provider"]["KeyArn"] == KMS, name
            elif rtype == "AWS::OpenSearchService::Domain":
                assert props["EncryptionAtRestOptions"]["KmsKeyId"] == KMS, name
            elif rtype == "AWS::S3::Bucket" and name != "AccessLogBucket":
                (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                assert rule["ServerSideEncryptionByDefault"] == {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": KMS,
                }, name
            elif rtype == "AWS::SecretsManager::Secret":
                assert props["KmsKeyId"] == {"Ref": "Key"}, name
            elif rtype == "AWS::EC2::LaunchTemplate":  # node volumes: the account's EBS key
                for device in props["LaunchTemplateData"]["BlockDeviceMappings"]:
                    assert device["Ebs"]["Encrypted"] is True, name
            else:
                continue
            seen += 1
    assert seen > 25


# --- storage ----------------------------------------------------------------------------------


def test_registry_table_is_the_adapters_table() -> None:
    (table,) = resources(template("storage"), "AWS::DynamoDB::Table").values()
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
    assert table["DeletionProtectionEnabled"] is True
    assert table["TableName"] == {"Fn::Sub": "${Prefix}-registry"}


def test_queues_match_what_init_converges_to() -> None:
    """``datatorag init`` rewrites queue attributes that differ from the configuration: the
    stack's defaults must equal the chart's values, or every init would fight the stack."""
    storage = template("storage")
    queues = resources(storage, "AWS::SQS::Queue")
    params = storage["Parameters"]
    chart = load_yaml(CHART / "values.yaml")["config"]["queues"]
    app = QueueNames()
    assert (
        params["VisibilityTimeout"]["Default"]
        == chart["visibilityTimeoutS"]
        == app.visibility_timeout_s
    )
    compose = load_yaml(COMPOSE_FILE)["x-datatorag-env"]
    assert int(compose["DATATORAG_QUEUE_VISIBILITY_TIMEOUT_S"]) == app.visibility_timeout_s
    assert int(compose["DATATORAG_QUEUE_MAX_RECEIVES"]) == app.max_receives
    assert params["MaxReceiveCount"]["Default"] == chart["maxReceives"] == app.max_receives
    assert params["ReceiveWaitTime"]["Default"] == chart["waitTimeS"] == app.wait_time_s
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
    # the queue settings reach the services through exports, never typed again
    for out in ("VisibilityTimeout", "MaxReceiveCount", "ReceiveWaitTime"):
        assert exports("storage")[out]["Value"] == {"Ref": out}
    assert len(queues) == 8  # three work queues, their DLQs, the optional events queue and DLQ


def test_buckets_are_private_versioned_and_archive_after_90_days() -> None:
    storage = template("storage")
    buckets = resources(storage, "AWS::S3::Bucket")
    assert set(buckets) == {"DocumentBucket", "LandingBucket", "AccessLogBucket"}
    for name, bucket in buckets.items():
        assert bucket["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        assert storage["Resources"][name]["DeletionPolicy"] == "Retain", name
    for name in ("DocumentBucket", "LandingBucket"):
        rules = {r["Id"]: r for r in buckets[name]["LifecycleConfiguration"]["Rules"]}
        assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": {"Ref": "NoncurrentVersionRetentionDays"}
        }
        archive = next(r for r in rules.values() if "Transitions" in r)
        assert archive["Transitions"] == [
            {
                "StorageClass": {"Ref": "ArchiveStorageClass"},
                "TransitionInDays": {"Ref": "ArchiveAfterDays"},
            }
        ]
        assert buckets[name]["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": "AccessLogBucket"
        }
    assert storage["Parameters"]["ArchiveAfterDays"]["Default"] == 90
    # raw documents archive; chunk and vector files (read again on every redelivery) do not
    assert rules_prefix(buckets["DocumentBucket"], "archive-raw-documents") == "raw/"
    for policy in resources(storage, "AWS::S3::BucketPolicy").values():
        deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def rules_prefix(bucket: dict[str, Any], rule_id: str) -> str:
    (rule,) = [r for r in bucket["LifecycleConfiguration"]["Rules"] if r["Id"] == rule_id]
    return str(rule["Prefix"])


def test_landing_events_notify_the_events_queue_only_from_the_landing_bucket() -> None:
    storage = template("storage")
    landing = storage["Resources"]["LandingBucket"]["Properties"]
    events = landing["NotificationConfiguration"]["Fn::If"]
    assert events[0] == "WithLandingEvents"
    assert {c["Event"] for c in events[1]["QueueConfigurations"]} == {
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    }
    for c in events[1]["QueueConfigurations"]:  # only the landing prefix (uploads/ by default)
        assert c["Filter"]["Fn::If"][1] == {
            "S3Key": {"Rules": [{"Name": "prefix", "Value": {"Ref": "LandingPrefix"}}]}
        }
    (policy,) = resources(storage, "AWS::SQS::QueuePolicy").values()
    (stmt,) = policy["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${Prefix}-landing-${AWS::AccountId}-${AWS::Region}"
    }
    assert landing["BucketName"] == {
        "Fn::Sub": "${Prefix}-landing-${AWS::AccountId}-${AWS::Region}"
    }
    assert storage["Resources"]["EventsQueue"]["Condition"] == "WithLandingEvents"


# --- network ----------------------------------------------------------------------------------


def test_network_endpoints_nat_and_flow_logs() -> None:
    net = template("network")
    endpoints = resources(net, "AWS::EC2::VPCEndpoint")
    services = {
        e["ServiceName"]["Fn::Sub"].removeprefix("com.amazonaws.${AWS::Region}."): e[
            "VpcEndpointType"
        ]
        for e in endpoints.values()
    }
    assert services == {
        "s3": "Gateway",
        "dynamodb": "Gateway",
        "sts": "Interface",
        "ecr.api": "Interface",
        "ecr.dkr": "Interface",
        "sqs": "Interface",
        "secretsmanager": "Interface",
        "logs": "Interface",
    }
    assert net["Parameters"]["AvailabilityZoneCount"]["AllowedValues"] == [2, 3]
    assert net["Parameters"]["NatGateways"]["AllowedValues"] == ["single", "per-az"]
    assert len(resources(net, "AWS::EC2::NatGateway")) == 3  # A always; B, C per zone
    (flow,) = resources(net, "AWS::EC2::FlowLog").values()
    assert flow["TrafficType"] == "ALL" and flow["ResourceType"] == "VPC"
    private = [k for k in resources(net, "AWS::EC2::Subnet") if k.startswith("Private")]
    assert len(private) == 3


# --- OpenSearch -------------------------------------------------------------------------------


def test_opensearch_domain_in_vpc_encrypted_with_fine_grained_access_and_logs() -> None:
    t = template("opensearch")
    (domain,) = resources(t, "AWS::OpenSearchService::Domain").values()
    assert domain["EngineVersion"] == "OpenSearch_2.19"
    assert domain["VPCOptions"]["SubnetIds"] == {
        "Fn::Split": [",", {"Fn::ImportValue": {"Fn::Sub": "${NetworkStackName}-PrivateSubnetIds"}}]
    }
    assert domain["EncryptionAtRestOptions"]["Enabled"] is True
    assert domain["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert domain["DomainEndpointOptions"]["EnforceHTTPS"] is True
    fgac = domain["AdvancedSecurityOptions"]
    assert fgac["Enabled"] is True and fgac["InternalUserDatabaseEnabled"] is False
    assert fgac["MasterUserOptions"]["MasterUserARN"] == {
        "Fn::GetAtt": ["SecurityConfigRole", "Arn"]
    }
    logs = domain["LogPublishingOptions"]
    assert set(logs) == {"SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS"}
    assert all(v["Enabled"] is True for v in logs.values())
    (stmt,) = domain["AccessPolicies"]["Statement"]
    assert stmt["Principal"]["AWS"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
    }
    (sg,) = resources(t, "AWS::EC2::SecurityGroup").values()
    (ingress,) = sg["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert "CidrIp" not in ingress  # only the workloads' security group
    # the index pattern the services' roles cover is the chart's index prefix
    chart = load_yaml(CHART / "values.yaml")["config"]["opensearch"]
    assert t["Parameters"]["IndexPrefix"]["Default"] == chart["indexPrefix"]


def test_security_config_function_signs_put_requests_and_always_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The custom resource's inline code, run against a recording transport: it PUTs each role
    and mapping to the security API, signed, and reports SUCCESS or FAILED to CloudFormation."""
    code = template("opensearch")["Resources"]["SecurityConfigFunction"]["Properties"]["Code"][
        "ZipFile"
    ]
    namespace: dict[str, Any] = {}
    exec(
        compile(code, "security_config", "exec"), namespace
    )  # the template's code, as Lambda runs it
    sent: list[tuple[str, str, bytes, dict[str, str]]] = []

    class Resp:
        status = 200

        def __enter__(self) -> Resp:
            return self

        def __exit__(self, *a: object) -> None:
            return None

        def close(self) -> None:
            return None

    def urlopen(req: Any, timeout: float) -> Resp:
        sent.append((req.get_method(), req.full_url, req.data, dict(req.headers)))
        if "fail" in req.full_url:
            raise OSError("refused")
        return Resp()

    # the network is the one thing replaced: the module object the code imported
    monkeypatch.setattr(namespace["urllib"].request, "urlopen", urlopen)
    for k, v in {
        "DOMAIN_ENDPOINT": "vpc-x.eu-west-1.es.amazonaws.com",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    props = template("opensearch")["Resources"]["SecurityConfig"]["Properties"]
    event = {
        "RequestType": "Create",
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
        "StackId": "stack",
        "RequestId": "req",
        "LogicalResourceId": "SecurityConfig",
        "ResourceProperties": {
            "Roles": props["Roles"],
            "Mappings": {"datatorag_writer": ["arn:aws:iam::123456789012:role/x"]},
        },
    }
    namespace["handler"](event, None)
    *puts, answer = sent
    assert [(m, u.split("amazonaws.com")[1]) for m, u, _, _ in puts] == [
        ("PUT", "/_plugins/_security/api/roles/datatorag_writer"),
        ("PUT", "/_plugins/_security/api/roles/datatorag_reader"),
        ("PUT", "/_plugins/_security/api/rolesmapping/datatorag_writer"),
    ]
    for _, _, body, headers in puts:
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/es/aws4_request" in headers["Authorization"]
        json.loads(body)
    assert json.loads(puts[2][2]) == {"backend_roles": ["arn:aws:iam::123456789012:role/x"]}
    assert answer[0] == "PUT" and json.loads(answer[2])["Status"] == "SUCCESS"
    sent.clear()
    monkeypatch.setenv("DOMAIN_ENDPOINT", "fail.example")
    namespace["handler"](event, None)
    assert json.loads(sent[-1][2])["Status"] == "FAILED"
    assert "refused" in json.loads(sent[-1][2])["Reason"]


# --- EKS and ECS ------------------------------------------------------------------------------


def test_gpu_node_group_matches_the_charts_embedder_defaults() -> None:
    eks = template("eks")
    groups = resources(eks, "AWS::EKS::Nodegroup")
    gpu = groups["GpuNodes"]
    assert gpu["AmiType"] == "AL2023_x86_64_NVIDIA"
    assert eks["Parameters"]["GpuInstanceTypes"]["Default"].startswith("g5.")
    embedder = load_yaml(CHART / "values.yaml")["services"]["embedder"]["gpu"]
    for key, value in embedder["nodeSelector"].items():
        assert gpu["Labels"][key] == value
    (toleration,) = embedder["tolerations"]
    (taint,) = gpu["Taints"]
    assert taint["Key"] == toleration["key"]
    assert taint["Effect"] == "NO_SCHEDULE" and toleration["effect"] == "NoSchedule"
    assert groups["CpuNodes"]["AmiType"] == "AL2023_x86_64_STANDARD"
    assert "Taints" not in groups["CpuNodes"]
    addons = {a["AddonName"] for a in resources(eks, "AWS::EKS::Addon").values()}
    assert {"vpc-cni", "aws-ebs-csi-driver", "aws-efs-csi-driver"} <= addons
    (cluster,) = resources(eks, "AWS::EKS::Cluster").values()
    assert cluster["AccessConfig"]["AuthenticationMode"] == "API"
    assert resources(eks, "AWS::IAM::OIDCProvider")
    assert resources(eks, "AWS::EKS::AccessEntry")
    # IMDSv2 with one hop: a pod cannot borrow the node's role
    for lt in resources(eks, "AWS::EC2::LaunchTemplate").values():
        assert lt["LaunchTemplateData"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_ecs_services_their_capacity_discovery_and_configuration() -> None:
    from datatorag.config import Settings

    svc = template("ecs-services")
    services = resources(svc, "AWS::ECS::Service")
    assert {s["ServiceName"] for s in services.values()} == {
        "connector",
        "parser",
        "embedder",
        "indexer",
        "query-gateway",
    }
    for name, s in services.items():
        if name == "EmbedderService":
            (strategy,) = s["CapacityProviderStrategy"]
            assert "GpuCapacityProviderName" in str(strategy["CapacityProvider"])
        else:
            assert s["LaunchType"] == "FARGATE", name
        assert s["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True
    assert len(services["QueryGatewayService"]["LoadBalancers"]) == 2  # REST and gRPC
    assert {"EmbedderService", "ConnectorService"} == {
        n for n, s in services.items() if "ServiceRegistries" in s
    }
    tasks = resources(svc, "AWS::ECS::TaskDefinition")
    (embedder,) = tasks["EmbedderTaskDefinition"]["ContainerDefinitions"]
    assert embedder["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    # every DATATORAG_* variable the tasks set is a real setting of libs/datatorag/config.py
    known = {f"DATATORAG_{k.upper()}" for k in Settings.model_fields}
    for sub in ("queues", "aws", "opensearch", "embedding", "answer", "chunking", "limits"):
        model = type(getattr(Settings(), sub))
        prefix = model.model_config["env_prefix"]
        known |= {f"{prefix}{k}".upper() for k in model.model_fields}
    for name, task in tasks.items():
        (container,) = task["ContainerDefinitions"]
        assert container["ReadonlyRootFilesystem"] is True, name
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        env = _env(container)
        unknown = {k for k in env if k.startswith("DATATORAG_")} - known
        assert not unknown, (name, unknown)
        assert env["DATATORAG_MODE"] == "production"
    # every service that serves or calls the internal endpoints gets the shared token (the code
    # refuses to start such a service in production without it), injected from Secrets Manager
    from datatorag.entrypoints.serve import TOKEN_SERVICES

    with_token = set()
    for name, task in tasks.items():
        (container,) = task["ContainerDefinitions"]
        service = task["Family"]["Fn::Sub"].removeprefix("${Prefix}-")
        secrets = {s["Name"]: str(s["ValueFrom"]) for s in container.get("Secrets", [])}
        if "DATATORAG_SERVICE_TOKEN" in secrets:
            assert "ServiceTokenSecretArn" in secrets["DATATORAG_SERVICE_TOKEN"], name
            with_token.add(service)
        assert "DATATORAG_SERVICE_TOKEN" not in _env(container), name  # never a literal
    assert with_token == {"connector", "embedder", "indexer", "query-gateway"} <= TOKEN_SERVICES
    ecs_template = template("ecs")
    (execution,) = [
        r for n, r in resources(ecs_template, "AWS::IAM::Role").items() if "Execution" in n
    ]
    readable = str(execution["Policies"])
    assert "ServiceTokenSecretArn" in readable and "ApiKeysSecretArn" in readable
    # the platform's ALB: an HTTPS listener for REST, one for gRPC
    ecs = template("ecs")
    groups = resources(ecs, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert {g["ProtocolVersion"] for g in groups.values()} == {"HTTP1", "GRPC"}
    listeners = resources(ecs, "AWS::ElasticLoadBalancingV2::Listener")
    assert sorted(lst["Port"] for lst in listeners.values()) == [80, 443, 50051]
    # workers scale on their queue's backlog per task
    policies = resources(svc, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert len(policies) == 3
    for p in policies.values():
        metrics = p["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
        names = {
            m["MetricStat"]["Metric"]["MetricName"] for m in metrics["Metrics"] if "MetricStat" in m
        }
        assert names == {"ApproximateNumberOfMessagesVisible", "RunningTaskCount"}


# --- alarms -----------------------------------------------------------------------------------


def test_alarms_of_the_mvp_plan() -> None:
    t = template("alarms")
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    metrics = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert {
        ("AWS/ES", "ClusterStatus.red"),
        ("AWS/ES", "FreeStorageSpace"),
        ("AWS/ES", "CPUUtilization"),
        ("AWS/ES", "JVMMemoryPressure"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "TargetResponseTime"),
    } <= metrics
    dlq_alarms = [
        a for a in alarms.values() if "DeadLetterQueueName" in json.dumps(a["Dimensions"])
    ]
    assert len(dlq_alarms) == 3
    for a in dlq_alarms:  # any message in a DLQ
        assert (a["ComparisonOperator"], a["Threshold"]) == ("GreaterThanThreshold", 0)
    for a in alarms.values():
        assert a["AlarmActions"] == [{"Ref": "Topic"}]
    assert resources(t, "AWS::SNS::Topic")


def test_no_wildcard_principal_is_allowed_anything() -> None:
    for stack in STACKS:
        for node in walk(template(stack)):
            if isinstance(node, dict) and node.get("Effect") == "Allow":
                assert node.get("Principal") not in ("*", {"AWS": "*"}), (stack, node)
