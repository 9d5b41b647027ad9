"""Aggregate figures for collective bargaining, with every small or dominated group suppressed.

Transfers carry no service category, so the honest dimensions are the ones the ledger
knows: currency (HOUR = care hours in minutes, CRED = community credit in cents), the
payee's role (member = care between members, shop = spending at local shops) and the month
(UTC) of posting. A cell is released only if
- at least k distinct payers *and* k distinct payees are in it, so no cell describes fewer
  than k people on either side, and
- no single payer paid, and no single payee received, more than DOMINANCE (half) of its
  amount: k people can still hide one person's figure if that person is nearly all of it.

Differencing, the ways a hidden cell could still be recovered, is closed by construction.
The rule (secondary suppression): every released figure counts only transfers of released
cells, so no sum or difference of released figures says anything about a hidden cell beyond
the mark that it exists. One figure outside this answer is public anyway: how many entries
and transfers the log holds at any moment (anchors publish lastSeq on a public chain; /readyz
and /metrics report the head and the transfers posted), so a month's total transfer count is
known to anyone who looked at both ends of the month. Hence complementary suppression:
- where a month has a hidden cell, at least two of its cells are hidden in each currency that
  has one (if that currency has another cell) and at least two in the month: the month's
  known total minus its visible cells gives only the SUM of two or more hidden cells, never one
  cell's count (the complement added is the month's, or currency's, smallest released cell;
  each hidden cell then stays anywhere between 1 and that sum less one per other hidden cell,
  which is no more than its suppression mark says). A month with only one cell in all has
  nothing to hide behind: its one count is the public total itself (its amount and parties
  stay hidden);
- a month total is released only when none of its cells is suppressed (it then adds nothing
  a reader could subtract: it is the sum of released cells);
- a month's count of active members is released only when none of that month's cells, in any
  currency, is suppressed: else active members minus the member-account count (or minus the
  released cells' payers and payees) bounds how many accounts are active in the hidden cells
  (issue 23: 14 active - 12 member accounts => at least 2 shops, the hidden CRED/shop cell);
- the count of accounts per role counts no transfer at all (an account need not trade);
- k is the server's, fixed (no caller picks it; two answers at different k would subtract);
- only closed months are released, and only GRACE_MS after their end: a posting takes its time
  (`at`) under the head lock and commits a moment later, so a month read right at its end could
  still miss a payment stamped inside it; a day is far longer than any posting transaction
  takes (a batch commits in well under a second; the longest wait, for SQLite's write lock, is
  the 30 s busy timeout). And one release is read in one snapshot (one read transaction on
  SQLite, REPEATABLE READ on PostgreSQL), so its figures agree with each other. So a month's
  figures never change once published, and a member cannot make one known payment between two
  calls and subtract.
Counts of active members per month and of accounts per role are suppressed below k too.
Nothing here is per person, and nothing ranks anyone."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, literal, select, union_all

from ..exchange import hours_by_category
from ..store import tables as T
from ..store.errors import domain_errors

MIN_K = 2
GRACE_MS = 86_400_000  # a closed month is released a day after its end (see above)
DOMINANCE = 0.5  # the largest single payer or payee may be at most this share of a released amount


def _month(engine, at):
    if engine.dialect.name == "postgresql":
        # not cast(.. Integer): that rounds, putting 23:59:59.5 and later into the next month
        return func.to_char(func.to_timestamp(at / 1000.0).op("AT TIME ZONE")(literal("UTC")), "YYYY-MM")
    return func.strftime("%Y-%m", at / 1000, "unixepoch")


def month_start_ms(now_ms: int) -> int:
    """Unix ms of the first instant of the (UTC) month holding `now_ms`."""
    t = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    return int(datetime(t.year, t.month, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _snapshot(ledger):
    """A read-only connection whose transaction sees one snapshot: SQLite's read transaction
    does; PostgreSQL's default READ COMMITTED takes one per statement, so REPEATABLE READ."""
    conn = ledger._reader()
    if ledger.engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def complementary(transfers: dict[tuple, int], primary: set[tuple]) -> set[tuple]:
    """The cells to hide: the primary ones and, per month holding one, complements, so that
    the month's public transfer count less its visible cells never isolates one hidden cell
    (module docstring). `transfers`: (currency, month, role) -> count of every cell."""
    hidden = set(primary)

    def hide_smallest(candidates) -> None:
        shown = sorted((n, cell) for cell, n in transfers.items() if cell in candidates and cell not in hidden)
        if shown:
            hidden.add(shown[0][1])

    for month in sorted({m for _, m, _ in primary}):
        in_month = {cell for cell in transfers if cell[1] == month}
        for currency in sorted({c for c, m, _ in primary if m == month}):
            in_currency = {cell for cell in in_month if cell[0] == currency}
            if len(in_currency & hidden) == 1:
                hide_smallest(in_currency)
        if len(in_month & hidden) == 1:
            hide_smallest(in_month)
    return hidden


def statistics(ledger, *, k: int) -> dict:
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise ValueError(f"k must be an integer of at least {MIN_K}")
    # the current month is still open, and the last one only closed for good GRACE_MS after its end
    cutoff = month_start_ms(ledger.clock() - GRACE_MS)
    t, a = T.transfers, T.accounts
    month = _month(ledger.engine, t.c.at).label("month")
    base = select(t.c.currency, month, a.c.role.label("payee_role"), t.c.payer, t.c.payee, t.c.amount) \
        .select_from(t.join(a, a.c.address == t.c.payee)).where(t.c.at < cutoff).subquery()
    cell_keys = (base.c.currency, base.c.month, base.c.payee_role)

    def grouped(*keys):
        return select(*keys, func.count().label("transfers"), func.sum(base.c.amount).label("amount"),
                      func.count(base.c.payer.distinct()).label("payers"),
                      func.count(base.c.payee.distinct()).label("payees")).group_by(*keys).order_by(*keys)

    def per_party(party):
        return select(*cell_keys, party.label("who"), func.sum(base.c.amount).label("amount")) \
            .group_by(*cell_keys, party)

    closed = select(t.c.payer.label("p"), t.c.payee.label("q"), month).where(t.c.at < cutoff).subquery()
    parties = union_all(select(closed.c.month, closed.c.p.label("who")),
                        select(closed.c.month, closed.c.q.label("who"))).subquery()
    with domain_errors(), _snapshot(ledger) as conn, conn.begin():
        cells = conn.execute(grouped(*cell_keys)).all()
        months = conn.execute(grouped(base.c.currency, base.c.month)).all()
        paid = conn.execute(per_party(base.c.payer)).all()
        received = conn.execute(per_party(base.c.payee)).all()
        active = conn.execute(select(parties.c.month, func.count(parties.c.who.distinct()).label("n"))
                              .group_by(parties.c.month).order_by(parties.c.month)).all()
        roles = conn.execute(select(a.c.role, func.count().label("n")).where(a.c.status == "active")
                             .group_by(a.c.role).order_by(a.c.role)).all()

    # the largest single party's share, per cell and per month (a party may span a month's cells)
    largest: dict[tuple, int] = {}
    for rows in (paid, received):
        per_month: dict[tuple, int] = {}
        for r in rows:
            cell = (r.currency, r.month, r.payee_role)
            largest[cell] = max(largest.get(cell, 0), int(r.amount))
            mkey = (r.currency, r.month, r.who)
            per_month[mkey] = per_month.get(mkey, 0) + int(r.amount)
        for (cur, mon, _), amount in per_month.items():
            largest[(cur, mon)] = max(largest.get((cur, mon), 0), amount)

    def ok(r, key) -> bool:
        return r.payers >= k and r.payees >= k and largest.get(key, 0) <= DOMINANCE * int(r.amount)

    def figures(r) -> dict:
        return {"transfers": r.transfers, "amount": int(r.amount), "payers": r.payers, "payees": r.payees}

    hidden = complementary({(r.currency, r.month, r.payee_role): int(r.transfers) for r in cells},
                           {(r.currency, r.month, r.payee_role) for r in cells
                            if not ok(r, (r.currency, r.month, r.payee_role))})
    out_cells, suppressed_in, month_hides = [], {}, set()
    for r in cells:
        key = {"currency": r.currency, "month": r.month, "payeeRole": r.payee_role}
        released = (r.currency, r.month, r.payee_role) not in hidden
        out_cells.append({**key, **figures(r)} if released else {**key, "suppressed": True})
        suppressed_in.setdefault((r.currency, r.month), []).append(not released)
        if not released:
            month_hides.add(r.month)
    out_months = []
    for r in months:
        release = ok(r, (r.currency, r.month)) and not any(suppressed_in[(r.currency, r.month)])
        key = {"currency": r.currency, "month": r.month}
        out_months.append({**key, **figures(r)} if release else {**key, "suppressed": True})
    return {
        "k": k, "dominance": DOMINANCE,
        "monthsBefore": datetime.fromtimestamp(cutoff / 1000, timezone.utc).strftime("%Y-%m"),
        "dimensions": ["currency", "month (UTC)", "payeeRole"],
        "cells": out_cells,
        "monthTotals": out_months,
        # secondary suppression: a month with a hidden cell releases no head-count of its own
        "activeMembers": [{"month": r.month, "members": r.n} if r.n >= k and r.month not in month_hides
                          else {"month": r.month, "suppressed": True} for r in active],
        "accounts": [{"role": r.role, "active": r.n} if r.n >= k else {"role": r.role, "suppressed": True}
                     for r in roles],
        # the exchange board's paid arrangements: minutes per month and category, same k and dominance
        "hoursByCategory": hours_by_category(ledger, k=k, before_ms=cutoff, dominance=DOMINANCE),
    }
