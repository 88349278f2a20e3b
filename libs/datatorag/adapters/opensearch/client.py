"""The ``AsyncOpenSearch`` client from settings (no auth, basic, or SigV4) and error translation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
from opensearchpy import AsyncHttpConnection, AsyncOpenSearch, AWSV4SignerAsyncAuth
from opensearchpy import exceptions as osx
from opensearchpy.helpers import BulkIndexError
from opensearchpy.serializer import JSONSerializer

from datatorag.config import OpenSearchSettings
from datatorag.domain.errors import DependencyError, PermanentError, TransientError

AUTH_MODES = ("none", "basic", "sigv4")
SIGV4_SERVICES = ("es", "aoss")
# 429: too many requests (bulk queue full); 502/503/504: a node or the load balancer is busy.
_RETRYABLE_STATUS = {429, 502, 503, 504}


class OrjsonSerializer(JSONSerializer):
    """JSON via orjson: vectors go out as numpy float32 rows, ~30x faster than ``json.dumps`` of
    a float list (which otherwise dominates the client's share of bulk indexing), and in their
    shortest float32 form, so bulk bodies are about half the size."""

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        try:
            return orjson.dumps(data, default=self.default, option=self._OPTIONS).decode()
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise osx.SerializationError(data, exc) from exc

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise osx.SerializationError(s, exc) from exc


def sigv4_auth(settings: OpenSearchSettings, credentials: Any = None) -> AWSV4SignerAsyncAuth:
    """SigV4 request signing for Amazon OpenSearch Service ("es") or Serverless ("aoss").

    ``credentials`` defaults to botocore's chain (env, profile, IRSA web identity, instance
    role); refreshable credentials are re-read per request by the signer, so rotation works.
    """
    if settings.service not in SIGV4_SERVICES:
        raise ValueError(f"sigv4 service must be one of {SIGV4_SERVICES}, got {settings.service!r}")
    if credentials is None:
        import botocore.session

        session = botocore.session.Session()
        credentials = session.get_credentials()
        region = settings.region or session.get_config_variable("region")
    else:
        region = settings.region
    if credentials is None:
        raise DependencyError("opensearch", "sigv4 auth: no AWS credentials found")
    if not region:
        raise ValueError("sigv4 auth needs a region (DATATORAG_OPENSEARCH_REGION)")
    return AWSV4SignerAsyncAuth(credentials, region, settings.service)


def http_auth(settings: OpenSearchSettings, credentials: Any = None) -> Any:
    if settings.auth == "none":
        return None
    if settings.auth == "basic":
        if not settings.username or settings.password is None:
            raise ValueError("basic auth needs DATATORAG_OPENSEARCH_USERNAME and _PASSWORD")
        return (settings.username, settings.password.get_secret_value())
    if settings.auth == "sigv4":
        return sigv4_auth(settings, credentials)
    raise ValueError(
        f"DATATORAG_OPENSEARCH_AUTH must be one of {AUTH_MODES}, got {settings.auth!r}"
    )


def make_client(
    settings: OpenSearchSettings, *, credentials: Any = None, maxsize: int = 10
) -> AsyncOpenSearch:
    """One client per process: it pools connections (``maxsize`` per host)."""
    url = urlsplit(settings.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(
            f"DATATORAG_OPENSEARCH_URL must be http(s)://host[:port], got {settings.url!r}"
        )
    port = url.port or (443 if url.scheme == "https" else 9200)
    host: dict[str, Any] = {"host": url.hostname, "port": port}
    if url.path and url.path != "/":
        host["url_prefix"] = url.path
    return AsyncOpenSearch(
        hosts=[host],
        http_auth=http_auth(settings, credentials),
        use_ssl=url.scheme == "https",
        verify_certs=settings.verify_certs,
        ssl_show_warn=False,
        # AsyncHttpConnection (aiohttp) accepts both a (user, password) tuple and a signer callable
        connection_class=AsyncHttpConnection,
        timeout=settings.timeout_s,
        maxsize=maxsize,
        serializer=OrjsonSerializer(),
    )


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Map client exceptions onto the worker taxonomy: retry (transient), drop (permanent), or
    a missing/unreachable dependency."""
    try:
        yield
    except BulkIndexError as exc:
        statuses = {_item_status(item) for item in exc.errors}
        detail = (
            f"{len(exc.errors)} bulk item(s) failed, first: {exc.errors[0] if exc.errors else ''}"
        )
        if statuses <= _RETRYABLE_STATUS:
            raise TransientError(f"{what}: {detail}") from exc
        if 404 in statuses:
            raise DependencyError(what, detail) from exc
        raise PermanentError(f"{what}: {detail}", code="index_rejected") from exc
    except osx.ConnectionError as exc:  # includes ConnectionTimeout and SSL errors
        raise TransientError(f"{what}: cannot reach OpenSearch: {exc}") from exc
    except osx.NotFoundError as exc:
        raise DependencyError(what, f"not found: {exc.error}") from exc
    except (osx.AuthenticationException, osx.AuthorizationException) as exc:
        raise DependencyError(what, f"access denied ({exc.status_code}): {exc.error}") from exc
    except osx.TransportError as exc:
        if isinstance(exc.status_code, int) and exc.status_code in _RETRYABLE_STATUS:
            raise TransientError(f"{what}: OpenSearch busy ({exc.status_code})") from exc
        raise


def error_type(exc: osx.TransportError) -> str:
    """The OpenSearch error type (``resource_already_exists_exception``...) of a failed call.

    The async connection hands the raw body over unparsed, so look in ``info`` and then in it.
    """
    info = exc.info if isinstance(exc.info, dict) else None
    if info is None and isinstance(exc.error, str) and exc.error.startswith("{"):
        try:
            info = orjson.loads(exc.error)
        except orjson.JSONDecodeError:
            info = None
    error = info.get("error") if info else exc.error
    if isinstance(error, dict):
        return str(error.get("type", ""))
    return str(error)


def _item_status(item: dict[str, Any]) -> int:
    for result in item.values():
        if isinstance(result, dict):
            return int(result.get("status", 0))
    return 0
