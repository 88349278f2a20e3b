"""Rows of cells -> a table block: the one text form every reader gives a table."""

from __future__ import annotations

import datetime as dt

from datatorag.parsing.cleaning import clean_inline


def cell_text(value: object) -> str:
    """A spreadsheet value as people read it: 45000 not 45000.0, dates without midnight."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return clean_inline(str(value))


def trim_row(cells: list[str]) -> list[str]:
    """Drop the empty cells at the end of a row (spreadsheets pad rows to the widest one)."""
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def table_text(rows: list[list[str]]) -> str:
    return "\n".join(" | ".join(row) for row in rows)
