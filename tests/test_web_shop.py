"""The shop till in the member web app (web/src/screens/shop*.js), in a real browser: Debian's
Chromium driven by npm playwright-core (tests/web/shop_flow.mjs) against a real `ayni serve` on a
free loopback port. One server and one browser run for the module (the flow, about 40 s); each
test below then checks one part of what the screens did against the ledger itself:

- the till (an 800 px tablet) charges 12.50 in one tap; Ana's phone (360 px) opens the link,
  sees the shop's published name, consents to show her name, signs; the till shows it live;
- the standing payment code: Sofía (Spanish) types 3,20 without consenting; the till's feed is
  cut while she pays, and after the reconnect and a reload the payment shows once, no name;
- a refund of 5.00 of Ana's 12.50, signed on the till (13 refused on the screen), linked on
  both sides;
- a mixed payment: 30 % of 9.99 in credit is 2.99 (floor, as the server), 7.00 in cash;
- the takings report (screen, CSV, and the API with the shop's own key) equals the ledger.

Without Chromium or node_modules the tests skip loudly, except with CI=true, where they fail.
Screenshots land in test-artifacts/web/ (s01-...png); docs/shops/ holds copies for the docs
(tests/web/shop_screenshots.sh)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from ledger import signing
from ledger.community import new_genesis
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from .servers import ServerNotReady, clean_env, free_port, stop_group, wait_ready

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("AYNI_SHOP_SHOTS", ROOT / "test-artifacts" / "web"))
CHROMIUM = os.environ.get("AYNI_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BIN = Path(sys.executable).parent


def _require_browser() -> str:
    problem = None
    node = shutil.which("node")
    if not node:
        problem = "node is not on PATH"
    elif not Path(CHROMIUM).is_file():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    elif not (ROOT / "node_modules" / "playwright-core").is_dir():
        problem = "node_modules/playwright-core is missing (run `npm ci`)"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}: the shop till's browser test may not be skipped in CI")
        warnings.warn(f"SKIPPING the shop till's browser test: {problem}")
        pytest.skip(f"!!! the shop till in the browser NOT TESTED: {problem} (required when CI=true)")
    return node


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """A real `ayni serve` on SQLite (the shop's SQL runs on both databases in the API tests)
    and the whole browser flow, once; yields (ledger, the flow's JSON, seconds)."""
    node = _require_browser()
    tmp = tmp_path_factory.mktemp("shop")
    treasurer = signing.new_key()
    db_url = f"sqlite:///{tmp / 'ayni.db'}"
    ledger = Ledger.open(db_url)
    ledger.initialise(new_genesis("web-shop", address_of_key(treasurer)))
    port = free_port()
    env = clean_env(AYNI_SESSION_KEY_FILE=str(tmp / "session.key"))
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db_url, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base, proc)
        except ServerNotReady as exc:
            pytest.fail(f"{exc}")
        started = time.monotonic()
        r = subprocess.run([node, str(ROOT / "tests" / "web" / "shop_flow.mjs")], check=False, capture_output=True, text=True,
                           cwd=ROOT, timeout=240, env={**os.environ, "AYNI_URL": base, "TREASURER_KEY": "0x" + treasurer.hex(),
                                                        "OUT": str(ARTIFACTS), "CHROMIUM": CHROMIUM, "PYTHON": sys.executable,
                                                        "AYNI_DB": db_url})
        assert r.returncode == 0, f"browser flow failed:\n{r.stderr[-6000:]}"
        yield ledger, json.loads(r.stdout.strip().splitlines()[-1]), time.monotonic() - started
    finally:
        stop_group(proc)
        ledger.engine.dispose()


def _posted(ledger, seq):
    entry = next(e for e in ledger.iter_entries(seq - 1) if e.seq == seq)
    assert entry.kind == "transfer.posted", entry
    return entry.body


def _cred(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d} CRED"


@pytest.mark.slow
def test_till_amount_paid_from_a_phone_shows_live(flow):
    from ledger.requests import PaymentRequests
    ledger, out, elapsed = flow
    req = PaymentRequests(ledger).get(out["request1"])
    assert (req.status, req.payee, req.currency, req.amount, req.paid_seq) == ("paid", out["shop"], "CRED", 1250, out["pay1"])
    body = _posted(ledger, out["pay1"])
    assert (body["payer"], body["payee"], body["amount"], body["requestId"]) == (out["ana"], out["shop"], 1250, out["request1"])
    print(f"shop browser flow: {elapsed:.1f} s, {len(out['shots'])} screenshots in {ARTIFACTS}")


@pytest.mark.slow
def test_standing_code_payment_in_spanish_survives_a_reconnect(flow):
    ledger, out, _ = flow
    body = _posted(ledger, out["pay2"])
    assert (body["payer"], body["payee"], body["currency"], body["amount"]) == (out["sofia"], out["shop"], "CRED", 320)


@pytest.mark.slow
def test_refund_signed_on_the_till_links_both_transfers(flow):
    ledger, out, _ = flow
    body = _posted(ledger, out["refundSeq"])
    assert (body["payer"], body["payee"], body["currency"], body["amount"]) == (out["shop"], out["ana"], "CRED", 500)
    # exactly one refund moved money (the 13.00 one was refused on the screen, never posted)
    refunds = [e for e in ledger.iter_entries() if e.kind == "transfer.posted" and e.body["payer"] == out["shop"]]
    assert [e.seq for e in refunds] == [out["refundSeq"]]


@pytest.mark.slow
def test_mixed_payment_moves_only_the_credit_part(flow):
    from ledger.requests import PaymentRequests
    ledger, out, _ = flow
    body = _posted(ledger, out["pay3"])
    assert (body["payer"], body["payee"], body["amount"], body["requestId"]) == (out["ana"], out["shop"], 299, out["request3"])
    assert PaymentRequests(ledger).get(out["request3"]).status == "paid"


@pytest.mark.slow
def test_takings_report_equals_the_ledger(flow):
    ledger, out, _ = flow
    shop = out["shop"]
    posted = [e.body for e in ledger.iter_entries() if e.kind == "transfer.posted"]
    received = [b["amount"] for b in posted if b["payee"] == shop]
    refunded = [b["amount"] for b in posted if b["payer"] == shop]
    assert (len(received), sum(received), sum(refunded)) == (3, 1250 + 320 + 299, 500)
    net = ledger.positions(shop)[(shop, "CRED")].balance
    assert net == sum(received) - sum(refunded)
    # the screen's totals
    assert out["totals"] == [["CRED", "3", _cred(sum(received)), _cred(sum(refunded)), _cred(net)]], out["totals"]
    # the API's, asked with the shop's own key
    api_totals = [t for t in out["apiReport"]["totals"] if t["currency"] == "CRED"]
    assert [(t["count"], int(t["sum"]), int(t["refunds"]), int(t["net"])) for t in api_totals] == [(3, sum(received), sum(refunded), net)]
    # the CSV the app makes is the server's (ayni-wallet's) byte for byte, and adds up the same
    assert out["csv"] == out["apiCsv"]
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert rows and {r["currency"] for r in rows} == {"CRED"} and {r["till"] for r in rows} == {"counter"}
    assert [sum(int(r[k]) for r in rows) for k in ("count", "sum", "refunds", "net")] == [3, sum(received), sum(refunded), net]
    assert ledger.verify().ok


def test_till_credit_part_is_the_servers_floor():
    """The till shows the credit part before the server checks it: the app's integer floor
    (web/src/shop_api.js creditPart, BigInt) equals floor(total * share / 10000) for odd prices,
    every share edge and the largest amount (a float would be off by one up there)."""
    node = shutil.which("node")
    if not node:
        if IN_CI:
            pytest.fail("CI=true but node is not on PATH")
        pytest.skip("!!! node is not on PATH: the till's credit part NOT TESTED")
    cases = [(999, 3000), (1, 3000), (10000, 1), (2**53 - 1, 3333), (2**53 - 1, 10000), (12345, 0), (12345, 9999), (7, 5000)]
    script = ("import { creditPart } from './web/src/shop_api.js';"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(([t, b]) => creditPart(t, b))));")
    r = subprocess.run([node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(r.stdout) == [t * b // 10000 for t, b in cases]


def test_refund_is_checked_before_the_browser_signs_it():
    """The till's refund form (web/src/shop_api.js refundChecks) recomputes the refund id from the
    payment's digest and nonce exactly as the ledger does (ledger.core.refunds.refund_id) and
    refuses a server's description with another payee, currency, amount or id."""
    node = shutil.which("node")
    if not node:
        if IN_CI:
            pytest.fail("CI=true but node is not on PATH")
        pytest.skip("!!! node is not on PATH: the till's refund check NOT TESTED")
    import secrets

    from ledger.core.refunds import refund_id
    digest, nonce = secrets.token_bytes(32), secrets.randbits(128)
    tx = {"seq": 7, "payer": "0x" + "AB" * 20, "currency": "CRED", "digest": "0x" + digest.hex()}
    good = {"payee": tx["payer"], "currency": "CRED", "amount": 250, "refundOf": 7, "refundNonce": str(nonce),
            "refundId": "0x" + refund_id(digest, nonce).hex()}
    cases = [good, {**good, "payee": "0x" + "CD" * 20}, {**good, "currency": "HOUR"}, {**good, "amount": 251},
             {**good, "refundOf": 8}, {**good, "refundId": "0x" + refund_id(digest, nonce + 1).hex()},
             {**good, "refundNonce": str(nonce + 1)}]
    script = ("import { refundChecks } from './web/src/shop_api.js';"
              f"console.log(JSON.stringify({json.dumps(cases)}.map((r) => refundChecks({json.dumps(tx)}, r, 250))));")
    r = subprocess.run([node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True,
                       timeout=30)
    assert json.loads(r.stdout) == [True] + [False] * (len(cases) - 1)
