"""Purpose-bound reads of a member's data, and the access log that records them.

A read of member M's data by anyone but M must name a purpose the policy declares. It is
allowed for a category when that purpose is essential and lists both the reader's role and
the category (e.g. a treasurer's `reconciliation` covers entries and balances, never memos),
or when M holds an unexpired grant to the reader (their account, role or organisation) for
that category and purpose. Anything else is refused with 403. Every allowed read is logged:
who, their role, whose data, which categories, purpose, basis, when, which route. Bulk reads
of every member (the log, the balance sheet) are one row with subject "*", which every member
sees in their log."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select

from ..core import errors as E
from ..store.privacy_tables import privacy_access_log as L
from .grants import Preferences
from .policy import Policy

ALL = "*"
MAX_PAGE = 500


class PurposeRequired(E.LedgerError):
    code = "purpose_required"


class PurposeNotAllowed(E.LedgerError):
    code = "purpose_not_allowed"


@dataclass(frozen=True)
class Reader:
    address: str
    role: str


@dataclass(frozen=True)
class AccessEntry:
    id: int
    at: int
    accessor: str
    accessor_role: str
    subject: str
    categories: list[str]
    purpose: str
    basis: str
    resource: str

    def as_json(self) -> dict:
        return {"id": self.id, "at": self.at, "accessor": self.accessor, "accessorRole": self.accessor_role,
                "subject": "all members" if self.subject == ALL else self.subject,
                "categories": self.categories, "purpose": self.purpose, "basis": self.basis,
                "resource": self.resource}


class Access:
    def __init__(self, ledger, policy: Policy, preferences: Preferences):
        self.ledger = ledger
        self.policy = policy
        self.prefs = preferences

    def _basis(self, reader: Reader, subject: str, category: str, purpose: str, now: int) -> str | None:
        if purpose in self.policy.essential_for(reader.role, category):
            return "policy"
        if subject != ALL and self.prefs.covering(subject, reader.address, reader.role, category, purpose, now):
            return "grant"
        return None

    def authorise(self, reader: Reader, subjects: list[str], need: tuple[str, ...], purpose: str | None,
                  resource: str, want: tuple[str, ...] = ()) -> set[str] | None:
        """None when the reader is one of the subjects (their own data: everything, unlogged).
        Otherwise the categories they may see (all of `need`, and those of `want` covered for
        every subject allowed), after logging the read; PurposeRequired/PurposeNotAllowed if
        `need` is covered for none of the subjects."""
        if reader.address in subjects:
            return None
        declared = ", ".join(p.id for p in self.policy.purposes  # those a reader can name
                             if p.categories and (not p.essential or set(p.roles) - {"self"}))
        if not purpose:
            raise PurposeRequired(
                f"reading another member's data needs a purpose: send the header `Ayni-Purpose: <id>` "
                f"(or ?purpose=<id>); declared purposes: {declared} (GET /v1/data-policy)")
        if self.policy.purpose(purpose) is None:
            raise PurposeNotAllowed(f"purpose {purpose[:40]!r} is not declared in the data policy: send "
                                    f"`Ayni-Purpose: <id>` with one of {declared} (GET /v1/data-policy)")
        now = self.ledger.clock()
        allowed, bases, refusal = [], set(), None
        for subject in subjects:
            got = {c: self._basis(reader, subject, c, purpose, now) for c in need}
            missing = [c for c, b in got.items() if b is None]
            if missing:
                refusal = refusal or (subject, missing[0])
                continue
            allowed.append(subject)
            bases.update(got.values())
        if not allowed:
            subject, category = refusal
            essential = self.policy.essential_for(reader.role, category)
            whose = "every member's" if subject == ALL else f"{subject}'s"
            raise PurposeNotAllowed(
                f"purpose {purpose} does not let a {reader.role} read {whose} {category}: "
                + (f"send `Ayni-Purpose: {essential[0]}`" if essential else
                   "no essential purpose covers it for your role")
                + ("" if subject == ALL else ", or the member must grant it to you"))
        seen = set(need)
        for c in want:
            found = [self._basis(reader, s, c, purpose, now) for s in allowed]
            if all(found):
                seen.add(c)
                bases.update(found)
        basis = "grant" if "grant" in bases else "policy"
        self.record(reader, allowed, sorted(seen), purpose, basis, resource, now)
        return seen

    def record(self, reader: Reader, subjects: list[str], categories: list[str], purpose: str, basis: str,
               resource: str, now: int) -> None:
        rows = [{"at": now, "accessor": reader.address, "accessor_role": reader.role, "subject": s,
                 "categories": ",".join(categories), "purpose": purpose, "basis": basis,
                 "resource": resource[:80]} for s in subjects]
        with self.ledger.engine.begin() as conn:
            conn.execute(insert(L), rows)

    def log_for(self, member: str, *, after_id: int = 0, limit: int = 100) -> tuple[list[AccessEntry], int | None]:
        """Reads of `member`'s data (and bulk reads of everyone's), oldest first, after `after_id`."""
        limit = max(1, min(MAX_PAGE, int(limit)))
        with self.ledger._reader() as conn:
            rows = conn.execute(select(L).where(or_(L.c.subject == member, L.c.subject == ALL), L.c.id > after_id)
                                .order_by(L.c.id).limit(limit + 1)).all()
        more = len(rows) > limit
        page = [AccessEntry(r.id, r.at, r.accessor, r.accessor_role, r.subject, r.categories.split(","),
                            r.purpose, r.basis, r.resource) for r in rows[:limit]]
        return page, (page[-1].id if more else None)

    def delete_older_than(self, cutoff_ms: int) -> int:
        with self.ledger.engine.begin() as conn:
            return conn.execute(delete(L).where(L.c.at < cutoff_ms)).rowcount
