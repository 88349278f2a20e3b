"""The one place that builds adapters and services from settings.

Entry points (``datatorag.entrypoints``) call only this package; nothing below it knows which
adapters were chosen or how a process is put together.

* ``factory``: one adapter per port, chosen by ``DATATORAG_MODE``.
* ``components``: the adapters one process shares, the pipeline workers, the startup check.
* ``provisioning``: ``datatorag init``.
* ``connector``: sources, the scheduler and the stall reaper.
* ``gateway``: the query service, REST app and gRPC server, with the sync and upload hooks.
"""

from datatorag.bootstrap.components import (
    Components,
    embedder_worker,
    indexer_worker,
    parser_worker,
    startup_check,
)
from datatorag.bootstrap.provisioning import index_shape, provision

__all__ = [
    "Components",
    "embedder_worker",
    "index_shape",
    "indexer_worker",
    "parser_worker",
    "provision",
    "startup_check",
]
