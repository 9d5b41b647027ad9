"""`ayni backup` / `ayni restore` as an operator runs them (real processes, real SQLite and
PostgreSQL, real pg_dump/pg_restore): a backup restores to the same verified ledger, a damaged
or cut copy is refused before the target is touched, a non-empty target is refused, a manifest
that does not describe its dump is refused, and a restore that lost an anchored tail says which
entries are missing (docs/backup.md)."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger.anchoring import Anchoring
from ledger.backup import BackupDamaged, backup, check_backup, restore, seal
from ledger.chain import AnchorChain
from ledger.sample import round_robin_transfers
from ledger.service import Ledger

from .conftest import IN_CI, PG_ADMIN_URL, Community

ROOT = Path(__file__).resolve().parents[1]


def ayni(*args: str) -> subprocess.CompletedProcess:
    """`ayni ARGS` from this checkout (the console script may belong to another install)."""
    return subprocess.run([sys.executable, "-c", "from ledger.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


def busy(url: str, transfers: int = 30) -> Community:
    c = Community(url)
    keys = c.accounts(6, credit_limit=10**9)
    c.keys_list = keys
    c.ledger.submit_many(round_robin_transfers(c.domain, keys, transfers, memo_every=4))
    return c


def relations(url: str) -> int:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                     "WHERE n.nspname = 'public'")).scalar_one()
    finally:
        eng.dispose()


@pytest.fixture
def target(db_url, tmp_path):
    """An empty database of the same kind as `db_url` to restore into."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/restored/ayni.db"
        return
    name = f"ayni_restore_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def target_is_empty(url: str) -> bool:
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        return not path.exists() or path.stat().st_size == 0
    return relations(url) == 0


def repack(src: Path, dst: Path, edit) -> None:
    """The backup at `src` with its manifest edited and sealed again: a manifest that is intact
    as a file but does not describe its dump (what a bug in the writer would produce)."""
    with tarfile.open(src) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
        member = t.getmembers()[1]
        dump = t.extractfile(member).read()
    data = json.dumps(seal(edit(manifest))).encode()
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as t:
        import io
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(member.name)
        info.size = len(dump)
        t.addfile(info, io.BytesIO(dump))


# ---- round trip ------------------------------------------------------------------------------

def test_backup_restore_verify_round_trip(db_url, target, tmp_path):
    c = busy(db_url)
    head = c.ledger.head()
    positions = c.ledger.positions()
    memos = {seq: c.ledger.memo(seq) for seq in range(1, head[0] + 1)}
    assert any(memos.values())
    out = tmp_path / "coop.ayni"
    r = ayni("backup", "--db", db_url, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    manifest = json.loads(r.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds memos and profiles
    assert (manifest["headSeq"], manifest["headChainHash"]) == (head[0], "0x" + head[1].hex())
    assert manifest["database"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    assert manifest["communityId"] == "0x" + c.domain.salt.hex() and manifest["formatVersion"] == 1
    assert {"ayniVersion", "createdAt", "dump", "schemaRevision"} <= set(manifest)
    c.ledger.submit_many(round_robin_transfers(c.domain, c.keys_list, 3, offset=9))  # after the backup: not in it

    r = ayni("restore", str(out), "--db", target)
    assert r.returncode == 0, r.stderr
    assert f"head seq {head[0]}" in r.stdout and "verify passed" in r.stdout
    restored = Ledger.open(target, migrate=False)
    try:
        report = restored.verify()  # what `ayni verify` runs
        assert report.ok and report.entries == head[0]
        assert restored.head() == head
        assert restored.positions() == positions
        assert {seq: restored.memo(seq) for seq in range(1, head[0] + 1)} == memos
    finally:
        restored.close()
    if target.startswith("sqlite"):
        assert stat.S_IMODE(Path(target.split(":///", 1)[1]).stat().st_mode) == 0o600
    c.dispose()


def test_a_backup_taken_while_a_writer_posts_is_one_consistent_snapshot(sqlite_url, tmp_path):
    """SQLite's online backup copies one snapshot while `serve` goes on writing: each backup
    restores to a ledger that verifies, whose head is the manifest's."""
    c = busy(sqlite_url, transfers=5)
    stop, posted = threading.Event(), [0]

    def writer():
        i = 0
        while not stop.is_set():
            c.ledger.submit_many(round_robin_transfers(c.domain, c.keys_list, 5, offset=i))
            i += 5
            posted[0] = i
    t = threading.Thread(target=writer)
    t.start()
    try:
        while posted[0] < 10:  # the writer is under way before the backup starts
            threading.Event().wait(0.05)
        out = tmp_path / "live.ayni"
        before = posted[0]
        r = ayni("backup", "--db", sqlite_url, "--out", str(out), "--json")
        assert r.returncode == 0, r.stderr
        head = json.loads(r.stdout)["headSeq"]
        during = posted[0]
    finally:
        stop.set()
        t.join()
    assert during > before and c.ledger.head()[0] > head  # the writer really wrote while the backup ran
    r = ayni("restore", str(out), "--db", f"sqlite:///{tmp_path}/r.db", "--json")
    assert r.returncode == 0, r.stderr  # restore checks the head against the manifest and verifies
    assert json.loads(r.stdout)["entries"] == head
    c.dispose()


# ---- refusals ----------------------------------------------------------------------------------

def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupted_or_truncated_backup_is_refused_and_the_target_stays_empty(db_url, target, tmp_path):
    c = busy(db_url, transfers=10)
    good = tmp_path / "good.ayni"
    backup(db_url, good)
    checked = check_backup(good)
    data = good.read_bytes()
    cases = {
        "dump byte": lambda p: _flip(p, checked.dump_offset + checked.dump_size // 2),
        "truncated": lambda p: p.write_bytes(data[: checked.dump_offset + checked.dump_size // 3]),
    }
    for what, damage in cases.items():
        bad = tmp_path / f"bad-{what.replace(' ', '-')}.ayni"
        bad.write_bytes(data)
        damage(bad)
        r = ayni("restore", str(bad), "--db", target)
        assert r.returncode == 1, (what, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "backup_damaged" in lines[0] and "nothing was restored" in lines[0], (what, lines)
        assert target_is_empty(target), what
    # a changed digit in the manifest (in-process: the same check, the same target rule)
    bad = tmp_path / "bad-manifest.ayni"
    bad.write_bytes(data)
    _flip(bad, data.index(b'"headSeq"') + 12)
    with pytest.raises(BackupDamaged, match="manifest does not match its own sha256"):
        restore(bad, target)
    assert target_is_empty(target)
    c.dispose()


def test_every_cut_and_every_flipped_region_is_noticed_before_restoring(sqlite_url, tmp_path):
    """In-process, over many cut points and one flipped byte per 512-byte block (the CLI test
    above covers the message): no damaged copy passes the check."""
    c = busy(sqlite_url, transfers=3)
    good = tmp_path / "good.ayni"
    backup(sqlite_url, good)
    data = good.read_bytes()
    size = len(data)
    for cut in sorted({1, 100, 511, 512, 1024, 1536, size // 2, size - 10240, size - 1024, size - 512, size - 1}):
        (tmp_path / "cut.ayni").write_bytes(data[:cut])
        with pytest.raises(BackupDamaged):
            check_backup(tmp_path / "cut.ayni")
    for offset in range(0, size, 512 * 7):
        flipped = bytearray(data)
        flipped[offset + 37 if offset + 37 < size else offset] ^= 0x40
        (tmp_path / "flip.ayni").write_bytes(bytes(flipped))
        with pytest.raises(BackupDamaged):
            check_backup(tmp_path / "flip.ayni")
    assert check_backup(good).manifest["headSeq"] == c.ledger.head()[0]
    c.dispose()


def test_restore_into_a_database_that_holds_anything_is_refused(db_url, target, tmp_path):
    c = busy(db_url, transfers=3)
    out = tmp_path / "coop.ayni"
    backup(db_url, out)
    other = Community(target)  # another community already lives in the target
    before = other.snapshot()
    r = ayni("restore", str(out), "--db", target)
    assert r.returncode == 1 and "target_not_empty" in r.stderr and "nothing was changed" in r.stderr
    assert other.snapshot() == before
    other.dispose()
    c.dispose()


def test_a_manifest_that_does_not_describe_its_dump_is_refused(db_url, target, tmp_path):
    c = busy(db_url, transfers=3)
    good = tmp_path / "good.ayni"
    backup(db_url, good)
    lying = tmp_path / "lying.ayni"
    repack(good, lying, lambda m: {**m, "headSeq": m["headSeq"] + 2})
    r = ayni("restore", str(lying), "--db", target)
    assert r.returncode == 1 and "restore_refused" in r.stderr, r.stderr
    assert "the manifest says seq" in r.stderr
    if target.startswith("sqlite"):
        assert "left untouched" in r.stderr and target_is_empty(target)
    else:  # loaded in one transaction, then found wrong: the message says what the target holds
        assert "holds the unverified restore" in r.stderr
    c.dispose()


def test_a_backup_of_a_tampered_ledger_does_not_restore(sqlite_url, tmp_path):
    c = busy(sqlite_url, transfers=3)
    with sqlite3.connect(sqlite_url.split(":///", 1)[1]) as conn:
        conn.execute("UPDATE balances SET balance = balance + 7 WHERE rowid = (SELECT min(rowid) FROM balances "
                     "WHERE currency = 'CRED')")
    out = tmp_path / "tampered.ayni"
    backup(sqlite_url, out)
    dest = tmp_path / "restored.db"
    r = ayni("restore", str(out), "--db", f"sqlite:///{dest}")
    assert r.returncode == 1 and "does not verify" in r.stderr and not dest.exists()
    c.dispose()


def test_backup_never_overwrites_and_refuses_a_cross_kind_restore(sqlite_url, tmp_path):
    c = busy(sqlite_url, transfers=1)
    out = tmp_path / "a.ayni"
    backup(sqlite_url, out)
    r = ayni("backup", "--db", sqlite_url, "--out", str(out))
    assert r.returncode == 1 and "never overwritten" in r.stderr
    r = ayni("restore", str(out), "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert r.returncode == 1 and "not supported" in r.stderr and "Traceback" not in r.stderr
    c.dispose()


# ---- a restore that lost its tail ---------------------------------------------------------------

def test_a_restore_that_lost_its_anchored_tail_names_the_missing_range(sqlite_url, tmp_path):
    """Anchor, back up, post and anchor more, restore the old backup: the chain shows which
    entries existed and are gone, so nobody serves the shorter ledger unawares."""
    chain = AnchorChain.embedded()
    chain.deploy()
    c = busy(sqlite_url, transfers=6)
    Anchoring(c.ledger, chain).run()
    old = tmp_path / "old.ayni"
    old_head = backup(sqlite_url, old).manifest["headSeq"]
    c.ledger.submit_many(round_robin_transfers(c.domain, c.keys_list, 4, offset=20))
    Anchoring(c.ledger, chain).run()
    new_head = c.ledger.head()[0]
    assert chain.last_anchored_seq() == new_head > old_head

    result = restore(old, f"sqlite:///{tmp_path}/old-restored.db", chain=chain)
    assert (result.lost_tail.first_seq, result.lost_tail.last_seq) == (old_head + 1, new_head)
    assert result.lost_tail.mismatch is None
    assert (f"entries {old_head + 1}..{new_head} were anchored but are missing: the database lost its tail"
            in result.lost_tail.message())
    # a current backup restores with nothing lost
    fresh = tmp_path / "fresh.ayni"
    backup(sqlite_url, fresh)
    assert restore(fresh, f"sqlite:///{tmp_path}/fresh-restored.db", chain=chain).lost_tail is None
    # another community's backup checked against this contract is not taken for a shorter copy
    other = busy(f"sqlite:///{tmp_path}/other.db", transfers=12)  # longer than batch 1 of this contract
    backup(f"sqlite:///{tmp_path}/other.db", tmp_path / "other.ayni")
    wrong = restore(tmp_path / "other.ayni", f"sqlite:///{tmp_path}/other-restored.db", chain=chain).lost_tail
    assert wrong is not None and "is not the anchored history" in wrong.mismatch
    other.dispose()
    # a community shorter than this contract's first batch: no root can be checked, so the message
    # must not send the operator hunting for a tail that never belonged to this ledger
    short = busy(f"sqlite:///{tmp_path}/short.db", transfers=1)
    assert short.ledger.head()[0] < old_head
    backup(f"sqlite:///{tmp_path}/short.db", tmp_path / "short.ayni")
    foreign = restore(tmp_path / "short.ayni", f"sqlite:///{tmp_path}/short-restored.db", chain=chain).lost_tail
    assert foreign is not None and foreign.mismatch is None
    assert "or this is not this community's contract: the database records no batch on it" in foreign.message()
    assert "this community's contract" not in result.lost_tail.message()  # the real lost tail: batches recorded
    short.dispose()
    c.dispose()


def test_the_operator_sees_the_lost_tail_from_the_command_line(tmp_path):
    """The same on a real JSON-RPC node (Hardhat), through `ayni restore --chain --contract` and
    `ayni check-tail`: exit 3 and one line naming the missing range."""
    from ledger.core.typed_data import address_of_key

    from .hardhat_node import HARDHAT_KEYS, hardhat_node
    url = f"sqlite:///{tmp_path}/coop.db"
    with hardhat_node() as node:
        chain = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0])
        contract, _ = chain.deploy(admin=address_of_key(HARDHAT_KEYS[1]))
        c = busy(url, transfers=4)
        Anchoring(c.ledger, chain).run()
        old = tmp_path / "old.ayni"
        old_head = backup(url, old).manifest["headSeq"]
        c.ledger.submit_many(round_robin_transfers(c.domain, c.keys_list, 3, offset=5))
        Anchoring(c.ledger, chain).run()
        new_head = c.ledger.head()[0]
        target = f"sqlite:///{tmp_path}/restored.db"
        r = ayni("restore", str(old), "--db", target, "--chain", node, "--contract", contract)
        assert r.returncode == 3, r.stdout + r.stderr
        assert "verify passed" in r.stdout
        line = f"entries {old_head + 1}..{new_head} were anchored but are missing: the database lost its tail"
        assert line in r.stderr and len(r.stderr.strip().splitlines()) == 1
        r = ayni("check-tail", "--db", target, "--chain", node, "--contract", contract)
        assert r.returncode == 3 and line in r.stderr
        r = ayni("check-tail", "--db", url, "--chain", node, "--contract", contract)  # the live one lost nothing
        assert r.returncode == 0 and "nothing anchored is missing" in r.stdout, r.stderr
        c.dispose()


@pytest.mark.postgres
def test_backup_through_a_multi_host_url_reaches_the_writable_server(pg_server_url, tmp_path):
    """The high-availability URL form (SQLAlchemy's ?host=a:p&host=b:p, first host down) works for
    the snapshot and for pg_dump alike: both must land on the same server."""
    from .conftest import _reset_pg
    _reset_pg(pg_server_url)
    c = busy(pg_server_url, transfers=2)
    base, db = pg_server_url.rsplit("/", 1)
    hostport = base.rsplit("@", 1)[1]
    multi = f"postgresql+psycopg://postgres@/{db}?host=127.0.0.1:1&host={hostport}&target_session_attrs=read-write"
    out = tmp_path / "ha.ayni"
    r = ayni("backup", "--db", multi, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["headSeq"] == c.ledger.head()[0]
    c.dispose()


@pytest.mark.postgres
def test_a_pg_dump_older_than_the_server_is_refused_by_name():
    """pg_dump cannot read a newer server's catalogue: the error names what was found instead of
    letting pg_dump fail half-way (here: asking for a version no installed tool has)."""
    from ledger.backup import BackupError, _candidates, find_pg_tool
    if not _candidates("pg_dump") and not IN_CI:
        pytest.skip("!!! no pg_dump installed (required when CI=true)")
    with pytest.raises(BackupError, match=r"pg_dump must be version 99 or newer .* found only .*pg_dump \(\d+\)"):
        find_pg_tool("pg_dump", 99)
    path, major = find_pg_tool("pg_dump", 0)
    assert Path(path).is_file() and major >= 10


# ---- a backup file is untrusted content: rows come back, schema and code never do ------------

def pack(dst: Path, manifest: bytes, name: str, dump: bytes) -> None:
    """A backup file with this raw manifest and dump (what anyone can write: the checksums are
    recomputable, so they prove nothing about who made the file)."""
    import io
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as t:
        for member, data in (("manifest.json", manifest), (name, dump)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def reseal(src: Path, dst: Path, dump: bytes | None = None, edit=lambda m: m) -> None:
    """`src` with its dump replaced by `dump` and the manifest edited, all checksums made to match."""
    import hashlib
    with tarfile.open(src) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
        member = t.getmembers()[1]
        old = t.extractfile(member).read()
    dump = old if dump is None else dump
    manifest = edit({**manifest, "dump": {"name": member.name, "bytes": len(dump),
                                          "sha256": hashlib.sha256(dump).hexdigest()}})
    pack(dst, json.dumps(seal(manifest)).encode(), member.name, dump)


def dump_of(path: Path) -> bytes:
    with tarfile.open(path) as t:
        return t.extractfile(t.getmembers()[1]).read()


def test_a_dump_carrying_code_or_extra_objects_is_refused_and_leaves_nothing(db_url, target, tmp_path):
    """H1/M1 of the review: a re-sealed backup whose dump holds a trigger, a function, a view or an
    extra table. pg_restore of such a dump runs its code as the restoring role; SQLite would keep a
    trigger copying every future entry. The restore must refuse it and the target stay empty."""
    c = busy(db_url, transfers=3)
    src = tmp_path / "src.ayni"
    if db_url.startswith("sqlite"):
        backup(db_url, src)
        work = tmp_path / "evil.sqlite3"
        work.write_bytes(dump_of(src))
        conn = sqlite3.connect(work)
        conn.executescript("CREATE TABLE zz_exfil(body BLOB);"
                           "CREATE TRIGGER zz_t AFTER INSERT ON entries BEGIN INSERT INTO zz_exfil VALUES (NEW.body); END;"
                           "CREATE VIEW zz_v AS SELECT * FROM entries;")
        conn.close()
        evil = tmp_path / "evil.ayni"
        reseal(src, evil, work.read_bytes())
    else:  # the hostile objects made in the source: `ayni backup` itself writes the file
        eng = create_engine(db_url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("CREATE FUNCTION public.zz_f() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE NOTICE 'saw'; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER zz_t AFTER INSERT ON public.entries FOR EACH ROW "
                              "EXECUTE FUNCTION public.zz_f()"))
        eng.dispose()
        evil = src
        backup(db_url, evil)
    r = ayni("restore", str(evil), "--db", target)
    assert r.returncode == 1 and "restore_refused" in r.stderr and "Ayni's schema does not" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    if db_url.startswith("sqlite"):
        assert "left untouched" in r.stderr and target_is_empty(target)
    else:
        assert "left as it was" in r.stderr and relations(target) == 0
        eng = create_engine(target)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'zz_f'")).scalar_one() == 0
        eng.dispose()
    c.dispose()


def test_sqlite_restore_copies_rows_into_our_schema_and_refuses_a_view_in_place_of_a_table(sqlite_url, tmp_path):
    """A dump whose `balances` is a view over another table (writes would go elsewhere) is refused;
    a good dump comes back with the schema our migrations make, not the dump's."""
    c = busy(sqlite_url, transfers=3)
    src = tmp_path / "src.ayni"
    backup(sqlite_url, src)
    work = tmp_path / "view.sqlite3"
    work.write_bytes(dump_of(src))
    conn = sqlite3.connect(work)
    conn.executescript("ALTER TABLE balances RENAME TO zz_b; CREATE VIEW balances AS SELECT * FROM zz_b;")
    conn.close()
    bad = tmp_path / "view.ayni"
    reseal(src, bad, work.read_bytes())
    r = ayni("restore", str(bad), "--db", f"sqlite:///{tmp_path}/v.db")
    assert r.returncode == 1 and "view balances" in r.stderr, r.stderr
    assert not (tmp_path / "v.db").exists()
    # a dump cut down by hand (a table dropped) is refused too
    work.write_bytes(dump_of(src))
    conn = sqlite3.connect(work)
    conn.executescript("DROP TABLE memos;")
    conn.close()
    reseal(src, bad, work.read_bytes())
    r = ayni("restore", str(bad), "--db", f"sqlite:///{tmp_path}/m.db")
    assert r.returncode == 1 and "lacks the table(s) memos" in r.stderr, r.stderr
    c.dispose()


def test_a_manifest_naming_another_community_is_refused(sqlite_url, tmp_path):
    """M2: every identity field is compared with what the restored database says, not only the head."""
    c = busy(sqlite_url, transfers=2)
    src = tmp_path / "src.ayni"
    backup(sqlite_url, src)
    for field_, value in (("community", "Coop Elsewhere"), ("communityId", "0x" + "11" * 32),
                          ("chainId", 999), ("genesisHash", "0x" + "22" * 32)):
        bad = tmp_path / f"{field_}.ayni"
        reseal(src, bad, edit=lambda m, f=field_, v=value: {**m, f: v})
        r = ayni("restore", str(bad), "--db", f"sqlite:///{tmp_path}/{field_}.db")
        assert r.returncode == 1 and f"the restored database says {field_}" in r.stderr, r.stderr
        assert not (tmp_path / f"{field_}.db").exists()
    r = ayni("restore", str(src), "--db", f"sqlite:///{tmp_path}/ok.db")
    assert r.returncode == 0, r.stderr
    with tarfile.open(src) as t:
        assert f"backup of {json.loads(t.extractfile('manifest.json').read())['community']!r}" in r.stdout
    c.dispose()


def test_crafted_manifests_and_a_newer_schema_are_one_line_refusals(db_url, target, tmp_path):
    """M3: wrong field types, a deeply nested manifest, an unknown schema revision (a backup made by
    a newer Ayni): one line, exit 1, no traceback, and the target stays empty."""
    c = busy(db_url, transfers=2)
    src = tmp_path / "src.ayni"
    backup(db_url, src)
    name = "ledger.sqlite3" if db_url.startswith("sqlite") else "ledger.pgdump"
    deep = tmp_path / "deep.ayni"
    pack(deep, b"[" * 100000 + b"]" * 100000, name, dump_of(src))
    cases = {deep: "the manifest is not JSON"}
    for field_, value, says in (("dump", "x", "field dump is str"), ("database", ["sqlite"], "field database is list"),
                                ("headSeq", "3", "field headSeq is str"),
                                ("schemaRevision", "ffffffffffff", "upgrade Ayni first; nothing was restored")):
        bad = tmp_path / f"{field_}.ayni"
        with tarfile.open(src) as t:
            manifest = json.loads(t.extractfile("manifest.json").read())
        pack(bad, json.dumps(seal({**manifest, field_: value})).encode(), name, dump_of(src))
        cases[bad] = says
    for path, says in cases.items():
        r = ayni("restore", str(path), "--db", target)
        assert r.returncode == 1 and says in r.stderr, (path.name, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert target_is_empty(target)
    c.dispose()


def test_pg_restore_errors_are_reported_by_their_error_line():
    """M4: pg_restore ends its stderr with the failed command's echo; the last line (");") says nothing."""
    from ledger.backup import _first_line
    stderr = ("pg_restore: while PROCESSING TOC:\npg_restore: from TOC entry 215; 1259 16390 TABLE entries postgres\n"
              "pg_restore: error: could not execute query: ERROR:  type \"entries\" already exists\n"
              "Command was: CREATE TABLE public.entries (\n    seq bigint NOT NULL\n);\n")
    assert _first_line(stderr) == 'pg_restore: error: could not execute query: ERROR:  type "entries" already exists'


def test_a_postgres_target_holding_functions_schemas_or_types_is_not_empty(db_url, target, tmp_path):
    """L1: a function, a domain or a bare schema is not a relation, but the target is not empty (an
    event trigger there would even fire on the restore's DDL)."""
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL catalogue check")
    c = busy(db_url, transfers=1)
    src = tmp_path / "src.ayni"
    backup(db_url, src)
    eng = create_engine(target, isolation_level="AUTOCOMMIT")
    for ddl, undo, says in (
            ("CREATE FUNCTION public.ledger_hook() RETURNS int LANGUAGE sql AS 'select 1'",
             "DROP FUNCTION public.ledger_hook()", "1 functions"),
            ("CREATE SCHEMA ayni", "DROP SCHEMA ayni", "1 schemas"),
            ("CREATE DOMAIN public.entries AS int", "DROP DOMAIN public.entries", "1 types")):
        with eng.connect() as conn:
            conn.execute(text(ddl))
        r = ayni("restore", str(src), "--db", target)
        assert r.returncode == 1 and "target_not_empty" in r.stderr and says in r.stderr, r.stderr
        with eng.connect() as conn:
            assert relations(target) == 0
            conn.execute(text(undo))
    eng.dispose()
    r = ayni("restore", str(src), "--db", target)  # and once it is empty, it restores
    assert r.returncode == 0, r.stderr
    c.dispose()


def test_a_killed_backups_work_folder_is_removed_by_the_next_backup(sqlite_url, tmp_path):
    """L4: a killed backup leaves `.NAME.PID.work/` holding a partial dump (personal data); the next
    backup to that name removes it when its process is gone, and leaves a running one's alone."""
    c = busy(sqlite_url, transfers=1)
    out = tmp_path / "coop.ayni"
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    stale = tmp_path / f".coop.ayni.{dead_pid.pid}.work"
    live = tmp_path / f".coop.ayni.{os.getppid()}.work"
    for folder in (stale, live):
        folder.mkdir(mode=0o700)
        (folder / "ledger.sqlite3").write_bytes(b"partial personal data")
    backup(sqlite_url, out)
    assert not stale.exists() and live.exists() and out.exists()
    c.dispose()


def test_never_overwrite_holds_against_a_name_that_appears_as_a_dangling_link(sqlite_url, tmp_path):
    """L6: "never overwrites" is kept by linking the finished file into place (fails if the name
    exists in any form), not by a look followed by a rename."""
    c = busy(sqlite_url, transfers=1)
    out = tmp_path / "coop.ayni"
    out.symlink_to(tmp_path / "elsewhere")  # exists() is False for it: a look-then-rename overwrites it
    r = ayni("backup", "--db", sqlite_url, "--out", str(out))
    assert r.returncode == 1 and "not overwritten" in r.stderr, r.stderr
    assert out.is_symlink() and not (tmp_path / "elsewhere").exists()
    good = tmp_path / "good.ayni"
    backup(sqlite_url, good)
    target = tmp_path / "restored.db"
    target.symlink_to(tmp_path / "nowhere.db")
    r = ayni("restore", str(good), "--db", f"sqlite:///{target}")
    assert r.returncode == 1 and "target_not_empty" in r.stderr, r.stderr
    assert target.is_symlink() and not (tmp_path / "nowhere.db").exists()
    c.dispose()


def test_the_restored_ledger_goes_on_anchoring_its_ids_follow_the_restored_rows(db_url, target, tmp_path):
    """Rows are loaded into tables our migrations made, so the id sequences must be set past the
    restored ids (PostgreSQL: setval): the next anchored batch gets a new id, not a duplicate key."""
    chain = AnchorChain.embedded()
    chain.deploy()
    c = busy(db_url, transfers=3)
    Anchoring(c.ledger, chain).run()
    out = tmp_path / "coop.ayni"
    backup(db_url, out)
    restore(out, target)
    c.dispose()
    restored = Ledger.open(target, migrate=False)
    try:
        before = len(Anchoring(restored, chain).batches())
        assert before >= 1
        keys = c.keys_list
        restored.submit_many(round_robin_transfers(c.domain, keys, 2, offset=30))
        Anchoring(restored, chain).run()
        assert len(Anchoring(restored, chain).batches()) == before + 1
        assert chain.last_anchored_seq() == restored.head()[0]
    finally:
        restored.close()
