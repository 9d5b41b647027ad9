"""The federation faces that need no allied peer: the node keystore, `ayni serve` refusing a
wrong node passphrase before it serves, the one-driver lock per database, and the endpoints of
a node without a node key (404, never a crash)."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.app import Settings, create_app
from ledger.chain.keys import load_keystore
from ledger.core.typed_data import address_of_key
from ledger.federation.driver import driver_lock, wire_payment_id
from ledger.sample import SampleCommunity

from .federation_nodes import ayni, ayni_here


def test_new_key_writes_an_encrypted_keystore_and_never_overwrites(tmp_path):
    ks, pw = tmp_path / "node.json", tmp_path / "pw"
    pw.write_text("s3cret\n")
    r = ayni("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw))
    assert r.returncode == 0, r.stderr
    address = r.stdout.strip()
    assert address_of_key(load_keystore(str(ks), "s3cret")) == address
    assert "s3cret" not in ks.read_text() and json.loads(ks.read_text())["version"] == 3
    before = ks.read_text()
    r = ayni_here("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw))
    assert r.returncode != 0 and "refusing to overwrite" in r.stderr and "Traceback" not in r.stderr
    assert ks.read_text() == before


def test_serve_with_a_wrong_node_passphrase_fails_in_one_line(tmp_path):
    ks, pw, wrong = tmp_path / "node.json", tmp_path / "pw", tmp_path / "wrong"
    pw.write_text("right")
    wrong.write_text("wrong")
    # the set-up in this process; `serve`, whose start-up is the point, as its own process
    assert ayni_here("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw)).returncode == 0
    db = f"sqlite:///{tmp_path}/ayni.db"
    assert ayni_here("init", "--db", db, "--treasurer", "0x" + "11" * 20).returncode == 0
    r = ayni("serve", "--db", db, "--port", "1", "--node-keystore", str(ks), "--node-password-file", str(wrong),
             timeout=60)
    assert r.returncode != 0 and "wrong passphrase" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_only_one_driver_per_database(tmp_path, db_url):
    c = SampleCommunity(db_url)
    try:
        first, second = driver_lock(c.ledger.engine), driver_lock(c.ledger.engine)
        assert first.try_acquire() and first.try_acquire()  # re-entrant for its holder
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
        second.release()
    finally:
        c.dispose()


def test_wire_payment_id_reads_either_shape():
    pid = "0x" + "ab" * 32
    assert wire_payment_id({"message": {"paymentId": pid.upper().replace("0X", "0x")}}) == pid
    assert wire_payment_id({"paymentId": pid}) == pid
    assert wire_payment_id({"message": {"paymentId": "0x" + "00" * 32}}) is None
    assert wire_payment_id(["not", "a", "dict"]) is None


def test_a_node_without_a_node_key_answers_404_on_every_federation_endpoint(tmp_path):
    url = f"sqlite:///{tmp_path}/ayni.db"
    c = SampleCommunity(url)
    app = create_app(c.ledger, Settings(db_url=url, secret_file=str(tmp_path / "session.key")))
    zero = "0x" + "00" * 32
    with TestClient(app) as client:
        for method, path, body in (("GET", "/v1/federation/node", None), ("GET", "/v1/federation/alliances", None),
                                   ("POST", "/v1/federation/messages", {"message": {}}),
                                   ("POST", "/v1/federation/alliances/proposals", {}),
                                   ("GET", f"/v1/remote-transfers/{zero}", None)):
            r = client.request(method, path, json=body)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
        r = client.post("/v1/remote-transfers", json={"message": {"amount": 1.5}})
        assert r.status_code == 404, r.text
    c.dispose()


@pytest.mark.parametrize("pair", ["HOUR:HOUR:1:1:600", "HOUR:HOUR:1:x:600:600"])
def test_propose_refuses_a_malformed_pair_in_one_line(pair, tmp_path):
    ks = tmp_path / "t.json"
    r = ayni_here("federation", "propose", "--node", "http://127.0.0.1:9", "--peer", "http://127.0.0.1:9",
                  "--pair", pair, "--keystore", str(ks))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`ayni demo --federation`, run once for the tests that read its output and its exports."""
    tmp = tmp_path_factory.mktemp("demo")
    return tmp, ayni("demo", "--federation", "--db", f"sqlite:///{tmp}/demo.db", env={"COLUMNS": "200"})


def test_demo_federation_links_two_communities_and_pays_both_ways(demo_run):
    tmp_path, r = demo_run
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    head, tail = r.stdout.split("ayni-wallet reconcile-peer", 1)
    assert head.count("committed") == 4 and "rate_mismatch" in head and "credit_limit_exceeded" in head
    assert "mirror each other" in head and "NO" not in r.stdout
    assert (tmp_path / "federation-a.db").exists() and (tmp_path / "federation-b.db").exists()
    # it ends with the wallet's reconcile-peer on both exported logs, every check passing
    assert tail.count("\nok  ") == 7 and "BAD" not in tail and "payments checked 4, in flight 0" in tail, tail
    assert "RECONCILED: both sides agree" in tail and "reconcile-peer: passed" in tail, tail


def _rehashed(entries: list[dict]) -> list[dict]:
    """The entries with their hashes and chain recomputed: a tampered export that still holds
    together on its own (what a dishonest node could hand out)."""
    from ledger.core.codec import hex0x
    from ledger.core.entries import Entry, canonical_body
    from ledger.core.hashing import ZERO32
    out, chain = [], ZERO32
    for x in entries:
        e = Entry.from_body_text(x["seq"], x["kind"], x["at"], x["body"], canonical_body(x["body"]), chain)
        chain = e.chain_hash
        out.append({**x, "entryHash": hex0x(e.entry_hash), "chainHash": hex0x(chain)})
    return out


def test_reconcile_peer_names_an_alliance_signed_by_someone_not_a_treasurer_there(demo_run, capsys):
    """B's export carries, as A's signature on the terms, one by a key that is no treasurer of A
    (B's node cannot know A's treasurers, so B's log alone still verifies): reconcile-peer, run
    as the demo runs it, exits 1 with exactly that alliance_signer finding."""
    from ledger import signing
    from ledger.cli.demo_federation import reconcile_peer_exports
    from ledger.core.federation import Alliance
    from ledger.core.typed_data import sign_digest
    tmp_path, r = demo_run
    assert r.returncode == 0, r.stderr
    own, peer = tmp_path / "federation-a.log.jsonl", tmp_path / "federation-b.log.jsonl"
    lines = peer.read_text().splitlines()
    entries = [json.loads(x) for x in lines[1:-1]]
    (rec,) = [x for x in entries if x["kind"] == "alliance.recorded"]
    assert rec["body"]["side"] == "B"
    terms = Alliance.from_message(rec["body"]["terms"])
    rogue = signing.new_key()
    rec["body"]["signatureA"] = sign_digest(rogue, terms.domain("A").digest(terms.struct_hash()))
    tampered = tmp_path / "b-rogue-signer.jsonl"
    tampered.write_text("\n".join([lines[0], *(json.dumps(x) for x in _rehashed(entries)), lines[-1]]) + "\n")
    capsys.readouterr()

    assert reconcile_peer_exports(own, peer) == 0  # the honest export still reconciles
    assert reconcile_peer_exports(own, tampered) == 1
    out = capsys.readouterr().out
    assert "BAD each side's terms signed by a treasurer of the other: 1 found" in out, out
    bad = [line for line in out.splitlines() if line.startswith("alliance_signer")]
    assert len(bad) == 1 and address_of_key(rogue) in bad[0] and "a treasurer of the own log" in bad[0], out
    assert f"peer log, alliance 0x{terms.alliance_id.hex()}" in bad[0], bad
    # every other check passes: the tampered log holds together alone, only the signer is wrong
    assert [line for line in out.splitlines() if line.startswith("BAD")] == [
        "BAD each side's terms signed by a treasurer of the other: 1 found"], out
    assert "DISCREPANCIES FOUND" in out


def _allied_pair(tmp_path):
    """Two communities in this process, allied, each with its HTTP app (no sockets)."""
    from rich.console import Console

    from ledger.cli.demo_federation import COMMUNITIES, Community, _ally
    from ledger.federation.local import LocalNetwork
    net = LocalNetwork()
    a, b = (Community(tmp_path / f"{i}.db", name, url, members, net)
            for i, (name, url, members) in zip("ab", COMMUNITIES))
    _ally(a, b, Console(file=open(tmp_path / "out.txt", "w")))
    apps = [create_app(c.ledger, Settings(db_url=f"sqlite:///{tmp_path}/{i}.db",
                                          secret_file=str(tmp_path / f"{i}.key")), federation=c.fed)
            for i, c in zip("ab", (a, b))]
    return a, b, apps


def _signed_transfer(a, b, amount=10, delivered=None):
    import time

    from ledger.core.federation import RemoteTransfer
    payer, payee = a.members["Amaru"], b.members["Inti"]
    t = RemoteTransfer.create(payer=address_of_key(payer), payee_community=b.domain.salt,
                              payee=address_of_key(payee), currency="HOUR", amount=amount, payee_currency="HOUR",
                              delivered=amount if delivered is None else delivered, nonce=time.time_ns(),
                              valid_until=int(time.time()) + 600)
    return {"message": t.message(), "signature": a.sign(t.struct_hash(), payer)}


def test_node_endpoints_refuse_bad_node_input_with_the_ledger_codes_and_ignore_member_tokens(tmp_path):
    from ledger.core.federation import NodeMessage, sign_node_message
    from ledger.signing import new_key
    a, b, (app_a, app_b) = _allied_pair(tmp_path)
    body = _signed_transfer(a, b)
    leg = a.fed.node.submit(body["message"], body["signature"])
    (_url, prepare), = leg["outbox"]
    with TestClient(app_b) as client_b:
        # signed by a key that is not A's node key: 403, nothing written at B
        forged = dict(prepare)
        nm = NodeMessage.from_message(prepare["message"])
        forged["signature"] = sign_node_message(new_key(), a.domain, nm)
        r = client_b.post("/v1/federation/messages", json=forged)
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_node_signature", r.text
        assert b.fed.node.pending() == []
        # the genuine message, with a member token that means nothing here: B votes
        r = client_b.post("/v1/federation/messages", json=prepare, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 200 and r.json()["message"]["kind"] == "prepared", r.text
        # the same signed message again: a replay, refused
        r = client_b.post("/v1/federation/messages", json=prepare)
        assert r.status_code == 409 and r.json()["error"]["code"] == "stale_node_message", r.text
        # an unknown alliance
        other = NodeMessage.create(alliance_id="0x" + "77" * 32, payment_id=nm.payment_id, kind="prepare", at=nm.at)
        r = client_b.post("/v1/federation/messages", json={"message": other.message(), "signature": "0x" + "00" * 65})
        assert r.status_code in (403, 404) and r.json()["error"]["code"] in ("unknown_alliance",
                                                                             "wrong_node_signature"), r.text
    with TestClient(app_a) as client_a:
        # the payer's endpoint: a rate outside the alliance's is refused with its code, nothing written
        r = client_a.post("/v1/remote-transfers", json=_signed_transfer(a, b, 10, delivered=12))
        assert r.status_code == 422 and r.json()["error"]["code"] == "rate_mismatch", r.text
        # a good one commits at once (201) and is then readable by its id
        r = client_a.post("/v1/remote-transfers", json=_signed_transfer(a, b, 7))
        assert r.status_code == 201 and r.json()["state"] == "committed", r.text
        got = client_a.get(f"/v1/remote-transfers/{r.json()['paymentId']}").json()
        assert got["state"] == "committed" and got["amount"] == 7 and "payer" not in got
    for c in (a, b):
        c.ledger.close()
