"""One aiobotocore session and its clients, shared by the SQS, S3 and DynamoDB adapters.

Where the clients point:

* region: ``DATATORAG_AWS_REGION`` (``AwsSettings.region``);
* endpoint: an explicit ``endpoint_url`` (tests), else botocore's own resolution, which honours
  ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_SQS`` / ``_S3`` / ``_DYNAMODB``
  (moto, LocalStack), else the real AWS endpoint;
* credentials: explicit keys (tests), else the standard AWS chain (environment, profile, IRSA web
  identity on EKS, instance role).

Clients are created lazily, on first use, inside the running event loop: an aiohttp session
belongs to the loop that created it, so a client made in one loop is never reused in another
(a new one is made instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from datatorag.config import AwsSettings, Settings
from datatorag.domain.errors import DependencyError, TransientError

# Codes AWS returns when a call may succeed later; botocore's retries already ran out.
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
_NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)
_CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


@dataclass(frozen=True)
class AwsConnection:
    """Where and how to reach AWS (or an AWS-compatible server)."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    max_pool_connections: int = 50
    connect_timeout_s: float = 5.0
    # must exceed SQS long polling (20 s at most)
    read_timeout_s: float = 60.0
    max_attempts: int = 5

    @classmethod
    def from_settings(
        cls, settings: Settings | AwsSettings | None = None, **overrides: Any
    ) -> AwsConnection:
        if settings is None:
            aws = AwsSettings()
        elif isinstance(settings, Settings):
            aws = settings.aws
        else:
            aws = settings
        return cls(region=aws.region, **overrides)

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint a client of ``service`` will use when not the AWS default."""
        if self.endpoint_url:
            return self.endpoint_url
        env = os.environ
        return env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL")


class AwsClients:
    """Lazily created aiobotocore clients, one per service and event loop; ``close`` ends them."""

    def __init__(self, connection: AwsConnection | None = None) -> None:
        self.connection = connection or AwsConnection.from_settings()
        self._session: AioSession = get_session()
        self._clients: dict[str, tuple[asyncio.AbstractEventLoop, Any, Any]] = {}
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    def _config(self, service: str) -> AioConfig:
        c = self.connection
        options: dict[str, Any] = {
            "region_name": c.region,
            "max_pool_connections": c.max_pool_connections,
            "connect_timeout": c.connect_timeout_s,
            "read_timeout": c.read_timeout_s,
            "retries": {"mode": "standard", "max_attempts": c.max_attempts},
        }
        # Virtual-hosted buckets (bucket.127.0.0.1) cannot work against a local endpoint.
        if service == "s3" and c.endpoint_for("s3"):
            options["s3"] = {"addressing_style": "path"}
        return AioConfig(**options)

    async def client(self, service: str) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(service)
        if entry is not None and entry[0] is loop:
            return entry[1]
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            entry = self._clients.get(service)
            if entry is not None and entry[0] is loop:
                return entry[1]
            c = self.connection
            kwargs: dict[str, Any] = {"config": self._config(service), "region_name": c.region}
            if c.endpoint_url:
                kwargs["endpoint_url"] = c.endpoint_url
            if c.access_key_id:
                kwargs["aws_access_key_id"] = c.access_key_id
                kwargs["aws_secret_access_key"] = c.secret_access_key
                kwargs["aws_session_token"] = c.session_token
            creator = self._session.create_client(service, **kwargs)
            client = await creator.__aenter__()
            self._clients[service] = (loop, client, creator)
            return client

    async def has_credentials(self) -> bool:
        """Whether requests can be signed: explicit keys, or any from the standard chain."""
        if self.connection.access_key_id:
            return True
        return await self._session.get_credentials() is not None

    async def close(self) -> None:
        """Close the clients made in this loop; those of a finished loop are just dropped."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        clients, self._clients = self._clients, {}
        self._locks.clear()
        for owner_loop, _client, creator in clients.values():
            if owner_loop is loop:
                with contextlib.suppress(Exception):
                    await creator.__aexit__(None, None, None)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND_CODES


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _CONNECTION_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in _TRANSIENT_CODES or status >= 500
    return False


@contextlib.asynccontextmanager
async def aws_errors(what: str) -> AsyncIterator[None]:
    """Map a failed AWS call to the worker taxonomy: retryable -> ``TransientError``, missing
    credentials -> ``DependencyError``; anything else propagates for the caller to judge."""
    try:
        yield
    except NoCredentialsError as exc:
        raise DependencyError(what, f"no AWS credentials: {exc}") from exc
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            raise TransientError(f"{what}: {exc}") from exc
        raise


@contextlib.asynccontextmanager
async def dependency_check(what: str) -> AsyncIterator[None]:
    """For ``check()``: any failure to reach or find the resource becomes ``DependencyError``."""
    try:
        yield
    except DependencyError:
        raise
    except ClientError as exc:
        code = error_code(exc)
        detail = "does not exist" if is_not_found(exc) else f"{code or 'error'}: {exc}"
        raise DependencyError(what, detail) from exc
    except (TimeoutError, BotoCoreError, OSError) as exc:
        raise DependencyError(what, f"unreachable: {exc}") from exc
