"""`ayni doctor` on real deployments: an SQLite community made with `ayni init`, its files, and
(for the chain checks) a real Hardhat node with a deployed Anchor contract.

An admin relies on it to say, before members notice, that the database is not migrated, that a
key file is readable by others, or that the chain, the contract or the key's funds are wrong:
each case here names the check that must FAIL, and a good deployment must pass (exit 0)."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.chain.keys import write_keystore
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger

from .hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, hardhat_node

BIN = Path(sys.executable).parent


def ayni(*args, env=None, cwd=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    return subprocess.run([str(BIN / "ayni"), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**base, **(env or {})}, cwd=cwd)


def lines(r) -> dict[str, tuple[str, str]]:
    """{check name: (status, reason)}, the last line of each name."""
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(OK|WARN|FAIL) +([^:]+): (.*)$", line)
        assert m, f"not a check line: {line!r}"
        out[m.group(2)] = (m.group(1), m.group(3))
    return out


@pytest.fixture
def deployment(tmp_path):
    """A small SQLite deployment as docs/deploy.md lays it out: data folder 0700, database 0600,
    the session key made 0600 (as `ayni serve` makes it)."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'ayni.db'}"
    treasurer = signing.new_key()
    r = ayni("init", "--db", url, "--treasurer", address_of_key(treasurer))
    assert r.returncode == 0, r.stderr
    key = data / "session.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    env = {"AYNI_DB_URL": url, "AYNI_SESSION_KEY_FILE": str(key)}
    return {"url": url, "data": data, "env": env, "treasurer": treasurer, "tmp": tmp_path}


def test_a_good_sqlite_deployment_passes(deployment):
    r = ayni("doctor", env=deployment["env"])
    assert r.returncode == 0, r.stdout + r.stderr
    checks = lines(r)
    for name in ("data file", "session key", "database", "chain", "disk"):
        assert checks[name][0] == "OK", checks
    assert "schema at head" in checks["database"][1]
    j = ayni("doctor", "--json", env=deployment["env"])
    doc = json.loads(j.stdout)
    assert j.returncode == 0 and doc["ok"] is True and {c["status"] for c in doc["checks"]} == {"OK"}


def test_a_world_readable_keystore_fails_its_check(deployment):
    keystore = deployment["tmp"] / "anchor-keystore.json"
    write_keystore(str(keystore), HARDHAT_KEYS[0], "pw")
    keystore.chmod(0o644)
    r = ayni("doctor", "--keystore", keystore, env=deployment["env"])
    assert r.returncode == 1
    status, reason = lines(r)["anchoring keystore"]
    assert status == "FAIL" and "0644" in reason and "chmod 600" in reason
    keystore.chmod(0o600)
    assert ayni("doctor", "--keystore", keystore, env=deployment["env"]).returncode == 0


def test_a_readable_secret_in_the_secrets_folder_fails(deployment):
    secrets = deployment["tmp"] / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "anchor-password").write_text("pw\n")
    (secrets / "anchor-password").chmod(0o600)
    (secrets / "node-password").write_text("pw\n")
    (secrets / "node-password").chmod(0o640)
    r = ayni("doctor", "--secrets-dir", secrets, env=deployment["env"])
    assert r.returncode == 1
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "secret file" in fails[0] and "node-password" in fails[0], r.stdout


def test_an_unmigrated_database_fails_the_database_check(deployment):
    """A database left at an older schema (new release installed, migrations not yet run)."""
    with sqlite3.connect(deployment["data"] / "ayni.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0010'")
    r = ayni("doctor", env=deployment["env"])
    assert r.returncode == 1
    status, reason = lines(r)["database"]
    assert status == "FAIL" and "revision 0010" in reason and "migrates it" in reason, reason


def test_an_exposed_database_file_and_a_missing_one(deployment):
    db = deployment["data"] / "ayni.db"
    db.chmod(0o644)
    r = ayni("doctor", env=deployment["env"])
    assert r.returncode == 1 and lines(r)["data file"][0] == "FAIL" and "chmod 600" in lines(r)["data file"][1]
    db.chmod(0o600)
    r = ayni("doctor", "--db", f"sqlite:///{deployment['tmp'] / 'nothing.db'}", env=deployment["env"])
    assert r.returncode == 1 and lines(r)["database"][0] == "FAIL"
    assert not (deployment["tmp"] / "nothing.db").exists()  # doctor never creates a database


def test_an_unreachable_postgresql_fails_in_one_line():
    r = ayni("doctor", "--db", "postgresql+psycopg://ayni@127.0.0.1:1/ayni")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert lines(r)["database"][0] == "FAIL"


@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


def test_chain_contract_lag_and_balance_on_a_real_node(node, deployment):
    env, tmp = deployment["env"], deployment["tmp"]
    keystore, password = tmp / "anchor-keystore.json", tmp / "anchor-password"
    write_keystore(str(keystore), HARDHAT_KEYS[0], "pw")
    password.write_text("pw\n")
    password.chmod(0o600)
    r = ayni("chain", "deploy", "--chain", node, "--keystore", keystore, "--password-file", password,
             "--single-key-for-testing")
    assert r.returncode == 0, r.stderr
    contract = re.search(r"deployed at (0x[0-9a-fA-F]{40})", r.stdout).group(1)
    chain_env = {**env, "AYNI_CHAIN_URL": node, "AYNI_ANCHOR_CONTRACT": contract,
                 "AYNI_CHAIN_ID": str(HARDHAT_CHAIN_ID)}

    # nothing anchored yet: the genesis entry waits, young: OK; the funded dev key: OK
    r = ayni("doctor", "--keystore", keystore, "--password-file", password, env=chain_env)
    checks = lines(r)
    assert r.returncode == 0, r.stdout
    assert checks["chain"][0] == "OK" and f"chain id {HARDHAT_CHAIN_ID}" in checks["chain"][1]
    assert checks["contract"][0] == "OK" and "Ayni Anchor" in checks["contract"][1]
    assert "code that of contracts/build/Anchor.json" in checks["contract"][1]
    assert checks["anchor key balance"][0] == "OK"
    assert checks["anchoring lag"][0] == "OK" and "1 entries wait" in checks["anchoring lag"][1]
    assert checks["anchoring role"][0] == "OK", checks

    # another key than the contract's anchorer (or another community's contract): every anchor
    # would revert, so doctor must FAIL before the admin finds out from a reverted anchor
    other = address_of_key(HARDHAT_KEYS[1])
    r = ayni("doctor", env={**chain_env, "AYNI_ANCHOR_ADDRESS": other})
    status, reason = lines(r)["anchoring role"]
    assert r.returncode == 1 and status == "FAIL" and "is not an anchorer" in reason and other in reason, r.stdout

    # anchored: no lag (the contract written in lower case as well: the same contract)
    r = ayni("anchor", "--keystore", keystore, "--password-file", password, env=chain_env)
    assert r.returncode == 0, r.stderr
    r = ayni("doctor", "--keystore", keystore, env={**chain_env, "AYNI_ANCHOR_CONTRACT": contract.lower()})
    assert r.returncode == 0 and "every entry anchored" in lines(r)["anchoring lag"][1], r.stdout
    r = ayni("doctor", env={**chain_env, "AYNI_ANCHOR_CONTRACT": "0x1234"})
    assert r.returncode == 1 and lines(r)["contract"][0] == "FAIL" and "not a 0x-prefixed" in lines(r)["contract"][1]

    # the oldest unanchored entry two hours old (a stalled anchorer): WARN, still exit 0
    ledger = Ledger.open(deployment["url"], migrate=False, clock=lambda: 0)
    try:
        k = signing.new_key()
        ledger.submit(signing.open_account(deployment["treasurer"], ledger.genesis.domain, account=address_of_key(k)))
    finally:
        ledger.close()
    r = ayni("doctor", env=chain_env)
    assert r.returncode == 1 and lines(r)["anchoring lag"][0] == "FAIL", r.stdout  # at epoch 0: over a day
    r = ayni("doctor", "--max-lag-seconds", 10**10, env=chain_env)
    assert r.returncode == 0 and lines(r)["anchoring lag"][0] == "OK", r.stdout

    # the wrong chain id configured: FAIL chain
    r = ayni("doctor", env={**chain_env, "AYNI_CHAIN_ID": "100", "AYNI_ANCHOR_ADDRESS": address_of_key(HARDHAT_KEYS[0])})
    assert r.returncode == 1 and lines(r)["chain"][0] == "FAIL" and "expected 100" in lines(r)["chain"][1]

    # a pinned address that is not the Anchor (the anchoring key's own address): FAIL contract
    r = ayni("doctor", env={**chain_env, "AYNI_ANCHOR_CONTRACT": address_of_key(HARDHAT_KEYS[1]),
                            "AYNI_ANCHOR_ADDRESS": address_of_key(HARDHAT_KEYS[0])})
    assert r.returncode == 1 and lines(r)["contract"][0] == "FAIL", r.stdout

    # an anchoring key with nothing to pay gas with: FAIL anchor key balance
    r = ayni("doctor", env={**chain_env, "AYNI_ANCHOR_ADDRESS": address_of_key(signing.new_key()),
                            "AYNI_ANCHOR_CONTRACT": contract})
    assert r.returncode == 1 and lines(r)["anchor key balance"][0] == "FAIL", r.stdout
    assert "holds 0 wei" in lines(r)["anchor key balance"][1]

    # the contract retired (the admin's answer to a leaked key): it takes no more anchors: FAIL
    from web3 import Web3
    w3 = Web3(Web3.HTTPProvider(node))
    from ledger.chain.web3_anchor import load_artifact
    anchor = w3.eth.contract(address=Web3.to_checksum_address(contract), abi=load_artifact()["abi"])
    w3.eth.wait_for_transaction_receipt(anchor.functions.retire().transact({"from": address_of_key(HARDHAT_KEYS[0])}))
    r = ayni("doctor", "--keystore", keystore, env=chain_env)
    status, reason = lines(r)["anchoring role"]
    assert r.returncode == 1 and status == "FAIL" and "is retired" in reason, r.stdout


def test_only_runs_the_named_groups(deployment):
    """Root checks the root-only secrets folder with `--only files` (docs/deploy.md) and never
    opens the database; an unknown group is refused in one line."""
    secrets = deployment["tmp"] / "secrets"
    secrets.mkdir(mode=0o755)
    r = ayni("doctor", "--only", "files", "--secrets-dir", secrets, env=deployment["env"])
    checks = lines(r)
    assert r.returncode == 1 and checks["secrets dir"][0] == "FAIL" and "chmod 700" in checks["secrets dir"][1]
    assert "database" not in checks and "disk" not in checks
    secrets.chmod(0o700)
    r = ayni("doctor", "--only", "files", "--only", "disk", "--secrets-dir", secrets, env=deployment["env"])
    assert r.returncode == 0 and set(lines(r)) == {"data file", "session key", "secrets dir", "disk"}, r.stdout
    bad = ayni("doctor", "--only", "everything", env=deployment["env"])
    assert bad.returncode == 2 and "not a group of checks" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_same_code_allows_only_the_immutable_words_to_differ():
    from ledger.chain.web3_anchor import load_artifact
    from ledger.cli.doctor import same_code
    built = bytes.fromhex(load_artifact()["deployedBytecode"].removeprefix("0x"))
    hole = built.find(bytes(32))
    assert hole > 0  # the Anchor has immutables (ANCHORER, GENESIS)
    deployed = built[:hole] + b"\x11" * 32 + built[hole + 32:]
    assert same_code(deployed, built)
    other = bytearray(deployed)
    other[hole - 1] ^= 0xFF  # one opcode byte outside the immutable word
    assert not same_code(bytes(other), built)
    assert not same_code(deployed[:-1], built) and not same_code(b"", b"")


def test_roots_secrets_line_passes_on_a_correct_deployment_without_the_environment(deployment):
    """docs/deploy.md's root line: no environment file, so no database URL; run from a folder
    with no ayni-data in it. It must check the secrets only, and pass when they are private."""
    secrets = deployment["tmp"] / "secrets"
    secrets.mkdir(mode=0o700)
    write_keystore(str(secrets / "anchor-keystore.json"), HARDHAT_KEYS[0], "pw")
    (secrets / "anchor-keystore.json").chmod(0o600)
    (secrets / "anchor-password").write_text("pw\n")
    (secrets / "anchor-password").chmod(0o600)
    elsewhere = deployment["tmp"] / "cwd"
    elsewhere.mkdir()
    r = ayni("doctor", "--only", "secrets", "--secrets-dir", secrets, cwd=elsewhere)
    checks = lines(r)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(checks) == {"secrets dir", "secret file", "secret keystore"}, r.stdout
    assert address_of_key(HARDHAT_KEYS[0]).lower()[2:] in checks["secret keystore"][1].lower()


def test_a_garbage_keystore_fails_and_a_secret_owned_by_another_user_warns(deployment):
    keystore = deployment["tmp"] / "anchor-keystore.json"
    keystore.write_text("{not json")
    keystore.chmod(0o600)
    r = ayni("doctor", "--only", "secrets", "--keystore", keystore)
    assert r.returncode == 1 and "FAIL anchoring keystore" in r.stdout and "not a JSON keystore" in r.stdout, r.stdout
    keystore.write_text('{"version": 3, "address": "ab"}')
    r = ayni("doctor", "--only", "secrets", "--keystore", keystore)
    assert r.returncode == 1 and "not a V3 keystore" in r.stdout, r.stdout
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: giving a file to another user needs root")
    write_keystore(str(keystore), HARDHAT_KEYS[0], "pw")
    keystore.chmod(0o600)
    os.chown(keystore, 65534, 65534)  # nobody: mode 0600, yet nobody reads it
    r = ayni("doctor", "--only", "secrets", "--keystore", keystore)
    status, reason = [(s, why) for s, n, why in re.findall(r"^(\w+) +([^:]+): (.*)$", r.stdout, re.M)
                      if n == "anchoring keystore"][0]
    assert r.returncode == 0 and status == "WARN" and "owned by" in reason and "chown" in reason, r.stdout


def test_a_schema_behind_and_one_from_a_newer_release_get_different_advice(deployment):
    db = deployment["data"] / "ayni.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0010'")
    behind = lines(ayni("doctor", "--only", "database", env=deployment["env"]))["database"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    ahead = lines(ayni("doctor", "--only", "database", env=deployment["env"]))["database"]
    assert behind[0] == ahead[0] == "FAIL"
    assert "revision 0010" in behind[1] and "migrates it" in behind[1], behind
    assert "9999_future" in ahead[1] and "newer release" in ahead[1] and "backup" in ahead[1], ahead
    assert "ayni init" not in ahead[1] and "ayni serve" not in ahead[1]


@pytest.mark.postgres
def test_the_disk_check_watches_postgresqls_data_directory_or_the_configured_path(pg_server_url, tmp_path):
    """With PostgreSQL the data is not in the state folder: a local server's data_directory (or
    $AYNI_DATA_DISK_PATH, for a server whose setting the role may not read) is what fills up."""
    from sqlalchemy import create_engine

    from .conftest import _reset_pg
    _reset_pg(pg_server_url)  # the process's throwaway database: empty before `init`
    r = ayni("init", "--db", pg_server_url, "--treasurer", address_of_key(signing.new_key()))
    assert r.returncode == 0, r.stderr
    engine = create_engine(pg_server_url)
    try:
        with engine.connect() as conn:
            data_dir = conn.exec_driver_sql("SHOW data_directory").scalar()
    finally:
        engine.dispose()
    env = {"AYNI_DB_URL": pg_server_url, "AYNI_SESSION_KEY_FILE": str(tmp_path / "state" / "session.key")}
    r = ayni("doctor", "--only", "disk", env=env)
    reason = lines(r)["disk"][1]
    if Path(data_dir).exists():  # a server on this machine
        assert reason.startswith(f"{data_dir}:"), reason
    volume = tmp_path / "pg-volume"
    volume.mkdir()
    r = ayni("doctor", "--only", "disk", env={**env, "AYNI_DATA_DISK_PATH": str(volume)})
    assert lines(r)["disk"][1].startswith(f"{volume}:"), r.stdout
