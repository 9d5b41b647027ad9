"""A member's profile (display name, contact): personal data outside the log, erasable."""
from __future__ import annotations

from sqlalchemy import select

from ..core import errors as E
from ..store import tables as T
from .grants import iso

LIMITS = {"displayName": 120, "contact": 240}


def get(ledger, address: str) -> dict:
    with ledger._reader() as conn:
        r = conn.execute(select(T.profiles).where(T.profiles.c.address == address)).first()
    if r is None:
        return {"address": address, "displayName": None, "contact": None, "updatedAt": None}
    return {"address": address, "displayName": r.display_name, "contact": r.contact, "updatedAt": iso(r.updated_at)}


def put(ledger, address: str, *, display_name: str | None, contact: str | None) -> dict:
    for what, value in (("displayName", display_name), ("contact", contact)):
        if value is not None and (not isinstance(value, str) or len(value) > LIMITS[what]
                                  or any(ord(ch) < 32 or ch == "\x7f" for ch in value)):
            raise E.InvalidInput(f"{what} must be one line of at most {LIMITS[what]} characters")
    ledger.set_profile(address, display_name=display_name or None, contact=contact or None)
    return get(ledger, address)
