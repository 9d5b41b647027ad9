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

The memo is personal data, returned here for the API to show to the two parties only.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from sqlalchemy import select, union_all

from .core import errors as E
from .core.addresses import normalize_address
from .core.entries import Entry
from .service import Ledger, entry_from_row
from .store import tables as T
from .store.errors import domain_errors

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
            q = select(t.c.seq).where(t.c[side] == address)
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
        if len(halves) == 1:
            seqs_q = halves[0]
        else:
            # each half keeps its ORDER BY/LIMIT (a subquery per half), so each walks its index
            u = union_all(*(select(h.subquery().c.seq) for h in halves)).subquery()
            seqs_q = select(u.c.seq).order_by(u.c.seq.desc() if newest_first else u.c.seq).limit(limit + 1)
        with domain_errors(), self.ledger._reader() as conn:
            seqs = list(conn.execute(seqs_q).scalars())
            more = len(seqs) > limit
            seqs = seqs[:limit]
            rows = {}
            if seqs:
                q = (select(t, T.memos.c.memo, T.entries.c.body)
                     .select_from(t.join(T.entries, T.entries.c.seq == t.c.seq)
                                  .outerjoin(T.memos, T.memos.c.seq == t.c.seq))
                     .where(t.c.seq.in_(seqs)))
                rows = {r.seq: r for r in conn.execute(q)}
        page = [self._view(rows[s], address) for s in seqs]
        return page, (encode_cursor(seqs[-1]) if more else None)

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


__all__ = ["Queries", "TransferView", "encode_cursor", "decode_cursor"]
