"""Path safety and include/exclude globs shared by every file-like source.

A hostile listing must never put a file outside the source's root, crash the sync or poison the
logs and registry: ``check_path`` says precisely what is wrong with a name (the sync engine records
it as a failed document), ``display_path`` renders any name printable and valid UTF-8.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from datatorag.domain.errors import PermanentError

MAX_COMPONENT_BYTES = 255  # NAME_MAX on Linux, and the limit of most FTP/SFTP servers
MAX_PATH_BYTES = 1024  # keeps registry rows and blob metadata bounded

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UnsafePath(PermanentError):
    """A name the sync refuses: ``code`` says which rule it broke."""


def check_path(path: str) -> str:
    """Return ``path`` when it is a safe source-relative POSIX path, else raise ``UnsafePath``.

    Codes: ``empty_path``, ``invalid_utf8`` (a name that is not UTF-8, decoded with
    ``surrogateescape``), ``control_char`` (NUL and other C0 controls), ``absolute_path``,
    ``path_traversal`` (a ``..`` component), ``bad_component`` (empty or ``.`` component,
    backslash), ``name_too_long``.
    """
    if not path:
        raise UnsafePath("empty path", code="empty_path")
    if _SURROGATE.search(path):
        raise UnsafePath(f"name is not valid UTF-8: {display_path(path)}", code="invalid_utf8")
    if _CONTROL.search(path):
        raise UnsafePath(
            f"name contains a control character (NUL, newline, ...): {display_path(path)}",
            code="control_char",
        )
    if path.startswith("/"):
        raise UnsafePath(f"absolute path: {display_path(path)}", code="absolute_path")
    parts = path.split("/")
    if ".." in parts:
        raise UnsafePath(
            f"'..' component escapes the source root: {display_path(path)}", code="path_traversal"
        )
    if "" in parts or "." in parts or "\\" in path:
        raise UnsafePath(
            f"empty, '.' or backslash component: {display_path(path)}", code="bad_component"
        )
    if len(path) > MAX_PATH_BYTES // 4 or any(len(p) > MAX_COMPONENT_BYTES // 4 for p in parts):
        # only long names can break the byte limits; encode just those
        if len(path.encode("utf-8")) > MAX_PATH_BYTES:
            raise UnsafePath(
                f"path longer than {MAX_PATH_BYTES} bytes: {display_path(path)[:80]}...",
                code="name_too_long",
            )
        if any(len(p.encode("utf-8")) > MAX_COMPONENT_BYTES for p in parts):
            raise UnsafePath(
                f"a name is longer than {MAX_COMPONENT_BYTES} bytes: {display_path(path)[:80]}...",
                code="name_too_long",
            )
    return path


def display_path(path: str, max_chars: int = 2048) -> str:
    """A printable, valid UTF-8 rendering: undecodable bytes as ``\\xNN``, controls escaped."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= max_chars else text[:max_chars] + "..."


def join(root: str, rel: str) -> str:
    """Join two POSIX paths, collapsing the separator."""
    if not root or root == "/":
        return ("/" if root == "/" else "") + rel
    return root.rstrip("/") + "/" + rel


def matches(path: str, include: Sequence[str] = ("*",), exclude: Sequence[str] = ()) -> bool:
    """Glob filter on the source-relative path.

    Patterns use ``fnmatch`` syntax where ``*`` also crosses ``/``: ``*.pdf`` selects PDFs at any
    depth, ``policies/*`` everything under ``policies``. A pattern without ``/`` is also tried
    against the base name, so ``~*`` excludes ``dir/~tmp``. Matching is case-sensitive.
    """
    base = path.rsplit("/", 1)[-1]

    def hit(patterns: Sequence[str]) -> bool:
        for pattern in patterns:
            if fnmatch.fnmatchcase(path, pattern):
                return True
            if "/" not in pattern and fnmatch.fnmatchcase(base, pattern):
                return True
        return False

    return (not include or hit(include)) and not hit(exclude)
