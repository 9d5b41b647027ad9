"""The operator's and the member's commands against a real JSON-RPC node (Hardhat):
deploy, anchor, receipt, independent verification, and the faults a person meets."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.chain.keys import write_keystore
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from . import servers
from .hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, hardhat_node

BIN = Path(sys.executable).parent


def run(cmd, *args):
    return subprocess.run([str(BIN / cmd), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AYNI_")})


@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


@pytest.fixture
def coop(tmp_path):
    url = f"sqlite:///{tmp_path / 'coop.db'}"
    treasurer = signing.new_key()
    assert run("ayni", "init", "--db", url, "--treasurer", address_of_key(treasurer)).returncode == 0
    ledger = Ledger.open(url, migrate=False)
    domain = ledger.genesis.domain
    keys = [signing.new_key() for _ in range(3)]
    for k in keys:
        ledger.submit(signing.open_account(treasurer, domain, account=address_of_key(k)))
    for i in range(9):
        ledger.submit(signing.transfer(keys[i % 3], domain, payee=address_of_key(keys[(i + 1) % 3]),
                                       currency="HOUR", amount=15, memo="shopping for Don Julio"))
    keystore, password = tmp_path / "anchor.json", tmp_path / "pass.txt"
    password.write_text("correct horse\n")
    write_keystore(str(keystore), HARDHAT_KEYS[0], "correct horse")
    yield {"url": url, "ledger": ledger, "keystore": keystore, "password": password, "tmp": tmp_path,
           "keys": keys, "domain": domain, "treasurer": treasurer}
    ledger.engine.dispose()


def deploy(node, coop):
    r = run("ayni", "chain", "deploy", "--chain", node, "--keystore", coop["keystore"],
            "--password-file", coop["password"], "--admin", address_of_key(HARDHAT_KEYS[1]))
    assert r.returncode == 0, r.stderr
    return re.search(r"deployed at (0x[0-9a-fA-F]{40})", r.stdout).group(1)


def test_deploy_anchor_receipt_verify_over_json_rpc(node, coop):
    contract = deploy(node, coop)
    head = coop["ledger"].head()[0]
    r = run("ayni", "anchor", "--db", coop["url"], "--chain", node, "--contract", contract,
            "--keystore", coop["keystore"], "--password-file", coop["password"], "--max-batch", "5", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["anchored_through"] == head and report["confirmed"] == -(-head // 5)
    assert all(21_000 < g <= 31_500 for g in report["gas_used"])

    receipt = coop["tmp"] / "receipt.json"
    r = run("ayni", "receipt", "7", "--db", coop["url"], "--contract", contract, "--out", receipt)
    assert r.returncode == 0, r.stderr
    assert "Don Julio" not in receipt.read_text()
    pins = ["--contract", contract, "--chain-id", HARDHAT_CHAIN_ID]  # the community's, as it publishes them
    ok = run("ayni-wallet", "verify", receipt, "--chain", node, *pins)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: entry 7"), ok.stderr

    doc = json.loads(receipt.read_text())
    doc["entry"]["body"]["amount"] = 1500
    edited = coop["tmp"] / "edited.json"
    edited.write_text(json.dumps(doc))
    bad = run("ayni-wallet", "verify", edited, "--chain", node, *pins)
    assert bad.returncode == 1 and "FAILED" in bad.stderr and "Traceback" not in bad.stderr

    other = deploy(node, coop)  # a contract where this batch was never anchored
    wrong = run("ayni-wallet", "verify", receipt, "--chain", node, "--contract", other, "--chain-id", HARDHAT_CHAIN_ID)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr

    # more entries, anchored in the next run; the first batches are not sent again
    coop["ledger"].submit(signing.transfer(coop["keys"][0], coop["domain"], currency="CRED", amount=100,
                                           payee=address_of_key(coop["keys"][1])))
    r = run("ayni", "anchor", "--db", coop["url"], "--chain", node, "--contract", contract,
            "--keystore", coop["keystore"], "--password-file", coop["password"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["sent"] == 1


@pytest.mark.parametrize("case", ["wrong passphrase", "no chain", "no contract", "dead node", "not json"])
def test_operator_mistakes_get_clear_errors(node, coop, case):
    args = ["--db", coop["url"], "--chain", node, "--contract", "0x" + "12" * 20,
            "--keystore", coop["keystore"], "--password-file", coop["password"]]
    if case == "wrong passphrase":
        coop["password"].write_text("wrong\n")
        r, expect = run("ayni", "anchor", *args), "bad_keystore"
    elif case == "no chain":
        r, expect = run("ayni", "anchor", *args[:2], *args[4:]), "--chain"
    elif case == "no contract":
        r, expect = run("ayni", "anchor", *args[:4], *args[6:]), "--contract"
    elif case == "dead node":
        r, expect = run("ayni", "anchor", *args[:2], "--chain", "http://127.0.0.1:9", *args[4:]), "chain_unavailable"
    else:
        (coop["tmp"] / "r.json").write_text("{nope")
        r, expect = run("ayni-wallet", "verify", coop["tmp"] / "r.json", "--chain", node), "not JSON"
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_watch_mode_anchors_new_entries_until_interrupted(node, coop):
    import signal
    import time
    contract = deploy(node, coop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    proc = subprocess.Popen([str(BIN / "ayni"), "anchor", "--watch", "--interval", "0.3", "--json",
                             "--db", coop["url"], "--chain", node, "--contract", contract,
                             "--keystore", str(coop["keystore"]), "--password-file", str(coop["password"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        from ledger.anchoring import Anchoring
        job = Anchoring(coop["ledger"], contract=contract)

        def anchored_through():
            return max([b["last_seq"] for b in job.batches(include_failed=False) if b["status"] == "confirmed"],
                       default=0)

        deadline = time.monotonic() + 60
        while anchored_through() < coop["ledger"].head()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        first_round = anchored_through()
        assert first_round == coop["ledger"].head()[0]
        coop["ledger"].submit(signing.transfer(coop["keys"][2], coop["domain"], currency="CRED", amount=7,
                                               payee=address_of_key(coop["keys"][0])))
        while anchored_through() <= first_round and time.monotonic() < deadline:
            time.sleep(0.2)
        assert anchored_through() == first_round + 1  # posted while the anchorer ran; picked up
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_serve_anchors_in_the_background(node, coop):
    """`ayni serve --anchor-every`: entries posted over HTTP get anchored while it runs."""
    import signal
    import socket
    import time

    import httpx

    from .test_api import transfer_body
    contract = deploy(node, coop)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
           "AYNI_SESSION_KEY_FILE": str(coop["tmp"] / "session.key")}
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", coop["url"], "--port", str(port),
                             "--contract", contract, "--anchor-every", "0.3", "--chain", node,
                             "--keystore", str(coop["keystore"]), "--password-file", str(coop["password"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        servers.wait_ready(base, proc)
        deadline = time.monotonic() + 60
        pay = signing.transfer(coop["keys"][0], coop["domain"], payee=address_of_key(coop["keys"][2]),
                               currency="HOUR", amount=20)
        seq = httpx.post(f"{base}/v1/transfers", json=transfer_body(pay), timeout=10).json()["seq"]
        batches = []
        while time.monotonic() < deadline:
            batches = httpx.get(f"{base}/v1/anchors", timeout=5).json()["batches"]
            if batches and batches[-1]["lastSeq"] >= seq and batches[-1]["status"] == "confirmed":
                break
            time.sleep(0.3)
        assert batches and batches[-1]["lastSeq"] >= seq, batches
        assert [b["firstSeq"] for b in batches] == [1] + [b["lastSeq"] + 1 for b in batches[:-1]]
        treasurer_reconciles_over_http(base, node, coop)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def treasurer_reconciles_over_http(base, node, coop):
    """`ayni-wallet reconcile --api`: the log fetched over HTTP (checkpointed), the balances the
    server reports, the chain read over JSON-RPC; then a balance edited in the database."""
    from sqlalchemy import update

    from ledger.store import tables as T
    keystore = coop["tmp"] / "treasurer.json"
    write_keystore(str(keystore), coop["treasurer"], "correct horse")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    env.update(XDG_DATA_HOME=str(coop["tmp"] / "data"), XDG_CONFIG_HOME=str(coop["tmp"] / "config"))

    def reconcile():
        return subprocess.run([str(BIN / "ayni-wallet"), "reconcile", "--api", base, "--key", str(keystore),
                               "--password-file", str(coop["password"]), "--chain", node, "--json"],
                              capture_output=True, text=True, timeout=120, env=env)
    r = reconcile()
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["entries"] == report["headSeq"] and report["batchesChecked"] >= 1
    assert list((coop["tmp"] / "data" / "ayni" / "reconcile").glob("*.jsonl"))  # the checkpoint
    again = reconcile()  # resumes from the checkpoint: same verdict
    assert again.returncode == 0 and json.loads(again.stdout)["entries"] == report["entries"]
    who = address_of_key(coop["keys"][1])
    with coop["ledger"].engine.begin() as conn:
        conn.execute(update(T.balances).where(T.balances.c.address == who, T.balances.c.currency == "HOUR")
                     .values(balance=T.balances.c.balance - 5))
    bad = reconcile()
    assert bad.returncode == 1, bad.stderr
    found = json.loads(bad.stdout)["discrepancies"]
    assert {(d["check"], d["account"], d["currency"]) for d in found} >= {("balance", who, "HOUR")}
