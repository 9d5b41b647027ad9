"""Issue 13 defect 8: the SQLite database holds personal data, so only its owner may read it."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.community import new_genesis
from ledger.core import errors as E
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def new_ledger(path: Path) -> Ledger:
    ledger = Ledger.open(f"sqlite:///{path}")
    key = signing.new_key()
    ledger.initialise(new_genesis("Files", address_of_key(key)))
    ledger.submit(signing.open_account(key, ledger.genesis.domain, account=address_of_key(signing.new_key()),
                                       role="member"))
    return ledger


def test_a_new_database_is_private_with_its_directory_wal_and_shm(tmp_path):
    old = os.umask(0o022)  # the usual umask, which would give 0644 files and 0755 folders
    try:
        path = tmp_path / "data" / "ayni.db"
        ledger = new_ledger(path)
        ledger.head()  # a reader holds the WAL open: -wal and -shm exist now
        files = {p.name: mode(p) for p in path.parent.iterdir()}
        ledger.engine.dispose()
    finally:
        os.umask(old)
    assert mode(path.parent) == 0o700
    assert {"ayni.db", "ayni.db-wal", "ayni.db-shm"} <= set(files), files
    assert all(m == 0o600 for m in files.values()), {k: oct(v) for k, v in files.items()}


@pytest.mark.parametrize("which,bad_mode", [("ayni.db", 0o644), ("ayni.db", 0o640), ("ayni.db-wal", 0o604),
                                            ("ayni.db-shm", 0o660)])
def test_an_existing_readable_database_file_is_refused(tmp_path, which, bad_mode):
    path = tmp_path / "ayni.db"
    ledger = new_ledger(path)
    with ledger.engine.connect():  # keep -wal and -shm on disk while we look
        (tmp_path / which).chmod(bad_mode)
        with pytest.raises(E.InsecureStorage) as exc:
            Ledger.open(f"sqlite:///{path}", migrate=False)
    ledger.engine.dispose()
    assert exc.value.code == "insecure_storage"
    message = str(exc.value)
    assert "\n" not in message and str(tmp_path / which) in message and f"{bad_mode:04o}" in message
    if (tmp_path / which).exists():  # -wal and -shm go with the last connection
        (tmp_path / which).chmod(0o600)
    Ledger.open(f"sqlite:///{path}", migrate=False).engine.dispose()  # fixed by the operator: starts again


def test_the_cli_refuses_a_readable_database_with_one_line(tmp_path):
    path = tmp_path / "ayni.db"
    new_ledger(path).engine.dispose()
    path.chmod(0o644)
    r = subprocess.run([str(Path(sys.executable).parent / "ayni"), "verify", "--db", f"sqlite:///{path}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "insecure_storage" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert mode(path) == 0o644  # refused, not silently changed
