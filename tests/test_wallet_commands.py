"""`ayni-wallet` member and treasurer commands, end to end: the real console script against a
real `ayni serve` (SQLite) that anchors to a real Hardhat node, over loopback HTTP.

One server and one node serve the whole module (tests share the community; each test uses
fresh amounts or accounts so its assertions do not depend on the order)."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from ledger.core.typed_data import address_of_key
from wallet_cli.client import ApiClient
from wallet_cli.keys import LIGHT_SCRYPT_N, write_keystore

from . import servers
from .hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, hardhat_node

BIN = Path(sys.executable).parent
PASSWORD = "a long wallet passphrase"


def wait_ready(base: str, proc: subprocess.Popen) -> None:
    try:
        servers.wait_ready(base, proc)
    except servers.ServerNotReady as exc:
        pytest.fail(f"{exc}: {proc.stderr.read() if proc.poll() is not None else ''}")


free_port, clean_env, stop = servers.free_port, servers.clean_env, servers.stop_group


class Wallets:
    """Several people's wallets in one keys directory (a real member keeps only their own)."""

    def __init__(self, tmp: Path, api: str, chain: str):
        self.env = clean_env()
        self.env.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "cfg"), XDG_DATA_HOME=str(tmp / "data"),
                        AYNI_API_URL=api, AYNI_WALLET_PASSWORD=PASSWORD, AYNI_CURRENCY="HOUR")
        self.api, self.chain, self.tmp = api, chain, tmp
        self.keys_dir = tmp / "cfg" / "ayni" / "keys"
        self.keys_dir.mkdir(parents=True)
        self.key, self.addr = {}, {}

    def add(self, name: str) -> str:
        key = os.urandom(32)
        write_keystore(self.keys_dir / f"{name}.json", key, PASSWORD, scrypt_n=LIGHT_SCRYPT_N)
        self.key[name], self.addr[name] = key, address_of_key(key)
        return self.addr[name]

    def run(self, who: str | None, *args, stdin: str = "", **env) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "ayni-wallet"), *map(str, args)] + (["--key", who] if who else [])
        r = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=60, env={**self.env, **env})
        for key in self.key.values():  # private keys never appear in any output
            assert key.hex() not in r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr, r.stderr
        return r

    def ok(self, who, *args, **kw) -> str:
        r = self.run(who, *args, **kw)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def json(self, who, *args, **kw):
        return json.loads(self.ok(who, *args, "--json", **kw))

    def refused(self, who, *args, **kw) -> str:
        r = self.run(who, *args, **kw)
        assert r.returncode == 1, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        return lines[0]

    def hour(self, who, account=None) -> dict:
        """HOUR position read in-process with the wallet's own client over HTTP (quicker than
        a process per read; the `balance` command itself is run in the tests)."""
        with ApiClient(self.api, key=self.key[who], purpose="account_administration" if account else None) as c:
            doc = c.get(f"/v1/accounts/{account or c.address}")
        return next(b for b in doc["balances"] if b["currency"] == "HOUR")


@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


@pytest.fixture(scope="module")
def coop(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wallet-e2e")
    port = free_port()
    w = Wallets(tmp, f"http://127.0.0.1:{port}", node)
    treasurer = w.add("tre")
    for name in ("ana", "bea", "cho", "dan"):
        w.add(name)
    db = f"sqlite:///{tmp / 'coop.db'}"
    env = clean_env()
    subprocess.run([str(BIN / "ayni"), "init", "--db", db, "--treasurer", treasurer], check=True,
                   capture_output=True, env=env)
    anchor_keystore, anchor_pw = tmp / "anchor.json", tmp / "anchor.pw"
    write_keystore(anchor_keystore, HARDHAT_KEYS[0], "anchor", scrypt_n=LIGHT_SCRYPT_N)
    anchor_pw.write_text("anchor\n")
    chain_args = ["--chain", node, "--keystore", anchor_keystore, "--password-file", anchor_pw]
    deployed = subprocess.run([str(BIN / "ayni"), "chain", "deploy", *chain_args,
                               "--admin", address_of_key(HARDHAT_KEYS[1])], capture_output=True,
                              text=True, env=env)
    contract = re.search(r"deployed at (0x[0-9a-fA-F]{40})", deployed.stdout).group(1)
    w.contract, w.db = contract, tmp / "coop.db"
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db, "--port", str(port), "--contract", contract,
                             "--anchor-every", "0.3", *chain_args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**env, "AYNI_SESSION_KEY_FILE": str(tmp / "session.key")})
    try:
        wait_ready(w.api, proc)
        # the treasurer opens the accounts with the wallet (what test 1 checks in detail)
        for name in ("ana", "bea", "cho", "dan"):
            assert f"opened member account {w.addr[name]}" in w.ok("tre", "open-account", w.addr[name])
        yield w
    finally:
        stop(proc)


def test_treasurer_opens_accounts_and_sets_a_limit(coop):
    w = coop
    assert w.hour("ana")["creditLimit"] == 600  # the member default, 10 h
    out = w.ok("tre", "set-limit", w.addr["dan"], "--currency", "HOUR", "--limit", "1h", "--ceiling", "2h")
    assert "credit limit 1h, ceiling 2h" in out
    dan = w.hour("dan")
    assert (dan["creditLimit"], dan["ceiling"]) == (60, 120)
    # the treasurer reads another member's account declaring the purpose: never filled in for her
    needed = w.refused("tre", "balance", w.addr["dan"])
    assert "needs --purpose" in needed and "account_administration" in needed and "reconciliation" in needed
    assert "needs --purpose" in w.refused("tre", "history", "--account", w.addr["dan"])
    seen = w.json("tre", "balance", w.addr["dan"], "--purpose", "account_administration")
    limits = {b["currency"]: b["creditLimit"] for b in seen["balances"]}
    assert seen["address"] == w.addr["dan"] and limits["HOUR"] == 60
    assert "purpose_not_allowed" in w.refused("ana", "balance", w.addr["dan"], "--purpose", "account_administration")
    assert "needs --purpose" in w.refused("ana", "balance", w.addr["dan"])
    # a member's signature opens nothing; an account is opened once
    newcomer = address_of_key(os.urandom(32))
    assert "treasurer" in w.refused("ana", "open-account", newcomer)
    assert "account_exists" in w.refused("tre", "open-account", w.addr["ana"])
    assert "invalid_address" in w.refused("tre", "set-limit", "0x1234", "-c", "HOUR", "--limit", "1h")


def test_member_pays_and_an_over_limit_payment_is_refused(coop):
    w = coop
    out = w.ok("dan", "pay", w.addr["cho"], "45m", "--memo", "garden work", "--yes")
    assert re.search(r"paid 45m HOUR to 0x[0-9a-fA-F]{40}: entry \d+", out)
    assert "garden work" in out  # the summary of what was signed
    dan = w.hour("dan")
    assert dan["balance"] == -45 and dan["canSpend"] == 15
    table = w.ok("dan", "balance")
    assert "-45m" in table and "15m" in table
    line = w.refused("dan", "pay", w.addr["cho"], "30m", "--yes")
    assert "credit_limit_exceeded" in line and "can still spend 15m" in line
    # no --yes and no terminal: nothing is signed or sent
    assert "add --yes" in w.refused("dan", "pay", w.addr["cho"], "5m")
    assert "invalid_amount" in w.refused("dan", "pay", w.addr["cho"], "5 minutes", "--yes")
    assert "not used in this community" in w.refused("dan", "pay", w.addr["cho"], "5", "--currency", "EUR", "--yes")
    assert w.hour("dan")["balance"] == -45
    posted = w.json("dan", "pay", w.addr["cho"], "0.25", "--yes")  # a quarter of an hour
    assert posted["transfer"]["amount"] == 15 and posted["duplicate"] is False and posted["seq"] > 0
    assert w.hour("dan")["canSpend"] == 0


def test_request_approve_and_decline(coop):
    w = coop
    req = w.json("bea", "request", "--from", w.addr["ana"], "--amount", "1h10m", "--memo", "tea and talk")
    assert req["status"] == "open" and req["amount"] == 70
    incoming = w.json("ana", "requests", "--incoming")["items"]
    assert req["id"] in [r["id"] for r in incoming]
    assert req["id"] in w.ok("ana", "requests")  # the table shows the full id to approve
    before = w.hour("bea")["balance"]
    out = w.ok("ana", "approve", req["id"], "--yes")
    assert "paid 1h10m HOUR to " + w.addr["bea"] in out
    assert w.hour("bea")["balance"] == before + 70
    paid = next(r for r in w.json("bea", "requests", "--outgoing")["items"] if r["id"] == req["id"])
    assert paid["status"] == "paid" and paid["paidSeq"]
    assert "is paid" in w.refused("ana", "approve", req["id"], "--yes")
    # only the payer approves; the payer may decline instead
    req2 = w.json("bea", "request", "--from", w.addr["ana"], "--amount", "20m")
    assert "forbidden" in w.refused("cho", "approve", req2["id"], "--yes")
    assert "declined request" in w.ok("ana", "decline", req2["id"])
    assert "is declined" in w.refused("ana", "approve", req2["id"], "--yes")
    assert w.json("bea", "requests", "--outgoing", "--status", "declined")["items"][0]["id"] == req2["id"]
    assert w.hour("bea")["balance"] == before + 70


def test_history_pages_and_json(coop):
    w = coop
    seqs = [w.json("cho", "pay", w.addr["bea"], f"{m}m", "--yes", "--memo", f"visit {m}")["seq"]
            for m in (1, 2, 3)]
    first = w.json("cho", "history", "--counterparty", w.addr["bea"], "--limit", "2")
    assert [t["seq"] for t in first["items"]] == seqs[::-1][:2] and first["nextCursor"]
    rest = w.json("cho", "history", "--counterparty", w.addr["bea"], "--limit", "2", "--cursor", first["nextCursor"])
    assert rest["items"][0]["seq"] == seqs[0] and not set(t["seq"] for t in rest["items"]) & set(seqs[1:])
    everything = w.json("cho", "history", "--all", "--limit", "1")
    assert everything["nextCursor"] is None and {t["seq"] for t in everything["items"]} >= set(seqs)
    table = w.ok("cho", "history", "--limit", "2")
    assert "visit 3" in table and "-3m HOUR" in table and "more: --cursor" in table
    assert "+3m HOUR" in w.ok("bea", "history", "--limit", "1")


def test_frozen_account_cannot_pay_until_unfrozen(coop):
    w = coop
    assert "froze account" in w.ok("tre", "freeze", w.addr["cho"])
    assert "frozen" in w.refused("cho", "pay", w.addr["bea"], "1m", "--yes")
    assert "frozen" in w.refused("bea", "pay", w.addr["cho"], "1m", "--yes")
    assert "frozen" in w.refused("cho", "balance")  # a frozen account cannot sign in either
    assert "unfroze" in w.ok("tre", "unfreeze", w.addr["cho"])
    assert w.json("cho", "pay", w.addr["bea"], "1m", "--yes")["seq"] > 0


def test_receipt_download_and_verify_against_the_chain(coop):
    w = coop
    seq = w.json("ana", "pay", w.addr["cho"], "5m", "--yes", "--memo", "receipt me")["seq"]
    deadline = time.monotonic() + 30
    while True:  # the server anchors every 0.3 s
        batches = httpx.get(f"{w.api}/v1/anchors").json()["batches"]
        if any(b["lastSeq"] >= seq and b["status"] == "confirmed" for b in batches):
            break
        assert time.monotonic() < deadline, batches
        time.sleep(0.2)
    out = w.ok("cho", "receipt", seq)
    path = w.tmp / "data" / "ayni" / "receipts" / f"receipt-{seq}.json"
    assert str(path) in out
    doc = json.loads(path.read_text())
    assert doc["values"][0] == seq and "receipt me" not in path.read_text()
    pins = {"AYNI_ANCHOR_CONTRACT": w.contract, "AYNI_CHAIN_ID": str(HARDHAT_CHAIN_ID)}
    verified = w.run(None, "verify", path, "--chain", w.chain, **pins)
    assert verified.returncode == 0 and verified.stdout.startswith(f"OK: entry {seq}"), verified.stderr
    # an edited receipt fails: here the entry claims another amount
    doc["entry"]["body"]["amount"] = doc["entry"]["body"].get("amount", 0) + 60
    edited = w.tmp / "edited.json"
    edited.write_text(json.dumps(doc))
    r = w.run(None, "verify", edited, "--chain", w.chain, **pins)
    assert r.returncode == 1 and "FAILED" in r.stderr
    # --out elsewhere; a receipt of someone else's transfer is refused
    assert w.json("ana", "receipt", seq, "--out", w.tmp / "mine.json")["path"] == str(w.tmp / "mine.json")
    assert "needs --purpose" in w.refused("bea", "receipt", seq)  # not hers: she must say why
    assert "purpose_not_allowed" in w.refused("bea", "receipt", seq, "--purpose", "reconciliation")
    assert w.json("tre", "receipt", seq, "--out", w.tmp / "tre.json", "--purpose", "reconciliation")["seq"] == seq


def test_unreachable_api_is_one_line_and_non_zero(coop):
    w = coop
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (("balance",), ("pay", w.addr["bea"], "1m", "--yes"), ("history",), ("requests",)):
        line = w.refused("ana", *args, "--api", dead)
        assert "cannot reach the Ayni API" in line
    assert "cannot reach" in w.refused("tre", "freeze", w.addr["ana"], "--api", dead)


class DroppingProxy:
    """A loopback HTTP relay that forwards everything to the API but, the first time a
    transfer is posted, drops the client's connection after the server has answered:
    exactly the case where the payer cannot know whether the payment was recorded."""

    def __init__(self, upstream_port: int):
        self.upstream_port, self.drops = upstream_port, 1
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _read_request(conn) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ontent-" in head.lower() else 0
        while len(body) < length:
            body += conn.recv(65536)
        # one request per connection, so the client never reuses a connection we close
        head = re.sub(rb"(?i)\r\nconnection:[^\r]*", b"", head) + b"\r\nConnection: close"
        return head + b"\r\n\r\n" + body

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = self._read_request(conn)
                if not request:
                    continue
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                    up.sendall(request)
                    response = b""
                    while chunk := up.recv(65536):
                        response += chunk
                if request.startswith(b"POST /v1/transfers") and self.drops:
                    self.drops -= 1
                    continue  # the server recorded it; the client hears nothing
                conn.sendall(response)

    def close(self) -> None:
        self.sock.close()


def test_a_lost_answer_resends_the_same_signed_transfer(coop):
    w = coop
    proxy = DroppingProxy(int(w.api.rsplit(":", 1)[1]))
    try:
        before = w.hour("bea")["balance"]
        r = w.run("ana", "pay", w.addr["bea"], "7m", "--yes", "--api", f"http://127.0.0.1:{proxy.port}")
        assert r.returncode == 0, r.stderr
        assert "resending the same signed payload" in r.stderr
        assert "already recorded" in r.stdout  # the server answered the resend with the original entry
        assert proxy.drops == 0
        assert w.hour("bea")["balance"] == before + 7  # paid once
    finally:
        proxy.close()


def test_client_signs_in_again_when_the_token_is_refused(coop):
    w = coop
    with ApiClient(w.api, key=w.key["bea"]) as api:
        first = api.sign_in()["token"]
        payload, mac = first.rsplit(".", 1)
        api.token = payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]  # as from another server
        doc = api.get(f"/v1/accounts/{api.address}")
        assert doc["address"] == w.addr["bea"] and api.token not in (None, first)
    with ApiClient(w.api) as anonymous:  # no key: the 401 is reported, not retried
        with pytest.raises(Exception, match="unauthenticated"):
            anonymous.get(f"/v1/accounts/{w.addr['bea']}")


@pytest.mark.postgres
def test_the_wallet_against_a_postgresql_server_with_two_workers(pg_server_url, tmp_path):
    from .conftest import _reset_pg
    _reset_pg(pg_server_url)
    port = free_port()
    w = Wallets(tmp_path, f"http://127.0.0.1:{port}", chain="")
    treasurer = w.add("tre")
    ana, bea = w.add("ana"), w.add("bea")
    env = clean_env()
    subprocess.run([str(BIN / "ayni"), "init", "--db", pg_server_url, "--treasurer", treasurer], check=True,
                   capture_output=True, env=env)
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", pg_server_url, "--port", str(port),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**env, "AYNI_SESSION_KEY_FILE": str(tmp_path / "s.key")})
    try:
        wait_ready(w.api, proc)
        for who in (ana, bea):
            w.ok("tre", "open-account", who)
        seq = w.json("ana", "pay", bea, "30m", "--yes", "--memo", "on postgres")["seq"]
        items = w.json("bea", "history")["items"]
        assert [(t["seq"], t["amount"], t["memo"]) for t in items] == [(seq, 30, "on postgres")]
        assert w.hour("bea")["balance"] == 30 and w.hour("ana")["balance"] == -30
    finally:
        stop(proc)


def _anchored_receipt(w, payer: str, payee: str, amount: str) -> tuple[int, dict]:
    seq = w.json(payer, "pay", w.addr[payee], amount, "--yes")["seq"]
    deadline = time.monotonic() + 30
    while not any(b["lastSeq"] >= seq and b["status"] == "confirmed"
                  for b in httpx.get(f"{w.api}/v1/anchors").json()["batches"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    out = w.tmp / f"r-{seq}.json"
    w.ok(payer, "receipt", seq, "--out", out)
    return seq, json.loads(out.read_text())


def test_verify_refuses_a_receipt_anchored_in_another_contract(coop):
    """Defect 3: the attacker deploys their own Anchor, anchors a forged entry (amount x100,
    hashes recomputed) there, and names that contract in the receipt. `verify` trusted the
    contract the receipt names; now it holds the receipt to the contract the wallet pins."""
    from ledger.chain import AnchorChain
    from ledger.core.entries import canonical_bytes
    from ledger.core.hashing import keccak256
    from ledger.core.merkle import entry_leaf
    w = coop
    seq, doc = _anchored_receipt(w, "bea", "dan", "3m")
    e = doc["entry"]
    e["body"]["amount"] *= 100
    entry_hash = keccak256(canonical_bytes(e["seq"], e["kind"], e["at"], e["body"]))
    leaf = entry_leaf(seq, entry_hash)
    attacker = AnchorChain.connect(w.chain, private_key=HARDHAT_KEYS[1])
    attacker.deploy(single_key_for_testing=True)  # the attacker's own contract: one key is all they need
    tx = attacker.send_anchor(leaf, 1, seq)
    assert attacker.wait(tx).status == "confirmed"
    doc.update(entryHash="0x" + entry_hash.hex(), values=[seq, "0x" + entry_hash.hex()], leaf="0x" + leaf.hex(),
               proof=[], root="0x" + leaf.hex(), batch={"firstSeq": 1, "lastSeq": seq},
               contract=attacker.contract_address, txHash=tx)
    forged = w.tmp / "forged.json"
    forged.write_text(json.dumps(doc))
    pins = {"AYNI_ANCHOR_CONTRACT": w.contract, "AYNI_CHAIN_ID": str(HARDHAT_CHAIN_ID)}
    r = w.run(None, "verify", forged, "--chain", w.chain, **pins)
    assert r.returncode == 1 and "FAILED" in r.stderr and "not the pinned" in r.stderr, (r.stdout, r.stderr)
    # no pin: refused with how to pin, never checked against the contract the receipt names
    r = w.run(None, "verify", forged, "--chain", w.chain)
    assert r.returncode == 2 and "anchor_contract" in r.stderr and "OK" not in r.stdout
    # a pinned chain id the node does not serve: cannot be checked
    r = w.run(None, "verify", w.tmp / f"r-{seq}.json", "--chain", w.chain, "--chain-id", "1",
              AYNI_ANCHOR_CONTRACT=w.contract)
    assert r.returncode == 2 and "chain id" in r.stderr
    # with the community's domain pinned as well, the genuine receipt's signature is checked
    salt = httpx.get(f"{w.api}/v1/community").json()["domain"]["salt"]
    r = w.run(None, "verify", w.tmp / f"r-{seq}.json", "--chain", w.chain, AYNI_COMMUNITY_SALT=salt, **pins)
    assert r.returncode == 0 and "signature recovers" in r.stdout, r.stderr


CONTROL_MEMO = "lunch\r\x1b[2K  5m HOUR to {payee}, memo: lunch"


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text


def test_stored_memos_with_terminal_controls_render_harmlessly(coop):
    """Defect 1 (the wallet's half): memos stored before the API refused control characters
    (written here straight into the server's database) reach the terminal as visible escapes
    in `requests`, `approve` and `history`: no cursor move, no erased line, no false amount."""
    import sqlite3
    w = coop
    req = w.json("bea", "request", "--from", w.addr["ana"], "--amount", "10h", "--memo", "placeholder-request")
    w.ok("tre", "set-limit", w.addr["ana"], "-c", "HOUR", "--limit", "20h")
    paid = w.json("cho", "pay", w.addr["bea"], "2m", "--yes", "--memo", "placeholder-transfer")["seq"]
    payload = CONTROL_MEMO.format(payee=w.addr["bea"])
    with sqlite3.connect(w.db, timeout=30) as db:
        assert db.execute("UPDATE payment_requests SET memo = ? WHERE memo = 'placeholder-request'",
                          (payload,)).rowcount == 1
        assert db.execute("UPDATE memos SET memo = ? WHERE memo = 'placeholder-transfer'",
                          (payload + "\u202e",)).rowcount == 1
    shown = "lunch\\x0d\\x1b[2K"  # the escapes, as text (one word: a table may fold the rest of the memo)
    listing = w.ok("ana", "requests")
    _no_raw_controls(listing)
    assert shown in listing
    approved = w.run("ana", "approve", req["id"], "--yes")
    assert approved.returncode == 0, approved.stderr
    _no_raw_controls(approved.stdout + approved.stderr)
    assert f"memo: {shown}  5m HOUR to {w.addr['bea']}" in approved.stdout and "10h HOUR to" in approved.stdout
    history = w.ok("bea", "history", "--limit", "5")
    _no_raw_controls(history)
    assert shown in history and "lunch\\u202e" in history and str(paid) in history


def test_treasurer_closes_an_account(coop):
    """`ayni-wallet close` (docs/ledger-model.md): SetStatus closed, final; settle first."""
    w = coop
    eve = w.add("eve")
    w.ok("tre", "open-account", eve)
    w.ok("ana", "pay", eve, "1m", "--yes")
    assert "non-zero balances" in w.refused("tre", "close", eve)
    w.ok("eve", "pay", w.addr["ana"], "1m", "--yes")
    assert f"closed account {eve}" in w.ok("tre", "close", eve)
    assert "closed" in w.refused("ana", "pay", eve, "1m", "--yes")
    assert "closing is final" in w.refused("tre", "unfreeze", eve)
    assert "treasurer" in w.refused("ana", "close", w.addr["bea"])


def test_an_auditor_reconciles_over_http(coop):
    """Defect 14 (the wallet's half): an auditor's key reconciles over HTTP, declaring the
    purpose `audit` (ledger/core/purposes.py) and holding its own role in the history."""
    w = coop
    aud = w.add("aud")
    assert "opened auditor account" in w.ok("tre", "open-account", aud, "--role", "auditor")
    r = w.run("aud", "reconcile", "--chain", w.chain, "--json", "--anchor-deadline", "0",
              AYNI_ANCHOR_CONTRACT=w.contract)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr)
    report = json.loads(r.stdout)
    assert report["ok"] and "trust_root" in report["checks"]
