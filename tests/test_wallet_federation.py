"""The wallet's federation commands against two real `ayni serve` nodes allied through the CLI
(tests/federation_nodes.py): `ayni-wallet pay` to a member of the allied community, and
`ayni-wallet reconcile-peer` passing on honest logs and failing, with the exact discrepancy,
on a log that lost a committed leg."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.core.codec import hex0x
from ledger.core.federation import peer_address

from .federation_nodes import PASSWORD, Node, ally, ayni, post, remote_payment, settle

WALLET = Path(sys.executable).parent / "ayni-wallet"


def wallet(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    return subprocess.run([str(WALLET), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _treasurer(n: Node, prefix: str = "") -> list[str]:
    return [f"--{prefix}api", n.base, f"--{prefix}key", str(n.treasurer_keystore),
            f"--{prefix}password-file", str(n.password_file)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fedwallet")
    a = Node("A", f"sqlite:///{tmp}/a.db", tmp / "A")
    b = Node("B", f"sqlite:///{tmp}/b.db", tmp / "B")
    try:
        for n in (a, b):
            n.create()
        for n in (a, b):
            n.start()
        ally(a, b)
        yield a, b, tmp
    finally:
        a.close()
        b.close()


def _write_export(path: Path, entries: list[dict], end: dict | None = None) -> None:
    from ledger.core import log_format
    head = entries[-1]["seq"] if entries else 0
    lines = [log_format.dumps(log_format.header("", head, int(time.time() * 1000)))]
    lines += [log_format.dumps(e) for e in entries]
    lines.append(log_format.dumps({"end": {**(end or {}), "headSeq": head, "entries": len(entries)}}))
    path.write_text("\n".join(lines) + "\n")


def _member(n: Node, i: int, tmp: Path) -> list[str]:
    from ledger.chain.keys import write_keystore

    from .federation_nodes import FAST_SCRYPT_N
    path = tmp / f"{n.name}-member{i}.json"
    if not path.exists():
        write_keystore(str(path), n.keys[i], PASSWORD, scrypt_n=FAST_SCRYPT_N)
    return ["--api", n.base, "--key", str(path), "--password-file", str(n.password_file)]


@dataclass
class _Paid:
    payment_id: str
    origin: str


def test_wallet_pays_a_member_of_the_allied_community(nodes):
    a, b, tmp = nodes
    home = tmp / "home"
    # <community>:<address>: both amounts shown before signing, committed on both nodes
    r = wallet("pay", f"{hex0x(b.community)}:{b.address(1)}", "12m", "-c", "HOUR", "--yes", "--json",
               *_member(a, 0, tmp), home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    answer = json.loads(r.stdout)
    assert answer["state"] == "committed" and answer["message"]["payee"] == b.address(1), answer
    minor = answer["message"]["amount"]
    assert answer["message"]["delivered"] == minor and answer["message"]["payeeCurrency"] == "HOUR"
    assert f"the payee receives {minor} minor units of HOUR" in r.stderr, r.stderr
    states = settle([a, b], [_Paid(answer["paymentId"], "A")], timeout=20)
    assert states[answer["paymentId"]] == ("committed", "committed"), states

    # --community and the other direction, human output
    r = wallet("pay", a.address(2), "3m", "-c", "HOUR", "--community", hex0x(a.community), "--yes",
               *_member(b, 3, tmp), home=home)
    assert r.returncode == 0 and "committed, payment 0x" in r.stdout, r.stdout + r.stderr

    # refusals: one line with the code, non-zero exit, nothing paid
    unknown = "0x" + "ab" * 32
    r = wallet("pay", f"{unknown}:{b.address(1)}", "1m", "-c", "HOUR", "--yes", *_member(a, 0, tmp), home=home)
    assert r.returncode == 1 and "unknown_alliance" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = wallet("pay", f"{hex0x(b.community)}:{b.address(1)}", "100000", "-c", "HOUR", "--yes",
               *_member(a, 1, tmp), home=home)
    assert r.returncode == 1 and "refused: " in r.stderr and "nothing was paid" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

    # the payee's node down: prepared here, pending with the payment id; it settles on its own
    b.stop()
    try:
        r = wallet("pay", f"{hex0x(b.community)}:{b.address(0)}", "1m", "-c", "HOUR", "--yes",
                   *_member(a, 2, tmp), home=home)
        assert r.returncode == 0 and "pending: payment 0x" in r.stdout, r.stdout + r.stderr
    finally:
        b.start()
    pid = r.stdout.split("pending: payment ")[1].split()[0]
    states = settle([a, b], [_Paid(pid, "A")], timeout=30)  # one outcome on both sides
    assert states[pid] in (("committed", "committed"), ("aborted", "aborted"), ("aborted", "none")), states


def test_reconcile_peer_passes_then_names_the_lost_leg(nodes):
    a, b, tmp = nodes
    payments = [remote_payment(a, b, 0, 1, 30), remote_payment(b, a, 2, 3, 20), remote_payment(a, b, 1, 0, 7)]
    for p in payments:
        assert post(a if p.origin == "A" else b, p)[0] == 201, p.answers
    settle([a, b], payments, timeout=20)

    r = wallet("reconcile-peer", *_treasurer(a), *_treasurer(b, "peer-"), "--json", home=tmp / "home")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["paymentsChecked"] >= 3 and report["inFlight"] == 0, report

    # B's export, and the same export cut just before B committed A's last payment: a valid log
    # on its own (a prefix of one), but A committed a leg B never did.
    out = tmp / "b.jsonl"
    e = ayni("export-log", "--db", b.db_url, "--out", str(out))
    assert e.returncode == 0, e.stderr
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(out), "--json", home=tmp / "home")
    assert r.returncode == 0, r.stdout + r.stderr

    entries = [json.loads(line) for line in out.read_text().splitlines()[1:-1]]
    last = payments[-1].payment_id
    cut = next(x["seq"] for x in entries if x["kind"] == "remote.committed" and x["body"]["paymentId"] == last)
    tampered = tmp / "b-cut.jsonl"
    _write_export(tampered, [x for x in entries if x["seq"] < cut])
    # A committed, B only prepared: in flight (B's COMMIT may be on its way) until the timeout
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(tampered), "--json", home=tmp / "home")
    assert r.returncode == 0, r.stdout + r.stderr
    found = json.loads(r.stdout)
    assert found["inFlight"] == 1 and "in flight" in found["warnings"][0], found
    # past the timeout, the prepared leg is the discrepancy, named by its payment
    time.sleep(1.1)
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(tampered), "--pending-timeout", "1",
               home=tmp / "home")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pending at seq" in r.stdout and f"payment {last}" in r.stdout, r.stdout

    # drop the whole leg at B (prepared and committed): A's committed leg has no twin
    prepared = next(x["seq"] for x in entries if x["kind"] == "remote.prepared" and x["body"]["paymentId"] == last)
    _write_export(tampered, [x for x in entries if x["seq"] < prepared])
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(tampered), home=tmp / "home")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "remote_leg" in r.stdout and f"payment {last}" in r.stdout and "a committed twin on the peer log" \
        in r.stdout, r.stdout
    assert "peer_mirror" in r.stdout, r.stdout  # B's peer account for A lacks the 7 A paid

    # B's balance sheet claiming another balance for its peer account for A: B's log alone says
    # otherwise, and the finding names the account and both numbers
    end = json.loads(out.read_text().splitlines()[-1])["end"]
    peer_for_a = peer_address(a.community)
    rows = [dict(row) for row in end["balances"]]
    row = next(x for x in rows if x["account"] == peer_for_a and x["currency"] == "HOUR")
    real = row["balance"]
    row["balance"] = real + 5
    _write_export(tampered, entries, {**end, "balances": rows})
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(tampered), "--json", home=tmp / "home")
    assert r.returncode == 1, r.stdout + r.stderr
    bad = [d for d in json.loads(r.stdout)["discrepancies"] if d["account"] == peer_for_a]
    assert bad and bad[0]["check"] == "balance" and str(real + 5) in bad[0]["found"] + bad[0]["expected"], bad

    # unreadable input: one line, exit 2
    r = wallet("reconcile-peer", *_treasurer(a), "--peer-log", str(tmp / "missing.jsonl"), home=tmp / "home")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and not r.stdout, r.stdout + r.stderr
    r = wallet("reconcile-peer", *_treasurer(a), home=tmp / "home")
    assert r.returncode == 2 and "--peer-log" in r.stderr, r.stderr


def test_leg_checks_name_a_split_decision_and_a_changed_transfer():
    """The cross-node leg rules on their own (ledger/core/peer_reconcile.py), on replayed states
    built directly: a split decision and a twin carrying another transfer are each named."""
    from ledger.core.federation import RemoteTransfer
    from ledger.core.federation_rules import Leg
    from ledger.core.fold import LedgerState
    from ledger.core.peer_reconcile import NodeLog, PeerReport, _check_legs, _Side
    from ledger.core.reconcile import Report

    aid = b"\x01" * 32
    t = RemoteTransfer.create(payer="0x" + "11" * 20, payee_community=b"\x02" * 32, payee="0x" + "22" * 20,
                              currency="HOUR", amount=30, payee_currency="HOUR", delivered=30, nonce=1,
                              valid_until=2 ** 40)

    def side(name, legs):
        st = LedgerState()
        st.legs = {leg.payment_id: leg for leg in legs}
        return _Side(NodeLog(name, []), Report(), st, {}, [])

    split = PeerReport()
    _check_legs(side("own", [Leg(b"\x03" * 32, "out", aid, t, "committed", prepared_seq=5, decided_seq=6)]),
                side("peer", [Leg(b"\x03" * 32, "in", aid, t, "aborted", prepared_seq=7, decided_seq=8)]),
                {aid}, now_ms=0, timeout_ms=1, report=split)
    assert [(d.code, d.seq) for d in split.discrepancies] == [("split_decision", 8)], split.discrepancies

    other = RemoteTransfer.create(**{**{k: getattr(t, k) for k in t.__slots__}, "delivered": 31})
    changed = PeerReport()
    _check_legs(side("own", [Leg(b"\x04" * 32, "out", aid, t, "committed", prepared_seq=5, decided_seq=6)]),
                side("peer", [Leg(b"\x04" * 32, "in", aid, other, "committed", prepared_seq=7, decided_seq=8)]),
                {aid}, now_ms=0, timeout_ms=1, report=changed)
    assert [d.code for d in changed.discrepancies] == ["remote_leg"], changed.discrepancies
    assert "gets 30 HOUR" in changed.discrepancies[0].expected and "gets 31 HOUR" in changed.discrepancies[0].found
