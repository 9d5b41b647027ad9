"""Storage SQL behind the deployment's state gauges (ledger/monitoring.py): the log head,
anchoring lag, pending federation legs, the connection pool. Index or primary-key lookups only
(ix_anchor_batches_contract_first_seq, ix_remote_legs_state, entries' seq key), so a scrape every
15 s costs milliseconds on any ledger size."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from . import federation_tables as F
from . import tables as T


def read_state(engine: Engine, contract: str | None, now_ms: int) -> dict:
    out: dict = {}
    with engine.connect() as conn:
        head = conn.execute(select(T.ledger_head.c.seq).where(T.ledger_head.c.id == 1)).scalar() or 0
        out["head"] = head
        if contract:
            AB = T.anchor_batches
            through = conn.execute(select(func.max(AB.c.last_seq)).where(
                AB.c.contract == contract, AB.c.status == "confirmed")).scalar() or 0
            out["anchor_lag_entries"] = max(0, head - through)
            if head > through:  # the oldest entry still waiting: a primary-key lookup
                at = conn.execute(select(T.entries.c.at).where(T.entries.c.seq == through + 1)).scalar()
                out["anchor_lag_seconds"] = max(0.0, (now_ms - (at or now_ms)) / 1000)
            else:
                out["anchor_lag_seconds"] = 0.0
        L = F.remote_legs
        prepared = L.c.state == "prepared"
        out["legs_pending"] = conn.execute(select(func.count()).select_from(L).where(prepared)).scalar() or 0
        out["legs_overdue"] = conn.execute(select(func.count()).select_from(L).where(
            prepared, L.c.deadline < now_ms)).scalar() or 0
    return out


def pool_use(engine: Engine) -> tuple[int, int] | None:
    """(checked out, capacity = size + overflow) of a queue pool; None for pools without a size."""
    pool = engine.pool
    if not (hasattr(pool, "checkedout") and hasattr(pool, "size")):
        return None
    return int(pool.checkedout()), int(pool.size() + max(0, getattr(pool, "_max_overflow", 0)))


def sqlite_file(engine: Engine) -> Path | None:
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return Path(engine.url.database)
    return None


def postgres_data_directory(engine: Engine) -> Path | None:
    """PostgreSQL's data directory when the server runs on this machine and lets us see it
    (superuser or pg_read_all_settings); None otherwise."""
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SHOW data_directory").scalar()
    except Exception:  # noqa: BLE001 - not allowed to read it: the caller falls back
        return None
    path = Path(found) if found else None
    return path if path is not None and path.exists() else None


def schema_position(engine: Engine) -> tuple[str, str | None, str]:
    """(position, this database's revision, this release's head): position is "empty" (no Ayni
    schema), "current", "behind" (a revision this release knows, older than head: `ayni serve` or
    `ayni init` migrate it) or "ahead" (a revision this release does not know: the database was
    migrated by a newer release, which an older one must not touch)."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from .migrate import _config, current_revision, head_revision
    current, head = current_revision(engine), head_revision()
    if current is None:
        return "empty", None, head
    if current == head:
        return "current", current, head
    try:
        known = ScriptDirectory.from_config(_config()).get_revision(current) is not None
    except CommandError:
        known = False
    return ("behind" if known else "ahead"), current, head
