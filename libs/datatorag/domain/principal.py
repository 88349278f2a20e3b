"""Who is asking: the identity every gateway request acts as.

A principal is resolved once, from the request's credentials (an API key or an OIDC token), and
every read the gateway makes is scoped by it: its ``tenant`` decides whose documents exist at all,
its ``groups`` which of them it may see, its ``role`` whether it may change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["reader", "admin"]
ROLES: tuple[Role, ...] = ("reader", "admin")

# The audience of a document no rule restricts: every principal of the tenant sees it.
EVERYONE = "everyone"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    subject: str  # names the caller without revealing a secret: "key:<id>", "oidc:<sub>"
    groups: frozenset[str] = field(default_factory=frozenset)
    role: Role = "reader"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def audience(self) -> frozenset[str] | None:
        """The document groups this principal may see; ``None`` = all of its tenant's (admins)."""
        if self.is_admin:
            return None
        return self.groups | {EVERYONE}
