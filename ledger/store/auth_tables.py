"""Sign-in and throttling state (ledger/sessions.py, ledger/ratelimit.py), and its SQL.

Not part of the ledger: nothing here is in the entry log.
- `auth_challenges`: one row per EIP-4361 challenge that *signed in* (challenges are issued
  statelessly, api/auth.py): its nonce is the primary key, so an INSERT that finds it present
  means "already used". Every row may be deleted once it has expired. Created by migration
  0004 (`used_at` is always set now; the column stays for the schema).
- `rate_limit_counters`: fixed-window counters shared by every API worker (migration 0006);
  a key names the limit and a pseudonymous client or an address, never an IP address.
- `ix_entries_account_status_seq`: a partial index over the log's `account.status` entries
  (migration 0006), so "was this account frozen, closed or otherwise changed after this seq?"
  is one index probe per authenticated request (session revocation, docs/api.md).
Defined on the shared `metadata` so the schema test sees them.
"""
from __future__ import annotations

import json

from sqlalchemy import BigInteger, Column, Index, String, Table, case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from .stored import account_state
from .tables import ADDRESS, accounts, entries, metadata

auth_challenges = Table(
    "auth_challenges", metadata,
    Column("nonce", String(32), primary_key=True),
    Column("address", ADDRESS, nullable=False),       # EIP-55 checksummed
    Column("issued_at", BigInteger, nullable=False),  # unix seconds
    Column("expires_at", BigInteger, nullable=False),  # unix seconds
    Column("used_at", BigInteger, nullable=True),      # unix seconds; NULL = not yet used
    Index("ix_auth_challenges_expires_at", "expires_at"),
    Index("ix_auth_challenges_address", "address"),
)

rate_limit_counters = Table(
    "rate_limit_counters", metadata,
    Column("key", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # unix ms: the end of the counter's window
    Index("ix_rate_limit_counters_expires_at", "expires_at"),
)

STATUS_KIND = "account.status"  # the entries that end an account's sessions (freeze, close)
ix_entries_account_status_seq = Index(
    "ix_entries_account_status_seq", entries.c.seq,
    sqlite_where=entries.c.kind == STATUS_KIND, postgresql_where=entries.c.kind == STATUS_KIND)

DATABASE_ERRORS = (DBAPIError,)


# -- sign-in challenges -----------------------------------------------------------------------

def purge_expired_challenges(conn, now_s: int) -> int:
    c = auth_challenges.c
    return conn.execute(delete(auth_challenges).where(c.expires_at <= now_s)).rowcount


def record_used_challenge(conn, *, nonce: str, address: str, issued_at: int, expires_at: int,
                          now_s: int) -> bool:
    """Insert the consumed challenge; False (nothing written) if its nonce is already there.
    One INSERT .. ON CONFLICT DO NOTHING: of concurrent sign-ins with one message exactly one
    inserts, on SQLite and PostgreSQL."""
    t = auth_challenges
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(t).values(
        nonce=nonce, address=address, issued_at=issued_at, expires_at=expires_at, used_at=now_s)
    stmt = ins.on_conflict_do_nothing(index_elements=[t.c.nonce]).returning(t.c.nonce)
    return conn.execute(stmt).first() is not None  # RETURNING: rowcount is not portable here


# -- sessions -----------------------------------------------------------------------------------

def session_account(conn, address: str, since_seq: int):
    """(role, status, changed) of `address`, where `changed` says whether an account.status entry
    for it was posted after `since_seq`; None if there is no such account. The partial index
    returns only status entries (rare), whose bodies are then matched exactly."""
    row = conn.execute(select(accounts.c.role, accounts.c.status).where(accounts.c.address == address)).first()
    if row is None:
        return None
    bodies = conn.execute(select(entries.c.body).where(entries.c.kind == STATUS_KIND, entries.c.seq > since_seq)
                          .order_by(entries.c.seq)).scalars()
    changed = any(json.loads(body).get("account") == address for body in bodies)
    state = account_state(address, row.role, row.status)  # an altered role/status: IntegrityViolation
    return state.role, state.status, changed


# -- rate-limit counters -----------------------------------------------------------------------

def incr_counter(conn, key: str, *, amount: int, now_ms: int, window_ms: int) -> int:
    """Add `amount` to the counter of `key`, starting a new window if the last one ended; the
    new count. One statement (INSERT .. ON CONFLICT DO UPDATE .. RETURNING), atomic under
    concurrent workers on SQLite and PostgreSQL."""
    t = rate_limit_counters
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(t).values(
        key=key, count=amount, expires_at=now_ms + window_ms)
    ended = t.c.expires_at <= now_ms
    stmt = ins.on_conflict_do_update(index_elements=[t.c.key], set_={
        "count": case((ended, amount), else_=t.c.count + amount),
        "expires_at": case((ended, now_ms + window_ms), else_=t.c.expires_at),
    }).returning(t.c.count)
    return conn.execute(stmt).scalar_one()


def read_counter(conn, key: str, now_ms: int) -> tuple[int, int]:
    """(count, window end in unix ms) of `key`; (0, now) when it has none running."""
    t = rate_limit_counters
    row = conn.execute(select(t.c.count, t.c.expires_at).where(t.c.key == key, t.c.expires_at > now_ms)).first()
    return (row.count, row.expires_at) if row else (0, now_ms)


def clear_counters(conn, key: str | None = None) -> int:
    t = rate_limit_counters
    q = delete(t) if key is None else delete(t).where(t.c.key == key)
    return conn.execute(q).rowcount


def purge_expired_counters(conn, now_ms: int) -> int:
    t = rate_limit_counters
    return conn.execute(delete(t).where(t.c.expires_at <= now_ms)).rowcount
