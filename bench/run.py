"""``make bench``: run every benchmark, then write BENCHMARKS.md's generated section.

Each bench is its own process (no shared warm caches, a crash in one does not hide the others).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench._common import RESULTS_DIR, machine_info

REPO = Path(__file__).resolve().parent.parent
# (module, extra args) in the order they appear in BENCHMARKS.md
BENCHES = [
    ("bench.bench_embedder", []),
    ("bench.bench_gpu", []),  # only where a GPU is (make bench-gpu)
    ("bench.bench_parser", []),
    ("bench.bench_ocr", []),
    ("bench.bench_hostile", []),
    ("bench.bench_ingestion", []),
    ("bench.bench_query", []),
    ("bench.bench_edge", []),
    ("bench.bench_query", ["--index", "opensearch"]),  # the gateway vs a raw aiohttp client
    ("bench.bench_stores", []),  # vs ChromaDB, and the scale curve
    ("bench.bench_quality", []),
    ("bench.bench_handbooks", []),
    ("bench.bench_answer", []),
    ("bench.bench_bulk_index", []),
    ("bench.bench_ftp_sync", []),
    ("bench.bench_lifecycle", []),
    ("bench.bench_acl", []),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="module suffixes, e.g. embedder query")
    args = ap.parse_args()
    failures = []
    for module, extra in BENCHES:
        short = module.removeprefix("bench.bench_")
        if args.only and short not in args.only:
            continue
        if not (REPO / (module.replace(".", "/") + ".py")).exists():
            print(f"== {short}: not present, skipped", flush=True)
            continue
        if short == "gpu" and not _gpu_present():
            print("== gpu: no GPU on this machine, not run (make bench-gpu where one is)")
            continue
        cmd = [sys.executable, "-m", module, *extra, *(["--quick"] if args.quick else [])]
        print(f"== {short}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=REPO)
        print(f"== {short}: exit {rc} in {time.perf_counter() - t0:.0f}s", flush=True)
        if rc:
            failures.append(short)
    summary = summarise()
    print(summary)
    if failures:
        sys.exit(f"benchmarks failed: {', '.join(failures)}")


def _gpu_present() -> bool:
    import shutil

    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidiactl").exists()


def summarise() -> str:
    """A table of every target from the result files (the figures live in BENCHMARKS.md)."""
    rows = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        for what, t in (data.get("targets") or {}).items():
            rows.append(
                f"| {data['name']} | {what} | {t['target']} | {t['actual']} "
                f"| {'yes' if t['met'] else 'NO'} |"
            )
    m = machine_info()
    head = (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GiB RAM, Python {m['python']}\n\n"
        "| bench | target | goal | measured | met |\n|---|---|---|---|---|"
    )
    if not (RESULTS_DIR / "gpu.json").exists():
        rows.append("| gpu | every GPU target | on a lent GPU | not run: no GPU here | - |")
    return head + "\n" + "\n".join(rows)


if __name__ == "__main__":
    main()
