"""The console scripts as a person runs them: real processes, exit codes, no tracebacks."""
import json
import re
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
    # the --json report keeps the fields scripts read: integer balances, limits, a problem text
    report = json.loads(ayni("verify", "--db", url, "--json").stdout)
    fault = report["balance_faults"][0]
    assert (fault["expected"], fault["found"], fault["currency"]) == (0, 7, "CRED")
    assert {"expected_limits", "found_limits", "problem", "code", "account"} <= set(fault)


def test_an_unreachable_database_exits_2_not_1(tmp_path):
    """Scripts tell "the database could not serve" (2) from "refused" (1), as before."""
    r = ayni("verify", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert r.returncode == 2 and "Traceback" not in r.stderr


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


def test_demo_takes_a_database_url_like_every_command(tmp_path):
    """Defect 13: `--db sqlite:///<path>` used to be read as a file path, making a `sqlite:` folder."""
    target = tmp_path / "x.db"
    r = ayni("demo", "--db", f"sqlite:///{target}", "--transfers", "1", "--seed", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert target.is_file() and not (tmp_path / "sqlite:").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db", "x.log.jsonl"]
    v = ayni("verify", "--db", f"sqlite:///{target}", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True


@pytest.mark.parametrize("db, fragment", [
    ("sqlite:x.db", "three slashes"),
    ("postgresql://postgres@127.0.0.1:1/none", "SQLite file it recreates"),
])
def test_demo_refuses_a_database_it_would_misread(tmp_path, db, fragment):
    r = ayni("demo", "--db", db, "--transfers", "1", cwd=tmp_path)
    assert r.returncode != 0 and fragment in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_bare_path_is_an_sqlite_file_never_a_folder_named_after_a_scheme(tmp_path):
    url = f"sqlite:///{tmp_path / 'coop.db'}"
    assert ayni("init", "--db", url, "--treasurer", address_of_key(signing.new_key())).returncode == 0
    r = ayni("verify", "--db", "coop.db", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True


# Every command `ayni --help` must show. Commands are registered explicitly (ledger/cli/__init__.py):
# one that fails to load is an error at start-up, never silently missing (defect 11).
AYNI_COMMANDS = ["init", "demo", "verify", "balances", "serve", "anchor", "receipt", "export-log", "cost-report",
                 "data-policy", "stats", "bench",
                 "backup", "restore", "check-tail", "doctor",  # issue 20
                 "chain", "retention", "org", "federation"]
SUBCOMMANDS = {"chain": ["new-key", "deploy"], "retention": ["run"], "org": ["add", "remove", "list"],
               "federation": ["new-key", "propose", "accept", "suspend", "resume", "end", "alliances", "status"]}


def _commands_in_help(text: str) -> list[str]:
    panel = text.split("Commands", 1)[1]
    return re.findall(r"^│ ([a-z][a-z-]*) {2,}", panel, flags=re.M)


def test_help_lists_every_command():
    r = ayni("--help", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert _commands_in_help(r.stdout) == AYNI_COMMANDS
    for group, names in SUBCOMMANDS.items():
        sub = ayni(group, "--help", env={"COLUMNS": "200"})
        assert sub.returncode == 0 and _commands_in_help(sub.stdout) == names, sub.stdout


def test_the_cli_never_imports_the_store_or_sqlalchemy():
    """The operator CLI goes through ledger.service (resolve_url, errors as LedgerError)."""
    import ast
    files = sorted((Path(__file__).resolve().parents[1] / "ledger" / "cli").glob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [("." * node.level) + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.lstrip(".").startswith(("sqlalchemy", "store")), f"{path.name} imports {name}"
                assert "store" not in name.split("."), f"{path.name} imports {name}"


def test_an_error_is_one_line_even_when_the_input_is_not(tmp_path):
    """`fail` shows untrusted parts of a message (here a file name) with visible escapes."""
    r = ayni("verify", "--db", str(tmp_path / "a\nb\x1b[2K.db"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "\x1b" not in r.stderr
    assert "a\\x0ab\\x1b[2K.db" in r.stderr
