"""`ayni-wallet` keys: V3 keystores other wallets read, passphrase sources, clean failures,
and private keys that never appear in any output. Runs the real console script."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from ledger.core.typed_data import address_of_key
from wallet_cli.config import WalletError, load_config
from wallet_cli.keys import LIGHT_SCRYPT_N, load_key, write_keystore

BIN = Path(sys.executable).parent


@pytest.fixture
def home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AYNI_")}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    return {"env": env, "keys": tmp_path / "cfg" / "ayni" / "keys", "tmp": tmp_path}


def wallet(home, *args, password="pw one", stdin=None, **extra_env):
    env = dict(home["env"], **extra_env)
    if password is not None:
        env["AYNI_WALLET_PASSWORD"] = password
    return subprocess.run([str(BIN / "ayni-wallet"), *map(str, args)], capture_output=True, text=True,
                          env=env, input=stdin, timeout=60)


def one_line_error(r) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_new_writes_a_standard_keystore_that_eth_account_decrypts(home):
    r = wallet(home, "new", "--name", "ana")  # the default, full-strength scrypt (N=2**18)
    assert r.returncode == 0, r.stderr
    address = r.stdout.splitlines()[0]
    path = home["keys"] / "ana.json"
    doc = json.loads(path.read_text())
    assert doc["version"] == 3 and doc["crypto"]["kdf"] == "scrypt" and doc["crypto"]["kdfparams"]["n"] == 2**18
    key = bytes(Account.decrypt(doc, "pw one"))  # what geth / MetaMask import does
    assert address_of_key(key) == address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home["keys"].stat().st_mode) == 0o700
    assert key.hex() not in r.stdout + r.stderr
    assert [p.name for p in home["keys"].iterdir()] == ["ana.json"]  # no temporary file left behind
    listed = json.loads(wallet(home, "list", "--json").stdout)
    assert listed == [{"name": "ana", "address": address, "keystore": str(path)}]
    assert wallet(home, "address").stdout.strip() == address  # the only key is the default


def test_import_a_keystore_made_by_another_wallet_and_a_raw_key(home, tmp_path):
    foreign_key = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    foreign = tmp_path / "UTC--2024--metamask.json"
    foreign.write_text(json.dumps(Account.encrypt(foreign_key, "their pass", iterations=LIGHT_SCRYPT_N)))
    r = wallet(home, "import", foreign, "--name", "mm", password="their pass")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == address_of_key(foreign_key)
    assert load_key(home["keys"] / "mm.json", "their pass") == foreign_key
    # a wrong passphrase for the file being imported stores nothing
    other = tmp_path / "other.json"
    other.write_text(json.dumps(Account.encrypt(bytes(31) + b"\x07", "x", iterations=LIGHT_SCRYPT_N)))
    assert "wrong passphrase" in one_line_error(wallet(home, "import", other, password="nope"))
    assert sorted(p.name for p in home["keys"].iterdir()) == ["mm.json"]

    raw = bytes(range(1, 33))
    r = wallet(home, "import", "--raw", "--name", "raw", "--light-kdf", stdin="0x" + raw.hex() + "\n",
               password="new pass")
    assert r.returncode == 0, r.stderr
    assert raw.hex() not in r.stdout + r.stderr
    assert bytes(Account.decrypt(json.loads((home["keys"] / "raw.json").read_text()), "new pass")) == raw
    # the same key twice is refused, and so is an existing name
    assert "already in the wallet" in one_line_error(
        wallet(home, "import", "--raw", "--name", "again", "--light-kdf", stdin=raw.hex(), password="p"))
    before = (home["keys"] / "raw.json").read_bytes()
    assert "exists" in one_line_error(wallet(home, "new", "--name", "raw", "--light-kdf"))
    assert (home["keys"] / "raw.json").read_bytes() == before
    assert "64 hex digits" in one_line_error(wallet(home, "import", "--raw", stdin="12345"))


def test_wrong_passphrase_and_missing_passphrase_fail_in_one_line(home):
    assert wallet(home, "new", "--name", "ana", "--light-kdf").returncode == 0
    # unlocking happens before any request, so no server is needed to see the refusal
    line = one_line_error(wallet(home, "balance", "--api", "http://127.0.0.1:9", password="wrong"))
    assert "wrong passphrase" in line
    line = one_line_error(wallet(home, "balance", "--api", "http://127.0.0.1:9", password=None, stdin=""))
    assert "no passphrase" in line


def test_password_file_beats_the_environment(home, tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("from file\n")  # the trailing newline is not part of the passphrase
    r = wallet(home, "new", "--name", "ana", "--light-kdf", "--password-file", pw, password="from env")
    assert r.returncode == 0, r.stderr
    assert load_key(home["keys"] / "ana.json", "from file")
    with pytest.raises(WalletError) as exc:
        load_key(home["keys"] / "ana.json", "from env")
    assert exc.value.code == "wrong_passphrase"
    missing = one_line_error(wallet(home, "new", "--name", "b", "--light-kdf", "--password-file", tmp_path / "no"))
    assert "cannot read password file" in missing


def test_key_selection_and_config_precedence(home, tmp_path, monkeypatch):
    keys = {}
    for name in ("ana", "bea"):
        r = wallet(home, "new", "--name", name, "--light-kdf")
        keys[name] = r.stdout.splitlines()[0]
    assert "choose one with --key" in one_line_error(wallet(home, "address"))
    assert wallet(home, "address", "--key", "bea").stdout.strip() == keys["bea"]
    assert wallet(home, "address", "--key", keys["ana"].lower()).stdout.strip() == keys["ana"]
    assert wallet(home, "address", "--key", home["keys"] / "bea.json").stdout.strip() == keys["bea"]
    assert wallet(home, "address", AYNI_KEYSTORE="ana").stdout.strip() == keys["ana"]
    assert "no key named" in one_line_error(wallet(home, "address", "--key", "nobody"))

    toml = tmp_path / "cfg" / "ayni" / "wallet.toml"
    toml.write_text('api_url = "http://toml.example:1"\nkeystore = "bea"\nchain_id = 5\n')
    assert wallet(home, "address").stdout.strip() == keys["bea"]  # wallet.toml picks the key
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("AYNI_API_URL", raising=False)
    assert load_config().api_url == "http://toml.example:1" and load_config().chain_id == 5
    monkeypatch.setenv("AYNI_API_URL", "http://env.example:2/")
    assert load_config().api_url == "http://env.example:2"
    assert load_config(api_url="http://flag.example:3").api_url == "http://flag.example:3"
    assert load_config().keys_dir == tmp_path / "cfg" / "ayni" / "keys"
    toml.write_text("chain_id = 'five'\n")
    with pytest.raises(WalletError, match="chain_id .* malformed"):
        load_config()
    toml.write_text("not toml [")
    assert "not valid TOML" in one_line_error(wallet(home, "address"))


def test_our_decryption_reads_eth_account_scrypt_and_pbkdf2_keystores(tmp_path):
    key = bytes(range(3, 35))
    for kdf, work in (("scrypt", LIGHT_SCRYPT_N), ("pbkdf2", 1000)):
        path = tmp_path / f"{kdf}.json"
        path.write_text(json.dumps(Account.encrypt(key, "pass", kdf=kdf, iterations=work)))
        assert load_key(path, "pass") == key
        with pytest.raises(WalletError, match="wrong passphrase"):
            load_key(path, "Pass")


def test_a_tampered_keystore_is_refused_cleanly(home, tmp_path):
    key = bytes(range(2, 34))
    path = tmp_path / "k.json"
    write_keystore(path, key, "pw", scrypt_n=LIGHT_SCRYPT_N)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    doc["crypto"]["ciphertext"] = "00" + doc["crypto"]["ciphertext"][2:]
    path.write_text(json.dumps(doc))
    with pytest.raises(WalletError) as exc:
        load_key(path, "pw")
    assert exc.value.code == "wrong_passphrase"  # the MAC covers the ciphertext
    path.write_text("{}")
    assert "not an Ethereum V3 keystore" in one_line_error(
        wallet(home, "balance", "--key", path, "--api", "http://127.0.0.1:9"))
