"""k-suppressed aggregates (issue 6, item 5): no released figure describes fewer than k
members, a suppressed cell cannot be recovered from a released total, and nothing is per person."""
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
CARERS = [f"m{i}" for i in range(6)]


@pytest.fixture
def market(db_url):
    """March: six members care for each other (HOUR), pay each other and two shops in CRED.
    April: only two members trade."""
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
        hidden = [c for c in cells if c.get("suppressed")]
        assert not hidden or len(hidden) == len(cells), (total, cells)


def test_small_groups_are_suppressed_with_their_totals(market):
    out = statistics(market.ledger, k=5)
    check_safe(out, 5)
    cells = {(c["currency"], c["month"], c["payeeRole"]): c for c in out["cells"]}
    care = cells[("HOUR", "2026-03", "member")]
    assert (care["transfers"], care["amount"], care["payers"], care["payees"]) == (6, sum(60 + i for i in range(6)), 6, 6)
    assert cells[("CRED", "2026-03", "member")]["payees"] == 6
    assert cells[("CRED", "2026-03", "shop")] == {"currency": "CRED", "month": "2026-03", "payeeRole": "shop",
                                                  "suppressed": True}  # six payers, but only two shops
    assert cells[("HOUR", "2026-04", "member")].get("suppressed")
    months = {(m["currency"], m["month"]): m for m in out["monthTotals"]}
    assert months[("HOUR", "2026-03")]["amount"] == care["amount"]
    # CRED March passes k on its own (6 payers, 8 payees), but total - member cell = the two
    # shops' takings: withheld
    assert months[("CRED", "2026-03")].get("suppressed")
    assert {m["month"]: m.get("members") for m in out["activeMembers"]} == {"2026-03": 8, "2026-04": None}
    assert {a["role"]: a.get("active") for a in out["accounts"]} == {"member": 6, "shop": None, "treasurer": None}


def test_k_is_configurable_and_never_below_two(market):
    out = statistics(market.ledger, k=2)
    check_safe(out, 2)
    cells = {(c["currency"], c["month"], c["payeeRole"]): c for c in out["cells"]}
    assert cells[("CRED", "2026-03", "shop")]["payees"] == 2
    assert cells[("HOUR", "2026-04", "member")].get("suppressed")  # still a single payer and payee
    assert all(c.get("suppressed") for c in statistics(market.ledger, k=7)["cells"])
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
        assert body["k"] == 6 and body == statistics(market.ledger, k=6)
        assert api.client.get("/v1/stats?k=2", headers=api.h("m3")).json()["k"] == 6  # never below the coop's k
        assert api.client.get("/v1/stats?k=8", headers=api.h("m3")).json()["k"] == 8
        assert api.client.get("/v1/stats?k=1", headers=api.h("m3")).status_code == 422
        text = json.dumps(body)
        for name in CARERS + ["shop1", "shop2"]:
            assert market.addr(name) not in text  # no address, so no per-person row
        with pytest.raises(ValueError):
            create_app(market.ledger, Settings(secret_file=str(tmp_path / "k"), stats_k=3))  # below the policy's 5
    finally:
        api.client.close()
    r = CliRunner().invoke(ayni, ["stats", "--db", db_url, "--json", "--k", "5"])
    assert r.exit_code == 0 and json.loads(r.output) == statistics(market.ledger, k=5)
    human = CliRunner().invoke(ayni, ["stats", "--db", db_url])
    assert human.exit_code == 0 and "2026-03  HOUR  to member    6 transfers" in human.output
