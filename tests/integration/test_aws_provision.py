"""provision_aws against a real moto server: creates everything, converges drift, is a no-op the
second time; the adapters built from settings reach the server through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from datatorag.adapters.aws.dynamodb_registry import STATUS_INDEX, DynamoDbRegistry
from datatorag.adapters.aws.provision import provision_aws
from datatorag.adapters.aws.s3_blobstore import S3BlobStore
from datatorag.adapters.aws.session import AwsClients
from datatorag.adapters.aws.sqs_queue import SqsQueue
from datatorag.config import AwsSettings, QueueNames, Settings
from datatorag.domain.models import DocumentRecord

pytestmark = [pytest.mark.aws, pytest.mark.timeout(90)]


def _settings(**queue_options: int) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        mode="production",
        queues=QueueNames(
            parse=f"parse-{tag}",
            embed=f"embed-{tag}",
            index=f"index-{tag}",
            dlq_suffix="-dlq",
            **{"visibility_timeout_s": 45, "max_receives": 4, "wait_time_s": 5, **queue_options},
        ),
        aws=AwsSettings(bucket=f"docs-{tag}", registry_table=f"registry-{tag}", sse="AES256"),
    )


@pytest.fixture
async def clients(moto_server) -> AsyncIterator[AwsClients]:
    clients = moto_server.clients()
    yield clients
    await clients.close()


async def _queue_attributes(clients: AwsClients, name: str) -> dict[str, str]:
    sqs = await clients.client("sqs")
    url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    return (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]


async def test_provisioning_creates_everything_and_twice_is_a_no_op(clients: AwsClients) -> None:
    settings = _settings()
    q = settings.queues

    first = await provision_aws(settings, clients=clients)

    names = [q.parse, q.embed, q.index]
    expected = {f"sqs queue {n}" for n in names} | {f"sqs queue {n}-dlq" for n in names}
    expected |= {
        f"s3 bucket {settings.aws.bucket}",
        f"dynamodb table {settings.aws.registry_table}",
    }
    assert set(first.created) == expected and first.updated == []
    before = {}
    for name in names:
        attrs = await _queue_attributes(clients, name)
        dlq = await _queue_attributes(clients, f"{name}-dlq")
        policy = before[name] = json.loads(attrs["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dlq["QueueArn"]
        assert int(policy["maxReceiveCount"]) == 4
        assert (attrs["VisibilityTimeout"], attrs["ReceiveMessageWaitTimeSeconds"]) == ("45", "5")
        assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    s3 = await clients.client("s3")
    encryption = await s3.get_bucket_encryption(Bucket=settings.aws.bucket)
    [rule] = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = (await s3.get_public_access_block(Bucket=settings.aws.bucket))[
        "PublicAccessBlockConfiguration"
    ]
    assert all(block.values())
    ddb = await clients.client("dynamodb")
    table = (await ddb.describe_table(TableName=settings.aws.registry_table))["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == [STATUS_INDEX]

    second = await provision_aws(settings, clients=clients)

    assert not second.changed
    assert set(second.unchanged) == expected
    for name in names:
        attrs = await _queue_attributes(clients, name)
        assert json.loads(attrs["RedrivePolicy"]) == before[name]


async def test_changed_settings_converge_in_place(clients: AwsClients) -> None:
    settings = _settings()
    await provision_aws(settings, clients=clients)
    changed = settings.model_copy(
        update={"queues": settings.queues.model_copy(update={"max_receives": 9})}
    )

    report = await provision_aws(changed, clients=clients)

    assert sorted(report.updated) == sorted(
        f"sqs queue {n} (RedrivePolicy)" for n in (changed.queues.parse, changed.queues.embed,
                                                     changed.queues.index)
    )  # fmt: skip
    assert report.created == []
    policy = json.loads((await _queue_attributes(clients, changed.queues.index))["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 9
    assert not (await provision_aws(changed, clients=clients)).changed


async def test_adapters_from_settings_follow_aws_endpoint_url(
    moto_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an operator does: standard AWS variables plus DATATORAG_AWS_*; nothing passed in code.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("DATATORAG_AWS_REGION", "eu-west-1")
    tag = uuid.uuid4().hex[:10]
    monkeypatch.setenv("DATATORAG_AWS_BUCKET", f"env-docs-{tag}")
    monkeypatch.setenv("DATATORAG_AWS_REGISTRY_TABLE", f"env-registry-{tag}")
    monkeypatch.setenv("DATATORAG_QUEUE_PARSE", f"env-parse-{tag}")
    settings = Settings()
    assert settings.aws.region == "eu-west-1"

    report = await provision_aws(settings)
    assert f"s3 bucket env-docs-{tag}" in report.created

    queue = SqsQueue.from_settings(settings, settings.queues.parse)
    blobs = S3BlobStore.from_settings(settings)
    registry = DynamoDbRegistry.from_settings(settings)
    try:
        for adapter in (queue, blobs, registry):
            await adapter.check()
        await queue.send("hello")
        [m] = await queue.receive(1, wait_s=2)
        assert m.body == "hello"
        await blobs.put("k", b"v")
        assert await blobs.get("k") == b"v"
        record = DocumentRecord(
            tenant="t", doc_id="d", version="v", seq=1, source="s", path="p", content_hash="h"
        )
        assert await registry.put_version(record)
        assert (await registry.current("t", "d")).version == "v"
        s3 = await blobs._clients.client("s3")
        location = await s3.get_bucket_location(Bucket=settings.aws.bucket)
        assert location["LocationConstraint"] == "eu-west-1"
    finally:
        for adapter in (queue, blobs, registry):
            await adapter.close()
