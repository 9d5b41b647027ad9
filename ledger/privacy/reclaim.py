"""Removing erased rows' bytes from the database files, without ever making a payment wait.

A deleted row is not yet gone from the disk. SQLite (every connection runs secure_delete, so
freed bytes in the database file are zeroed) still holds the old page images in the
write-ahead log until the log is checkpointed into the file and truncated. PostgreSQL keeps
the dead row version in the table file until VACUUM removes it.

Neither may stall posting. SQLite's TRUNCATE checkpoint holds the write lock while it waits
for readers (up to the busy timeout: issue 23 measured a transfer waiting 28 s behind one
reader), so an attempt here never waits: busy timeout 0 on its connection, a PASSIVE
checkpoint first (no write lock; it copies only what no reader still needs) and a TRUNCATE
only once that copied every frame, which then fails at once rather than wait if a reader came
back. PostgreSQL's VACUUM never blocks inserts, but cannot remove a row version that an open
snapshot older than the erasure may still see, so an attempt first asks whether such a
snapshot exists and, if so, leaves the work pending.

An attempt that cannot finish leaves the reclaim pending: a background thread (one per
ledger, per process) retries with growing pauses until it succeeds, and the retention run
(`ayni retention run`, `ayni serve --retention-every`) tries too. The erasure response says
`bytesOnDisk: "gone" | "pending"`, and `GET /v1/accounts/{me}/erasure` says when pending
became gone. The state is the process's own: after a restart nothing is "gone" until an
attempt succeeds (the first erasure or question starts one), and with several worker
processes each knows only the erasures it served."""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from ..store.db import BUSY_TIMEOUT_MS

GONE, PENDING = "gone", "pending"
RETRY_PAUSES_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s until done
MAX_FAILURES = 20  # errors (not busy readers) in a row before the thread stops until asked again


@dataclass(frozen=True)
class Attempt:
    gone: bool
    why: str = ""          # why not (yet): busy readers, a failed VACUUM
    failed: bool = False   # an error, not merely readers still busy (reported as a warning)


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def sqlite_checkpoint(engine) -> Attempt:
    """Checkpoint the whole WAL into the database file and truncate it, never waiting: the
    write lock is taken only by the final TRUNCATE, which gives up at once if anything is busy."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA busy_timeout=0")
        try:
            busy, log, copied = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if log == -1:  # not in WAL mode (an in-memory database): nothing to checkpoint
                return Attempt(True)
            if busy or copied < log:
                return Attempt(False, "a reader still uses the write-ahead log holding the erased rows")
            busy, _, _ = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                return Attempt(False, "the write-ahead log is in use and could not be truncated yet")
            return Attempt(True)
        finally:
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # the pooled connection's own again
    finally:
        raw.close()


# A snapshot taken before the erasure (a transaction's, a replication slot's, a prepared
# transaction's) keeps the deleted row versions alive: VACUUM would leave them.
_OLD_SNAPSHOTS = """
SELECT count(*) FROM (
  SELECT backend_xmin AS x FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid()
  UNION ALL SELECT xmin FROM pg_replication_slots
  UNION ALL SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
) h WHERE x IS NOT NULL AND age(x) > txid_snapshot_xmax(txid_current_snapshot()) - %(marker)s
"""


def pg_next_xid(engine) -> int:
    """The next transaction id: every transaction committed so far is below it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return int(conn.exec_driver_sql("SELECT txid_snapshot_xmax(txid_current_snapshot())").scalar_one())


def pg_vacuum(engine, tables, marker: int) -> Attempt:
    """VACUUM the tables, once no snapshot older than `marker` (taken after the erasure
    committed) remains; else pending. VACUUM runs outside a transaction and never blocks inserts."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        old = conn.exec_driver_sql(_OLD_SNAPSHOTS, {"marker": marker}).scalar_one()
        if old:
            return Attempt(False, f"{old} open snapshot(s) from before the erasure still see the erased rows")
        conn.exec_driver_sql("VACUUM " + ", ".join(t.name for t in tables))
    return Attempt(True)


def attempt(engine, tables, marker: int = 0) -> Attempt:
    """One bounded, non-blocking try. Never raises: the erasure itself is committed."""
    try:
        if engine.dialect.name == "sqlite":
            return sqlite_checkpoint(engine)
        return pg_vacuum(engine, tables, marker)
    except Exception as exc:  # noqa: BLE001 - reported, retried; the erasure stands
        what = "checkpoint" if engine.dialect.name == "sqlite" else "VACUUM"
        return Attempt(False, f"erased rows stay on disk until the {what} succeeds: {_first_line(exc)}", failed=True)


class Reclaimer:
    """Tickets for erasures whose bytes must leave the disk, and the thread that retries.

    Ticket 1 stands for whatever was erased before this process started. A ticket is done once
    an attempt that *began after it was issued* succeeded. Members' tickets are kept only while
    pending (the address of whoever asked, in memory, dropped once reclaimed)."""

    def __init__(self, ledger, tables):
        self._ledger, self._tables = ledger, tuple(tables)
        self._lock = threading.Lock()
        self._run = threading.Lock()       # one attempt at a time
        self._issued, self._done = 1, 0
        self._marker = 0                   # PostgreSQL: next xid after the latest erasure
        self._pending: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last: Attempt | None = None

    def request(self, member: str | None = None) -> tuple[str, tuple[str, ...]]:
        """Call after an erasure committed: one try now, and if that cannot finish, retries in
        the background. Returns ("gone" | "pending", warnings)."""
        marker = pg_next_xid(self._ledger.engine) if self._ledger.engine.dialect.name != "sqlite" else 0
        with self._lock:
            self._issued += 1
            ticket = self._issued
            self._marker = max(self._marker, marker)
            if member is not None:
                self._pending[member] = ticket
        result = self.try_now()
        if not self.is_done(ticket):
            self._ensure_thread()
        return (GONE if self.is_done(ticket) else PENDING), ((result.why,) if result.failed else ())

    def try_now(self) -> Attempt:
        with self._run:
            with self._lock:
                target, marker, tables = self._issued, self._marker, self._tables
            result = attempt(self._ledger.engine, tables, marker)
            with self._lock:
                self.last = result
                if result.gone:
                    self._done = max(self._done, target)
                    self._pending = {m: t for m, t in self._pending.items() if t > self._done}
            return result

    def is_done(self, ticket: int) -> bool:
        with self._lock:
            return self._done >= ticket

    def status(self, member: str | None = None) -> str:
        """GONE when everything this member (or, without one, anyone) erased is off the disk,
        as far as this process knows."""
        with self._lock:
            ticket = self._issued if member is None else self._pending.get(member, 1)
            done = self._done >= ticket
        if not done:
            self._ensure_thread()  # e.g. ticket 1 after a restart: nobody has tried yet
        return GONE if done else PENDING

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._retry, daemon=True, name="ayni-reclaim")
            self._thread.start()

    def _retry(self) -> None:
        n = failures = 0
        while not self._stop.wait(RETRY_PAUSES_S[min(n, len(RETRY_PAUSES_S) - 1)]):
            result = self.try_now()
            failures = failures + 1 if result.failed else 0
            with self._lock:
                # done; or the database keeps failing (gone, closed): the next request or
                # status question starts a new thread
                if self._done >= self._issued or failures >= MAX_FAILURES:
                    self._thread = None
                    return
            n += 1

    def close(self) -> None:
        """Stop retrying (the ledger is closing)."""
        self._stop.set()


_reclaimers: weakref.WeakKeyDictionary[object, Reclaimer] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def reclaimer(ledger, tables) -> Reclaimer:
    """This process's reclaimer for `ledger` (made on first use);
    `tables`: every table erasures delete from (PostgreSQL VACUUMs them)."""
    with _registry_lock:
        r = _reclaimers.get(ledger)
        if r is None:
            r = _reclaimers[ledger] = Reclaimer(ledger, tables)
    return r
