"""`ayni export-log` and `ayni-wallet reconcile|export` as a treasurer runs them: real
processes, a real ledger spread over months, Beancount books checked by bean-check."""
import csv
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.log_export import export_log
from wallet_cli.export import COLUMNS

from .conftest import Community

BIN = Path(sys.executable).parent
START_MS = int(dt.datetime(2026, 1, 20, tzinfo=dt.timezone.utc).timestamp() * 1000)
STEP_MS = 3 * 86_400_000  # each entry three days after the previous one


def run(tool, *args):
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    """A ledger whose 40 entries run from January to May 2026, exported the server's way."""
    ticks = iter(range(START_MS, START_MS + 1000 * STEP_MS, STEP_MS))
    tmp = tmp_path_factory.mktemp("export")
    c = Community(f"sqlite:///{tmp}/ayni.db", clock=lambda: next(ticks))
    for n in ("ana", "bea", "shop"):
        c.member(n, role="shop" if n == "shop" else "member")
    for i in range(30):
        payer, payee = [("ana", "bea"), ("bea", "ana"), ("ana", "shop")][i % 3]
        currency = "CRED" if payee == "shop" else "HOUR"
        c.ledger.submit(c.pay(payer, payee, 7 + i, currency=currency, memo=f"m{i}"))
    path = tmp / "log.jsonl"
    export_log(c.ledger, path)
    yield c, path, tmp
    c.dispose()


def test_export_log_then_reconcile_from_the_file(months):
    c, path, _ = months
    refused = run("ayni-wallet", "reconcile", "--log", str(path))  # not anchored: say so, or refuse
    assert refused.returncode == 2 and "--skip-chain" in refused.stderr
    r = run("ayni-wallet", "reconcile", "--log", str(path), "--skip-chain", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["entries"] == c.ledger.head()[0] and report["signaturesChecked"] > 0
    assert "anchors NOT checked (--skip-chain)" in report["checks"]
    human = run("ayni-wallet", "reconcile", "--log", str(path), "--skip-chain")
    assert human.returncode == 0 and "RECONCILED" in human.stdout and "Traceback" not in human.stderr


def test_reconcile_reports_a_tampered_export_and_exits_1(months, tmp_path):
    c, path, _ = months
    lines = path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[12])
    entry["body"]["amount"] += 1
    lines[12] = json.dumps(entry, separators=(",", ":")) + "\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines))
    r = run("ayni-wallet", "reconcile", "--log", str(bad), "--skip-chain", "--json")
    assert r.returncode == 1
    found = {(d["check"], d["seq"]) for d in json.loads(r.stdout)["discrepancies"]}
    assert ("entry_hash", entry["seq"]) in found
    human = run("ayni-wallet", "reconcile", "--log", str(bad), "--skip-chain")
    assert human.returncode == 1 and "DISCREPANCIES" in human.stdout and "entry_hash" in human.stdout


def test_reconcile_refuses_truncated_and_missing_input_with_one_line(months, tmp_path):
    _, path, _ = months
    cut = tmp_path / "cut.jsonl"
    cut.write_text(path.read_text()[:-200])
    for args in (["--log", str(cut)], ["--log", str(tmp_path / "nope.jsonl")]):
        r = run("ayni-wallet", "reconcile", "--skip-chain", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_csv_has_one_row_per_posting(months, tmp_path):
    c, path, _ = months
    out = tmp_path / "postings.csv"
    r = run("ayni-wallet", "export", "--log", str(path), "--format", "csv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == COLUMNS and len(rows) == 2 * 30
    for cur in ("HOUR", "CRED"):
        assert sum(int(r["amount_minor"]) for r in rows if r["currency"] == cur) == 0
    final = {}
    for row in rows:
        final[(row["account"], row["currency"])] = final.get((row["account"], row["currency"]), 0) + int(row["amount_minor"])
    for (account, cur), total in final.items():
        assert c.ledger.positions(account)[(account, cur)].balance == total
    first = rows[0]
    assert first["direction"] == "out" and first["amount"].startswith("-") and first["minor_unit"] == "minute"


@pytest.mark.parametrize("window", [(None, None), ("2026-03-01", "2026-04-15")])
def test_beancount_books_pass_bean_check(months, tmp_path, window):
    c, path, _ = months
    out = tmp_path / "books.beancount"
    args = ["export", "--log", str(path), "--format", "beancount", "--out", str(out)]
    if window[0]:
        args += ["--from", window[0], "--to", window[1]]
    r = run("ayni-wallet", *args)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    check = subprocess.run([str(BIN / "bean-check"), str(out)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr + text[:3000]
    assert "commodity HOUR-MIN" in text and "commodity CRED" in text
    assert text.count(" balance ") >= 4 * 2  # assertions after month ends, per account and currency
    if window[0]:
        assert '"Opening balances"' in text and "2026-01-" not in text.split("Opening balances")[1]
    else:
        ana = c.addr("ana")  # the last assertion equals the ledger's balance
        last = [ln for ln in text.splitlines() if f"balance Assets:Ayni:HOUR:{ana}" in ln][-1]
        assert last.split()[-4:-1] == [str(c.balance("ana", "HOUR")), "~", "0"]  # exact: zero tolerance


def test_beancount_assertions_fail_when_the_books_are_edited(months, tmp_path):
    """bean-check really checks our assertions: an edited posting makes it fail."""
    _, path, _ = months
    out = tmp_path / "books.beancount"
    assert run("ayni-wallet", "export", "--log", str(path), "--format", "beancount", "--out", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("  Assets:Ayni:HOUR:") and ln.endswith("HOUR-MIN")
             and "-" in ln.split()[-2])
    j = i + 1
    a, b = lines[i].split(), lines[j].split()
    lines[i] = f"  {a[0]}  {int(a[1]) - 1} HOUR-MIN"
    lines[j] = f"  {b[0]}  {int(b[1]) + 1} HOUR-MIN"
    out.write_text("\n".join(lines) + "\n")
    check = subprocess.run([str(BIN / "bean-check"), str(out)], capture_output=True, text=True, timeout=120)
    assert check.returncode != 0 and "Balance failed" in check.stdout + check.stderr


def test_a_one_cent_edit_fails_bean_check(months, tmp_path):
    """Defect 5: Beancount tolerates +-0.01 on a 2-decimal balance by default, so the
    assertions carry an explicit zero tolerance and an edit of one cent is caught."""
    from decimal import Decimal
    _, path, _ = months
    out = tmp_path / "books.beancount"
    assert run("ayni-wallet", "export", "--log", str(path), "--format", "beancount", "--out", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("  Assets:Ayni:CRED:") and ln.split()[1].startswith("-"))
    a, b = lines[i].split(), lines[i + 1].split()
    lines[i] = f"  {a[0]}  {Decimal(a[1]) - Decimal('0.01')} CRED"
    lines[i + 1] = f"  {b[0]}  {Decimal(b[1]) + Decimal('0.01')} CRED"
    out.write_text("\n".join(lines) + "\n")
    check = subprocess.run([str(BIN / "bean-check"), str(out)], capture_output=True, text=True, timeout=120)
    assert check.returncode != 0 and "Balance failed" in check.stdout + check.stderr


def test_export_bad_input_is_one_line_and_writes_nothing(months, tmp_path):
    _, path, _ = months
    out = tmp_path / "x.csv"
    cases = [["--format", "xls"], ["--from", "January"], ["--from", "2026-05-01", "--to", "2026-01-01"]]
    for extra in cases:
        r = run("ayni-wallet", "export", "--log", str(path), "--out", str(out), *extra)
        assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    cut = tmp_path / "cut.jsonl"
    cut.write_text(path.read_text()[:-300])
    r = run("ayni-wallet", "export", "--log", str(cut), "--out", str(out))
    assert r.returncode != 0 and "truncated" in r.stderr
    assert not out.exists() and not list(tmp_path.glob("x.csv.*"))


def test_beancount_escapes_names_with_quotes(tmp_path):
    from ledger import signing
    from ledger.community import new_genesis
    from ledger.core.typed_data import address_of_key
    from ledger.service import Ledger
    treasurer = signing.new_key()
    ledger = Ledger.open(f"sqlite:///{tmp_path}/q.db")
    ledger.initialise(new_genesis('Coop "La Minga" \\ test', address_of_key(treasurer)))
    ana, bea = signing.new_key(), signing.new_key()
    for k in (ana, bea):
        ledger.submit(signing.open_account(treasurer, ledger.genesis.domain, account=address_of_key(k)))
    ledger.submit(signing.transfer(ana, ledger.genesis.domain, payee=address_of_key(bea), currency="CRED", amount=250))
    export_log(ledger, tmp_path / "log.jsonl")
    out = tmp_path / "books.beancount"
    r = run("ayni-wallet", "export", "--log", str(tmp_path / "log.jsonl"), "--format", "beancount", "--out", str(out))
    assert r.returncode == 0, r.stderr
    check = subprocess.run([str(BIN / "bean-check"), str(out)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "2.50 CRED" in out.read_text()
    ledger.engine.dispose()
