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


class NotFound(DataToRagError):
    pass
