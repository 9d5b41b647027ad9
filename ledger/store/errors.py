"""Database errors as domain errors: the store is the only layer that knows SQLAlchemy and
the drivers, so it is the only one that catches their exceptions. Faces (API, CLIs) then
handle one family, ledger.core.errors.LedgerError, whatever the database did."""
from __future__ import annotations

import contextlib
import sqlite3

from sqlalchemy import exc as sa_exc

from ..core import errors as E

try:  # the PostgreSQL driver is optional for an SQLite-only install
    import psycopg
    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, psycopg.Error)
    _DRIVER_INTEGRITY: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
    # A dead or switching server: connection refused or reset, "terminating connection due to
    # administrator command", "the database system is starting up", a node that is (still or
    # again) read-only. OperationalError also covers a cancelled statement or a lock timeout:
    # those rolled back, so a retry is just as safe.
    _CONNECTION_LOST: tuple[type[BaseException], ...] = (
        psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.ReadOnlySqlTransaction)
except ImportError:  # pragma: no cover
    _DRIVER_ERRORS, _DRIVER_INTEGRITY = (sqlite3.Error,), (sqlite3.IntegrityError,)
    _CONNECTION_LOST = ()

CONNECTION_LOST_HINT = ("no connection to a writable database (a server failed or is failing over); a write "
                        "under way may or may not have committed: retry the same signed request, a retry "
                        "never posts twice")


def is_connection_lost(exc: BaseException) -> bool:
    """True for a PostgreSQL connection that died or a server that cannot take writes right now
    (SQLite's "database is locked" is not one: it has its own busy timeout)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) if isinstance(exc, sa_exc.DBAPIError) else exc
    return bool(_CONNECTION_LOST) and isinstance(orig, _CONNECTION_LOST)


def as_domain_error(exc: BaseException) -> E.LedgerError | None:
    """The domain error for a database exception, or None when `exc` is not one."""
    if isinstance(exc, (sa_exc.IntegrityError, *_DRIVER_INTEGRITY)):
        return E.StoreConflict("a concurrent change collided with this one and it was rolled back; "
                               "read again and retry")
    if isinstance(exc, sa_exc.ArgumentError):  # a malformed database URL: permanent, not "retry later"
        return E.InvalidInput(f"database URL: {str(exc).strip().splitlines()[0][:200]}")
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    if is_connection_lost(exc):
        return E.StoreConnectionLost(f"database error: {first[:160]}; {CONNECTION_LOST_HINT}")
    if isinstance(exc, (sa_exc.SQLAlchemyError, *_DRIVER_ERRORS)):
        return E.StoreUnavailable(f"database error: {first[:200]}")
    return None


@contextlib.contextmanager
def domain_errors():
    """Re-raise database exceptions raised inside the block as LedgerError (chained, for logs)."""
    try:
        yield
    except E.LedgerError:
        raise
    except Exception as exc:  # noqa: BLE001 - only database errors are translated, others re-raised
        mapped = as_domain_error(exc)
        if mapped is None:
            raise
        raise mapped from exc
