"""What every `ayni` command shares: the --db and --json options, defined once, one way to
fail (a one-line message, a non-zero exit, never a traceback) and one way to open the ledger.

`--db` takes a database URL everywhere. A bare file path is accepted too, as a convenience,
but is never misread: anything with "://" is a URL; a path becomes sqlite:///<absolute path>;
something that looks like a URL without "//" (`sqlite:x.db`) is refused rather than taken for
a file name (the old demo made a folder called `sqlite:` that way)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from ..core.text import visible

DB_HELP = ("Database URL, e.g. sqlite:///ayni-data/ayni.db or postgresql://user@host/db; a bare file path "
           "means an SQLite file (default: $AYNI_DB_URL or sqlite:///ayni-data/ayni.db)")
JSON_HELP = "Machine-readable output"

# A scheme followed by ":" but not "//": a URL typed wrong, not a file name.
_SCHEME_ONLY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?!//)")


def print_error(message: str) -> None:
    """`error: message` on stderr, on one line: untrusted parts are made visible, so a newline
    or an escape sequence in, say, a file name cannot forge more output."""
    typer.secho("error:", fg="red", err=True, nl=False)
    typer.echo(f" {visible(str(message))}", err=True)


def say(text: object, *, err: bool = False) -> None:
    """Print a command's output. Anything in it may come from the database (org names, fault
    descriptions, currency codes) or a chain node, so every line goes through `visible`: a
    stored escape sequence or bidi override is shown, never obeyed by the terminal. Lines are
    the command's own, so a newline in the text given here is kept."""
    typer.echo("\n".join(visible(line) for line in str(text).split("\n")), err=err)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print the one-line error and exit with `code` (never 0)."""
    print_error(message)
    raise typer.Exit(code or 1)


def fail_error(exc: Exception) -> NoReturn:
    """One line for a refused command; exit 2 when the database could not serve (as before the
    service translated driver errors: scripts tell "unreachable" from "refused" by it), else 1."""
    fail(str(exc), 2 if getattr(exc, "code", None) == "unavailable" else 1)


def database_url(value: str | None) -> str:
    """The database URL a --db value means (see the module docstring)."""
    from ..service import resolve_url
    if value is not None and not value.strip():
        fail("--db is empty: give a database URL such as sqlite:///ayni-data/ayni.db")
    value = resolve_url(value)  # the option, else $AYNI_DB_URL, else the default: one rule for all three
    if "://" in value:
        return value
    if _SCHEME_ONLY.match(value) and not Path(value).exists():
        fail(f"--db {value!r} is neither a URL (scheme://...) nor a file path; "
             "an SQLite URL has three slashes: sqlite:///path/to/ayni.db")
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file an SQLite URL names (None for another database or an in-memory one)."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite":
        return None
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:])  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db


def persistent_url(url: str) -> str:
    """`url`, unless it is an in-memory SQLite database (`sqlite://`): `init` and `serve` would
    then create a community that vanishes when the process ends."""
    if url.split("://", 1)[0].split("+")[0] == "sqlite" and sqlite_path(url) is None:
        fail(f"--db {url} is an in-memory database: nothing would persist; "
             "give a file, e.g. sqlite:///ayni-data/ayni.db")
    return url


def _db_callback(value: str | None) -> str:
    return database_url(value)


Db = Annotated[Optional[str], typer.Option("--db", help=DB_HELP, callback=_db_callback, show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def open_ledger(url: str, *, migrate: bool = False):
    """The service for an already resolved --db URL; a missing or unmigrated database is a
    clear one-line error, not a traceback."""
    from ..core.errors import LedgerError
    from ..service import Ledger
    try:
        return Ledger.open(url, migrate=migrate)
    except LedgerError as exc:
        fail_error(exc)
