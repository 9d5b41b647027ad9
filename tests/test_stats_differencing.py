"""Issue 23, item 2: no combination of released statistics bounds a hidden cell.

The attacker here has only the released figures and tries every subtraction they allow: a
released total minus the visible cells under it, a month's active members minus the payers and
payees of its visible cells, and minus every combination of released account counts (the
issue's attack: 14 active - 12 member accounts => at least 2 shops active, exactly the hidden
CRED/shop cell). Whatever they derive about the hidden cells must be nothing beyond what the
suppression mark itself says (the cell exists)."""
from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from ledger.privacy.stats import statistics

from .conftest import Community

MARCH = int(dt.datetime(2026, 3, 10, tzinfo=dt.UTC).timestamp() * 1000)
APRIL = int(dt.datetime(2026, 4, 10, tzinfo=dt.UTC).timestamp() * 1000)
MAY = int(dt.datetime(2026, 5, 2, tzinfo=dt.UTC).timestamp() * 1000)


def released(rows):
    return [r for r in rows if not r.get("suppressed")]


def attack(out: dict) -> list[tuple[str, object, int]]:
    """Every positive lower bound on hidden cells derivable by subtracting released figures:
    (what was subtracted, where, the bound). Empty when nothing is learnt."""
    found = []
    hidden = [c for c in out["cells"] if c.get("suppressed")]
    visible = released(out["cells"])
    months_hiding = {c["month"] for c in hidden}
    # 1. a released month total minus its visible cells = the hidden cells of that currency-month
    for total in released(out["monthTotals"]):
        group = (total["currency"], total["month"])
        if not any((c["currency"], c["month"]) == group for c in hidden):
            continue
        under = [c for c in visible if (c["currency"], c["month"]) == group]
        for figure in ("transfers", "amount", "payers", "payees"):
            bound = total[figure] - sum(c[figure] for c in under)
            if bound > 0:
                found.append((f"total {figure} - visible cells", group, bound))
    roles = {a["role"]: a["active"] for a in released(out["accounts"])}
    for active in released(out["activeMembers"]):
        month = active["month"]
        if month not in months_hiding:
            continue
        in_month = [c for c in visible if c["month"] == month]
        # 2. active accounts minus everyone the visible cells could account for
        bound = active["members"] - sum(c["payers"] + c["payees"] for c in in_month)
        if bound > 0:
            found.append(("active - visible payers and payees", month, bound))
        # 3. active accounts minus released account counts: the rest are of other roles, and
        #    (taking payers to be of the counted roles, as the issue's attacker did) payees in
        #    cells of those roles; subtract the visible ones of them: the rest are in hidden cells
        for n in range(1, len(roles) + 1):
            for counted in itertools.combinations(sorted(roles), n):
                others_seen = sum(c["payees"] for c in in_month if c["payeeRole"] not in counted)
                bound = active["members"] - sum(roles[r] for r in counted) - others_seen
                if bound > 0:
                    found.append((f"active - accounts{list(counted)}", month, bound))
    return found


def attack_with_public_totals(out: dict, totals: dict[str, int]) -> list[tuple[str, object, int]]:
    """The attacker also knows each month's total transfer count (`totals`, month -> count):
    /metrics (ayni_transfers_total) and /readyz (headSeq) answer without sign-in and anchors put
    lastSeq on a public chain; sampled at the month's two ends. Count minus the visible cells
    (and minus every released currency total's own cells, already visible) is the sum of the
    month's hidden cells: one cell's exact count when it is the only one hidden."""
    found = attack(out)
    for month, total in totals.items():
        hidden = [c for c in out["cells"] if c["month"] == month and c.get("suppressed")]
        visible = sum(c["transfers"] for c in released(out["cells"]) if c["month"] == month)
        if len(hidden) == 1:
            found.append(("public count - visible cells", (month, hidden[0]["currency"], hidden[0]["payeeRole"]),
                          total - visible))
        for currency in {c["currency"] for c in hidden}:  # should a currency's count ever be public
            mine = [c for c in hidden if c["currency"] == currency]
            if len(mine) == 1 and len([c for c in out["cells"] if c["month"] == month and c["currency"] == currency]) > 1:
                found.append(("one hidden cell in its currency", (month, currency), 1))
    return found


def month_counts(c, month: str) -> int:
    """What /metrics and /readyz tell anyone: transfers posted in `month` (UTC)."""
    return sum(1 for e in c.ledger.iter_entries() if e.kind == "transfer.posted"
               and dt.datetime.fromtimestamp(e.at / 1000, dt.UTC).strftime("%Y-%m") == month)


def town(db_url, *, members: int, shops: int, seed: int | None = None):
    """March: members care for each other in a ring (HOUR) and pay each other and the shops in
    CRED. Now: April. With `seed`, who pays whom and how much is drawn at random."""
    now = [MARCH]
    c = Community(db_url, clock=lambda: now[0])
    names = [f"m{i}" for i in range(members)]
    for n in names:
        c.member(n)
    for s in range(shops):
        c.member(f"s{s}", role="shop")
    rng = random.Random(seed)
    subs = []
    for i, payer in enumerate(names):
        subs.append(c.pay(payer, names[(i + 1) % members], 60 + i))
        if shops and (seed is None or rng.random() < 0.7):
            shop = f"s{i % shops}" if seed is None else f"s{rng.randrange(shops)}"
            subs.append(c.pay(payer, shop, 100 + (i if seed is None else rng.randrange(1, 300)), currency="CRED"))
        if seed is not None and rng.random() < 0.5:
            subs.append(c.pay(payer, rng.choice([n for n in names if n != payer]), rng.randrange(1, 50),
                              currency="CRED"))
    for s in subs:
        c.ledger.submit(s)
    now[0] = APRIL
    return c


def test_the_issues_subtraction_finds_nothing(db_url):
    """12 members, 2 shops, k = 5: every member pays a shop, so March has 14 active accounts;
    the CRED/shop cell (2 payees) is hidden, 12 member accounts are released."""
    c = town(db_url, members=12, shops=2)
    try:
        out = statistics(c.ledger, k=5)
        cells = {(x["currency"], x["payeeRole"]): x for x in out["cells"]}
        # CRED/shop is hidden; March's transfer count is public (/metrics, /readyz, anchors), so
        # its only other cell, HOUR/member, is hidden as the complement: count - visible = both
        assert cells[("CRED", "shop")].get("suppressed") and cells[("HOUR", "member")].get("suppressed")
        assert {a["role"]: a.get("active") for a in out["accounts"]}["member"] == 12  # still released
        assert out["activeMembers"] == [{"month": "2026-03", "suppressed": True}]  # the complement: withheld
        assert attack(out) == []
    finally:
        c.dispose()


def test_a_month_without_hidden_cells_still_counts_its_active_members(db_url):
    c = town(db_url, members=6, shops=0)
    try:
        out = statistics(c.ledger, k=5)
        assert not [x for x in out["cells"] if x.get("suppressed")]
        assert out["activeMembers"] == [{"month": "2026-03", "members": 6}]
        assert attack(out) == []
    finally:
        c.dispose()


def test_the_attack_finds_the_issues_bound_when_the_count_is_released(db_url):
    """The attacker is no strawman: given the head-count the old code released, it finds the 2."""
    c = town(db_url, members=12, shops=2)
    try:
        out = statistics(c.ledger, k=5)
        out["activeMembers"] = [{"month": "2026-03", "members": 14}]  # what was released before
        assert ("active - accounts['member']", "2026-03", 2) in attack(out)
    finally:
        c.dispose()


@pytest.mark.parametrize("seed", range(6))
def test_random_towns_leak_nothing_at_any_k(sqlite_url, seed):
    rng = random.Random(1000 + seed)
    c = town(sqlite_url, members=rng.randrange(3, 14), shops=rng.randrange(0, 4), seed=seed)
    try:
        totals = {"2026-03": month_counts(c, "2026-03")}
        for k in (2, 3, 5, 8):
            out = statistics(c.ledger, k=k)
            assert attack_with_public_totals(out, totals) == [], (k, out)
    finally:
        c.dispose()


def test_the_public_transfer_count_isolates_no_hidden_cell(db_url, tmp_path):
    """Review D5: 12 members pay each other 60 times (a well-spread cell); one member pays two
    shops (a hidden cell). /readyz's headSeq on 1 Nov and 2 Dec (no sign-in) gave November's
    count: minus the released member cell, exactly the hidden shop cell. Through the real app."""
    from fastapi.testclient import TestClient

    from api.app import Settings, create_app

    from .test_api import Api

    def at(s: str) -> int:
        return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC).timestamp() * 1000)

    now = [at("2026-10-10T12:00:00")]
    c = Community(db_url, clock=lambda: now[0])
    members = [f"m{i}" for i in range(12)]
    for n in members:
        c.member(n)
    for s in ("s0", "s1"):
        c.member(s, role="shop")
    api = Api.__new__(Api)
    api.c, api.tokens = c, {}
    api.client = TestClient(create_app(c.ledger, Settings(public_host="ayni.test", public_uri="https://ayni.test",
                                                          secret_file=str(tmp_path / "k"), stats_k=5)))
    try:
        now[0] = at("2026-11-01T00:00:01")
        s0 = api.client.get("/readyz").json()["headSeq"]
        now[0] = at("2026-11-10T12:00:00")
        for i in range(60):
            payer, payee = members[i % 12], members[(i * 5 + 1) % 12]
            c.ledger.submit(c.pay(payer, payee if payee != payer else members[(i + 1) % 12], 10 + i, currency="CRED"))
        for s in ("s0", "s1"):
            c.ledger.submit(c.pay("m0", s, 700, currency="CRED"))
        now[0] = at("2026-12-02T00:00:01")
        s1 = api.client.get("/readyz").json()["headSeq"]
        out = api.client.get("/v1/stats", headers=api.h("m5")).json()
        nov = [x for x in out["cells"] if x["month"] == "2026-11"]
        assert [x.get("suppressed", False) for x in nov] == [True, True]  # shop, and its complement
        assert s1 - s0 == month_counts(c, "2026-11") == 62
        assert attack_with_public_totals(out, {"2026-11": s1 - s0}) == []
        # the attacker is no strawman: with the complement shown, as before, it finds the 2
        shown = {**out, "cells": [{**x, "transfers": 60, "amount": 0, "payers": 12, "payees": 12,
                                   "suppressed": False} if x["payeeRole"] == "member" else x for x in out["cells"]]}
        shown["cells"] = [{k: v for k, v in x.items() if not (k == "suppressed" and v is False)} for x in shown["cells"]]
        assert ("public count - visible cells", ("2026-11", "CRED", "shop"), 2) in \
            attack_with_public_totals(shown, {"2026-11": s1 - s0})
    finally:
        api.client.close()
        c.dispose()
