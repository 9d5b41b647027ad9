"""Purpose-bound reads of a member's data, and the access log that records them.

A read of member M's data by anyone but M must name a purpose the policy declares. It is
allowed for a category when that purpose is essential and lists both the reader's role and
the category (e.g. a treasurer's `reconciliation` covers entries and balances, never memos),
or when M holds an unexpired grant to the reader (their account, role or organisation) for
that category and purpose. Anything else is refused with 403, in words that never name a
member the reader did not name. Every allowed read is logged: who, their role, whose data,
which categories, purpose, basis, when, which route. A transfer is both parties' data: a read
of it is logged for both (basis "counterparty" for the party who did not allow it: it was
shown because the other party did), and its memo is shown only if both allow memos. Bulk
reads of every member (the log, the balance sheet) are one row with subject "*", which every
member sees in their log."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select

from ..core import errors as E
from ..store.errors import domain_errors
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

    def _declared(self) -> str:
        return ", ".join(p.id for p in self.policy.purposes  # those a reader can name
                         if p.categories and (not p.essential or set(p.roles) - {"self"}))

    def check_purpose(self, purpose: str | None) -> None:
        """PurposeRequired/PurposeNotAllowed unless `purpose` is one the policy declares."""
        declared = self._declared()
        if not purpose:
            raise PurposeRequired(
                f"reading another member's data needs a purpose: send the header `Ayni-Purpose: <id>` "
                f"(or ?purpose=<id>); declared purposes: {declared} (GET /v1/data-policy)")
        if self.policy.purpose(purpose) is None:
            raise PurposeNotAllowed(f"purpose {purpose[:40]!r} is not declared in the data policy: send "
                                    f"`Ayni-Purpose: <id>` with one of {declared} (GET /v1/data-policy)")

    def authorise(self, reader: Reader, subjects: list[str], need: tuple[str, ...], purpose: str | None,
                  resource: str, want: tuple[str, ...] = (), whose: str = "this member") -> set[str] | None:
        """None when the reader is one of the subjects (their own data: everything, unlogged).
        Otherwise the categories they may see, after logging the read for every subject: all of
        `need`, and each category of `want` only if it is covered for *every* subject (a memo is
        both parties' data: one party's grant does not show it). PurposeRequired/PurposeNotAllowed
        if `need` is covered for none of the subjects.

        Refusals never name a subject (`whose` describes it: the reader may not have named it, e.g.
        the parties of a transfer found by seq). Empty `subjects` means nothing exists to read: a
        reader whose role covers `need` by an essential purpose gets the categories (and then a 404
        from the caller); anyone else the same refusal as for data that exists, so the answer is no
        oracle of what a seq holds."""
        if reader.address in subjects:
            return None
        self.check_purpose(purpose)
        now = self.ledger.clock()
        bases: dict[str, dict[str, str | None]] = {
            s: {c: self._basis(reader, s, c, purpose, now) for c in need} for s in subjects}
        allowed = [s for s in subjects if all(bases[s].values())]
        if not allowed:
            if not subjects and all(purpose in self.policy.essential_for(reader.role, c) for c in need):
                return set(need)  # nothing to read, nothing to log
            missing = [c for c, b in bases[subjects[0]].items() if b is None] if subjects else list(need)
            category = missing[0]
            essential = self.policy.essential_for(reader.role, category)
            everyone = subjects == [ALL]
            raise PurposeNotAllowed(
                f"purpose {purpose} does not let a {reader.role} read the {category} of "
                f"{'every member' if everyone else whose}: "
                + (f"send `Ayni-Purpose: {essential[0]}`" if essential else
                   "no essential purpose covers it for your role")
                + ("" if everyone else ", or the member must grant it to you"))
        seen = set(need)
        for c in want:
            found = {s: self._basis(reader, s, c, purpose, now) for s in subjects}
            if all(found.values()):
                seen.add(c)
                for s, b in found.items():
                    bases[s][c] = b
        rows = []
        for s in subjects:  # a subject nobody allowed is shown as the counterparty of one who did
            got = set(bases[s].values())
            basis = "grant" if "grant" in got else "policy" if s in allowed else "counterparty"
            rows.append((s, basis))
        self._record_rows(reader, rows, sorted(seen), purpose, resource, now)
        return seen

    def counterparties(self, reader: Reader, others: set[str], purpose: str, resource: str,
                       want: tuple[str, ...] = ("memos",)) -> set[str]:
        """A page of a subject's history also shows the other party of each transfer: log the
        read for each of them, and return those who themselves allow `want` (memos) to this
        reader for this purpose (a memo is shown only if both parties allow it)."""
        now = self.ledger.clock()
        others = sorted(o for o in others if o != reader.address)
        rows, covered = [], set()
        for o in others:
            entries = self._basis(reader, o, "entries", purpose, now)
            got = {c: self._basis(reader, o, c, purpose, now) for c in want}
            shown = ["entries"]
            if all(got.values()):
                covered.add(o)
                shown += list(want)
            basis = "grant" if "grant" in got.values() or entries == "grant" else \
                "policy" if entries == "policy" else "counterparty"
            rows.append((o, basis, sorted(shown)))
        if rows:
            with self.ledger.transaction() as conn:
                conn.execute(insert(L), [self._row(reader, s, cats, purpose, b, resource, now) for s, b, cats in rows])
        return covered

    @staticmethod
    def _row(reader: Reader, subject: str, categories: list[str], purpose: str, basis: str, resource: str,
             now: int) -> dict:
        return {"at": now, "accessor": reader.address, "accessor_role": reader.role, "subject": subject,
                "categories": ",".join(categories), "purpose": purpose, "basis": basis,
                "resource": resource[:80]}

    def _record_rows(self, reader: Reader, rows: list[tuple[str, str]], categories: list[str], purpose: str,
                     resource: str, now: int) -> None:
        with self.ledger.transaction() as conn:
            conn.execute(insert(L), [self._row(reader, s, categories, purpose, b, resource, now) for s, b in rows])

    def record(self, reader: Reader, subjects: list[str], categories: list[str], purpose: str, basis: str,
               resource: str, now: int) -> None:
        self._record_rows(reader, [(s, basis) for s in subjects], categories, purpose, resource, now)

    def log_for(self, member: str, *, after_id: int = 0, limit: int = 100) -> tuple[list[AccessEntry], int | None]:
        """Reads of `member`'s data (and bulk reads of everyone's), oldest first, after `after_id`."""
        limit = max(1, min(MAX_PAGE, int(limit)))
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(select(L).where(or_(L.c.subject == member, L.c.subject == ALL), L.c.id > after_id)
                                .order_by(L.c.id).limit(limit + 1)).all()
        more = len(rows) > limit
        page = [AccessEntry(r.id, r.at, r.accessor, r.accessor_role, r.subject, r.categories.split(","),
                            r.purpose, r.basis, r.resource) for r in rows[:limit]]
        return page, (page[-1].id if more else None)

    def delete_older_than(self, cutoff_ms: int) -> int:
        with self.ledger.transaction() as conn:
            return conn.execute(delete(L).where(L.c.at < cutoff_ms)).rowcount


def check_board_purpose(access: Access, reader: Reader, purpose: str | None, category: str = "listings") -> None:
    """Browsing the exchange board: the reader names a declared purpose that the policy makes
    essential for their role and `category` (`exchange`), else PurposeRequired/NotAllowed.
    Deliberately not logged: a row per author and view would be a per-person view counter,
    and a row per search shown to every member would tell everyone who browses
    (docs/exchange.md). Reads of a single hidden or inactive listing by a treasurer are
    logged by the caller with `Access.record`."""
    access.check_purpose(purpose)
    if purpose not in access.policy.essential_for(reader.role, category):
        allowed = access.policy.essential_for(reader.role, category)
        raise PurposeNotAllowed(f"purpose {purpose} does not let a {reader.role} read the {category} of other "
                                f"members: " + (f"send `Ayni-Purpose: {allowed[0]}`" if allowed else
                                                "no essential purpose covers it for your role"))
