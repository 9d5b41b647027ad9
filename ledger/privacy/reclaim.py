"""Removing erased rows' bytes from the database files, without ever making a payment wait.

A deleted row is not yet gone from the disk. SQLite (every connection runs secure_delete, so
freed bytes in the database file are zeroed) still holds the old page images in the
write-ahead log until the log is checkpointed into the file and truncated. PostgreSQL keeps
the dead row version in the table file until VACUUM removes it, and even then VACUUM only
compacts the page: the row's bytes stay in the page's free space (review of issue 23, D1). So
on PostgreSQL the tables erased from are rewritten (VACUUM FULL: a new file holding only live
rows; the old file is truncated and unlinked).

Neither may stall posting. SQLite's TRUNCATE checkpoint holds the write lock while it waits
for readers, so an attempt here never waits: busy timeout 0 on its connection, a PASSIVE
checkpoint first (no write lock; it copies only what no reader still needs) and a TRUNCATE
only once that copied every frame, which then fails at once rather than wait. PostgreSQL's
VACUUM FULL cannot remove a row version that a transaction older than the erasure may still
see (an open snapshot, or a transaction holding an xid: either holds the horizon back), so an
attempt first asks whether one exists; then each table's VACUUM FULL runs with a short
lock_timeout (LOCK_TIMEOUT_MS), so a queued ACCESS EXCLUSIVE request never stands long in
front of postings; it gives up and retries instead. While it runs it blocks writers to that
one small table for the rewrite (benchmarks/erasure.py measures it).

The truth lives in the database, not in a process (several workers, the CLI, a restart all
answer the same): per table erased from, two counters in `rate_limit_counters` (the small
key/count table every worker shares; never expiring, so never purged):
`privacy-reclaim:issued:<table>`, raised in the erasure's own transaction, and
`privacy-reclaim:done:<table>`, raised (atomically, to the larger value) by an attempt that
succeeded after reading `issued`. On PostgreSQL `issued` is the erasure's transaction id + 1 (the
attempt must see no transaction older than that); on SQLite a plain count. Everything erased
is gone from the files once done >= issued for every table. An attempt that cannot finish
leaves it pending: a background thread (one per ledger, per process) retries with growing
pauses (back to the shortest at every new erasure), the retention run and any question
(`GET /v1/accounts/{me}/erasure`) try once more, never waiting."""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..store.auth_tables import rate_limit_counters as C
from ..store.db import BUSY_TIMEOUT_MS

GONE, PENDING = "gone", "pending"
RETRY_PAUSES_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s until done
MAX_FAILURES = 20  # errors (not busy readers) in a row before the thread stops until asked again
LOCK_TIMEOUT_MS = 100  # longest a queued VACUUM FULL may stand in front of postings
NEVER = 2**62  # the counters' expiry: the rate limiter purges only expired rows
ISSUED, DONE = "privacy-reclaim:issued:", "privacy-reclaim:done:"


@dataclass(frozen=True)
class Attempt:
    gone: bool
    why: str = ""          # why not (yet): busy readers, a failed VACUUM
    failed: bool = False   # an error, not merely readers still busy (reported as a warning)


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


# -- the shared state -------------------------------------------------------------------------

def _raise_to(conn, key: str, value) -> None:
    """counter[key] = max(counter[key], value), atomically under concurrent workers."""
    ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(C).values(
        key=key, count=value, expires_at=NEVER)
    larger = case((C.c.count > ins.excluded["count"], C.c.count), else_=ins.excluded["count"])
    conn.execute(ins.on_conflict_do_update(index_elements=[C.c.key], set_={"count": larger}))


def mark_erased(conn, tables) -> dict[str, int]:
    """Inside the erasure's own transaction: record that rows of `tables` (names) were deleted
    or overwritten. Returns each table's ticket (done >= ticket: this erasure is off the disk)."""
    tickets = {}
    for name in sorted(set(tables)):
        if conn.dialect.name == "postgresql":
            value = int(conn.exec_driver_sql("SELECT txid_current() + 1").scalar_one())
        else:  # the erasure holds SQLite's write lock: read-then-raise is atomic
            value = int(conn.execute(select(func.coalesce(func.max(C.c.count), 0) + 1)
                                     .where(C.c.key == ISSUED + name)).scalar_one())
        _raise_to(conn, ISSUED + name, value)
        tickets[name] = value
    return tickets


def read_state(conn) -> tuple[dict[str, int], dict[str, int]]:
    """(issued, done) per table name."""
    rows = conn.execute(select(C.c.key, C.c.count).where(C.c.key.like("privacy-reclaim:%"))).all()
    issued = {k[len(ISSUED):]: int(n) for k, n in rows if k.startswith(ISSUED)}
    done = {k[len(DONE):]: int(n) for k, n in rows if k.startswith(DONE)}
    return issued, done


def outstanding(issued: dict[str, int], done: dict[str, int]) -> dict[str, int]:
    return {t: n for t, n in issued.items() if done.get(t, 0) < n}


# -- one attempt ------------------------------------------------------------------------------

def sqlite_checkpoint(engine) -> Attempt:
    """Checkpoint the whole WAL into the database file and truncate it, never waiting: the
    write lock is taken only by the final TRUNCATE, which gives up at once if anything is busy."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA busy_timeout=0")
        try:
            busy, log, copied = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # busy first: another connection checkpointing answers (1, -1, -1) (review D3)
            if busy:
                return Attempt(False, "the write-ahead log is busy (a reader or another checkpoint)")
            if log == -1:  # not in WAL mode (an in-memory database): nothing to checkpoint
                return Attempt(True)
            if copied < log:
                return Attempt(False, "a reader still uses the write-ahead log holding the erased rows")
            busy, log, _ = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy or log != 0:
                return Attempt(False, "the write-ahead log is in use and could not be truncated yet")
            return Attempt(True)
        finally:
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # the pooled connection's own again
    finally:
        raw.close()


# A transaction older than the erasure keeps the deleted row versions alive, whether it holds a
# snapshot (backend_xmin) or only an xid (an INSERT in READ COMMITTED, then idle: backend_xid,
# review D2), and in ANY database of the server (transaction ids are cluster-wide: measured, an
# idle transaction with an xid in another database made VACUUM FULL keep the erased row); so do
# replication slots and prepared transactions. "Older than": x < marker, with marker a 64-bit
# txid and x a 32-bit xid, compared through age() (= next xid - x).
_OLD_HOLDERS = """
SELECT count(*) FROM (
  SELECT backend_xid AS x FROM pg_stat_activity WHERE pid <> pg_backend_pid()
  UNION ALL SELECT backend_xmin FROM pg_stat_activity WHERE pid <> pg_backend_pid()
  UNION ALL SELECT xmin FROM pg_replication_slots
  UNION ALL SELECT catalog_xmin FROM pg_replication_slots
  UNION ALL SELECT transaction FROM pg_prepared_xacts
) h WHERE x IS NOT NULL AND age(x) > txid_snapshot_xmax(txid_current_snapshot()) - %(marker)s
"""


def pg_rewrite(engine, targets: dict[str, int]) -> Attempt:
    """VACUUM FULL each table in `targets` ({name: its issued marker}), once no transaction older
    than the markers remains; each with a short lock_timeout, so it never queues long in
    front of postings. Else pending."""
    if not targets:
        return Attempt(True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        old = conn.exec_driver_sql(_OLD_HOLDERS, {"marker": max(targets.values())}).scalar_one()
        if old:
            return Attempt(False, f"{old} transaction(s) from before the erasure still see the erased rows")
        quote = engine.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        try:
            for name in sorted(targets):
                try:
                    conn.exec_driver_sql(f"VACUUM FULL {quote(name)}")
                except Exception as exc:
                    if "lock timeout" in str(exc):
                        return Attempt(False, f"{name} is busy (lock timeout): tried again later")
                    raise
        finally:
            conn.exec_driver_sql("RESET lock_timeout")
    return Attempt(True)


def attempt(engine, targets: dict[str, int]) -> Attempt:
    """One bounded, non-blocking try. Never raises: the erasure itself is committed."""
    try:
        if engine.dialect.name == "sqlite":
            return sqlite_checkpoint(engine)
        return pg_rewrite(engine, targets)
    except Exception as exc:  # noqa: BLE001 - reported, retried; the erasure stands
        what = "checkpoint" if engine.dialect.name == "sqlite" else "VACUUM FULL"
        return Attempt(False, f"erased rows stay on disk until the {what} succeeds: {_first_line(exc)}", failed=True)


# -- the retrying reclaimer -------------------------------------------------------------------

class Reclaimer:
    """Attempts (one at a time per process) and the thread that retries them. Holds the
    engine, never the ledger (the registry below is keyed weakly by the ledger)."""

    def __init__(self, engine, tables):
        self._engine = engine
        self._known = {t.name for t in tables}   # only these are ever rewritten
        self._lock = threading.Lock()
        self._run = threading.Lock()       # one attempt at a time
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()     # a new erasure: retry soon again
        self.last: Attempt | None = None

    def _state(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._engine.connect().execution_options(ayni_readonly=True) as conn:  # SQLite: no write lock
            return read_state(conn)

    def request(self) -> tuple[str, tuple[str, ...]]:
        """Call after an erasure committed (marked by mark_erased): one try now, and if that
        cannot finish, retries in the background. Returns ("gone" | "pending", warnings):
        gone once everything anyone erased so far is off the disk."""
        result = self.try_now()
        gone = not outstanding(*self._state())
        if not gone:
            self._kick.set()
            self._ensure_thread()
        return (GONE if gone else PENDING), ((result.why,) if result.failed else ())

    def try_now(self) -> Attempt:
        """Read what is outstanding, try once, and on success record it as done."""
        with self._run:
            issued, done = self._state()
            targets = {t: n for t, n in outstanding(issued, done).items() if t in self._known}
            result = attempt(self._engine, targets)
            if result.gone:
                with self._engine.begin() as conn:
                    for name, n in issued.items():
                        if name in self._known:
                            _raise_to(conn, DONE + name, n)
            self.last = result
            return result

    def status(self) -> str:
        """GONE when everything anyone erased is off the disk. Asked while pending, it tries once
        more (never waiting) and answers from the database, as every worker would."""
        issued, done = self._state()
        if not outstanding(issued, done):
            return GONE
        if self.try_now().gone:
            return GONE
        self._ensure_thread()
        return PENDING

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._retry, daemon=True, name="ayni-reclaim")
            self._thread.start()

    def _retry(self) -> None:
        n = failures = 0
        while True:
            kicked = self._kick.wait(RETRY_PAUSES_S[min(n, len(RETRY_PAUSES_S) - 1)])
            if self._stop.is_set():
                return
            if kicked:
                self._kick.clear()
                n = 0
            result = self.try_now()
            failures = failures + 1 if result.failed else 0
            try:
                left = outstanding(*self._state())
            except Exception:  # noqa: BLE001 - the database is gone: counted as a failure
                left, failures = {"?": 1}, failures + 1
            with self._lock:
                # done; or the database keeps failing: the next erasure or question starts anew
                if not left or failures >= MAX_FAILURES or self._stop.is_set():
                    self._thread = None
                    return
            n += 1

    def close(self) -> None:
        """Stop retrying (the ledger is closing) and wait for the thread to end."""
        self._stop.set()
        self._kick.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


_reclaimers: weakref.WeakKeyDictionary[object, Reclaimer] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def reclaimer(ledger, tables) -> Reclaimer:
    """This process's reclaimer for `ledger` (made on first use; stopped by ledger.close());
    `tables`: every table erasures delete from (PostgreSQL rewrites those erased from)."""
    with _registry_lock:
        r = _reclaimers.get(ledger)
        if r is None or r._stop.is_set():  # none yet, or closed (a reopened ledger gets a new one)
            r = _reclaimers[ledger] = Reclaimer(ledger.engine, tables)
            on_close = getattr(ledger, "on_close", None)
            if on_close is not None:
                on_close.append(r.close)
    return r
