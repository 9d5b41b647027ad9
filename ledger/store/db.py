"""Engine creation: one code path for SQLite and PostgreSQL.

SQLite: WAL (readers never block the writer), foreign keys on, a busy timeout, and
BEGIN IMMEDIATE so a writer takes the write lock when it starts instead of failing
half-way with "database is locked". PostgreSQL: READ COMMITTED plus a row lock
on ledger_head (see ledger.store.unit_of_work)."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..core.errors import InsecureStorage, InvalidInput, NotInitialised

DEFAULT_DB_URL = "sqlite:///ayni-data/ayni.db"
BUSY_TIMEOUT_MS = 30_000
# The databases Ayni runs on, and the drivers it installs for them.
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("AYNI_DB_URL") or DEFAULT_DB_URL


# libpq waits forever for a host that does not answer; with several hosts that would stall
# every new connection on a dead first host. A URL's own connect_timeout wins.
CONNECT_TIMEOUT_S = 10
_PG_SCHEME = re.compile(r"^(postgres|postgresql)(\+psycopg)?://", re.IGNORECASE)


def multi_host_url(url: str) -> str:
    """Spell a PostgreSQL URL naming several hosts the way SQLAlchemy's psycopg dialect reads it
    (`?host=h1:p1&host=h2:p2`). Accepted (docs/high-availability.md):
      postgresql+psycopg://user@h1:p1,h2:p2/db?target_session_attrs=read-write  (libpq's URI form)
      postgresql+psycopg://user@/db?host=h1:p1,h2:p2&target_session_attrs=...    (one host= list)
      postgresql+psycopg://user@/db?host=h1,h2&port=p1,p2&...                    (libpq keywords:
                                                                                  passed as they are)
      postgresql+psycopg://user@/db?host=h1:p1&host=h2:p2&...                    (SQLAlchemy's own)
    Anything else is returned unchanged."""
    m = _PG_SCHEME.match(url)
    if not m:
        return url
    rest = url[m.end():]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    user, at, hosts = netloc.rpartition("@")
    if "," in hosts:  # libpq URI form: the hosts move into the query, where the dialect reads them
        path, _, query = tail.partition("?")
        params = "&".join(f"host={h}" for h in hosts.split(",") if h)
        url = f"{m.group(0)}{user}{at}{path or '/'}?{params}{'&' + query if query else ''}"
    return url


def make_engine(url: str | None = None, *, create: bool = True, **kwargs) -> Engine:
    """`create=False`: an SQLite file must already exist (read-only commands never make one)."""
    url = multi_host_url(resolve_url(url))
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and friends
        raise NotInitialised(f"{url!r} is not a database URL (e.g. sqlite:///ayni-data/ayni.db)") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        # refused by name: SQLAlchemy would otherwise try to import a driver we never ship
        # (mysql:// ends in a ModuleNotFoundError traceback)
        raise InvalidInput(f"unsupported database {parsed.drivername!r} "
                           "(use sqlite:/// or postgresql+psycopg://)")
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(url, parsed, create, **kwargs)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    hosts = parsed.query.get("host")
    if isinstance(hosts, str) and "," in hosts and "port" not in parsed.query:
        # host=h1:p1,h2:p2 -> one host= per server (with port=p1,p2 beside it libpq splits them)
        parsed = parsed.update_query_dict({"host": tuple(h for h in hosts.split(",") if h)})
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    url = parsed.render_as_string(hide_password=False)
    # pool_pre_ping: a pooled connection to a server that died (or was demoted) is replaced at
    # checkout, so the service finds the new primary after a failover without a restart.
    kwargs.setdefault("pool_pre_ping", True)
    # Pinned: the head-lock protocol is designed for READ COMMITTED (a server default of
    # REPEATABLE READ would turn every concurrent posting into a serialization failure).
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, parsed, create: bool, **kwargs) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if path.is_dir():
            raise NotInitialised(f"{path} is a directory, not an SQLite database file")
        if not create and not path.exists():
            raise NotInitialised(f"no database at {path}: run `ayni init` first")
        _private_file(path)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # NORMAL in WAL mode: a commit survives a process crash; a power cut may lose
        # the last commits but never corrupts. Documented in docs/ledger-model.md.
        cur.execute("PRAGMA synchronous=NORMAL")
        # erased memos and profiles are overwritten with zeros, not left in free pages
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Readers (execution option ayni_readonly) must not take the write lock.
        readonly = conn.get_execution_options().get("ayni_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _private_file(path: Path) -> None:
    """The database holds memos, profiles, contacts and sign-in challenges: its directory is
    created 0700 and the file 0600 before SQLite opens it (SQLite gives the -wal and -shm files
    the database file's mode). An existing file, WAL or SHM that group or others may access is
    refused, as the API's token secret is: widening the mode is an operator's mistake to fix,
    not something to silently repair or accept."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # already there (or another worker made it just now): checked below
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InsecureStorage(f"database file {p} is accessible to group or others (mode "
                                  f"{stat.S_IMODE(mode):04o}); it holds personal data: run chmod 600 {p}")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
