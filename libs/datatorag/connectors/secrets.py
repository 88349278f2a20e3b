"""Credential references: the sources file names where a secret lives, never the secret itself.

``env:VAR``                  an environment variable (Kubernetes ``secretKeyRef`` env, .env files)
``file:/path``               a file's content, trailing newline stripped (mounted Kubernetes
                             secrets)
``secretsmanager:ID[#key]``  AWS Secrets Manager ``SecretString`` by ARN or name; ``#key`` picks one
                             field of a JSON secret. Resolved with aiobotocore (the standard AWS
                             credential chain; ``AWS_ENDPOINT_URL`` reaches moto/LocalStack).

Values come back as ``SecretStr`` so they never show in ``repr``, logs or errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:  # imported where used: aiobotocore loads only for the AWS sources
    from datatorag.adapters.aws.session import AwsClients

SCHEMES = ("env", "file", "secretsmanager")
_REF = re.compile(r"^(env|file|secretsmanager):(.+)$", re.DOTALL)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretError(Exception):
    """A reference that is malformed or cannot be resolved; the message names the reference only."""


def check_ref(value: str) -> str:
    """Validate a reference's syntax (config load time); raises ``ValueError``."""
    m = _REF.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise ValueError(
            "credentials must be references - env:VAR, file:/path or secretsmanager:arn-or-name - "
            "never the secret itself"
        )
    scheme, target = m.groups()
    if scheme == "env" and not _ENV_NAME.match(target):
        raise ValueError(f"env: reference needs a variable name, got {target!r}")
    if scheme == "file" and not target.startswith("/"):
        raise ValueError(f"file: reference needs an absolute path, got {target!r}")
    return value.strip()


class SecretResolver:
    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        aws_region: str | None = None,
        aws_endpoint_url: str | None = None,
        aws_clients: AwsClients | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.aws_region = aws_region
        self.aws_endpoint_url = aws_endpoint_url
        self._aws = aws_clients
        self._owns_aws = aws_clients is None
        self._cache: dict[str, str] = {}

    async def resolve(self, ref: str) -> SecretStr:
        ref = check_ref(ref)
        scheme, _, target = ref.partition(":")
        if scheme == "env":
            value = self.environ.get(target)
            if value is None:
                raise SecretError(f"environment variable {target} (from {ref}) is not set")
            return SecretStr(value)
        if scheme == "file":
            try:
                text = await asyncio.to_thread(Path(target).read_text)
                return SecretStr(text.rstrip("\r\n"))
            except OSError as exc:
                raise SecretError(f"cannot read {ref}: {exc.strerror}") from exc
        return SecretStr(await self._secrets_manager(ref, target))

    async def resolve_optional(self, ref: str | None) -> SecretStr | None:
        return None if ref is None else await self.resolve(ref)

    async def _secrets_manager(self, ref: str, target: str) -> str:
        secret_id, _, field = target.partition("#")
        if secret_id not in self._cache:
            client = await self._client()
            try:
                response = await client.get_secret_value(SecretId=secret_id)
            except Exception as exc:  # botocore ClientError and friends: say which, not what
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                raise SecretError(f"Secrets Manager could not return {ref}: {code}") from exc
            value = response.get("SecretString")
            if value is None:
                raise SecretError(f"{ref} has no SecretString (binary secrets are not supported)")
            self._cache[secret_id] = value
        value = self._cache[secret_id]
        if not field:
            return value
        try:
            data = json.loads(value)
            return str(data[field])
        except (ValueError, KeyError, TypeError) as exc:
            raise SecretError(f"{ref}: the secret is not JSON with a {field!r} field") from exc

    async def _client(self) -> Any:
        if self._aws is None:
            from datatorag.adapters.aws.session import AwsClients, AwsConnection

            kwargs: dict[str, Any] = {}
            if self.aws_region:
                kwargs["region"] = self.aws_region
            if self.aws_endpoint_url:
                kwargs["endpoint_url"] = self.aws_endpoint_url
            self._aws = AwsClients(AwsConnection(**kwargs))
        return await self._aws.client("secretsmanager")

    async def close(self) -> None:
        if self._aws is not None and self._owns_aws:
            await self._aws.close()
