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
manifest's self-hash, the dump's sha256, zero padding and the end-of-archive marker), refuses a
target that holds anything, restores, checks the restored head against the manifest and runs the
full verify (`ayni verify`). SQLite is restored into a temporary file beside the target and renamed
into place only when every check passed, so a refused restore leaves the target as it was;
PostgreSQL restores with `pg_restore --single-transaction` (a failed load leaves nothing), but a
head or verify failure after the load leaves the restored rows in the target: the error says so.

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
    try:
        driver = make_url(url).drivername
    except Exception:  # noqa: BLE001
        raise E.InvalidInput(f"{url!r} is not a database URL") from None
    if driver.startswith("sqlite"):
        return "sqlite"
    if driver.startswith("postgres"):
        return "postgresql"
    raise E.InvalidInput(f"unsupported database {driver!r} (use sqlite:/// or postgresql+psycopg://)")


def _sqlite_file(url: str) -> Path:
    db = make_url(url).database
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
    """A libpq URI for the tools, and the environment carrying the password (never on a command
    line, where `ps` shows it)."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    query = dict(u.query)
    hosts = query.get("host")
    if isinstance(hosts, tuple) or (isinstance(hosts, str) and ":" in hosts and "," not in hosts):
        # SQLAlchemy's multi-host form (?host=a:5432&host=b:5433) is libpq's host=a,b&port=5432,5433
        pairs = [h.rsplit(":", 1) if ":" in h else [h, ""] for h in (hosts if isinstance(hosts, tuple) else (hosts,))]
        query["host"] = ",".join(h for h, _ in pairs)
        if any(p for _, p in pairs):
            query["port"] = ",".join(p or "5432" for _, p in pairs)
    u = u.set(drivername="postgresql", password=None, query=query)
    return u.render_as_string(hide_password=False), env


def _first_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


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
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(out, manifest)


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
        except ValueError:
            raise damaged("the manifest is not JSON (damaged)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise damaged("the manifest is not an Ayni backup manifest")
        if seal(manifest).get("manifestSha256") != manifest.get("manifestSha256"):
            raise damaged("the manifest does not match its own sha256 (a changed byte)")
        if manifest.get("formatVersion") != FORMAT_VERSION:
            raise damaged(f"format version {manifest.get('formatVersion')!r}; this Ayni reads {FORMAT_VERSION}")
        dump = manifest.get("dump") or {}
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
@dataclass
class LostTail:
    """Entries the chain holds anchored past the restored head."""
    first_seq: int
    last_seq: int
    anchored_through: int
    mismatch: str | None = None  # the restored log differs from an anchored batch it still holds

    def message(self) -> str:
        return (f"entries {self.first_seq}..{self.last_seq} were anchored but are missing: the database lost its "
                "tail (see docs/backup.md, 'A restore that lost its tail': keep the service stopped, collect the "
                "missing entries, never re-use those seqs)")


@dataclass
class RestoreResult:
    manifest: dict
    target: str
    entries: int
    chain_checked: bool = False
    lost_tail: LostTail | None = None
    chain_problem: str | None = None
    notes: list[str] = field(default_factory=list)


def _pg_is_empty(url: str) -> None:
    engine = make_engine(url, create=False)
    try:
        with domain_errors(), engine.connect() as conn:
            n = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'")).scalar_one()
    finally:
        engine.dispose()
    if n:
        raise TargetNotEmpty(f"the target database holds {n} relation(s): restore only into a new, empty database "
                             "(createdb NAME); nothing was changed")


def _read_head(url: str) -> tuple[int, str]:
    engine = make_engine(url, create=False)
    try:
        with domain_errors(), engine.connect() as conn:
            row = conn.execute(text(HEAD_SQL)).first()
    finally:
        engine.dispose()
    return (int(row[0]), _hex(row[1])) if row else (0, _hex(bytes(32)))


def _check_restored(url: str, manifest: dict, where: str) -> int:
    """Head against the manifest, then the full verify; RestoreRefused naming `where` (what the
    target is left holding) on any difference. The number of entries verified."""
    from .service import Ledger
    seq, chain_hash = _read_head(url)
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
        return report.entries
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
    for p in (target, target.with_name(target.name + "-wal")):
        if p.exists() and p.stat().st_size > 0:
            raise TargetNotEmpty(f"{p} exists and is not empty: restore only into a new file; nothing was changed")
    if not target.parent.exists():
        target.parent.mkdir(parents=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.restore-{os.getpid()}")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    try:
        _extract(checked, tmp)
        entries = _check_restored(f"sqlite:///{tmp.resolve()}", checked.manifest,
                                  f"the target {target} was left untouched")
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL in: one file to move
        finally:
            conn.close()
        for p in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            if p.exists() and p.stat().st_size > 0 and p == target:
                raise TargetNotEmpty(f"{target} was written to during the restore; the restore was not installed")
            p.unlink(missing_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            p.unlink(missing_ok=True)
    return RestoreResult(checked.manifest, str(target), entries)


def _restore_pg(checked: CheckedBackup, url: str) -> RestoreResult:
    _pg_is_empty(url)
    pg_restore, _ = find_pg_tool("pg_restore", int(checked.manifest.get("toolMajor") or 0))
    work = checked.path.with_name(f".{checked.path.name}.{os.getpid()}.restore")
    try:
        work.mkdir(mode=0o700)
    except OSError:
        import tempfile
        work = Path(tempfile.mkdtemp(prefix="ayni-restore-"))
    try:
        dump = work / DUMP_NAMES["postgresql"]
        _extract(checked, dump)
        uri, env = _libpq(url)
        # one transaction: a load that fails half-way leaves the target empty, as it was
        r = subprocess.run([pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                            "--no-password", f"--dbname={uri}", str(dump)], check=False, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise BackupError(f"pg_restore failed: {_first_line(r.stderr)}; the target was left empty")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = ("the target database now holds the unverified restore: do not serve it; drop it "
             "(dropdb) and restore another backup")
    entries = _check_restored(url, checked.manifest, where)
    return RestoreResult(checked.manifest, make_url(url).render_as_string(hide_password=True), entries)


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
        known = [b for b in job.batches(include_failed=False) if b["status"] == "confirmed" and b["last_seq"] <= head_seq]
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
        return LostTail(head_seq + 1, through, through, mismatch)
    finally:
        ledger.close()
