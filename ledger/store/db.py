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
from urllib.parse import parse_qsl, quote, unquote, urlencode

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..core.errors import InsecureStorage, InvalidInput, LedgerError, NotInitialised

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


def redact(url: str) -> str:
    """`url` with its password replaced by *** (for every message that shows a URL: error
    messages reach journals and tickets)."""
    # greedy to the last "@": an unencoded "@" or "/" in the password is masked too
    return re.sub(r"(://[^/?#@:]*:).*@", r"\1***@", str(url))


_BRACKETED = re.compile(r"^\[([^\]]*)\](?::([^:]*))?$")


def _host_item(item: str, ports_beside: bool) -> tuple[str, str | None]:
    """One entry of a host list: `name`, `name:port`, `[v6]`, `[v6]:port`, a bare IPv6 address
    or a socket directory. With `port=` beside the list, entries carry no port."""
    item = item.strip()
    m = _BRACKETED.match(item)
    if m:
        host, port = m.group(1), m.group(2)
    elif "[" in item or "]" in item:
        raise InvalidInput(f"database URL: host {item!r} has an unmatched bracket (IPv6: [addr]:port)")
    elif ports_beside and item.count(":") == 1:
        raise InvalidInput("the database URL mixes host:port entries with a port= list: use one form "
                           "(docs/high-availability.md)")
    elif ports_beside or item.startswith("/") or item.count(":") != 1:
        host, port = item, None  # a name, a socket directory, or an IPv6 address without brackets
    else:
        host, port = item.split(":")
    if port is not None and ports_beside:
        raise InvalidInput("the database URL mixes host:port entries with a port= list: use one form "
                           "(docs/high-availability.md)")
    if port and not port.isdigit():
        raise InvalidInput(f"database URL: port {port!r} is not a number")
    if not host:
        raise InvalidInput("database URL: an empty host in the host list")
    return host, port or None


def libpq_conninfo(url: str) -> dict[str, str]:
    """A PostgreSQL URL as libpq keywords, whichever documented spelling names its servers
    (docs/high-availability.md, section 2):
      postgresql+psycopg://user:pw@h1:p1,[::1]:p2/db?target_session_attrs=read-write  (URI form)
      postgresql+psycopg://user@/db?host=h1:p1,h2:p2&...                              (one host= list)
      postgresql+psycopg://user@/db?host=h1,h2&port=p1,p2&...                         (libpq keywords)
      postgresql+psycopg://user@/db?host=h1:p1&host=h2:p2&...                         (SQLAlchemy's)
    Returns {"host": "h1,h2", "port": "p1,p2", "dbname", "user", "password", and every other query
    parameter (target_session_attrs, sslmode, connect_timeout, ...)}, keys present only when
    given; an empty port entry means libpq's default. Hosts are unbracketed (libpq's host keyword
    takes IPv6 as it is). For tools that take a conninfo string (pg_dump, psql, pg_restore):
    `psycopg.conninfo.make_conninfo(**info)` after popping "password" into PGPASSWORD.
    Raises InvalidInput (one line, no password) for a URL that is not PostgreSQL or is malformed."""
    m = _PG_SCHEME.match(url or "")
    if not m:
        raise InvalidInput(f"{redact(url)!r} is not a PostgreSQL URL")
    rest = url[m.end():]
    netloc, tail = _authority(rest)
    userinfo, at, hostpart = netloc.rpartition("@")
    path, _, query = tail.partition("?")
    out: dict[str, str] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            out["user"] = unquote(user)
        if colon:
            out["password"] = unquote(password)
    if path.strip("/"):
        out["dbname"] = unquote(path.lstrip("/"))
    params = parse_qsl(query, keep_blank_values=True)
    host_params = [v for k, v in params if k == "host"]
    port_params = [v for k, v in params if k == "port"]
    if hostpart and host_params:
        raise InvalidInput("the database URL names servers both before the path and in host=: use one form")
    if len(port_params) > 1:
        raise InvalidInput("the database URL has several port= parameters: give one list, port=p1,p2")
    beside = bool(port_params)
    lists = [hostpart] if hostpart else host_params
    hosts = [_host_item(item, beside) for value in lists for item in value.split(",") if item.strip()]
    ports = port_params[0].split(",") if beside else [p or "" for _, p in hosts]
    if beside and len(ports) not in (1, len(hosts)) and hosts:
        raise InvalidInput(f"the database URL names {len(hosts)} hosts but {len(ports)} ports")
    if any(p.strip() and not p.strip().isdigit() for p in ports):
        raise InvalidInput(f"database URL: port list {','.join(ports)!r} is not numbers")
    if hosts:
        out["host"] = ",".join(h for h, _ in hosts)
    if any(p.strip() for p in ports):
        out["port"] = ",".join(p.strip() for p in ports)
    for k, v in params:
        if k not in ("host", "port"):
            out[k] = v
    timeout = out.get("connect_timeout")
    if timeout is not None and not timeout.strip().lstrip("-").isdigit():
        raise InvalidInput(f"database URL: connect_timeout={timeout!r} is not a whole number of seconds")
    return out


def normalized_url(url: str) -> str:
    """One spelling for every multi-host form: `postgresql+psycopg://user:pw@/db?host=h1,h2&
    port=p1,p2&...` (libpq's keywords, which SQLAlchemy's psycopg dialect passes through as they
    are, IPv6 included). A URL naming one server, or not PostgreSQL, is returned unchanged."""
    if not _PG_SCHEME.match(url or "") or not _names_several_hosts(url):
        return url
    info = libpq_conninfo(url)
    cred = ""
    if "user" in info:
        cred = quote(info.pop("user"), safe="")
        if "password" in info:
            cred += ":" + quote(info.pop("password"), safe="")
        cred += "@"
    else:
        info.pop("password", None)
        cred = "@"
    db = quote(info.pop("dbname", ""), safe="")
    return f"postgresql+psycopg://{cred}/{db}?{urlencode(info, safe=',:/[]')}"


def _authority(rest: str) -> tuple[str, str]:
    """`user:pw@hosts` and the rest; the hosts end at the first / or ? after the last @ (so an
    unencoded / or @ in a password is not taken for the path)."""
    at = rest.rfind("@", 0, rest.find("?") if "?" in rest else len(rest))
    start = at + 1 if at >= 0 else 0
    cut = min((i for i in (rest.find("/", start), rest.find("?", start)) if i >= 0), default=len(rest))
    return rest[:cut], rest[cut:]


def _names_several_hosts(url: str) -> bool:
    m = _PG_SCHEME.match(url)
    netloc, tail = _authority(url[m.end():])
    hostpart = netloc.rpartition("@")[2]
    hosts = [v for k, v in parse_qsl(tail.partition("?")[2], keep_blank_values=True) if k == "host"]
    return "," in hostpart or len(hosts) > 1 or any("," in h for h in hosts)


def multi_host_url(url: str) -> str:
    """Kept for older callers: the URI form (`user@h1:p1,h2:p2/db`) moved into SQLAlchemy's
    repeated `?host=h1:p1&host=h2:p2`. make_engine uses normalized_url instead."""
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
    """`create=False`: an SQLite file must already exist (read-only commands never make one).
    A malformed URL is InvalidInput (one line, the password masked), never a traceback."""
    raw = resolve_url(url)
    try:
        return _make_engine(raw, create, **kwargs)
    except LedgerError:
        raise
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and the drivers raise many kinds
        detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise InvalidInput(f"database URL {redact(raw)!r} cannot be used: {detail[:200]}") from None


def _make_engine(url: str, create: bool, **kwargs) -> Engine:
    url = normalized_url(url)
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError and friends
        raise NotInitialised(f"{redact(url)!r} is not a database URL (e.g. sqlite:///ayni-data/ayni.db)") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        # refused by name: SQLAlchemy would otherwise try to import a driver we never ship
        # (mysql:// ends in a ModuleNotFoundError traceback)
        raise InvalidInput(f"unsupported database {parsed.drivername!r} "
                           "(use sqlite:/// or postgresql+psycopg://)")
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engine(url, parsed, create, **kwargs)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    libpq_conninfo(url)  # the checks (mixed host forms, ports, connect_timeout): InvalidInput, not 503 later
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    # pool_pre_ping: a pooled connection to a server that died (or was demoted) is replaced at
    # checkout, so the service finds the new primary after a failover without a restart.
    kwargs.setdefault("pool_pre_ping", True)
    # Pinned: the head-lock protocol is designed for READ COMMITTED (a server default of
    # REPEATABLE READ would turn every concurrent posting into a serialization failure).
    kwargs.setdefault("isolation_level", "READ COMMITTED")
    engine = create_engine(parsed, **kwargs)
    engine.dialect.create_connect_args(engine.url)  # SQLAlchemy's own URL checks now, not at first connect
    return engine


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
