"""Error taxonomy. Workers decide ack / retry / dead-letter from the class alone."""


class DataToRagError(Exception):
    """Base class."""


class PermanentError(DataToRagError):
    """Retrying cannot help (corrupt PDF, empty file, bad name). Record, acknowledge, move on."""

    code = "permanent"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code:
            self.code = code


class TransientError(DataToRagError):
    """A dependency is down or slow. Release the message and retry with backoff."""


class DependencyError(DataToRagError):
    """A queue, bucket, table, index or model the service needs is missing or unreachable."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.detail = detail


class InsufficientStorage(DependencyError):
    """A disk (or quota) is full: ``ENOSPC``/``EDQUOT`` at a write, or free space below the
    configured floor. Retrying helps once space is freed; the gateway answers 507."""

    def __init__(self, detail: str, *, dependency: str = "disk") -> None:
        super().__init__(dependency, detail)


class NotFound(DataToRagError):
    pass
