"""FTP sync benchmark.

1. Initial sync of an N-file tree (default 10,000 files in 100 directories, 2-14 KiB each) from a
   real pyftpdlib server (its own process, 127.0.0.1) through the whole connector path: listing,
   download, SHA-256, blob store (fsynced), SQLite registry, SQLite parse queue. Baseline: a bare
   aioftp loop downloading the same files one after another on one connection (no listing, no
   hashing, nothing stored). Ratio = our MB/s / bare MB/s.
2. A second sync with nothing changed: wall time and requests made. Targets: one listing pass
   (exactly one MLSD per directory) and zero downloads.

    .venv/bin/python -m bench.bench_ftp_sync [--quick] [--files N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aioftp
from pydantic import SecretStr

from bench._common import target, write_result
from datatorag.adapters.embedded.local_blobstore import LocalBlobStore
from datatorag.adapters.embedded.sqlite_queue import SqliteQueue
from datatorag.adapters.embedded.sqlite_registry import SqliteRegistry
from datatorag.config import Settings
from datatorag.connectors.ftp import FtpSettings, FtpSource
from datatorag.connectors.sync import SyncOptions, sync_source
from datatorag.observability.log import configure

USER, PASSWORD = "bench", "bench-pass"


def make_tree(root: Path, files: int, dirs: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    total = 0
    per_dir = max(1, files // dirs)
    n = 0
    for d in range(dirs):
        sub = root / f"dept-{d:03d}"
        sub.mkdir(parents=True)
        for f in range(per_dir if d < dirs - 1 else files - n):
            size = rng.randint(2 * 1024, 14 * 1024)
            (sub / f"doc-{f:04d}.txt").write_bytes(rng.randbytes(size))
            total += size
            n += 1
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyftpdlib",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            str(root),
            "-u",
            USER,
            "-P",
            PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pyftpdlib did not start")


class CountingRegistry:
    """Counts registry calls made by the sync (the requests that are not FTP)."""

    def __init__(self, inner: SqliteRegistry) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await attr(*args, **kwargs)

        return counted


async def bare_loop(port: int, paths: list[str]) -> tuple[float, int]:
    """Baseline: download every file in turn on one aioftp connection."""
    total = 0
    t0 = time.perf_counter()
    async with aioftp.Client.context("127.0.0.1", port, USER, PASSWORD) as client:
        for path in paths:
            async with client.download_stream(path) as stream:
                async for block in stream.iter_by_block(1 << 18):
                    total += len(block)
    return time.perf_counter() - t0, total


async def run(files: int, dirs: int, workdir: Path) -> dict[str, Any]:
    tree = workdir / "tree"
    total_bytes = make_tree(tree, files, dirs)
    paths = sorted("/" + p.relative_to(tree).as_posix() for p in tree.rglob("*.txt"))
    proc, port = start_server(tree)
    try:
        # baseline first, so both runs read from a warm page cache
        bare_s, bare_bytes = await bare_loop(port, paths)
        assert bare_bytes == total_bytes

        data = workdir / "data"
        registry = CountingRegistry(SqliteRegistry(data / "registry.db"))
        blobstore = LocalBlobStore(data / "blobs")
        queue = SqliteQueue(data / "queue.db", name="parse")
        settings = Settings(data_dir=data)
        source = FtpSource(
            "bench",
            "acme",
            FtpSettings(
                host="127.0.0.1",
                port=port,
                username=USER,
                password=SecretStr(PASSWORD),
                root="/",
                max_connections=4,
            ),
        )

        async def sync() -> Any:
            return await sync_source(
                source,
                registry=registry,
                blobstore=blobstore,  # type: ignore[arg-type]
                parse_queue=queue,
                settings=settings,
                options=SyncOptions(delete_grace_s=3600),
            )

        t0 = time.perf_counter()
        first = await sync()
        initial_s = time.perf_counter() - t0
        assert first.status == "ok" and first.counts["new"] == files, first
        depth = await queue.depth()

        before = Counter(source.stats)
        registry.calls.clear()
        t0 = time.perf_counter()
        second = await sync()
        nochange_s = time.perf_counter() - t0
        assert second.status == "ok", second
        requests = Counter(source.stats)
        requests.subtract(before)
        requests = Counter({k: v for k, v in requests.items() if v})
        await source.close()
        await queue.close()
        await registry.close()
    finally:
        proc.terminate()
        proc.wait(10)

    mb = total_bytes / 1e6
    ours_mbps = mb / initial_s
    bare_mbps = mb / bare_s
    listings = requests["MLSD"] + requests["LIST"]
    return {
        "metrics": {
            "files": files,
            "directories": dirs + 1,
            "megabytes": round(mb, 2),
            "initial_sync_s": round(initial_s, 3),
            "initial_sync_mb_per_s": round(ours_mbps, 3),
            "initial_sync_files_per_s": round(files / initial_s, 1),
            "messages_enqueued": depth,
            "nochange_sync_s": round(nochange_s, 3),
            "nochange_ftp_requests": dict(sorted(requests.items())),
            "nochange_ftp_requests_total": sum(v for k, v in requests.items() if k.isupper()),
            "nochange_registry_calls": dict(sorted(registry.calls.items())),
            "nochange_counts": second.counts,
        },
        "baseline": {
            "bare_aioftp_loop_s": round(bare_s, 3),
            "bare_aioftp_mb_per_s": round(bare_mbps, 3),
            "bare_aioftp_files_per_s": round(files / bare_s, 1),
        },
        "ratios": {"initial_sync_mb_per_s_vs_bare_aioftp": round(ours_mbps / bare_mbps, 3)},
        "targets": {
            "nochange_listing_passes": target(
                1, round(listings / (dirs + 1), 3), listings == dirs + 1
            ),
            "nochange_downloads": target(0, requests["RETR"], requests["RETR"] == 0),
            "nochange_unchanged_documents": target(
                files, second.counts["unchanged"], second.counts["unchanged"] == files
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 files (smoke run)")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--dirs", type=int, default=None)
    args = parser.parse_args()
    files = args.files or (1_000 if args.quick else 10_000)
    dirs = args.dirs or (10 if args.quick else 100)
    configure(level="WARNING", fmt="console")
    workdir = Path(tempfile.mkdtemp(prefix="bench-ftp-"))
    try:
        result = asyncio.run(run(files, dirs, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["params"] = {"quick": args.quick, "max_connections": 4, "cpu_count": os.cpu_count()}
    path = write_result("ftp_sync", result)
    m, b, r = result["metrics"], result["baseline"], result["ratios"]
    print(f"FTP sync, {m['files']} files / {m['directories']} dirs / {m['megabytes']} MB")
    print(
        f"  initial sync : {m['initial_sync_s']} s, {m['initial_sync_mb_per_s']} MB/s, "
        f"{m['initial_sync_files_per_s']} files/s (bare aioftp loop {b['bare_aioftp_mb_per_s']} "
        f"MB/s; ratio {r['initial_sync_mb_per_s_vs_bare_aioftp']})"
    )
    print(
        f"  no-change    : {m['nochange_sync_s']} s, FTP requests {m['nochange_ftp_requests']}, "
        f"registry calls {m['nochange_registry_calls']}"
    )
    for name, t in result["targets"].items():
        print(
            f"  target {name}: {t['actual']} (target {t['target']}) "
            f"{'MET' if t['met'] else 'MISSED'}"
        )
    print(f"  -> {path}")


if __name__ == "__main__":
    main()
