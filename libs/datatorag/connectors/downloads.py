"""Resumable downloads for the network sources (FTP/FTPS, SFTP, S3).

``resumable_download`` streams a file through a source's ``read_from(offset)`` (an async generator
of the bytes from ``offset`` on: ``REST``, a read at an offset, a ``Range`` request) and, when the
stream fails with an error worth retrying, opens it again at the byte it reached after a backoff
delay, so a dropped connection does not restart a large file from zero. After
``backoff.attempts`` attempts in all it gives up with a ``TransientError`` naming the byte it
reached.

Error classification stays with the source: ``read_from`` raises ``PermanentError`` for what
retrying cannot fix (the file vanished, a refusal) and errors of the source as a whole
(``SourceError``) as they are; both end the download at once, as does any error that is not one
of ``retry_on``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from datatorag.connectors.base import SourceError
from datatorag.connectors.retry import Backoff
from datatorag.domain.errors import TransientError

ReadFrom = Callable[[int], AsyncGenerator[bytes, None]]
"""Opens the file at a byte offset and yields its bytes from there to the end."""


async def resumable_download(
    read_from: ReadFrom,
    *,
    path: str,
    backoff: Backoff,
    retry_on: tuple[type[BaseException], ...],
    stats: Counter[str] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
    on_resume: Callable[[int, int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the bytes of ``path`` (named in the final error) from ``read_from``, resuming at the
    offset reached after an error of one of the ``retry_on`` types.

    ``on_failure(error)`` runs after every such error (e.g. to drop a broken connection), also
    the last one; before each resume ``stats["resumes"]`` is counted and
    ``on_resume(offset, attempt)`` runs (e.g. to log it), ``attempt`` being the one that failed.
    """
    received = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            async with aclosing(read_from(received)) as blocks:
                async for block in blocks:
                    received += len(block)
                    yield block
            return
        except SourceError:
            raise  # the server went away or refused us: nothing to resume
        except retry_on as exc:
            failure = exc
        if on_failure is not None:
            on_failure(failure)
        if attempt >= backoff.attempts:
            raise TransientError(
                f"download of {path} failed after {attempt} attempts at byte {received}: "
                f"{type(failure).__name__}: {failure}"
            ) from failure
        if stats is not None:
            stats["resumes"] += 1
        if on_resume is not None:
            on_resume(received, attempt)
        await asyncio.sleep(backoff.delay(attempt))
