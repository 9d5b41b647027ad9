"""Shared fixtures: a fresh ledger on SQLite and (when reachable, always in CI) PostgreSQL."""
from __future__ import annotations

import os
import uuid
import warnings

import pytest
from sqlalchemy import create_engine, text

from ledger.sample import SampleCommunity

PG_ADMIN_URL = os.environ.get("AYNI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def pg_server_url():
    """URL of a throwaway database on the local PostgreSQL; required in CI."""
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {PG_ADMIN_URL} is unreachable: {problem}")
        warnings.warn(f"SKIPPING PostgreSQL tests: no server at {PG_ADMIN_URL} ({problem})")
        pytest.skip(f"!!! PostgreSQL unreachable at {PG_ADMIN_URL}: {problem} (required when CI=true)")
    name = f"ayni_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_pg(url: str) -> None:
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ayni.db"
    url = request.getfixturevalue("pg_server_url")
    _reset_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ayni.db"


class Community(SampleCommunity):
    """The one community builder (ledger/sample.py), plus what only tests need."""

    def snapshot(self):
        """Everything a refusal must leave unchanged: every table's rows."""
        from ledger.store.tables import metadata
        with self.ledger.engine.connect() as conn:
            return {t.name: sorted(map(tuple, conn.execute(t.select()).all()), key=repr)
                    for t in metadata.sorted_tables}


@pytest.fixture
def community(db_url):
    c = Community(db_url)
    yield c
    c.dispose()
