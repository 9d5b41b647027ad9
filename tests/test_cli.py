"""The console scripts as a person runs them: real processes, exit codes, no tracebacks."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.core.typed_data import address_of_key

BIN = Path(sys.executable).parent


def ayni(*args, cwd=None, env=None):
    return subprocess.run([str(BIN / "ayni"), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**os.environ, **(env or {})})


def test_demo_runs_end_to_end_and_checks_invariants(tmp_path):
    r = ayni("demo", "--db", str(tmp_path / "demo.db"), "--transfers", "120", "--seed", "3")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for expected in ("credit_limit_exceeded", "wrong_signer", "idempotent retry", "nonce_reused",
                     "account_not_active", "unknown_account", "intact"):
        assert expected in out
    v = ayni("verify", "--db", f"sqlite:///{tmp_path / 'demo.db'}", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True


def test_init_then_verify_then_tamper(tmp_path):
    url = f"sqlite:///{tmp_path / 'coop.db'}"
    treasurer = address_of_key(signing.new_key())
    r = ayni("init", "--db", url, "--treasurer", treasurer, "--community", "Tejedoras")
    assert r.returncode == 0, r.stderr
    assert "genesis entry hash 0x" in r.stdout
    again = ayni("init", "--db", url, "--treasurer", treasurer)
    assert again.returncode == 1 and "already_initialised" in again.stderr and "Traceback" not in again.stderr
    assert ayni("verify", "--db", url).returncode == 0
    with sqlite3.connect(tmp_path / "coop.db") as conn:
        conn.execute("UPDATE balances SET balance = 7 WHERE currency = 'CRED'")
    r = ayni("verify", "--db", url)
    assert r.returncode == 1 and "zero-sum faults {'CRED': 7}" in r.stdout


@pytest.mark.parametrize("args,fragment", [
    (["init", "--treasurer", "0x1234"], "invalid_address"),
    (["verify"], "not_initialised"),
    (["balances"], "not_initialised"),
    (["verify", "--db", "postgresql://postgres@127.0.0.1:1/none"], "database error"),
])
def test_bad_input_gets_a_message_and_nonzero_exit(tmp_path, args, fragment):
    if "--db" not in args:
        args = [*args, "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    r = ayni(*args)
    assert r.returncode != 0
    assert fragment in r.stderr and "Traceback" not in r.stderr


def test_wallet_prints_help():
    r = subprocess.run([str(BIN / "ayni-wallet"), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Ayni wallet" in r.stdout and "verify" in r.stdout
