"""`ayni backup` / `ayni restore`: one file that restores, or is refused before anything is touched.

A backup is a plain POSIX tar (an operator can still open it by hand with `tar` and `pg_restore`
when no Ayni is at hand) holding exactly two members, in this order:

    manifest.json     what the dump is: format, Ayni version, database kind, community, the head
                      (seq and chain hash) *inside* the dump, the dump's size and sha256, a self-hash
    ledger.sqlite3    SQLite: a copy made with the online backup API (consistent while serve writes)
 or ledger.pgdump     PostgreSQL: `pg_dump --format=custom --snapshot=...` of an exported snapshot

Why the head is taken inside the dump's own snapshot: the manifest is what restore holds the
restored database to, so it must describe exactly what the dump holds, not the live database a
moment later (SQLite: read from the copy; PostgreSQL: read in the REPEATABLE READ transaction whose
snapshot pg_dump imports).

Restore checks every byte of the file before it touches the target (tar header checksums, the
manifest's self-hash and field types, the dump's sha256, zero padding and the end-of-archive
marker) and refuses a target that holds anything. The checksums prove the file undamaged, not who
made it, so the dump's schema and code are never restored: the target's tables come from our own
migrations (at the manifest's revision) and only the known tables' rows are copied in (SQLite:
ATTACH read-only + INSERT ... SELECT; PostgreSQL: pg_restore only decodes the data, which goes in
through our own COPY statements, in one transaction). Then every identity field and the head are
checked against the manifest and the full verify (`ayni verify`) runs. SQLite is restored into a
temporary file beside the target and linked into place only when every check passed, so a refused
restore leaves the target as it was; for PostgreSQL a head or verify failure after the load leaves
the restored rows in the target: the error says so.

Cross-kind restore (an SQLite backup into PostgreSQL or back) is not supported: the dump formats
differ. This module is an adapter (files, subprocesses, SQL): the pure core stays out of it.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from .core import errors as E
from .store.db import make_engine
from .store.errors import domain_errors

FORMAT = "ayni-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP_NAMES = {"sqlite": "ledger.sqlite3", "postgresql": "ledger.pgdump"}
BLOCK = 512
CHUNK = 1 << 20
# the PostgreSQL client tools, where Debian and the PGDG packages put them
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class BackupError(E.LedgerError):
    code = "backup_failed"


class BackupDamaged(E.LedgerError):
    """The backup file is not what `ayni backup` wrote (a flipped byte, a truncated copy)."""
    code = "backup_damaged"


class TargetNotEmpty(E.LedgerError):
    code = "target_not_empty"


class RestoreRefused(E.LedgerError):
    """The restored data does not match its manifest, or does not verify."""
    code = "restore_refused"


def ayni_version() -> str:
    try:
        from importlib.metadata import version
        return version("ayni")
    except Exception:  # noqa: BLE001 - not installed (a source checkout): still make backups
        return "unknown"


def _kind(url: str) -> str:
    from .store.db import normalized_url, redact
    try:
        driver = make_url(normalized_url(url)).drivername
    except Exception:  # noqa: BLE001
        raise E.InvalidInput(f"{redact(url)!r} is not a database URL") from None
    if driver.startswith("sqlite"):
        return "sqlite"
    if driver.startswith("postgres"):
        return "postgresql"
    raise E.InvalidInput(f"unsupported database {driver!r} (use sqlite:/// or postgresql+psycopg://)")


def _sqlite_file(url: str) -> Path:
    from .store.db import normalized_url
    db = make_url(normalized_url(url)).database
    if not db or db == ":memory:":
        raise E.InvalidInput("an in-memory SQLite database has nothing to back up or restore into: give a file")
    return Path(db)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hex(b) -> str:
    return "0x" + bytes(b).hex()


def seal(manifest: dict) -> dict:
    """The manifest with `manifestSha256`: the sha256 of its canonical JSON without that field,
    so a damaged manifest (a flipped digit in headSeq) is refused before anything is restored."""
    body = {k: v for k, v in manifest.items() if k != "manifestSha256"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**body, "manifestSha256": hashlib.sha256(canon).hexdigest()}


# ---------------------------------------------------------------------------------------- facts
def _facts(rows) -> dict:
    """Head, community and schema revision from (ledger_head row, genesis row, revision)."""
    head, genesis, revision = rows
    if head is None or genesis is None:
        raise E.NotInitialised("no community in this database: nothing to back up")
    body = json.loads(genesis[0])
    return {"headSeq": int(head[0]), "headChainHash": _hex(head[1]),
            "communityId": body["domain"]["salt"], "community": body["community"],
            "chainId": int(body["domain"]["chainId"]), "genesisHash": _hex(genesis[1]),
            "schemaRevision": revision}


HEAD_SQL = "SELECT seq, chain_hash FROM ledger_head"
GENESIS_SQL = "SELECT body, entry_hash FROM entries WHERE seq = 1"
REVISION_SQL = "SELECT version_num FROM alembic_version"


def _sqlite_facts(path: Path) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the SQLite copy fails its integrity check: {check}")
        try:
            rows = (conn.execute(HEAD_SQL).fetchone(), conn.execute(GENESIS_SQL).fetchone(),
                    conn.execute(REVISION_SQL).fetchone())
        except sqlite3.OperationalError as exc:
            raise E.NotInitialised(f"no Ayni schema in this database ({exc})") from None
        return _facts((rows[0], rows[1], rows[2][0] if rows[2] else None))
    finally:
        conn.close()


# ------------------------------------------------------------------------------ PostgreSQL tools
def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], check=False, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


def _candidates(name: str) -> list[str]:
    """Where to look, in order: $AYNI_PG_BINDIR, PATH, `pg_config --bindir`, then every
    /usr/lib/postgresql/N/bin, newest first."""
    found: list[str] = []
    if os.environ.get("AYNI_PG_BINDIR"):
        found.append(os.path.join(os.environ["AYNI_PG_BINDIR"], name))
    if (p := shutil.which(name)):
        found.append(p)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], check=False, capture_output=True, text=True, timeout=30).stdout.strip()
            if bindir:
                found.append(os.path.join(bindir, name))
        except (OSError, subprocess.SubprocessError):
            pass

    def version_key(d: str) -> int:
        m = re.search(r"/(\d+)/bin$", d)
        return int(m.group(1)) if m else 0
    found += [os.path.join(d, name) for d in sorted(glob.glob(PG_BIN_GLOB), key=version_key, reverse=True)]
    out: list[str] = []
    for p in found:
        if p not in out and os.path.isfile(p) and os.access(p, os.X_OK):
            out.append(p)
    return out


def find_pg_tool(name: str, min_major: int) -> tuple[str, int]:
    """The first `name` (pg_dump, pg_restore) at least `min_major`: an older pg_dump cannot read
    a newer server, and an older pg_restore cannot read a newer dump."""
    seen = []
    for path in _candidates(name):
        major = _tool_major(path)
        seen.append(f"{path} ({major or '?'})")
        if major is not None and major >= min_major:
            return path, major
    if not seen:
        raise BackupError(f"{name} not found (looked in $AYNI_PG_BINDIR, PATH, `pg_config --bindir` and "
                          f"{PG_BIN_GLOB}): install the PostgreSQL client tools, version {min_major} or newer")
    raise BackupError(f"{name} must be version {min_major} or newer (the server's or the dump's), found only "
                      + ", ".join(seen))


def _libpq(url: str) -> tuple[str, dict]:
    """A libpq conninfo for the tools, from any documented spelling of the URL (multi-host lists
    included: ledger.store.db.libpq_conninfo), and the environment carrying the password (never
    on a command line, where `ps` shows it)."""
    from psycopg.conninfo import make_conninfo

    from .store.db import libpq_conninfo
    info = libpq_conninfo(url)
    env = dict(os.environ)
    password = info.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**info), env


def _first_line(stderr: str) -> str:
    """The line that says what went wrong: pg_restore/pg_dump end their stderr with an echo of
    the failed command ("Command was: ..."), so the last line is often a bare ");"."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln or "ERROR:" in ln:
            return ln
    return lines[0] if lines else "no message"


# ------------------------------------------------------------------------------------- backup
@dataclass
class BackupResult:
    path: Path
    manifest: dict


def _sqlite_dump(url: str, dest: Path) -> tuple[dict, dict]:
    src_path = _sqlite_file(url)
    if not src_path.exists():
        raise E.NotInitialised(f"no database at {src_path}")
    # read-write open (only reads happen): a read-only one fails on a WAL database whose -shm is gone
    src = sqlite3.connect(src_path, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            # pages=-1: one step, under one read transaction: in WAL mode that is one consistent
            # snapshot while writers go on (a multi-step copy would restart on every write)
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {src_path} failed: {exc}") from None
    finally:
        src.close()
    return _sqlite_facts(dest), {"tool": f"sqlite3 {sqlite3.sqlite_version} online backup API"}


def _pg_dump(url: str, dest: Path) -> tuple[dict, dict]:
    engine = make_engine(url, create=False)
    try:
        with domain_errors(), engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True) as conn, conn.begin():
            server = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            server_major = server // 10000
            pg_dump, major = find_pg_tool("pg_dump", server_major)
            # the snapshot pg_dump imports is this transaction's: the head read here is the dump's
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            try:
                rows = (conn.execute(text(HEAD_SQL)).first(), conn.execute(text(GENESIS_SQL)).first(),
                        conn.execute(text(REVISION_SQL)).first())
            except Exception as exc:  # noqa: BLE001 - undefined table: not an Ayni database
                raise E.NotInitialised(f"no Ayni schema in this database ({type(exc).__name__})") from None
            facts = _facts((rows[0], rows[1], rows[2][0] if rows[2] else None))
            uri, env = _libpq(url)
            r = subprocess.run([pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-password",
                                f"--file={dest}", f"--dbname={uri}"], check=False, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise BackupError(f"pg_dump failed: {_first_line(r.stderr)}")
    finally:
        engine.dispose()
    return facts, {"tool": f"pg_dump {major}", "toolMajor": major, "serverMajor": server_major}


def backup(url: str, out: Path, *, overwrite: bool = False, clock=time.time) -> BackupResult:
    """Write the backup of the database at `url` to `out` (0600, replaced atomically)."""
    kind = _kind(url)
    out = Path(out)
    if out.exists() and not overwrite:
        raise BackupError(f"{out} exists; backups are never overwritten by accident (give --overwrite or a new name)")
    if not out.parent.is_dir():
        raise BackupError(f"no folder {out.parent} for {out}")
    _clean_stale_work(out)
    work = out.with_name(f".{out.name}.{os.getpid()}.work")
    work.mkdir(mode=0o700)
    try:
        dump = work / DUMP_NAMES[kind]
        os.close(os.open(dump, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        facts, tool = (_sqlite_dump if kind == "sqlite" else _pg_dump)(url, dump)
        os.chmod(dump, 0o600)
        now = clock()
        manifest = seal({
            "format": FORMAT, "formatVersion": FORMAT_VERSION, "ayniVersion": ayni_version(),
            "database": kind, **facts, **tool,
            "createdAt": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
            "dump": {"name": dump.name, "bytes": dump.stat().st_size, "sha256": _sha256_file(dump)},
        })
        tmp = work / "backup.tar"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
                tar.addfile(_info(MANIFEST, len(data), now), _BytesReader(data))
                with open(dump, "rb") as d:
                    tar.addfile(_info(dump.name, manifest["dump"]["bytes"], now), d)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, out)
        else:
            try:  # a link fails if the name exists: a concurrent backup to the same name is never overwritten
                os.link(tmp, out)
            except FileExistsError:
                raise BackupError(f"{out} appeared while the backup ran; it was not overwritten "
                                  "(give --overwrite or a new name)") from None
        _fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(out, manifest)


def _clean_stale_work(out: Path) -> None:
    """Remove `.NAME.PID.work/` folders beside `out` whose process is gone: a killed backup
    leaves one behind, holding a partial dump (personal data) that nothing else would delete."""
    for folder in out.parent.glob(f".{glob.escape(out.name)}.*.work"):
        m = re.fullmatch(re.escape(f".{out.name}.") + r"(\d+)\.work", folder.name)
        if not m or not folder.is_dir() or folder.is_symlink():
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            continue  # that backup is still running (or the pid is reused: leave it, it is only a folder)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(folder, ignore_errors=True)


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(mtime)
    return info


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------- reading back
@dataclass
class CheckedBackup:
    path: Path
    manifest: dict
    dump_offset: int
    dump_size: int


def check_backup(path: Path) -> CheckedBackup:
    """Every byte of the file checked; BackupDamaged with one line saying what is wrong."""
    path = Path(path)
    name = path.name

    def damaged(why: str):
        return BackupDamaged(f"{name} is not a usable Ayni backup: {why}; nothing was restored")
    try:
        size = path.stat().st_size
        tar = tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise BackupError(f"no backup file {path}") from None
    except (tarfile.TarError, OSError) as exc:
        raise damaged(f"not a readable tar archive ({exc})") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise damaged(f"the archive is cut short or corrupt ({exc})") from None
        if len(members) != 2 or members[0].name != MANIFEST or not all(m.isreg() for m in members):
            raise damaged(f"expected {MANIFEST} and one dump, found {[m.name for m in members]} "
                          "(a truncated or altered file)")
        m_info, d_info = members
        raw = tar.extractfile(m_info).read()
        if len(raw) != m_info.size:
            raise damaged("the manifest is cut short")
        try:
            manifest = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: a crafted, deeply nested document
            raise damaged("the manifest is not JSON (damaged)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise damaged("the manifest is not an Ayni backup manifest")
        if seal(manifest).get("manifestSha256") != manifest.get("manifestSha256"):
            raise damaged("the manifest does not match its own sha256 (a changed byte)")
        if manifest.get("formatVersion") != FORMAT_VERSION:
            raise damaged(f"format version {manifest.get('formatVersion')!r}; this Ayni reads {FORMAT_VERSION}")
        if (why := _manifest_type_error(manifest)):
            raise damaged(f"the manifest's {why}")
        dump = manifest["dump"]
        if manifest.get("database") not in DUMP_NAMES or d_info.name != dump.get("name") \
                or d_info.name != DUMP_NAMES[manifest["database"]]:
            raise damaged(f"the dump member {d_info.name!r} is not the one the manifest names")
        if d_info.size != dump.get("bytes"):
            raise damaged(f"the dump holds {d_info.size} bytes, the manifest says {dump.get('bytes')}")
        end = d_info.offset_data + d_info.size
        if end > size:
            raise damaged(f"the file is truncated ({size} bytes, the dump alone ends at byte {end})")
    with open(path, "rb") as f:
        # padding after each member and the end-of-archive blocks must be zeros: then every byte is
        # covered by a check, and a copy cut anywhere (even in the trailer) is noticed
        spans = [(m_info.offset_data + m_info.size, d_info.offset), (end, size)]
        for start, stop in spans:
            f.seek(start)
            left = stop - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise damaged("the file is truncated")
                if chunk.count(0) != len(chunk):
                    raise damaged(f"unexpected bytes in the archive's padding near byte {f.tell() - len(chunk)}")
                left -= len(chunk)
        if size - _round_up(end) < 2 * BLOCK or size % tarfile.RECORDSIZE:
            # tarfile writes whole records (10240 bytes) ending in at least two zero blocks
            raise damaged("the end-of-archive marker is missing (a truncated copy)")
        f.seek(d_info.offset_data)
        h, left = hashlib.sha256(), d_info.size
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise damaged("the dump is truncated")
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != dump.get("sha256"):
        raise damaged("the dump's sha256 differs from the manifest's (the dump is corrupted)")
    return CheckedBackup(path, manifest, d_info.offset_data, d_info.size)


MANIFEST_TYPES = {"format": str, "formatVersion": int, "database": str, "headSeq": int, "headChainHash": str,
                  "communityId": str, "community": str, "chainId": int, "genesisHash": str, "schemaRevision": str,
                  "createdAt": str, "dump": dict}
DUMP_TYPES = {"name": str, "bytes": int, "sha256": str}


def _manifest_type_error(manifest: dict) -> str | None:
    """What is wrong with the manifest's field types, or None: everything after this reads the
    fields as these types (a crafted "dump": "x" must be one line, not a traceback)."""
    for fields, obj, prefix in ((MANIFEST_TYPES, manifest, ""), (DUMP_TYPES, manifest.get("dump"), "dump.")):
        if not isinstance(obj, dict):
            return f"{prefix.rstrip('.')} is not an object"
        for key, kind in fields.items():
            value = obj.get(key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return f"field {prefix}{key} is {type(value).__name__} {str(value)[:40]!r}, not {kind.__name__}"
    return None


def _round_up(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _extract(checked: CheckedBackup, dest: Path) -> None:
    """Copy the dump out to `dest` (0600), hashing again as it goes: the file could change
    between the check and the copy."""
    h, left = hashlib.sha256(), checked.dump_size
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(checked.path, "rb") as src, os.fdopen(fd, "wb") as out:
        src.seek(checked.dump_offset)
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if left or h.hexdigest() != checked.manifest["dump"]["sha256"]:
        dest.unlink(missing_ok=True)
        raise BackupDamaged(f"{checked.path.name} changed while it was being restored; nothing was restored")


# ------------------------------------------------------------------------------------ restore
# A backup file is input from outside: a re-sealed file (manifestSha256 is a checksum anyone can
# recompute, not a seal) may carry functions, triggers, views or extra tables. So restore never
# takes schema or code from the dump: the target's schema comes from our own migrations (to the
# manifest's revision), and only the rows of the tables those migrations made are copied in.
PG_TOC_ALLOWED = ("SEQUENCE OWNED BY", "SEQUENCE SET", "TABLE DATA", "FK CONSTRAINT", "CONSTRAINT",
                  "SEQUENCE", "DEFAULT", "INDEX", "TABLE")
PG_TOC_TABLE_BOUND = {"TABLE", "TABLE DATA", "CONSTRAINT", "FK CONSTRAINT", "DEFAULT"}
COPY_RE = re.compile(r'^COPY public\.("?)([a-z_][a-z0-9_]*)\1 \(([^)]*)\) FROM stdin;$')


def known_revision(revision) -> None:
    """RestoreRefused unless `revision` is one of this Ayni's migrations (checked before the
    target is touched: a backup made by a newer Ayni cannot be laid out by this one)."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from .store.migrate import _config
    try:
        ok = isinstance(revision, str) and ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except (CommandError, KeyError, ValueError):
        ok = False
    if not ok:
        raise RestoreRefused(f"the backup's schema revision {revision!r} is unknown to this Ayni (made by a newer "
                             "Ayni?): upgrade Ayni first; nothing was restored")


def _migrate_to(conn, revision: str) -> None:
    """Our migrations, up to `revision`, on `conn` (inside the caller's transaction)."""
    from alembic import command

    from .store.migrate import _config
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _sqlite_load(dump: Path, tmp: Path, revision: str) -> None:
    """A fresh database at `tmp` built by our migrations, then the dump's rows of the known
    tables copied in by explicit column lists. The dump is opened read-only and only SELECTed
    from; a dump holding a trigger, a view or a table our schema does not have is refused."""
    from .core.exchange import search_text
    from .store.exchange_tables import FTS_TABLE, is_search_object
    eng = make_engine(f"sqlite:///{tmp}", create=True)
    try:
        with eng.begin() as conn:
            _migrate_to(conn, revision)
    finally:
        eng.dispose()
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA foreign_keys=OFF")  # checked whole with foreign_key_check below
        try:
            conn.execute("ATTACH DATABASE ? AS dump", (f"file:{dump}?mode=ro",))
            objects = conn.execute("SELECT type, name FROM dump.sqlite_master").fetchall()
        except sqlite3.DatabaseError as exc:
            raise RestoreRefused(f"the dump is not a readable SQLite database ({exc})") from None
        ours = {n for (n,) in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        tables = {n for t, n in objects if t == "table"}
        extra = sorted(f"{t} {n}" for t, n in objects
                       if t in ("trigger", "view") or (t == "table" and n not in ours and not n.startswith("sqlite_stat")))
        if extra:
            raise RestoreRefused(f"the dump holds objects Ayni's schema does not: {', '.join(extra[:5])}"
                                 f"{' ...' if len(extra) > 5 else ''} (a crafted or foreign file)")
        if "ledger_head" not in tables or "entries" not in tables:
            raise RestoreRefused("the dump holds no Ayni ledger (no ledger_head or entries table)")
        missing = sorted(n for n in ours - tables if not is_search_object(n))
        if missing:  # `ayni backup` copies every table: a dump without one was cut down by hand
            raise RestoreRefused(f"the dump lacks the table(s) {', '.join(missing[:5])} of its schema revision")
        rev = conn.execute("SELECT version_num FROM dump.alembic_version").fetchall() \
            if "alembic_version" in tables else []
        if rev != [(revision,)]:
            raise RestoreRefused(f"the dump's schema revision {rev!r} is not the manifest's {revision!r}")
        conn.execute("BEGIN")
        for name in sorted(ours & tables):
            if name in ("alembic_version", "sqlite_sequence") or is_search_object(name):
                continue
            cols = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{name}")')]
            theirs = [r[1] for r in conn.execute(f'PRAGMA dump.table_info("{name}")')]
            if sorted(cols) != sorted(theirs):
                raise RestoreRefused(f"the dump's table {name} has columns {theirs}, Ayni's has {cols}")
            quoted = ", ".join(f'"{c}"' for c in cols)
            conn.execute(f'INSERT INTO main."{name}" ({quoted}) SELECT {quoted} FROM dump."{name}"')
        if FTS_TABLE in ours:  # the search index is rebuilt from the listings, never copied
            rows = conn.execute("SELECT text_rowid, id, title, description FROM main.listings").fetchall()
            conn.executemany(f"INSERT INTO {FTS_TABLE} (rowid, listing_id, title, description) VALUES (?, ?, ?, ?)",
                             [(r, i, search_text(t), search_text(d)) for r, i, t, d in rows])
        bad = conn.execute("PRAGMA main.foreign_key_check").fetchall()
        if bad:
            raise RestoreRefused(f"the dump's rows break {len(bad)} foreign key(s), first in table {bad[0][0]}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE dump")
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"the dump's rows could not be copied ({str(exc).splitlines()[0]})") from None
    finally:
        conn.close()


def _pg_toc(pg_restore: str, dump: Path) -> list[tuple[str, str, str, str]]:
    """(line, type, schema, name) of each entry in the dump's table of contents (pg_restore
    --list only decodes the file: nothing runs)."""
    r = subprocess.run([pg_restore, "--list", str(dump)], check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise RestoreRefused(f"pg_restore cannot read the dump: {_first_line(r.stderr)}")
    out = []
    for line in r.stdout.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        m = re.match(r"^\d+; \d+ \d+ (.*)$", line)
        rest = m.group(1) if m else line
        if re.match(r"^(SCHEMA - |COMMENT - SCHEMA |ACL - SCHEMA )public ", rest):
            continue  # the public schema itself (dumped when its owner or grants differ from the default)
        kind = next((k for k in PG_TOC_ALLOWED if rest.startswith(k + " ")), None)
        if kind is None:
            raise RestoreRefused(f"the dump holds {' '.join(rest.split()[:3])!r}, which Ayni's schema does not "
                                 "(a crafted or foreign file)")
        words = rest[len(kind) + 1:].split()
        out.append((line, kind, words[0] if words else "", words[1] if len(words) > 1 else ""))
    return out


def _pg_load(pg_restore: str, dump: Path, conn, revision: str, work: Path) -> None:
    """Schema from our migrations, then only the COPY data of the known tables, in foreign-key
    order, through our own COPY statements: pg_restore only decodes the file to text here."""
    from sqlalchemy import MetaData
    _migrate_to(conn, revision)
    meta = MetaData()
    meta.reflect(bind=conn, schema="public")
    order = [t.name for t in meta.sorted_tables]
    columns = {t.name: {c.name for c in t.columns} for t in meta.sorted_tables}
    toc = _pg_toc(pg_restore, dump)
    for _line, kind, schema, name in toc:
        if schema != "public" or (kind in PG_TOC_TABLE_BOUND and name not in columns):
            raise RestoreRefused(f"the dump holds {kind} {schema}.{name}, which Ayni's schema does not "
                                 "(a crafted or foreign file)")
    data = {name: line for line, kind, _s, name in toc if kind == "TABLE DATA"}
    if "ledger_head" not in data or "entries" not in data:
        raise RestoreRefused("the dump holds no Ayni ledger (no ledger_head or entries data)")
    missing = sorted(set(columns) - set(data))
    if missing:  # pg_dump writes every table's data, even an empty one's: this dump was cut down by hand
        raise RestoreRefused(f"the dump lacks the data of table(s) {', '.join(missing[:5])}")
    listing = work / "data.list"
    listing.write_text("".join(data[n] + "\n" for n in order if n in data))
    # stderr to a file, not a pipe: a full stderr pipe would stall the decode; closed in the finally
    errors = open(work / "pg_restore.err", "w+b")  # noqa: SIM115
    proc = subprocess.Popen([pg_restore, "--data-only", f"--use-list={listing}", "--file=-", str(dump)],
                            stdout=subprocess.PIPE, stderr=errors)
    raw = conn.connection.dbapi_connection
    seen_rev: list[str] = []
    try:
        with raw.cursor() as cur:
            copy = None
            for line in proc.stdout:
                if copy is None:
                    m = COPY_RE.match(line.decode("utf-8", "replace").rstrip("\n"))
                    if not m:
                        continue  # SET lines, comments: decoded, never executed
                    table = m.group(2)
                    cols = [c.strip().strip('"') for c in m.group(3).split(",")]
                    if table not in columns or not set(cols) <= columns[table]:
                        raise RestoreRefused(f"the dump's data for {table} names columns Ayni's schema does not have")
                    if table == "alembic_version":
                        copy = "alembic"
                        continue
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    copy = cur.copy(f'COPY public."{table}" ({quoted}) FROM STDIN')
                    writer = copy.__enter__()
                elif line == b"\\.\n":
                    if copy != "alembic":
                        copy.__exit__(None, None, None)
                    copy = None
                elif copy == "alembic":
                    seen_rev.append(line.decode().strip())
                else:
                    writer.write(line)
            if copy not in (None, "alembic"):
                raise RestoreRefused("the dump's data ends inside a table (truncated)")
            if proc.wait() != 0:
                errors.seek(0)
                err = errors.read().decode("utf-8", "replace")
                raise RestoreRefused(f"pg_restore could not decode the dump: {_first_line(err)}")
            if seen_rev != [revision]:
                raise RestoreRefused(f"the dump's schema revision {seen_rev!r} is not the manifest's {revision!r}")
            # sequences: the next id follows the restored rows
            for table, col, seq in conn.execute(text(
                    "SELECT table_name, column_name, pg_get_serial_sequence(format('public.%I', table_name), column_name) "
                    "FROM information_schema.columns WHERE table_schema = 'public'")).all():
                if seq:
                    conn.execute(text(f'SELECT setval(:s, coalesce((SELECT max("{col}") FROM public."{table}"), 1), '
                                      f'(SELECT count(*) > 0 FROM public."{table}"))'), {"s": seq})
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        errors.close()


@dataclass
class LostTail:
    """Entries the chain holds anchored past the restored head."""
    first_seq: int
    last_seq: int
    anchored_through: int
    mismatch: str | None = None  # the restored log differs from an anchored batch it still holds
    no_batch_here: bool = False  # the database records no confirmed batch on this contract

    def message(self) -> str:
        msg = (f"entries {self.first_seq}..{self.last_seq} were anchored but are missing: the database lost its "
               "tail (see docs/backup.md, 'A restore that lost its tail': keep the service stopped, collect the "
               "missing entries, never re-use those seqs)")
        if self.no_batch_here:
            # the first batch is longer than the log, so its root cannot be recomputed: a foreign
            # contract looks exactly like a lost tail; say so rather than send the operator hunting
            msg += ("; or this is not this community's contract: the database records no batch on it "
                    "(check --contract)")
        return msg


@dataclass
class RestoreResult:
    manifest: dict
    target: str
    entries: int
    facts: dict = field(default_factory=dict)  # what the restored database says (community, head, ...)
    chain_checked: bool = False
    lost_tail: LostTail | None = None
    chain_problem: str | None = None
    notes: list[str] = field(default_factory=list)


PG_NOT_EMPTY_SQL = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') AS relations,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) AS functions,
       (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
           AND t.typelem = 0 AND t.typrelid = 0) AS types,
       (SELECT count(*) FROM pg_namespace n WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') AS schemas,
       (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS extensions,
       (SELECT count(*) FROM pg_event_trigger) AS event_triggers
"""


def _pg_holds(url: str) -> dict:
    """What the target holds beyond a fresh `createdb` (non-zero counts only). Functions, types,
    schemas, extensions and above all event triggers count: an event trigger would fire on the
    migrations' DDL."""
    engine = make_engine(url, create=False)
    try:
        with domain_errors(), engine.connect() as conn:
            row = conn.execute(text(PG_NOT_EMPTY_SQL)).mappings().one()
    finally:
        engine.dispose()
    return {k: int(v) for k, v in row.items() if v}


def _pg_is_empty(url: str) -> None:
    held = _pg_holds(url)
    if held:
        what = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in held.items())
        raise TargetNotEmpty(f"the target database holds {what}: restore only into a new, empty database "
                             "(createdb NAME); nothing was changed")


IDENTITY = ("community", "communityId", "chainId", "genesisHash", "schemaRevision")


def _db_facts(url: str) -> dict:
    engine = make_engine(url, create=False)
    try:
        with domain_errors(), engine.connect() as conn:
            rows = (conn.execute(text(HEAD_SQL)).first(), conn.execute(text(GENESIS_SQL)).first(),
                    conn.execute(text(REVISION_SQL)).first())
    finally:
        engine.dispose()
    return _facts((rows[0], rows[1], rows[2][0] if rows[2] else None))


def _check_restored(url: str, manifest: dict, where: str) -> tuple[int, dict]:
    """Every identity field and the head against the manifest, then the full verify;
    RestoreRefused naming `where` (what the target is left holding) on any difference or any
    failure on the way. (The number of entries verified, what the database says.)"""
    try:
        return _check_restored_inner(url, manifest, where)
    except RestoreRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke, the operator needs one line and where things stand
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise RestoreRefused(f"the restored database could not be checked ({type(exc).__name__}: {first}); "
                             f"{where}") from None


def _check_restored_inner(url: str, manifest: dict, where: str) -> tuple[int, dict]:
    from .service import Ledger
    facts = _db_facts(url)
    for key in IDENTITY:
        if facts[key] != manifest[key]:
            held = "" if key == "community" else f" (its community is {facts['community']!r})"
            raise RestoreRefused(f"the restored database says {key} {facts[key]!r} but the manifest says "
                                 f"{manifest[key]!r}{held}; {where}")
    seq, chain_hash = facts["headSeq"], facts["headChainHash"]
    if (seq, chain_hash) != (manifest["headSeq"], manifest["headChainHash"]):
        raise RestoreRefused(f"the restored head is seq {seq} ({chain_hash}) but the manifest says seq "
                             f"{manifest['headSeq']} ({manifest['headChainHash']}); {where}")
    ledger = Ledger.open(url, migrate=True)  # an older backup's schema is brought up to this version's
    try:
        report = ledger.verify()
        faults = report.chain_faults + report.replay_faults + report.balance_faults
        if not report.ok:
            first = str(faults[0]) if faults else f"zero-sum faults {report.zero_sum_faults}"
            raise RestoreRefused(f"the restored ledger does not verify ({len(faults)} fault(s), first: {first}); "
                                 f"{where}")
        last = ledger.head()
        if (last[0], _hex(last[1])) != (manifest["headSeq"], manifest["headChainHash"]):
            raise RestoreRefused(f"after verification the head is seq {last[0]}, not the manifest's "
                                 f"{manifest['headSeq']}; {where}")
        return report.entries, facts
    finally:
        ledger.close()


def restore(path: Path, url: str, *, chain=None) -> RestoreResult:
    """Restore the backup at `path` into the empty database `url`. `chain`: an AnchorReader on
    the community's Anchor contract (or None): then the lost-tail check runs too."""
    kind = _kind(url)
    checked = check_backup(Path(path))  # before the target is even looked at
    manifest = checked.manifest
    if manifest["database"] != kind:
        raise BackupError(f"this is a {manifest['database']} backup and the target is {kind}: restoring across "
                          "database kinds is not supported (restore into the same kind, then migrate the data)")
    known_revision(manifest["schemaRevision"])
    if kind == "sqlite":
        result = _restore_sqlite(checked, url)
    else:
        result = _restore_pg(checked, url)
    if chain is not None:
        result.chain_checked = True
        try:
            result.lost_tail = lost_tail(url, chain)
        except Exception as exc:  # noqa: BLE001 - the restore itself is done; say why the check was not
            result.chain_problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return result


def _restore_sqlite(checked: CheckedBackup, url: str) -> RestoreResult:
    target = _sqlite_file(url)
    # a non-empty -journal beside it is a hot journal SQLite would roll into the restored file
    for p in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-journal")):
        if p.exists() and (p.stat().st_size > 0 or not p.is_file()):
            raise TargetNotEmpty(f"{p} exists and is not empty: restore only into a new file; nothing was changed")
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.restore-{os.getpid()}")
    dump = target.with_name(f".{target.name}.dump-{os.getpid()}")
    scratch = [tmp, dump] + [Path(f"{p}{s}") for p in (tmp, dump) for s in ("-wal", "-shm", "-journal")]
    for p in scratch:
        p.unlink(missing_ok=True)
    where = f"the target {target} was left untouched"
    try:
        _extract(checked, dump)
        try:
            _sqlite_load(dump, tmp, checked.manifest["schemaRevision"])
        except RestoreRefused as exc:
            raise RestoreRefused(f"{exc.message}; {where}") from None
        except Exception as exc:  # noqa: BLE001 - one line, and where the target stands
            raise RestoreRefused(f"loading the dump failed ({type(exc).__name__}: {_first_line(str(exc))}); "
                                 f"{where}") from None
        dump.unlink()
        entries, facts = _check_restored(f"sqlite:///{tmp.resolve()}", checked.manifest, where)
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL in: one file to install
        finally:
            conn.close()
        os.chmod(tmp, 0o600)
        if target.exists():
            if target.stat().st_size > 0 or any(target.with_name(target.name + s).exists()
                                                and target.with_name(target.name + s).stat().st_size > 0
                                                for s in ("-wal", "-journal")):
                raise TargetNotEmpty(f"{target} was written to during the restore; the restore was not installed")
            target.unlink()  # the empty file the operator made
        for s in ("-wal", "-shm"):
            target.with_name(target.name + s).unlink(missing_ok=True)  # empty (checked above): stale
        try:
            os.link(tmp, target)  # fails if a file appeared under the name meanwhile: never overwrite
        except FileExistsError:
            raise TargetNotEmpty(f"{target} appeared during the restore; the restore was not installed") from None
        _fsync_dir(target.parent)
    finally:
        for p in scratch:
            p.unlink(missing_ok=True)
    return RestoreResult(checked.manifest, str(target), entries, facts)


def _restore_pg(checked: CheckedBackup, url: str) -> RestoreResult:
    _pg_is_empty(url)
    pg_restore, _ = find_pg_tool("pg_restore", int(checked.manifest.get("toolMajor") or 0))
    work = checked.path.with_name(f".{checked.path.name}.{os.getpid()}.restore")
    try:
        work.mkdir(mode=0o700)
    except OSError:
        import tempfile
        work = Path(tempfile.mkdtemp(prefix="ayni-restore-"))
    as_was = "the target was left as it was (the load ran in one transaction)"
    try:
        dump = work / DUMP_NAMES["postgresql"]
        _extract(checked, dump)
        engine = make_engine(url, create=False)
        try:
            with domain_errors(), engine.connect() as conn, conn.begin():
                try:
                    _pg_load(pg_restore, dump, conn, checked.manifest["schemaRevision"], work)
                except RestoreRefused as exc:
                    raise RestoreRefused(f"{exc.message}; {as_was}") from None
                except E.LedgerError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a bad row, a broken constraint: one line
                    first = _first_line(str(exc))
                    raise RestoreRefused(f"loading the dump failed ({type(exc).__name__}: {first}); "
                                         f"{as_was}") from None
        finally:
            engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = ("the target database now holds the unverified restore: do not serve it; drop it "
             "(dropdb) and restore another backup")
    entries, facts = _check_restored(url, checked.manifest, where)
    return RestoreResult(checked.manifest, make_url(url).render_as_string(hide_password=True), entries, facts)


# --------------------------------------------------------------------------------- lost tail
def lost_tail(url: str, chain) -> LostTail | None:
    """Compare the database's head with what the community's Anchor contract holds: entries
    anchored past the head were in the log once and are gone (an old backup restored, a disk
    lost). Also recomputes the root of the last anchored batch the log still holds (the one its
    own records name), so a restored log that is a different history is not taken for a shorter one.
    One eth_call for the range; a log query only for that batch (and the event scan only when
    the contract's head is a retirement or a hostile batch's, where lastAnchoredSeq says nothing)."""
    from .anchoring import Anchoring
    from .service import Ledger
    from .verify.chain_types import IMPLAUSIBLE_SEQ, implausible
    ledger = Ledger.open(url, migrate=False)
    try:
        head_seq, _ = ledger.head()
        through = chain.last_anchored_seq()
        if through >= IMPLAUSIBLE_SEQ:  # retired (2**64-1) or a leaked key's jump: the honest batches say
            through = max((ev.last_seq for ev in chain.anchored_events()
                           if not implausible(ev.first_seq, ev.last_seq)), default=0)
        job = Anchoring(ledger, contract=chain.contract_address)
        mismatch = None
        # the first batch (it always starts at seq 1: the wrong contract, another community) and the
        # last one this database records (a history rewritten later on)
        confirmed = [b for b in job.batches(include_failed=False) if b["status"] == "confirmed"]
        known = [b for b in confirmed if b["last_seq"] <= head_seq]
        for first in sorted({1} | ({known[-1]["first_seq"]} if known else set())):
            ev = chain.find_batch(first) if through else None
            if ev is None:
                if first != 1:
                    mismatch = (f"this database records batch {first}..{known[-1]['last_seq']} as anchored, and the "
                                "chain has no batch there: it is not this contract's history")
            elif ev.last_seq <= head_seq and job.tree(ev.first_seq, ev.last_seq).root != ev.root:
                mismatch = (f"the restored entries {ev.first_seq}..{ev.last_seq} differ from the batch anchored in "
                            f"tx {ev.tx_hash}: this is not the anchored history")
            if mismatch:
                break
        if through <= head_seq and mismatch is None:
            return None
        return LostTail(head_seq + 1, through, through, mismatch, no_batch_here=not confirmed)
    finally:
        ledger.close()
