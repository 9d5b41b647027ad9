"""k-suppressed aggregates (issue 6, item 5): no released figure describes fewer than k
members or is dominated by one, a suppressed cell cannot be recovered from a released total,
from answers at another k or from answers before and after a known payment, and nothing is
per person."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import Settings, create_app
from ledger.cli import app as ayni
from ledger.privacy.stats import statistics

from .conftest import Community
from .test_api import Api

MARCH = int(dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
APRIL = int(dt.datetime(2026, 4, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
MAY = int(dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc).timestamp() * 1000)
CARERS = [f"m{i}" for i in range(6)]


@pytest.fixture
def market(db_url):
    """March: six members care for each other (HOUR), pay each other and two shops in CRED.
    April: only two members trade. Now: May (both months closed)."""
    now = [MARCH]
    c = Community(db_url, clock=lambda: now[0])
    for n in CARERS:
        c.member(n)
    for s in ("shop1", "shop2"):
        c.member(s, role="shop")
    for i, payer in enumerate(CARERS):
        c.ledger.submit(c.pay(payer, CARERS[(i + 1) % 6], 60 + i))
        c.ledger.submit(c.pay(payer, "shop1" if i % 2 else "shop2", 100 + i, currency="CRED"))
        c.ledger.submit(c.pay(payer, CARERS[(i + 2) % 6], 10 + i, currency="CRED"))
    now[0] = APRIL
    c.ledger.submit(c.pay("m0", "m1", 15))
    now[0] = MAY
    yield c
    c.dispose()


def released(rows):
    return [r for r in rows if not r.get("suppressed")]


def check_safe(out: dict, k: int) -> None:
    """No released group below k; no suppressed cell derivable from a released month total."""
    for r in released(out["cells"]) + released(out["monthTotals"]):
        assert r["payers"] >= k and r["payees"] >= k, r
    for r in released(out["activeMembers"]):
        assert r["members"] >= k
    for r in released(out["accounts"]):
        assert r["active"] >= k
    for total in released(out["monthTotals"]):
        cells = [c for c in out["cells"] if (c["currency"], c["month"]) == (total["currency"], total["month"])]
        assert cells and not [c for c in cells if c.get("suppressed")], (total, cells)
        assert total["amount"] == sum(c["amount"] for c in cells)  # nothing beyond the released cells
    assert "headSeq" not in out and all(m < out["monthsBefore"] for m in
                                        [r["month"] for r in out["cells"] + out["activeMembers"]])


def test_small_groups_are_suppressed_with_their_totals(market):
    out = statistics(market.ledger, k=5)
    check_safe(out, 5)
    cells = {(c["currency"], c["month"], c["payeeRole"]): c for c in out["cells"]}
    care = cells[("HOUR", "2026-03", "member")]
    assert (care["transfers"], care["amount"], care["payers"], care["payees"]) == (6, sum(60 + i for i in range(6)), 6, 6)
    assert cells[("CRED", "2026-03", "shop")] == {"currency": "CRED", "month": "2026-03", "payeeRole": "shop",
                                                  "suppressed": True}  # six payers, but only two shops
    # its complement: March's transfer count is public (/metrics, /readyz, anchors), so with the
    # CRED member cell shown, count - HOUR - CRED/member would be the shops' cell exactly
    assert cells[("CRED", "2026-03", "member")] == {"currency": "CRED", "month": "2026-03",
                                                    "payeeRole": "member", "suppressed": True}
    assert cells[("HOUR", "2026-04", "member")].get("suppressed")
    months = {(m["currency"], m["month"]): m for m in out["monthTotals"]}
    assert months[("HOUR", "2026-03")]["amount"] == care["amount"]
    # CRED March passes k on its own (6 payers, 8 payees), but total - member cell = the two
    # shops' takings: withheld
    assert months[("CRED", "2026-03")].get("suppressed")
    # March has a hidden cell (CRED to shops), so its head-count is withheld too: 8 active - 6
    # member accounts would say at least two shops traded (test_stats_differencing.py)
    assert {m["month"]: m.get("members") for m in out["activeMembers"]} == {"2026-03": None, "2026-04": None}
    assert {a["role"]: a.get("active") for a in out["accounts"]} == {"member": 6, "shop": None, "treasurer": None}


def test_k_is_configurable_and_never_below_two(market):
    out = statistics(market.ledger, k=2)
    check_safe(out, 2)
    cells = {(c["currency"], c["month"], c["payeeRole"]): c for c in out["cells"]}
    assert cells[("HOUR", "2026-03", "member")]["payees"] == 6
    assert cells[("CRED", "2026-03", "member")].get("suppressed")  # the complement of the shop cell
    # two shops pass k=2, but shop1 took 309 of 615: over half, so shop2 could subtract its own
    assert cells[("CRED", "2026-03", "shop")].get("suppressed")
    assert cells[("HOUR", "2026-04", "member")].get("suppressed")  # still a single payer and payee
    at7 = statistics(market.ledger, k=7)
    assert all(c.get("suppressed") for c in at7["cells"])
    assert all(m.get("suppressed") for m in at7["monthTotals"])  # every cell hidden: the total too
    with pytest.raises(ValueError):
        statistics(market.ledger, k=1)


def test_stats_over_http_and_cli_hold_no_per_person_figure(market, tmp_path, db_url):
    api = Api.__new__(Api)
    api.c, api.tokens = market, {}
    api.client = TestClient(create_app(market.ledger, Settings(public_host="ayni.test", public_uri="https://ayni.test",
                                                               secret_file=str(tmp_path / "k"), stats_k=6)))
    try:
        assert api.client.get("/v1/stats").status_code == 401
        body = api.client.get("/v1/stats", headers=api.h("m3")).json()
        assert body["k"] == 6 and body == statistics(market.ledger, k=6) and "headSeq" not in body
        for k in (1, 2, 8):  # k is the cooperative's alone: a caller's is not a parameter at all
            assert api.client.get(f"/v1/stats?k={k}", headers=api.h("m3")).json() == body
        assert "k" not in json.dumps(api.client.get("/openapi.json").json()["paths"]["/v1/stats"]["get"]
                                     .get("parameters", []))
        text = json.dumps(body)
        for name in CARERS + ["shop1", "shop2"]:
            assert market.addr(name) not in text  # no address, so no per-person row
        with pytest.raises(ValueError):
            create_app(market.ledger, Settings(secret_file=str(tmp_path / "k"), stats_k=3))  # below the policy's 5
    finally:
        api.client.close()
    r = CliRunner().invoke(ayni, ["stats", "--db", db_url, "--json", "--k", "6"])
    assert r.exit_code == 0 and json.loads(r.output)["k"] == 6
    low = CliRunner().invoke(ayni, ["stats", "--db", db_url, "--k", "3"])
    assert low.exit_code == 1 and "below the data policy's minimum group size 5" in low.output
    human = CliRunner().invoke(ayni, ["stats", "--db", db_url])
    assert human.exit_code == 0 and "2026-03  HOUR  to member    6 transfers" in human.output


# -- differencing and dominance (privacy review findings) -----------------------------------------

def cred(out, role=None):
    rows = out["cells"] if role else out["monthTotals"]
    return next(x for x in rows if x["currency"] == "CRED" and (role is None or x["payeeRole"] == role))


def test_a_total_is_never_released_beside_a_hidden_cell_at_any_k(db_url):
    """Six members pay each other in a ring; one member pays the one shop 377. The shop cell is
    hidden; no total, at this k or a larger one, may give total - member cell = 377."""
    now = [MARCH]
    c = Community(db_url, clock=lambda: now[0])
    for i in range(7):
        c.member(f"m{i}")
    c.member("shop", role="shop")
    for i in range(6):
        c.ledger.submit(c.pay(f"m{i}", f"m{(i + 1) % 6}", 10 + i, currency="CRED"))
    c.ledger.submit(c.pay("m6", "shop", 377, currency="CRED"))
    now[0] = APRIL
    try:
        k5, k7 = statistics(c.ledger, k=5), statistics(c.ledger, k=7)
        # the member cell passes k, but it is the shop cell's complement: the month's count is public
        assert cred(k5, "shop").get("suppressed") and cred(k5, "member").get("suppressed")
        assert cred(k5).get("suppressed") and cred(k7).get("suppressed")
        check_safe(k5, 5)
        check_safe(k7, 7)
    finally:
        c.dispose()


def test_only_closed_months_are_released_so_a_known_payment_reveals_nothing(db_url):
    """Between two calls a member makes one payment of a known amount: the open month is not
    released at all, and a closed month's figures never change."""
    now = [MARCH]
    c = Community(db_url, clock=lambda: now[0])
    for i in range(6):
        c.member(f"m{i}")
    c.member("shop", role="shop")
    for i in range(5):
        c.ledger.submit(c.pay(f"m{i}", f"m{(i + 1) % 5}", 20 + i, currency="CRED"))
    c.ledger.submit(c.pay("m5", "shop", 377, currency="CRED"))  # the secret
    try:
        during = statistics(c.ledger, k=5)
        assert during["cells"] == during["monthTotals"] == during["activeMembers"] == []
        assert during["monthsBefore"] == "2026-03"
        now[0] = APRIL
        before = statistics(c.ledger, k=5)
        assert cred(before, "member").get("suppressed")  # the shop cell's complement
        assert cred(before, "shop").get("suppressed") and cred(before).get("suppressed")
        c.ledger.submit(c.pay("m4", "m0", 1, currency="CRED"))  # the attacker's own known payment
        after = statistics(c.ledger, k=5)
        assert after == before  # March is closed: nothing to subtract
    finally:
        c.dispose()


def test_a_cell_dominated_by_one_payer_or_payee_is_suppressed(db_url):
    """k distinct payers, but one of them is 590 of 594: the cell would be that person's figure."""
    now = [MARCH]
    c = Community(db_url, clock=lambda: now[0])
    for i in range(5):
        c.member(f"m{i}")
    for s in range(5):
        c.member(f"s{s}", role="shop")
    c.ledger.submit(c.pay("m0", "m1", 590))
    for i in range(1, 5):
        c.ledger.submit(c.pay(f"m{i}", f"m{(i + 1) % 5}", 1))
    # shops: five payers, five shops, but shop s0 takes 300 of 304 (one payee dominates)
    c.ledger.submit(c.pay("m0", "s0", 300, currency="CRED"))
    for i in range(1, 5):
        c.ledger.submit(c.pay(f"m{i}", f"s{i}", 1, currency="CRED"))
    # a balanced cell of the same size is released: the rule is about shares, not size
    for i in range(5):
        c.ledger.submit(c.pay(f"m{i}", f"m{(i + 2) % 5}", 10 + i, currency="CRED"))
    now[0] = APRIL
    try:
        out = statistics(c.ledger, k=5)
        assert out["dominance"] == 0.5
        hour = next(x for x in out["cells"] if x["currency"] == "HOUR")
        assert hour.get("suppressed") and "amount" not in hour
        assert cred(out, "shop").get("suppressed")
        # the balanced cell passes the rule on its own; it is hidden only as the complement of the
        # CRED shop cell (the month's transfer count is public)
        assert cred(out, "member").get("suppressed")
        assert all(m.get("suppressed") for m in out["monthTotals"])
        check_safe(out, 5)
    finally:
        c.dispose()


def test_a_released_month_never_changes_even_for_a_posting_stamped_at_its_end(db_url):
    """Review D6: a posting takes its time (`at`) under the head lock and commits a moment later;
    a release read in between, just after midnight, published the month without it, and the next
    release with it: one member's payment by subtraction. A month is released only a grace
    period after its end, and every month once released stays as it was."""
    import sys
    import threading

    def at(s: str) -> int:
        return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC).timestamp() * 1000)

    now = [at("2026-10-10T12:00:00")]
    releases, armed = [], [False]

    def clock() -> int:
        if armed[0] and sys._getframe(1).f_code.co_name in ("_write", "_write_once"):  # the posting's own `at`
            armed[0] = False
            now[0] = at("2026-11-01T00:00:00.001")
            reader = threading.Thread(target=lambda: releases.append(statistics(c.ledger, k=5)))
            reader.start()
            reader.join()  # a GET /v1/stats between this `at` and the commit
            return at("2026-10-31T23:59:59.999")
        return now[0]

    c = Community(db_url, clock=clock)
    try:
        for i in range(6):
            c.member(f"m{i}")
        for i in range(6):
            c.ledger.submit(c.pay(f"m{i}", f"m{(i + 1) % 6}", 20 + i, currency="CRED"))
        now[0] = at("2026-10-31T23:59:50")
        late = c.pay("m3", "m4", 1, currency="CRED")
        armed[0] = True
        c.ledger.submit(late)
        assert releases and not armed[0]
        releases.append(statistics(c.ledger, k=5))  # still 1 November
        now[0] = at("2026-11-02T00:00:01")  # a day later: October released, with the late payment
        final = statistics(c.ledger, k=5)
        assert cred(final, "member")["transfers"] == 7
        for r in releases + [statistics(c.ledger, k=5)]:
            for row in r["cells"] + r["monthTotals"]:
                assert row in final["cells"] + final["monthTotals"], (row, final)
    finally:
        c.dispose()
