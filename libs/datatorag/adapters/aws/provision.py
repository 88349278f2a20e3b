"""Create the AWS resources DatatoRAG needs, idempotently, against any endpoint (AWS, moto,
LocalStack): the three queues with their DLQs and redrive policy, the bucket, the registry table.

Running it again changes nothing that is already as configured; a queue whose attributes drifted
(say ``max_receives`` changed) is updated in place. ``datatorag init`` calls ``provision_aws``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from datatorag.adapters.aws.dynamodb_registry import table_definition
from datatorag.adapters.aws.session import AwsClients, AwsConnection, error_code, is_not_found
from datatorag.config import Settings

DLQ_RETENTION_S = 14 * 24 * 3600  # the SQS maximum: time for an operator to look


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def merge(self, other: ProvisionReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


async def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"])
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


async def _ensure_one_queue(
    sqs: Any, name: str, attributes: dict[str, str], report: ProvisionReport
) -> str:
    what = f"sqs queue {name}"
    url = await _queue_url(sqs, name)
    if url is None:
        url = str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])
        report.created.append(what)
        return url
    current = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
    drift = {k: v for k, v in attributes.items() if not _same_attribute(k, current.get(k), v)}
    if drift:
        await sqs.set_queue_attributes(QueueUrl=url, Attributes=drift)
        report.updated.append(f"{what} ({', '.join(sorted(drift))})")
    else:
        report.unchanged.append(what)
    return url


def _same_attribute(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name == "RedrivePolicy":
        a, b = json.loads(current), json.loads(wanted)
        return (a.get("deadLetterTargetArn"), int(a.get("maxReceiveCount", 0))) == (
            b.get("deadLetterTargetArn"),
            int(b.get("maxReceiveCount", 0)),
        )
    return current == wanted


async def ensure_queue(
    clients: AwsClients,
    name: str,
    *,
    dlq_suffix: str = "-dlq",
    visibility_timeout_s: int = 60,
    max_receives: int = 5,
    wait_time_s: int = 10,
) -> ProvisionReport:
    """The queue ``name`` and its DLQ, with SQS redriving after ``max_receives`` receives."""
    sqs = await clients.client("sqs")
    report = ProvisionReport()
    dlq_url = await _ensure_one_queue(
        sqs,
        f"{name}{dlq_suffix}",
        {"MessageRetentionPeriod": str(DLQ_RETENTION_S)},
        report,
    )
    dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})
    await _ensure_one_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(visibility_timeout_s),
            "ReceiveMessageWaitTimeSeconds": str(wait_time_s),
            "RedrivePolicy": redrive,
        },
        report,
    )
    return report


def sse_arguments(sse: str | None, kms_key_id: str | None) -> dict[str, str]:
    """``ServerSideEncryption`` request arguments for the configured SSE mode."""
    mode = (sse or "").strip()
    if mode.lower() in ("", "none", "off"):
        return {}
    if mode == "AES256":
        return {"ServerSideEncryption": "AES256"}
    if mode == "aws:kms":
        args = {"ServerSideEncryption": "aws:kms"}
        if kms_key_id:
            args["SSEKMSKeyId"] = kms_key_id
        return args
    raise ValueError(f"DATATORAG_AWS_SSE must be AES256, aws:kms or none, got {sse!r}")


async def ensure_bucket(
    clients: AwsClients,
    bucket: str,
    *,
    sse: str | None = "AES256",
    kms_key_id: str | None = None,
) -> ProvisionReport:
    """The bucket, private, encrypted by default, with stale multipart uploads cleaned up."""
    s3 = await clients.client("s3")
    report = ProvisionReport()
    what = f"s3 bucket {bucket}"
    try:
        await s3.head_bucket(Bucket=bucket)
        report.unchanged.append(what)
        return report
    except Exception as exc:
        if not is_not_found(exc):
            raise
    region = clients.connection.region
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        await s3.create_bucket(**create)
    except Exception as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":  # a concurrent init won the race
            raise
    await s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    default_sse = sse_arguments(sse, kms_key_id)
    if default_sse:
        rule: dict[str, str] = {"SSEAlgorithm": default_sse["ServerSideEncryption"]}
        if "SSEKMSKeyId" in default_sse:
            rule["KMSMasterKeyID"] = default_sse["SSEKMSKeyId"]
        await s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": rule}]
            },
        )
    await s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort-incomplete-multipart-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    report.created.append(what)
    return report


async def ensure_table(clients: AwsClients, table: str) -> ProvisionReport:
    """The registry table (see ``dynamodb_registry``), on-demand capacity; waits until ACTIVE."""
    ddb = await clients.client("dynamodb")
    report = ProvisionReport()
    what = f"dynamodb table {table}"
    try:
        desc = (await ddb.describe_table(TableName=table))["Table"]
    except Exception as exc:
        if not is_not_found(exc):
            raise
        try:
            await ddb.create_table(TableName=table, **table_definition())
            report.created.append(what)
        except Exception as exc2:
            if error_code(exc2) != "ResourceInUseException":  # a concurrent init won the race
                raise
        await ddb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        return report
    wanted = table_definition()
    have = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes") or []}
    missing = [g for g in wanted["GlobalSecondaryIndexes"] if g["IndexName"] not in have]
    lsi = {i["IndexName"] for i in desc.get("LocalSecondaryIndexes") or []}
    if any(i["IndexName"] not in lsi for i in wanted["LocalSecondaryIndexes"]):
        # a local index can only be made with the table
        raise RuntimeError(f"{what} exists without its local index; recreate it")
    for gsi in missing:
        await ddb.update_table(
            TableName=table,
            AttributeDefinitions=wanted["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": gsi}],
        )
        report.updated.append(f"{what} (index {gsi['IndexName']})")
    if not missing:
        report.unchanged.append(what)
    return report


async def provision_aws(
    settings: Settings, *, clients: AwsClients | None = None
) -> ProvisionReport:
    """Create or converge every AWS resource named by ``settings``; safe to run any number of
    times. ``clients`` overrides where to connect (tests pass a moto endpoint)."""
    own = clients is None
    clients = clients or AwsClients(AwsConnection.from_settings(settings))
    report = ProvisionReport()
    q = settings.queues
    try:
        for name in (q.parse, q.embed, q.index):
            report.merge(
                await ensure_queue(
                    clients,
                    name,
                    dlq_suffix=q.dlq_suffix,
                    visibility_timeout_s=q.visibility_timeout_s,
                    max_receives=q.max_receives,
                    wait_time_s=q.wait_time_s,
                )
            )
        report.merge(
            await ensure_bucket(
                clients,
                settings.aws.bucket,
                sse=settings.aws.sse,
                kms_key_id=settings.aws.kms_key_id,
            )
        )
        report.merge(await ensure_table(clients, settings.aws.registry_table))
    finally:
        if own:
            await clients.close()
    return report
