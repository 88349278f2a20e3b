#!/usr/bin/env python3
"""A read-only FTP server with the sample corpus (the fictional company's HR policies), for the
compose stack's FTP source (deploy/docker/sources.yaml): the connector's FTP path end to end.

Environment: SAMPLE_FTP_HOST (0.0.0.0), SAMPLE_FTP_USER (hr), SAMPLE_FTP_PASSWORD (required), SAMPLE_FTP_PORT (2121),
SAMPLE_FTP_PASSIVE_PORTS (30000-30009), SAMPLE_FTP_ROOT (default: the corpus in the package).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    from datatorag.config import sample_corpus

    password = os.environ.get("SAMPLE_FTP_PASSWORD")
    if not password:
        print("sample_ftp: set SAMPLE_FTP_PASSWORD", file=sys.stderr)
        return 2
    root = os.environ.get("SAMPLE_FTP_ROOT") or str(sample_corpus())
    low, high = (os.environ.get("SAMPLE_FTP_PASSIVE_PORTS") or "30000-30009").split("-")
    auth = DummyAuthorizer()
    auth.add_user(os.environ.get("SAMPLE_FTP_USER") or "hr", password, root, perm="elr")
    handler = FTPHandler
    handler.authorizer = auth
    handler.passive_ports = range(int(low), int(high) + 1)
    handler.banner = "DatatoRAG sample FTP (read-only)"
    port = int(os.environ.get("SAMPLE_FTP_PORT") or 2121)
    server = FTPServer((os.environ.get("SAMPLE_FTP_HOST") or "0.0.0.0", port), handler)
    print(f"sample_ftp: serving {root} on :{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
