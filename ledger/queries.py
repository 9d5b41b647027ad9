"""Read models for the faces (HTTP API, CLI): one transfer, an account's history, the log.

Pagination is keyset on `seq`: the cursor is base64url of the last seq returned, and the
next page asks for seq below it (newest first) or above it (oldest first). seq only grows
and writers commit in seq order (they serialise on the log head), so the committed
transfers are always a prefix of seq: transfers posted between two page reads land above
every cursor already handed out. Newest-first paging therefore never repeats or skips a
row; new transfers show up on a fresh first page. Oldest-first paging meets them at the end.

History is "transfers where the account is payer or payee". That is written as a UNION ALL
of two queries, one per index (payer, seq) and (payee, seq), each ordered by seq and limited
to the page size, merged and cut once more. An `OR` over the two columns makes both SQLite
and PostgreSQL scan the transfers table or read every matching row and sort (checked with
EXPLAIN; see tests/test_queries.py::test_history_plans_use_the_indexes). A transfer never has
payer == payee, so the two halves are disjoint and UNION ALL cannot repeat a row.

A member's history also holds their legs of remote payments (docs/federation.md): at the
origin the payer's leg (side `out`, payer here), at the destination the payee's (side `in`,
payee here). A leg is listed once, at the seq of its `remote.prepared` entry (its place in the
keyset never moves), with its current state: prepared (pending), committed, aborted (returned).
It shows both amounts and the other community, never the peer account that carries it. Those
halves read `remote_legs` by (side, payer/payee) without an index of their own: a node's remote
legs are few next to its transfers (an index would need a migration: noted for the lead).

The memo is personal data, returned here for the API to show to the two parties only.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from sqlalchemy import literal_column, select, union_all

from .core import errors as E
from .core.addresses import normalize_address
from .core.entries import Entry
from .service import Ledger, entry_from_row
from .store import tables as T
from .store.errors import domain_errors
from .store.federation_tables import alliances as AL
from .store.federation_tables import remote_legs as RL
from .store.federation_tables import remote_memos as RM

MAX_PAGE = 500
EVERY_MEMBER = "*"  # the subject of community-wide entries (ledger.privacy.access.ALL)
_SEQ = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class TransferView:
    seq: int
    at: int  # unix ms
    payer: str
    payee: str
    currency: str
    amount: int
    request_id: str | None  # 0x hex, or None for a transfer that names no request
    memo: str | None
    digest: str  # 0x hex: the EIP-712 digest, the transfer's id
    direction: str | None  # "in" | "out" relative to the account asked about; None from transfer()
    remote: RemoteLegView | None = None  # set when this row is a leg of a remote payment


# What a member sees of a remote payment's state: a prepared leg is still pending (the amount
# is held, not paid), an aborted one failed and its hold went back.
REMOTE_STATUS = {"prepared": "pending", "committed": "completed", "aborted": "failed"}


@dataclass(frozen=True)
class RemoteLegView:
    """This node's leg of a remote payment, as its member sees it: the amount here (in the
    TransferView) and the amount there, the other community and the counterparty in it."""

    payment_id: str  # 0x hex: the payer's EIP-712 digest under the origin's domain
    side: str  # "out" (this node is the origin) | "in" (the destination)
    state: str  # prepared | committed | aborted
    code: str  # why it aborted ("" otherwise)
    community: str  # 0x hex id of the other community
    community_url: str  # its node's URL, as the alliance names it
    counterparty: str  # the payee there (side out) or the payer there (side in)
    currency: str  # the currency there
    amount: int  # minor units there
    decided_seq: int | None

    @property
    def status(self) -> str:
        return REMOTE_STATUS.get(self.state, self.state)


def clamp_limit(limit: object, default: int) -> int:
    if limit is None:
        return default
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise E.InvalidInput("limit must be an integer")
    return max(1, min(MAX_PAGE, limit))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: object) -> int:
    try:
        if not isinstance(cursor, str) or not 0 < len(cursor) <= 32:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if not _SEQ.fullmatch(raw) or int(raw) > _MAX_SEQ:
            raise ValueError
        return int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise E.InvalidInput("cursor is malformed: pass back the nextCursor of the previous page") from None


def _ms(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SEQ:
        raise E.InvalidInput(f"{what} must be a unix time in milliseconds")
    return value


class Queries:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    # -- one transfer --------------------------------------------------------------------
    def transfer(self, seq: int) -> TransferView | None:
        """The transfer at `seq` (memo included; the caller decides who may see it)."""
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise E.InvalidInput("seq must be an integer")
        if not 0 < seq <= _MAX_SEQ:
            return None
        t = T.transfers
        q = (select(t, T.memos.c.memo, T.entries.c.body)
             .select_from(t.join(T.entries, T.entries.c.seq == t.c.seq).outerjoin(T.memos, T.memos.c.seq == t.c.seq))
             .where(t.c.seq == seq))
        with domain_errors(), self.ledger._reader() as conn:
            row = conn.execute(q).first()
        return None if row is None else self._view(row, None)

    # -- history -------------------------------------------------------------------------
    def history(self, address: str, *, currency: str | None = None, counterparty: str | None = None,
                since_ms: int | None = None, until_ms: int | None = None, limit: int = 50,
                cursor: str | None = None, newest_first: bool = True) -> tuple[list[TransferView], str | None]:
        """Transfers where `address` is payer or payee. `since_ms` inclusive, `until_ms`
        exclusive (entry time, unix ms). Returns (page, next cursor or None at the end)."""
        return self._page(address, ("payer", "payee"), currency=currency, counterparty=counterparty,
                          since_ms=since_ms, until_ms=until_ms, limit=limit, cursor=cursor,
                          newest_first=newest_first)

    def payments_to(self, shop: str, *, currency: str | None = None, counterparty: str | None = None,
                    since_ms: int | None = None, until_ms: int | None = None, limit: int = 50,
                    cursor: str | None = None, newest_first: bool = True) -> tuple[list[TransferView], str | None]:
        """Incoming transfers only (what a shop's till shows); same filters and cursor as history."""
        return self._page(shop, ("payee",), currency=currency, counterparty=counterparty,
                          since_ms=since_ms, until_ms=until_ms, limit=limit, cursor=cursor,
                          newest_first=newest_first)

    def remote_payment(self, payment_id: str) -> TransferView | None:
        """One remote leg by payment id, as history shows it (direction relative to the member
        of this node: "out" at the origin, "in" at the destination); None when not here."""
        from .core.codec import parse_b32
        pid = parse_b32(payment_id, "paymentId")
        with domain_errors(), self.ledger._reader() as conn:
            row = conn.execute(self._legs_select().where(RL.c.payment_id == pid)).first()
        if row is None:
            return None
        return self._leg_view(row, row.payer if row.side == "out" else row.payee)

    @staticmethod
    def _legs_select():
        return (select(RL, T.entries.c.at, AL.c.peer_community, AL.c.peer_url, RM.c.memo)
                .select_from(RL.join(T.entries, T.entries.c.seq == RL.c.prepared_seq)
                             .join(AL, AL.c.alliance_id == RL.c.alliance_id)
                             .outerjoin(RM, RM.c.payment_id == RL.c.payment_id)))

    @staticmethod
    def _leg_view(row, address: str) -> TransferView:
        out = row.side == "out"
        here_currency, here_amount = (row.currency, row.amount) if out else (row.payee_currency, row.delivered)
        remote = RemoteLegView(
            "0x" + bytes(row.payment_id).hex(), row.side, row.state, row.code, "0x" + bytes(row.peer_community).hex(),
            row.peer_url, row.payee if out else row.payer, row.payee_currency if out else row.currency,
            row.delivered if out else row.amount, row.decided_seq)
        return TransferView(row.prepared_seq, row.at, row.payer, row.payee, here_currency, here_amount, None,
                            row.memo, remote.payment_id, "out" if out else "in", remote)

    def _leg_halves(self, address, sides, *, currency, counterparty, since_ms, until_ms, after, newest_first, limit):
        """The remote legs of `address` as (seq, kind) selects, one per side it is asked for."""
        halves = []
        for side in sides:
            leg_side, own, other = ("out", "payer", "payee") if side == "payer" else ("in", "payee", "payer")
            q = select(RL.c.prepared_seq.label("seq"), literal_column("'r'").label("kind")).where(
                RL.c.side == leg_side, RL.c[own] == address)
            if counterparty is not None:
                q = q.where(RL.c[other] == counterparty)
            if currency is not None:  # the member's own currency: debited here (out), delivered here (in)
                q = q.where((RL.c.currency if leg_side == "out" else RL.c.payee_currency) == currency)
            if since_ms is not None or until_ms is not None:
                q = q.join(T.entries, T.entries.c.seq == RL.c.prepared_seq)
                if since_ms is not None:
                    q = q.where(T.entries.c.at >= since_ms)
                if until_ms is not None:
                    q = q.where(T.entries.c.at < until_ms)
            if after is not None:
                q = q.where(RL.c.prepared_seq < after if newest_first else RL.c.prepared_seq > after)
            halves.append(q.order_by(RL.c.prepared_seq.desc() if newest_first else RL.c.prepared_seq)
                          .limit(limit + 1))
        return halves

    def _page(self, address, sides, *, currency, counterparty, since_ms, until_ms, limit, cursor, newest_first):
        address = normalize_address(address, what="address")
        if counterparty is not None:
            counterparty = normalize_address(counterparty, what="counterparty")
        if currency is not None and not isinstance(currency, str):
            raise E.InvalidInput("currency must be a currency code")
        since_ms, until_ms = _ms(since_ms, "since"), _ms(until_ms, "until")
        limit = clamp_limit(limit, 50)
        after = decode_cursor(cursor) if cursor is not None else None
        t = T.transfers
        halves = []
        for side in sides:
            other = "payee" if side == "payer" else "payer"
            q = select(t.c.seq, literal_column("'t'").label("kind")).where(t.c[side] == address)
            if counterparty is not None:
                q = q.where(t.c[other] == counterparty)
            if currency is not None:
                q = q.where(t.c.currency == currency)
            if since_ms is not None:
                q = q.where(t.c.at >= since_ms)
            if until_ms is not None:
                q = q.where(t.c.at < until_ms)
            if after is not None:
                q = q.where(t.c.seq < after if newest_first else t.c.seq > after)
            halves.append(q.order_by(t.c.seq.desc() if newest_first else t.c.seq).limit(limit + 1))
        halves += self._leg_halves(address, sides, currency=currency, counterparty=counterparty, since_ms=since_ms,
                                   until_ms=until_ms, after=after, newest_first=newest_first, limit=limit)
        # each half keeps its ORDER BY/LIMIT (a subquery per half), so each walks its index; a
        # transfer and a remote leg are different entries, so no seq appears in two halves
        subs = [h.subquery() for h in halves]
        u = union_all(*(select(sq.c.seq, sq.c.kind) for sq in subs)).subquery()
        keys_q = select(u.c.seq, u.c.kind).order_by(u.c.seq.desc() if newest_first else u.c.seq).limit(limit + 1)
        with domain_errors(), self.ledger._reader() as conn:
            keys = [(seq, kind) for seq, kind in conn.execute(keys_q)]
            more = len(keys) > limit
            keys = keys[:limit]
            rows, legs = {}, {}
            seqs = [seq for seq, kind in keys if kind == "t"]
            if seqs:
                q = (select(t, T.memos.c.memo, T.entries.c.body)
                     .select_from(t.join(T.entries, T.entries.c.seq == t.c.seq)
                                  .outerjoin(T.memos, T.memos.c.seq == t.c.seq))
                     .where(t.c.seq.in_(seqs)))
                rows = {r.seq: r for r in conn.execute(q)}
            leg_seqs = [seq for seq, kind in keys if kind == "r"]
            if leg_seqs:
                legs = {r.prepared_seq: r for r in conn.execute(self._legs_select()
                                                                .where(RL.c.prepared_seq.in_(leg_seqs)))}
        page = [self._view(rows[s], address) if k == "t" else self._leg_view(legs[s], address) for s, k in keys]
        return page, (encode_cursor(keys[-1][0]) if more else None)

    @staticmethod
    def _view(row, address: str | None) -> TransferView:
        direction = None if address is None else ("out" if row.payer == address else "in")
        return TransferView(row.seq, row.at, row.payer, row.payee, row.currency, row.amount,
                            None if row.request_id is None else "0x" + bytes(row.request_id).hex(),
                            row.memo, json.loads(row.body)["digest"], direction)

    # -- whose data an entry is -------------------------------------------------------------
    def entry_subjects(self, seq: int) -> list[str]:
        """Whose data the entry at `seq` is, for the privacy guard: a transfer's two parties,
        an account entry's account (OpenAccount, SetLimit, SetStatus), every member ("*",
        ledger.privacy.access.ALL) for the community's genesis; [] when there is no such entry."""
        v = self.transfer(seq)
        if v is not None:
            return [v.payer, v.payee]
        if not 1 <= seq <= self.ledger.head()[0]:
            return []
        entries, _ = self.log(after_seq=seq - 1, limit=1)
        if not entries or entries[0].seq != seq:
            return []
        if entries[0].kind == "remote.prepared":  # a remote leg: its payer and payee (one is not ours)
            t = entries[0].body["transfer"]
            return [t["payer"], t["payee"]]
        account = entries[0].body.get("account")
        return [account] if isinstance(account, str) else [EVERY_MEMBER]

    # -- the log -------------------------------------------------------------------------
    def log(self, *, after_seq: int = 0, limit: int = 100) -> tuple[list[Entry], int | None]:
        """Entries with seq > after_seq, in seq order (auditors, treasurers). Returns the page
        and the `after_seq` of the next page, or None when this page reaches the head."""
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or not 0 <= after_seq <= _MAX_SEQ:
            raise E.InvalidInput("after_seq must be a non-negative integer")
        limit = clamp_limit(limit, 100)
        e = T.entries
        with domain_errors(), self.ledger._reader() as conn:
            rows = conn.execute(select(e).where(e.c.seq > after_seq).order_by(e.c.seq).limit(limit + 1)).all()
        more = len(rows) > limit
        entries = [entry_from_row(r) for r in rows[:limit]]
        return entries, (entries[-1].seq if more else None)


__all__ = ["REMOTE_STATUS", "Queries", "RemoteLegView", "TransferView", "decode_cursor", "encode_cursor"]
