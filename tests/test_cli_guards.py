"""`ayni` refuses what would lose or never keep data: a demo over a real community's database,
an in-memory database for init/serve, a database kind Ayni does not run on."""
import os
import sqlite3
import stat
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


def _one_line_refusal(r, fragment):
    assert r.returncode != 0
    assert fragment in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_demo_refuses_to_delete_a_real_community(tmp_path):
    db = tmp_path / "prod.db"
    treasurer = address_of_key(signing.new_key())
    assert ayni("init", "--db", str(db), "--treasurer", treasurer, "--community", "Tejedoras").returncode == 0
    before = db.read_bytes()
    r = ayni("demo", "--db", str(db), "--transfers", "5", "--seed", "1")
    _one_line_refusal(r, "not a previous demo's")
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert '"Tejedoras"' in conn.execute("SELECT body FROM entries WHERE seq = 1").fetchone()[0]


def test_demo_refuses_a_file_that_is_not_a_database(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n")
    _one_line_refusal(ayni("demo", "--db", str(notes), "--transfers", "5"), "not a previous demo's")
    assert notes.read_text() == "my notes\n"


def test_demo_replaces_a_previous_demo(tmp_path):
    db = tmp_path / "demo.db"
    for _ in range(2):
        r = ayni("demo", "--db", str(db), "--transfers", "5", "--seed", "1")
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", [["init", "--treasurer", address_of_key(signing.new_key())], ["serve"]])
def test_in_memory_database_is_refused_where_it_would_lose_everything(command):
    _one_line_refusal(ayni(*command, "--db", "sqlite://"), "in-memory database")


@pytest.mark.parametrize("url", ["mysql://x/y", "oracle://u@h/db"])
def test_unsupported_database_is_one_line(url):
    r = ayni("init", "--db", url, "--treasurer", address_of_key(signing.new_key()))
    _one_line_refusal(r, "unsupported database")


def _serve_once(tmp_path, cwd, **env):
    """Start `ayni serve` in `cwd` on a database elsewhere, wait until it answers, stop it."""
    from tests.servers import clean_env, free_port, stop_group, wait_ready
    db = tmp_path / "db" / "coop.db"
    port = free_port()
    err = tmp_path / f"serve-{port}.err"
    with open(err, "w") as stderr:
        proc = subprocess.Popen([str(BIN / "ayni"), "serve", "--db", str(db), "--port", str(port)], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=stderr, env=clean_env(**env),
                                start_new_session=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
        finally:
            stop_group(proc)
    return err.read_text()


def test_serve_creates_the_token_secret_folder_private(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _serve_once(tmp_path, work)
    folder = work / "ayni-data"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "session.key").stat().st_mode) == 0o600


def test_serve_warns_about_a_shared_token_secret_folder(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    err = _serve_once(tmp_path, tmp_path, AYNI_SESSION_KEY_FILE=str(shared / "session.key"))
    assert "warning:" in err and str(shared) in err and "accessible to group or others" in err
