"""A member's data-sharing preferences: grants of "who may read which category of my data,
for which purpose, until when", and the portable document that carries them
(docs/preferences.schema.json) from one cooperative to another.

Only purposes the policy declares as *not* essential can be granted (essential ones need no
grant), and only for the categories that purpose lists. Grants are checked on every read
(ledger/privacy/access.py); an expired grant covers nothing, and `ayni retention run`
deletes it."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, func, insert, select

from ..core import errors as E
from ..core.addresses import normalize_address
from ..core.text import check_user_text
from ..store import tables as T
from ..store.errors import domain_errors
from ..store.privacy_tables import privacy_grants as G
from ..store.privacy_tables import privacy_organisations as O
from .policy import Policy

DOC_VERSION = 1
SCHEMA_ID = "https://ayni.coop/schemas/preferences.schema.json"
GRANTEE_KINDS = ("role", "account", "organisation")
ROLES = ("member", "shop", "treasurer")
MAX_GRANTS = 200
MAX_TIME_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: the last instant an ISO date can name


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, what: str = "until") -> int:
    """An ISO 8601 time with a zone (e.g. 2027-01-31T00:00:00Z) or unix ms -> unix ms, between
    1970 and 9999-12-31T23:59:59Z (so it can be written back as an ISO date)."""
    ms = None
    if isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str) and len(value) <= 40:
        try:
            t = datetime.fromisoformat(value)
            if t.tzinfo is not None:
                ms = int(t.timestamp() * 1000)
        except (ValueError, OverflowError):
            pass
    if ms is None:
        raise E.InvalidInput(f"{what} must be a time with a zone like 2027-01-31T00:00:00Z")
    if not 0 <= ms <= MAX_TIME_MS:
        raise E.InvalidInput(f"{what} must be between 1970-01-01T00:00:00Z and {iso(MAX_TIME_MS)}")
    return ms


MAX_ORGANISATION_CHARS = 120


def organisation_name(value: object) -> str:
    """An organisation's name, trimmed: 1 to 120 characters under the one text rule for what
    people write (ledger/core/text.py: no control, separator, bidi or zero-width character),
    and words separated by plain spaces only. A name identifies a grantee: a lookalike space
    (U+00A0) or an invisible character would let one name pass for another in a list."""
    name = value.strip() if isinstance(value, str) else value
    rule = ("grantee organisation must be a name of 1 to 120 printable characters, words separated by "
            "plain spaces (no control, separator, bidi or zero-width characters)")
    try:
        check_user_text(name, field="grantee organisation", max_chars=MAX_ORGANISATION_CHARS)
    except E.InvalidInput as exc:
        raise E.InvalidInput(f"{rule}: {exc}") from None
    if not name or any(ch.isspace() and ch != " " for ch in name):
        raise E.InvalidInput(rule)
    return name


@dataclass(frozen=True)
class Grant:
    id: str
    grantee_kind: str
    grantee: str
    category: str
    purpose: str
    until: int       # unix ms, exclusive
    created_at: int  # unix ms

    def as_json(self) -> dict:
        return {"id": self.id, "grantee": {self.grantee_kind: self.grantee}, "category": self.category,
                "purpose": self.purpose, "until": iso(self.until), "createdAt": iso(self.created_at)}


def _grant(row) -> Grant:
    return Grant(row.id, row.grantee_kind, row.grantee, row.category, row.purpose, row.until, row.created_at)


class Preferences:
    def __init__(self, ledger, policy: Policy):
        self.ledger = ledger
        self.policy = policy

    # -- validation ------------------------------------------------------------------
    def _grantee(self, member: str, grantee: object) -> tuple[str, str]:
        if not isinstance(grantee, dict) or len(grantee) != 1:
            raise E.InvalidInput('grantee must be one of {"role": ...}, {"account": "0x..."}, {"organisation": "..."}')
        (kind, value), = grantee.items()
        if kind == "role":
            if value not in ROLES:
                raise E.InvalidInput(f"grantee role must be one of {', '.join(ROLES)}")
        elif kind == "account":
            value = normalize_address(value, what="grantee account")
            if value == member:
                raise E.InvalidInput("you need no grant to read your own data")
        elif kind == "organisation":
            value = organisation_name(value)
        else:
            raise E.InvalidInput(f"grantee kind must be one of {', '.join(GRANTEE_KINDS)}")
        return kind, value

    def _scope(self, category: object, purpose: object) -> None:
        p = self.policy.purpose(purpose) if isinstance(purpose, str) else None
        if p is None:
            raise E.InvalidInput(f"purpose {str(purpose)[:40]!r} is not declared; grantable purposes: "
                                 + ", ".join(x.id for x in self.policy.grantable()))
        if p.essential:
            raise E.InvalidInput(f"purpose {p.id} is essential: the policy already allows it, no grant needed")
        if category not in p.categories:
            raise E.InvalidInput(f"purpose {p.id} covers only the categories {', '.join(p.categories)}")

    def _check(self, member: str, raw: dict, now: int) -> dict:
        if not isinstance(raw, dict):
            raise E.InvalidInput("a grant is an object with grantee, category, purpose and until")
        extra = set(raw) - {"id", "grantee", "category", "purpose", "until", "createdAt"}
        if extra:
            raise E.InvalidInput(f"a grant has no field(s) {', '.join(sorted(extra))}")
        kind, who = self._grantee(member, raw.get("grantee"))
        self._scope(raw.get("category"), raw.get("purpose"))
        until = parse_time(raw.get("until"))
        if until <= now:
            raise E.InvalidInput(f"until {iso(until)} is not in the future")
        return {"member": member, "grantee_kind": kind, "grantee": who, "category": raw["category"],
                "purpose": raw["purpose"], "until": until, "created_at": now}

    # -- reading and writing -----------------------------------------------------------
    def grants(self, member: str) -> list[Grant]:
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(select(G).where(G.c.member == member).order_by(G.c.created_at, G.c.id))
            return [_grant(r) for r in rows]

    def grant(self, member: str, raw: dict) -> Grant:
        row = self._check(member, raw, self.ledger.clock())
        with self.ledger.transaction() as conn:
            if conn.execute(select(func.count()).select_from(G).where(G.c.member == member)).scalar_one() >= MAX_GRANTS:
                raise E.InvalidInput(f"at most {MAX_GRANTS} grants per member; revoke some first")
            row["id"] = secrets.token_hex(16)
            conn.execute(insert(G).values(**row))
        return Grant(row["id"], row["grantee_kind"], row["grantee"], row["category"], row["purpose"],
                     row["until"], row["created_at"])

    def revoke(self, member: str, grant_id: str) -> None:
        with self.ledger.transaction() as conn:
            if conn.execute(delete(G).where(G.c.member == member, G.c.id == str(grant_id)[:32])).rowcount != 1:
                raise E.LedgerError(f"you have no grant {str(grant_id)[:40]!r}", code="not_found")

    def export(self, member: str) -> dict:
        return {"$schema": SCHEMA_ID, "version": DOC_VERSION, "member": member,
                "exportedAt": iso(self.ledger.clock()), "exportedFrom": self.ledger.genesis.community,
                "policyVersion": self.policy.policyVersion,
                "grants": [g.as_json() for g in self.grants(member)]}

    def import_(self, member: str, doc: object) -> dict:
        """Replace the member's grants with the document's. Grants this cooperative cannot
        honour (purpose or category it does not declare, already expired) are skipped and
        reported; anything malformed refuses the whole document. A grant to an organisation
        this cooperative has no accounts for is kept (it is the member's wish) with a warning:
        it covers nobody until the operator records accounts under that name, and then them."""
        if not isinstance(doc, dict) or doc.get("version") != DOC_VERSION or not isinstance(doc.get("grants"), list):
            raise E.InvalidInput(f"not a preference document (version {DOC_VERSION} with a grants list)")
        if len(doc["grants"]) > MAX_GRANTS:
            raise E.InvalidInput(f"at most {MAX_GRANTS} grants per member")
        now = self.ledger.clock()
        rows, skipped = [], []
        for i, raw in enumerate(doc["grants"]):
            try:
                rows.append((i, self._check(member, raw, now)))
            except E.InvalidInput as exc:
                if isinstance(raw, dict) and "grantee" in raw and _skippable(exc.message):
                    skipped.append({"index": i, "reason": exc.message})
                else:
                    raise E.InvalidInput(f"grant {i}: {exc.message}") from None
        known = self.organisations()
        warnings = [{"index": i, "reason": f"organisation {r['grantee']!r} is unknown here: the grant covers "
                     "nobody until the operator records accounts under that name, and then whoever is recorded"}
                    for i, r in rows if r["grantee_kind"] == "organisation" and r["grantee"] not in known]
        with self.ledger.transaction() as conn:
            conn.execute(delete(G).where(G.c.member == member))
            for _, row in rows:
                conn.execute(insert(G).values(id=secrets.token_hex(16), **row))
        return {"imported": len(rows), "skipped": skipped, "warnings": warnings}

    def covering(self, member: str, who: str, role: str, category: str, purpose: str, now: int) -> Grant | None:
        """The member's unexpired grant letting `who` (with `role`) read `category` for `purpose`."""
        with domain_errors(), self.ledger._reader() as conn:
            orgs = select(O.c.organisation).where(O.c.address == who)
            row = conn.execute(select(G).where(
                G.c.member == member, G.c.category == category, G.c.purpose == purpose, G.c.until > now,
                ((G.c.grantee_kind == "role") & (G.c.grantee == role))
                | ((G.c.grantee_kind == "account") & (G.c.grantee == who))
                | ((G.c.grantee_kind == "organisation") & G.c.grantee.in_(orgs))).limit(1)).first()
        return _grant(row) if row else None

    def delete_expired(self, now: int) -> int:
        with self.ledger.transaction() as conn:
            return conn.execute(delete(G).where(G.c.until <= now)).rowcount

    # -- organisations (operator-maintained) ------------------------------------------
    def add_to_organisation(self, organisation: str, address: str) -> None:
        _, name = self._grantee("", {"organisation": organisation})
        address = normalize_address(address, what="account")
        with self.ledger.transaction() as conn:
            if conn.execute(select(T.accounts.c.address).where(T.accounts.c.address == address)).first() is None:
                raise E.UnknownAccount(f"{address} has no account here")
            if conn.execute(select(O).where(O.c.organisation == name, O.c.address == address)).first() is None:
                conn.execute(insert(O).values(organisation=name, address=address))

    def remove_from_organisation(self, organisation: str, address: str) -> bool:
        address = normalize_address(address, what="account")
        with self.ledger.transaction() as conn:
            return conn.execute(delete(O).where(O.c.organisation == organisation.strip(),
                                                O.c.address == address)).rowcount == 1

    def organisations(self) -> dict[str, list[str]]:
        with domain_errors(), self.ledger._reader() as conn:
            out: dict[str, list[str]] = {}
            for r in conn.execute(select(O).order_by(O.c.organisation, O.c.address)):
                out.setdefault(r.organisation, []).append(r.address)
            return out


def _skippable(message: str) -> bool:
    """Reasons that depend on this cooperative or on time, not on a malformed document."""
    return message.startswith(("purpose ", "until "))
