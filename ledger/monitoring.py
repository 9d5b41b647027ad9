"""The deployment's state for monitoring (the /metrics gauges and `ayni doctor`): plain numbers
read through the store, so the faces hold no SQL (docs/layering.md)."""
from __future__ import annotations

import os
from pathlib import Path

from .service import Ledger
from .store import monitoring_sql


def state(ledger: Ledger, contract: str | None, now_ms: int) -> dict:
    """{head, anchor_lag_entries?, anchor_lag_seconds?, legs_pending, legs_overdue}; raises when
    the database cannot be reached (that is what ayni_database_up reports)."""
    return monitoring_sql.read_state(ledger.engine, contract, now_ms)


def pool_use(ledger: Ledger) -> tuple[int, int] | None:
    return monitoring_sql.pool_use(ledger.engine) if ledger.engine is not None else None


def data_dir(ledger: Ledger | None, fallback: str | os.PathLike) -> Path:
    """The folder whose filesystem holds the data: $AYNI_DATA_DISK_PATH when set (PostgreSQL on
    its own volume), else the SQLite file's folder, else PostgreSQL's data_directory when it is
    local and readable, else `fallback`'s folder (the session key's)."""
    explicit = os.environ.get("AYNI_DATA_DISK_PATH")
    if explicit:
        return Path(explicit).resolve()
    if ledger is not None and ledger.engine is not None:
        found = monitoring_sql.sqlite_file(ledger.engine)
        if found is not None:
            return found.resolve().parent
        pg = monitoring_sql.postgres_data_directory(ledger.engine)
        if pg is not None:
            return pg
    return Path(fallback).resolve().parent


def schema_position(url: str) -> tuple[str, str | None, str]:
    """Where the database at `url` stands against this release's migrations (see
    ledger.store.monitoring_sql.schema_position); never creates or migrates anything."""
    from .store.db import make_engine
    engine = make_engine(url, create=False)
    try:
        return monitoring_sql.schema_position(engine)
    finally:
        engine.dispose()
