"""A parse sandbox worker: ``python -m datatorag.pipeline.sandbox_worker FD MODEL MB``.

A module of its own, so the worker's classes pickle under their real names
(``datatorag.pipeline.sandbox``), not ``__main__``."""

import sys
from multiprocessing.connection import Connection

from datatorag.pipeline.sandbox import _worker_main

if __name__ == "__main__":
    fd, model, memory_mb = sys.argv[1:4]
    _worker_main(Connection(int(fd)), model, int(memory_mb))
