"""Document audiences: which groups of a tenant may see a document.

Every document version carries ``groups``, a sorted tuple of group names; ``(EVERYONE,)`` (the
default) is a document no rule restricts. A reader sees a document when its audience
(``Principal.audience()``: its groups plus ``EVERYONE``) shares a group with the document's; an
admin (audience ``None``) sees every document of its tenant.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Annotated

from pydantic import BeforeValidator

from datatorag.domain.principal import EVERYONE

MAX_GROUP_CHARS = 128
MAX_GROUPS = 64
DEFAULT_GROUPS: tuple[str, ...] = (EVERYONE,)
Audience = frozenset[str] | None  # a principal's: the groups it sees (None: all, an admin's)


def check_group(name: object) -> str:
    """One group name, stripped; ``ValueError`` saying what is wrong with a bad one."""
    if not isinstance(name, str):
        raise ValueError(f"a group name must be a string, got {type(name).__name__}")
    value = name.strip()
    if not value:
        raise ValueError("a group name must not be empty")
    if len(value) > MAX_GROUP_CHARS:
        raise ValueError(f"group name {value[:20]!r}... is over {MAX_GROUP_CHARS} characters")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(f"group name {value!r} contains a control character U+{ord(ch):04X}")
    if "," in value:
        raise ValueError(f"group name {value!r} contains a comma (commas separate groups)")
    return value


def normalise_groups(groups: Iterable[object] | str) -> tuple[str, ...]:
    """A document's groups as stored: validated, unique and sorted; a list holding ``EVERYONE``
    is ``(EVERYONE,)`` (everyone sees it anyway). An empty list is an error: a document nobody
    but admins may see must name the group that may."""
    if isinstance(groups, str):
        groups = [groups]
    names = sorted({check_group(g) for g in groups})
    if not names:
        raise ValueError("an audience needs at least one group (everyone: 'everyone')")
    if len(names) > MAX_GROUPS:
        raise ValueError(f"an audience has at most {MAX_GROUPS} groups, got {len(names)}")
    if EVERYONE in names:
        return DEFAULT_GROUPS
    return tuple(names)


def parse_groups(text: str) -> tuple[str, ...]:
    """``"managers, hr"`` -> ``("hr", "managers")`` (the upload form field)."""
    return normalise_groups(part for part in text.split(",") if part.strip())


def visible(groups: Iterable[str], audience: Audience) -> bool:
    """Whether a document with ``groups`` is visible to a principal with ``audience``."""
    return audience is None or not audience.isdisjoint(groups)


def _before(value: object) -> object:
    if value is None:
        return DEFAULT_GROUPS  # a record stored before audiences existed
    if isinstance(value, str | list | tuple | set | frozenset):
        return normalise_groups(value)
    raise ValueError(f"groups must be a list of group names, got {type(value).__name__}")


# A document's groups as records and messages carry them.
Groups = Annotated[tuple[str, ...], BeforeValidator(_before)]
