"""Embedding: model directories, the engine, the in-process and HTTP embedders.

OpenMP threads that spin while idle steal the CPU from the event loop and from each other when a
query-time forward shares the machine with other work (measured: a one-query encode took 200 ms
instead of 17 ms under load). Passive waiting is set before torch loads; an explicit setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
