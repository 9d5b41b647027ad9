"""A member's profile (display name, contact): personal data outside the log, erasable.
Validation lives in the service (Ledger.set_profile: the one text rule, PROFILE_LIMITS)."""
from __future__ import annotations

from sqlalchemy import select

from ..store import tables as T
from ..store.errors import domain_errors
from .grants import iso


def get(ledger, address: str) -> dict:
    with domain_errors(), ledger._reader() as conn:
        r = conn.execute(select(T.profiles).where(T.profiles.c.address == address)).first()
    if r is None:
        return {"address": address, "displayName": None, "contact": None, "updatedAt": None}
    return {"address": address, "displayName": r.display_name, "contact": r.contact, "updatedAt": iso(r.updated_at)}


def put(ledger, address: str, *, display_name: str | None, contact: str | None) -> dict:
    ledger.set_profile(address, display_name=display_name, contact=contact)
    return get(ledger, address)
