"""The Alembic migrations create exactly the schema the code uses."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.store import migrate
from ledger.store.db import make_engine
from ledger.store.exchange_tables import schema_include_name
from ledger.store.tables import metadata


def test_migrations_match_the_tables_and_are_current(db_url):
    engine = make_engine(db_url)
    assert not migrate.is_current(engine)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent: a second `ayni init`/start is harmless
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": schema_include_name}), metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_connections_are_configured_for_safety(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                   ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000, "synchronous": 1}
    engine.dispose()
