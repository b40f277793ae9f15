"""What a role sees: field selection, masking, pseudonymous ids and the consent filter."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from udp_spark.serve.settings import MaskKind, RoleConfig
from udp_spark.serve.snapshot import Consent

# Columns of history rows and envelopes that describe the version, not the customer.
HISTORY_META = ("valid_from", "valid_to", "is_current", "change_type", "run_id")


def mask(value: Any, kind: MaskKind) -> Any:
    """``value`` masked: ``last4`` keeps the last four characters, ``email`` the first
    letter and the domain, ``year`` the year of a date, ``redact`` nothing."""
    if value is None:
        return None
    text = str(value)
    if kind == "last4":
        return "*" * max(len(text) - 4, 0) + text[-4:]
    if kind == "email":
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if domain else "***"
    if kind == "year":
        return text[:4]
    return "***"


def pseudonym(key: bytes, customer_id: str) -> str:
    """The pseudonymous id of a customer: a keyed hash, stable while the key is."""
    return "p_" + hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class RoleView:
    """A role's view of profiles; built once per role at start."""

    name: str
    role: RoleConfig
    pseudonym_key: bytes

    def visible(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The profile columns this role receives (customer_id always)."""
        return ("customer_id", *[c for c in columns
                                 if c != "customer_id" and self.role.sees(c)])

    def public_id(self, customer_id: str) -> str:
        return pseudonym(self.pseudonym_key, customer_id) if self.role.pseudonymous \
            else customer_id

    def consented(self, consent: dict[str, Consent] | None, now: datetime) -> bool:
        """True when this role may receive the customer's profile: no purpose, or the
        purpose allowed and not expired (a missing state is not allowed)."""
        purpose = self.role.purpose
        if purpose is None:
            return True
        state = (consent or {}).get(purpose)
        return state is not None and state.valid(now)

    def project(self, row: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
        """The row as this role may see it (``extra``: metadata columns kept as they are)."""
        out: dict[str, Any] = {"customer_id": self.public_id(row["customer_id"])}
        for col, value in row.items():
            if col == "customer_id":
                continue
            if col in extra:
                out[col] = value
                continue
            if not self.role.sees(col):
                continue
            if col == "lineage" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if self.role.sees(k)
                         and k not in self.role.mask}
            kind = self.role.mask.get(col)
            out[col] = mask(value, kind) if kind else value
        return out
