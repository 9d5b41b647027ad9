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

from .federation_nodes import ayni


def test_new_key_writes_an_encrypted_keystore_and_never_overwrites(tmp_path):
    ks, pw = tmp_path / "node.json", tmp_path / "pw"
    pw.write_text("s3cret\n")
    r = ayni("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw))
    assert r.returncode == 0, r.stderr
    address = r.stdout.strip()
    assert address_of_key(load_keystore(str(ks), "s3cret")) == address
    assert "s3cret" not in ks.read_text() and json.loads(ks.read_text())["version"] == 3
    before = ks.read_text()
    r = ayni("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw))
    assert r.returncode != 0 and "refusing to overwrite" in r.stderr and "Traceback" not in r.stderr
    assert ks.read_text() == before


def test_serve_with_a_wrong_node_passphrase_fails_in_one_line(tmp_path):
    ks, pw, wrong = tmp_path / "node.json", tmp_path / "pw", tmp_path / "wrong"
    pw.write_text("right")
    wrong.write_text("wrong")
    assert ayni("federation", "new-key", "--keystore", str(ks), "--password-file", str(pw)).returncode == 0
    db = f"sqlite:///{tmp_path}/ayni.db"
    assert ayni("init", "--db", db, "--treasurer", "0x" + "11" * 20).returncode == 0
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
    r = ayni("federation", "propose", "--node", "http://127.0.0.1:9", "--peer", "http://127.0.0.1:9",
             "--pair", pair, "--keystore", str(ks))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_demo_federation_links_two_communities_and_pays_both_ways(tmp_path):
    r = ayni("demo", "--federation", "--db", f"sqlite:///{tmp_path}/demo.db", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert r.stdout.count("committed") == 4 and "rate_mismatch" in r.stdout and "credit_limit_exceeded" in r.stdout
    assert "mirror each other" in r.stdout and "NO" not in r.stdout
    assert (tmp_path / "federation-a.db").exists() and (tmp_path / "federation-b.db").exists()
