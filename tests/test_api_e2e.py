"""A real `ayni serve` process on a free loopback port, over real HTTP."""
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from ledger import signing
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from .servers import ServerNotReady, free_port, stop_group, wait_ready
from .test_api import transfer_body

BIN = Path(sys.executable).parent


@pytest.fixture
def server(db_url, tmp_path):
    treasurer = signing.new_key()
    ledger = Ledger.open(db_url)
    from ledger.community import new_genesis
    ledger.initialise(new_genesis("e2e", address_of_key(treasurer)))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
           "AYNI_SESSION_KEY_FILE": str(tmp_path / "session.key")}
    workers = "2" if db_url.startswith("postgresql") else "1"
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db_url, "--port", str(port), "--workers", workers],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
    except ServerNotReady as exc:
        stop_group(proc)
        pytest.fail(f"{exc}: {proc.stderr.read()}")
    yield base, ledger, treasurer
    stop_group(proc)
    ledger.engine.dispose()


def test_pay_and_read_over_real_http(server):
    base, ledger, treasurer = server
    domain = ledger.genesis.domain
    ana, bea = signing.new_key(), signing.new_key()
    with httpx.Client(base_url=base, timeout=10) as http:
        for k in (ana, bea):
            sub = signing.open_account(treasurer, domain, account=address_of_key(k))
            r = http.post("/v1/admin/actions", json={
                "type": "OpenAccount", "signature": sub.signature,
                "message": {"account": sub.action.account, "role": "member", "nonce": str(sub.action.nonce),
                            "validUntil": str(sub.action.valid_until)}})
            assert r.status_code == 201, r.text
        pay = signing.transfer(ana, domain, payee=address_of_key(bea), currency="HOUR", amount=45, memo="ride")
        r = http.post("/v1/transfers", json=transfer_body(pay))
        assert r.status_code == 201, r.text
        seq = r.json()["seq"]
        ch = http.post("/v1/auth/challenge", json={"address": address_of_key(bea)}).json()
        sig = Account.sign_message(encode_defunct(text=ch["message"]), bea).signature.hex()
        token = http.post("/v1/auth/token", json={"message": ch["message"],
                                                  "signature": "0x" + sig.removeprefix("0x")}).json()["token"]
        got = http.get(f"/v1/transfers/{seq}", headers={"Authorization": f"Bearer {token}"}).json()
        assert got["amount"] == 45 and got["memo"] == "ride" and got["direction"] == "in"
        assert "ayni_transfers_total" in http.get("/metrics").text


def test_concurrent_clients_never_see_a_server_error(server):
    """16 clients at once (2 workers on PostgreSQL, 1 on SQLite): no 5xx, no 'database is
    locked', every acknowledged transfer in the log exactly once, retries answered as such."""
    import threading
    base, ledger, treasurer = server
    domain = ledger.genesis.domain
    keys = [signing.new_key() for _ in range(8)]
    ledger.submit_many([signing.open_account(treasurer, domain, account=address_of_key(k)) for k in keys])
    subs = [signing.transfer(keys[i % 8], domain, payee=address_of_key(keys[(i * 3 + 1) % 8]), currency="HOUR",
                             amount=1 + i % 40) for i in range(320) if i % 8 != (i * 3 + 1) % 8]
    results, lock = [], threading.Lock()

    def client(t):
        with httpx.Client(base_url=base, timeout=30) as http:
            for sub in subs[t::16]:
                for _ in range(2 if t % 4 == 0 else 1):  # some clients retry every request
                    r = http.post("/v1/transfers", json=transfer_body(sub))
                    with lock:
                        results.append((sub, r.status_code, r.json()))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [s for _, s, _ in results]
    assert all(s < 500 for s in statuses), [b for _, s, b in results if s >= 500][:3]
    assert not any("locked" in json.dumps(b) for _, _, b in results)
    posted = {b["digest"]: b["seq"] for _, s, b in results if s == 201}
    assert statuses.count(200) > 0  # retries were recognised as duplicates
    for _, s, b in results:
        if s == 200:
            assert posted[b["digest"]] == b["seq"]
    log = [e.body["digest"] for e in ledger.iter_entries() if e.kind == "transfer.posted"]
    assert sorted(log) == sorted(posted)
    assert ledger.verify().ok
