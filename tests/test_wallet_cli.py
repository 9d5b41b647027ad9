"""The shape of `ayni-wallet` itself: every command registered explicitly and shown by --help
(defect 11: a command module that fails to import must stop the CLI, not drop its commands),
and the wallet's imports kept to the verifier's side of the layering (issue 14.6)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]

COMMANDS = ["new", "import", "address", "list", "balance", "pay", "request", "requests", "approve", "decline",
            "history", "receipt", "open-account", "set-limit", "freeze", "unfreeze", "close", "verify",
            "reconcile", "export", "reconcile-peer", "takings", "refund", "privacy", "listings", "shop"]
PRIVACY = ["show", "grant", "revoke", "export", "import", "log"]


def listed(*args) -> list[str]:
    """The command names a --help screen shows, in order."""
    r = subprocess.run([str(BIN / "ayni-wallet"), *args, "--help"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    section = r.stdout.split("Commands")[1]
    return re.findall(r"^│ ([a-z][a-z-]*) ", section, flags=re.M)


def test_help_shows_every_command():
    assert listed() == COMMANDS
    assert listed("privacy") == PRIVACY


def test_a_command_module_that_cannot_be_imported_stops_the_cli():
    """A packaging slip (a command module missing from the package) is an import error that
    stops `ayni-wallet`, not a shorter command list: simulated by hiding wallet_cli.admin."""
    code = ("import sys\n"
            "class Hide:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'wallet_cli.admin':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "import wallet_cli.main\n"
            "print(sorted(c.name for c in wallet_cli.main.app.registered_commands))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode != 0 and "admin" in r.stderr and "Error" in r.stderr, (r.stdout, r.stderr)


FORBIDDEN = ("ledger.store", "ledger.service", "ledger.chain", "ledger.anchoring", "ledger.queries",
             "ledger.requests", "ledger.privacy", "sqlalchemy", "api", "eth_tester")


def test_the_wallet_imports_only_core_and_web3():
    """docs/anchoring.md: the wallet verifies with ledger.core and web3 only. Import every
    command module and the chain reader it uses, then look at what Python loaded."""
    code = ("import json, sys, wallet_cli.main, ledger.verify.anchor_reader, wallet_cli.reconcile, "
            "wallet_cli.verify, wallet_cli.export; print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], bad
    assert "web3" in loaded and "ledger.verify.anchor_reader" in loaded  # the check looked at the real thing
    ours = {m for m in loaded if m.split(".")[0] == "ledger"}
    allowed = ("ledger.core", "ledger.verify", "ledger.files", "ledger.keystore")
    assert ours - {"ledger"} <= {m for m in ours if m.startswith(allowed)}, sorted(ours)


def test_a_failure_never_exits_zero():
    """wallet_cli.config.fail is every command's way to report a failure: whatever code a caller
    passes (0 by mistake, or 256, which a shell reads as 0), the process exits non-zero."""
    for given, expected in (("0", 1), ("256", 1), ("-1", 1), ("2", 2), ("130", 130)):
        r = subprocess.run([sys.executable, "-c", "import typer, sys\n"
                            "app = typer.Typer()\n"
                            "@app.command()\n"
                            "def main(n: int):\n"
                            "    from wallet_cli.config import fail\n"
                            "    fail('it went wrong', n)\n"
                            "app()\n", "--", given], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert (r.returncode, r.stderr.strip()) == (expected, "error: it went wrong"), (given, r.stderr)
