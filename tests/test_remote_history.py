"""Remote payments in a member's history and receipt (issue 15), through the real API of two
`ayni serve` nodes allied through the CLI (tests/federation_nodes.py), on SQLite and on
PostgreSQL: a leg shows as a remote payment (the counterparty and community there, the amount
here and the amount there, its state: pending while prepared, failed once aborted, completed
once committed, the payment id), never as a payment to the peer account; paging through a
history mixing transfers and remote legs repeats and skips nothing; `ayni-wallet history`
shows the same."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ledger import signing
from ledger.core.codec import hex0x
from ledger.core.federation import RemoteTransfer, payment_id, peer_address
from ledger.core.typed_data import sign_digest

from .bank import sign_in
from .federation_nodes import (
    FAST_SCRYPT_N,
    PASSWORD,
    Node,
    ally,
    leg_state,
    post,
    remote_payment,
)

WALLET = Path(sys.executable).parent / "ayni-wallet"


def _pg_database(pg_server_url: str):
    name = f"wt_fedfaces_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(pg_server_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, name, pg_server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def nodes(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"remotehistory-{request.param}")
    dbs = []
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp}/a.db", f"sqlite:///{tmp}/b.db"]
    else:
        pg = request.getfixturevalue("pg_server_url")
        dbs = [_pg_database(pg) for _ in range(2)]
        urls = [d[2] for d in dbs]
    a = Node("A", urls[0], tmp / "A")
    b = Node("B", urls[1], tmp / "B")
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
        for admin, name, _ in dbs:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _get(node: Node, path: str, token: str, **params) -> httpx.Response:
    return httpx.get(node.base + path, params=params, headers={"authorization": f"Bearer {token}"}, timeout=10)


def _history(node: Node, token: str, address: str, **params) -> list[dict]:
    r = _get(node, f"/v1/accounts/{address}/history", token, **params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _wait_state(node: Node, pid: str, want: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while leg_state(node, pid) != want:
        assert time.monotonic() < deadline, (node.name, pid, leg_state(node, pid))
        time.sleep(0.1)


def test_history_and_receipt_show_remote_payments_with_both_amounts(nodes):
    a, b, tmp = nodes
    payer, payee = a.address(0), b.address(1)
    ta, tb = sign_in(a.base, a.keys[0]), sign_in(b.base, b.keys[1])

    # a local transfer first, so the history mixes both kinds
    local = signing.transfer(a.keys[0], a.domain, payee=a.address(2), currency="HOUR", amount=7, memo="tea")
    r = httpx.post(a.base + "/v1/transfers", json=signing.transfer_json(local), timeout=10)
    assert r.status_code == 201, r.text

    # 1. committed: 90 HOUR here, 90 HOUR there
    paid = remote_payment(a, b, 0, 1, 90)
    assert post(a, paid) == (201, "committed")
    _wait_state(b, paid.payment_id, "committed")

    # 2. refused by B (no such account there): aborted here at once, with B's code
    stranger = "0x" + "ab" * 20
    refused = remote_payment(a, b, 0, 1, 5)
    refused.body["message"]["payee"] = stranger
    t = RemoteTransfer.from_message(refused.body["message"])
    refused.body["signature"] = sign_digest(a.keys[0], a.domain.digest(t.struct_hash()))
    refused.payment_id = hex0x(payment_id(a.domain, t))
    status, code = post(a, refused)
    assert status is not None and 400 <= status < 500 and code == "unknown_account", (status, code)

    # 3. pending: B unreachable, the leg stays prepared (held) until the deadline, then fails
    b.proxy.upstream = None
    try:
        pending = remote_payment(a, b, 0, 1, 11)
        assert post(a, pending) == (202, "prepared")
        items = _history(a, ta, payer)
        mine = {i["digest"]: i for i in items}
        p = mine[pending.payment_id]
        assert p["remote"]["state"] == "prepared" and p["remote"]["status"] == "pending", p
        _wait_state(a, pending.payment_id, "aborted", timeout=a.timeout_ms / 1000 + 20)
    finally:
        b.proxy.upstream = b.base

    items = _history(a, ta, payer)
    by_id = {i["digest"]: i for i in items}
    assert len(items) == 4, items  # the local transfer and three remote legs, each once
    c = by_id[paid.payment_id]
    assert c["remote"] == {
        "paymentId": paid.payment_id, "side": "out", "state": "committed", "status": "completed", "code": None,
        "community": hex0x(b.community), "communityUrl": b.proxy.url, "counterparty": payee,
        "currency": "HOUR", "amount": 90, "decidedSeq": c["remote"]["decidedSeq"]}
    assert c["payer"] == payer and c["payee"] == payee and c["direction"] == "out"
    assert c["currency"] == "HOUR" and c["amount"] == 90 and c["remote"]["decidedSeq"] > c["seq"]
    f = by_id[refused.payment_id]["remote"]
    assert (f["state"], f["status"], f["code"]) == ("aborted", "failed", "unknown_account")
    assert f["counterparty"].lower() == stranger
    g = by_id[pending.payment_id]["remote"]
    assert (g["state"], g["status"], g["code"]) == ("aborted", "failed", "timeout")
    # never a payment to the peer account
    peer_a = peer_address(b.community)
    assert all(peer_a not in (i["payer"], i["payee"]) for i in items)
    # newest first, seqs strictly decreasing
    assert [i["seq"] for i in items] == sorted((i["seq"] for i in items), reverse=True)

    # paging one row at a time gives the same rows, none twice
    seen, cursor = [], None
    while True:
        r = _get(a, f"/v1/accounts/{payer}/history", ta, limit=1, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        seen += [i["digest"] for i in r.json()["items"]]
        cursor = r.json()["nextCursor"]
        if cursor is None:
            break
    assert seen == [i["digest"] for i in items]

    # filters: the currency here, the counterparty there
    assert {i["digest"] for i in _history(a, ta, payer, counterparty=payee)} == {paid.payment_id, pending.payment_id}
    assert len(_history(a, ta, payer, currency="HOUR")) == 4

    # the payee's side: remote in, from the payer in community A, the amount delivered
    items_b = _history(b, tb, payee)
    assert len(items_b) == 1, items_b  # the refused and the pending payments never reached B's books
    rb = items_b[0]
    assert rb["digest"] == paid.payment_id and rb["direction"] == "in"
    assert rb["currency"] == "HOUR" and rb["amount"] == 90
    assert rb["remote"]["side"] == "in" and rb["remote"]["state"] == "committed"
    assert rb["remote"]["counterparty"] == payer and rb["remote"]["community"] == hex0x(a.community)
    assert rb["remote"]["currency"] == "HOUR" and rb["remote"]["amount"] == 90

    # the receipt: the member's own remote payment, its state now
    r = _get(a, f"/v1/accounts/{payer}/remote-payments/{paid.payment_id}", ta)
    assert r.status_code == 200 and r.json()["remote"]["status"] == "completed", r.text
    assert r.json() == c
    r = _get(b, f"/v1/accounts/{payee}/remote-payments/{paid.payment_id}", tb)
    assert r.status_code == 200 and r.json() == rb
    # another member: not theirs (their own account path), or refused (someone else's)
    other = sign_in(a.base, a.keys[3])
    r = _get(a, f"/v1/accounts/{a.address(3)}/remote-payments/{paid.payment_id}", other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = _get(a, f"/v1/accounts/{payer}/remote-payments/{paid.payment_id}", other)
    assert r.status_code in (400, 403) and r.json()["error"]["code"] in ("purpose_required", "forbidden",
                                                                          "not_authorised"), r.text
    r = _get(a, f"/v1/accounts/{payer}/remote-payments/0x{'00' * 32}", ta)
    assert r.status_code == 404
    r = _get(a, f"/v1/accounts/{payer}/remote-payments/0x12", ta)
    assert r.status_code == 422

    # ayni-wallet history: both amounts, the community, the state
    from ledger.chain.keys import write_keystore
    ks = tmp / "payer.json"
    if not ks.exists():
        write_keystore(str(ks), a.keys[0], PASSWORD, scrypt_n=FAST_SCRYPT_N)
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               COLUMNS="400")
    out = subprocess.run([str(WALLET), "history", "--api", a.base, "--key", str(ks), "--password-file",
                          str(a.password_file)], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    text_out = out.stdout
    assert "remote out" in text_out and "completed" in text_out and "failed (timeout)" in text_out, text_out
    assert "failed (unknown_account)" in text_out and "(90 minor units of HOUR there)" in text_out and "-1h30m HOUR" in text_out, text_out
    assert (f"seq {c['seq']}: remote payment {paid.payment_id} to {payee} in community {hex0x(b.community)}"
            in text_out), text_out
    out = subprocess.run([str(WALLET), "history", "--api", a.base, "--key", str(ks), "--password-file",
                          str(a.password_file), "--json"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"] == items
