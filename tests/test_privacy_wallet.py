"""`ayni-wallet privacy ...` end to end: the real console script against a real `ayni serve`
(SQLite) over loopback HTTP."""
import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest

from ledger import signing
from ledger.community import new_genesis
from ledger.service import Ledger
from wallet_cli.client import ApiClient, WalletError

from .test_wallet_commands import Wallets, clean_env, free_port, stop, wait_ready

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def coop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy-wallet")
    port = free_port()
    w = Wallets(tmp, f"http://127.0.0.1:{port}", chain="")
    w.add("tre")
    db = f"sqlite:///{tmp / 'coop.db'}"
    ledger = Ledger.open(db)
    ledger.initialise(new_genesis("Privacy coop", w.addr["tre"]))
    for name in ("ana", "cho"):
        w.add(name)
        ledger.submit(signing.open_account(w.key["tre"], ledger.genesis.domain, account=w.addr[name]))
    ledger.submit(signing.transfer(w.key["ana"], ledger.genesis.domain, payee=w.addr["cho"], currency="HOUR",
                                   amount=45, memo="garden"))
    ledger.engine.dispose()
    proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**clean_env(), "AYNI_SESSION_KEY_FILE": str(tmp / "session.key")})
    try:
        wait_ready(w.api, proc)
        yield w
    finally:
        stop(proc)


def read_history(w, who, of, purpose):
    with ApiClient(w.api, key=w.key[who], purpose=purpose) as c:
        return c.get(f"/v1/accounts/{w.addr[of]}/history")


def test_grant_show_log_export_revoke_import(coop, tmp_path):
    w = coop
    assert "no grants" in w.ok("ana", "privacy", "show")
    with pytest.raises(WalletError) as refused:
        read_history(w, "cho", "ana", "care_coordination")
    assert refused.value.code == "purpose_not_allowed"
    out = w.ok("ana", "privacy", "grant", "--to-account", w.addr["cho"], "--category", "entries",
               "--purpose", "care_coordination", "--until", "30d")
    gid = out.split()[1].rstrip(":")
    shown = w.json("ana", "privacy", "show")["grants"]
    assert [(g["id"], g["grantee"], g["purpose"]) for g in shown] == [(gid, {"account": w.addr["cho"]},
                                                                       "care_coordination")]
    assert read_history(w, "cho", "ana", "care_coordination")["items"][0]["amount"] == 45
    with ApiClient(w.api, key=w.key["tre"], purpose="reconciliation") as c:
        c.get("/v1/log")
    log = w.json("ana", "privacy", "log")["items"]
    assert [(r["accessor"], r["subject"], r["purpose"], r["basis"]) for r in log] == [
        (w.addr["cho"], w.addr["ana"], "care_coordination", "grant"),
        (w.addr["tre"], "all members", "reconciliation", "policy")]
    assert "treasurer" in w.ok("cho", "privacy", "log")  # the bulk read shows in everyone's log

    doc_path = tmp_path / "prefs.json"
    w.ok("ana", "privacy", "export", doc_path)
    doc = json.loads(doc_path.read_text())
    schema = jsonschema_rs.validator_for(json.loads((DOCS / "preferences.schema.json").read_text()))
    assert list(schema.iter_errors(doc)) == [] and len(doc["grants"]) == 1
    assert f"revoked {gid}" in w.ok("ana", "privacy", "revoke", gid)
    with pytest.raises(WalletError):
        read_history(w, "cho", "ana", "care_coordination")
    assert "imported 1 grants" in w.ok("ana", "privacy", "import", doc_path)
    assert read_history(w, "cho", "ana", "care_coordination")["items"]


def test_bad_input_is_one_line(coop, tmp_path):
    w = coop
    assert "exactly one of" in w.refused("ana", "privacy", "grant", "--to-role", "member", "--to-org", "X",
                                         "--category", "entries", "--purpose", "research", "--until", "1d")
    assert "essential" in w.refused("ana", "privacy", "grant", "--to-role", "treasurer", "--category", "entries",
                                    "--purpose", "reconciliation", "--until", "1d")
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert "not JSON" in w.refused("ana", "privacy", "import", junk)
    assert "not_found" in w.refused("ana", "privacy", "revoke", "nope")
