"""Path safety rules and include/exclude globs."""

from __future__ import annotations

import pytest

from datatorag.connectors.paths import UnsafePath, check_path, display_path, matches


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("", "empty_path"),
        ("../x", "path_traversal"),
        ("a/../../x", "path_traversal"),
        ("/etc/passwd", "absolute_path"),
        ("a\x00b", "control_char"),
        ("a\nb", "control_char"),
        ("caf\udce9", "invalid_utf8"),
        ("a//b", "bad_component"),
        ("./a", "bad_component"),
        ("a\\..\\b", "bad_component"),
        ("x" * 256, "name_too_long"),
        ("/".join(["y" * 200] * 6), "name_too_long"),
    ],
)
def test_unsafe_paths_have_precise_codes(path: str, code: str) -> None:
    with pytest.raises(UnsafePath) as info:
        check_path(path)
    assert info.value.code == code


@pytest.mark.parametrize("path", ["a.pdf", "dir/sub/ü-名前.docx", "a..b/c..d", "x" * 255])
def test_safe_paths_pass(path: str) -> None:
    assert check_path(path) == path


def test_display_path_is_printable_utf8() -> None:
    shown = display_path("caf\udce9/\x00\x1b.txt")
    assert shown == "caf\\xe9/\\x00\\x1b.txt"
    shown.encode("utf-8")  # no lone surrogates left


def test_globs() -> None:
    assert matches("a/b/c.pdf", ["*.pdf"])
    assert not matches("a/b/c.docx", ["*.pdf"])
    assert matches("policies/x/y.txt", ["policies/*"])
    assert not matches("other/y.txt", ["policies/*"])
    assert not matches("dir/~lock.docx", ["*"], ["~*"])
    assert not matches("tmp/x.pdf", ["*.pdf"], ["tmp/*"])
    assert matches("anything", [])  # no include list: everything
