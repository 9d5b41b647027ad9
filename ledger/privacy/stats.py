"""Aggregate figures for collective bargaining, with every group smaller than k suppressed.

Transfers carry no service category, so the honest dimensions are the ones the ledger
knows: currency (HOUR = care hours in minutes, CRED = community credit in cents), the
payee's role (member = care between members, shop = spending at local shops) and the month
(UTC) of posting. A cell is released only if at least k distinct payers *and* k distinct
payees are in it, so no cell describes fewer than k people on either side.

Complementary suppression: the month total of a currency equals the sum of its cells, so
publishing it next to a suppressed cell would reveal that cell. The month total is therefore
released only if it passes k itself and either no cell of that month is suppressed or all
are (then the total is the only figure, and it describes the whole, large-enough group).
There are no other totals to subtract from. Counts of active members and of accounts per
role are suppressed below k too. Nothing here is per person, and nothing ranks anyone."""
from __future__ import annotations

from sqlalchemy import Integer, cast, func, literal, select, union_all

from ..store import tables as T

MIN_K = 2


def _month(engine, at):
    if engine.dialect.name == "postgresql":
        return func.to_char(func.to_timestamp(cast(at / 1000, Integer)).op("AT TIME ZONE")(literal("UTC")), "YYYY-MM")
    return func.strftime("%Y-%m", at / 1000, "unixepoch")


def statistics(ledger, *, k: int) -> dict:
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_K:
        raise ValueError(f"k must be an integer of at least {MIN_K}")
    t, a = T.transfers, T.accounts
    month = _month(ledger.engine, t.c.at).label("month")
    base = select(t.c.currency, month, a.c.role.label("payee_role"), t.c.payer, t.c.payee, t.c.amount) \
        .select_from(t.join(a, a.c.address == t.c.payee)).subquery()

    def grouped(*keys):
        return select(*keys, func.count().label("transfers"), func.sum(base.c.amount).label("amount"),
                      func.count(base.c.payer.distinct()).label("payers"),
                      func.count(base.c.payee.distinct()).label("payees")).group_by(*keys).order_by(*keys)

    parties = union_all(select(month, t.c.payer.label("who")), select(month, t.c.payee.label("who"))).subquery()
    with ledger._reader() as conn:
        cells = conn.execute(grouped(base.c.currency, base.c.month, base.c.payee_role)).all()
        months = conn.execute(grouped(base.c.currency, base.c.month)).all()
        active = conn.execute(select(parties.c.month, func.count(parties.c.who.distinct()).label("n"))
                              .group_by(parties.c.month).order_by(parties.c.month)).all()
        roles = conn.execute(select(a.c.role, func.count().label("n")).where(a.c.status == "active")
                             .group_by(a.c.role).order_by(a.c.role)).all()
        head = conn.execute(select(T.ledger_head.c.seq)).scalar() or 0

    def ok(r) -> bool:
        return r.payers >= k and r.payees >= k

    def figures(r) -> dict:
        return {"transfers": r.transfers, "amount": int(r.amount), "payers": r.payers, "payees": r.payees}

    out_cells, suppressed_in = [], {}
    for r in cells:
        key = {"currency": r.currency, "month": r.month, "payeeRole": r.payee_role}
        out_cells.append({**key, **figures(r)} if ok(r) else {**key, "suppressed": True})
        suppressed_in.setdefault((r.currency, r.month), []).append(not ok(r))
    out_months = []
    for r in months:
        flags = suppressed_in[(r.currency, r.month)]
        release = ok(r) and (not any(flags) or all(flags))
        key = {"currency": r.currency, "month": r.month}
        out_months.append({**key, **figures(r)} if release else {**key, "suppressed": True})
    return {
        "k": k, "headSeq": head,
        "dimensions": ["currency", "month (UTC)", "payeeRole"],
        "cells": out_cells,
        "monthTotals": out_months,
        "activeMembers": [{"month": r.month, "members": r.n} if r.n >= k else {"month": r.month, "suppressed": True}
                          for r in active],
        "accounts": [{"role": r.role, "active": r.n} if r.n >= k else {"role": r.role, "suppressed": True}
                     for r in roles],
    }
