"""Regenerate the committed gRPC stubs from ``proto/gateway.proto``.

    .venv/bin/python -m datatorag.gateway.grpc_codegen [--check]

The stubs are committed so running the gateway needs only ``grpcio`` and ``protobuf``;
``grpcio-tools`` (a dev dependency) is needed only here. ``-I datatorag/gateway/grpc_gen=proto``
maps the
proto into the Python package, so the generated modules import each other as
``datatorag.gateway.grpc_gen.*`` without any post-processing.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

# a development tool: it runs from a clone (the repository root holds proto/, libs/ the package)
ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
SOURCE_ROOT = ROOT / "libs"
PACKAGE = "datatorag/gateway/grpc_gen"
PROTOS = ["gateway.proto"]
GENERATED = ["gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py"]


def generate(out_root: Path) -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE}={PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[f"{PACKAGE}/{p}" for p in PROTOS],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    files = [out_root / PACKAGE / name for name in GENERATED]
    for f in files:  # generated code is not ours to lint
        f.write_text("# ruff: noqa\n" + f.read_text())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [
            f.name
            for f in fresh
            if not (SOURCE_ROOT / PACKAGE / f.name).exists()
            or not filecmp.cmp(f, SOURCE_ROOT / PACKAGE / f.name, shallow=False)
        ]
        if args.check:
            if stale:
                print(
                    f"stale gRPC stubs: {', '.join(stale)}; "
                    "run python -m datatorag.gateway.grpc_codegen"
                )
                return 1
            return 0
        for f in fresh:
            shutil.copyfile(f, SOURCE_ROOT / PACKAGE / f.name)
        print(f"wrote {', '.join(GENERATED)} to {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
