"""What `ayni` prints from the database goes through ledger.core.text.visible: a stored
escape sequence or bidi override is shown as an escape, never sent to the terminal; and
organisation names follow the one text rule members' text follows (ledger/core/text.py)."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.core.typed_data import address_of_key
from ledger.privacy.grants import organisation_name
from ledger.core import errors as E

BIN = Path(sys.executable).parent


def ayni(*args):
    return subprocess.run([str(BIN / "ayni"), *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


@pytest.fixture
def coop(tmp_path):
    db = tmp_path / "coop.db"
    treasurer = address_of_key(signing.new_key())
    assert ayni("init", "--db", str(db), "--treasurer", treasurer).returncode == 0
    return db, treasurer


def test_org_list_shows_stored_control_characters_as_escapes(coop):
    db, treasurer = coop
    with sqlite3.connect(db) as conn:  # written by an older version, or by hand
        conn.execute("INSERT INTO privacy_organisations (organisation, address) VALUES (?, ?)",
                     ("Lab\x1b[2J\u202eevil", treasurer))
    r = ayni("org", "list", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "Lab\\x1b[2J\\u202eevil" in r.stdout
    as_json = ayni("org", "list", "--db", str(db), "--json")
    assert "\x1b" not in as_json.stdout and json.loads(as_json.stdout) == {"Lab\x1b[2J\u202eevil": [treasurer]}


def test_organisation_names_follow_the_one_text_rule():
    # the text rule's one exception (a ZWJ inside an emoji sequence) is a name too: str.isprintable refused it
    assert organisation_name("  \U0001F469\u200d\U0001F4BB Lab ") == "\U0001F469\u200d\U0001F4BB Lab"
    for bad in ("Lab\u200d", "Lab\x1b", "Care\u00a0Lab", "", "x" * 121, 7):
        with pytest.raises(E.InvalidInput, match="grantee organisation"):
            organisation_name(bad)


def test_org_add_prints_the_name_through_the_text_rule(coop):
    db, treasurer = coop
    r = ayni("org", "add", "\U0001F469\u200d\U0001F4BB Lab", treasurer, "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "acts for" in r.stdout
