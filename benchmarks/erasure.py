"""Transfer latency while a reader holds a read transaction open, with and without erasures
running at the same time (issue 23, item 1). SQLite, a real database file, the reader a
second sqlite3 connection (`BEGIN; SELECT count(*) FROM memos`, never committed) as in the
report. Before the fix each erasure's reclaim held the write lock waiting on that reader for
the busy timeout (30 s), so every transfer behind it waited too. Writes JSON.

PostgreSQL (--pg ADMIN_URL): the reclaim rewrites the tables erased from (VACUUM FULL, review
23a D1), holding ACCESS EXCLUSIVE on them while it copies: postings that write a memo wait that
long (plus at most the lock_timeout while it queues). Measured at --memos sizes (10k, 100k):
the rewrite's duration, and transfer latency while members erase and postings with memos run.
The memo rows beyond the posted ones are filler written straight into the throwaway
database's memos table (foreign-key triggers off: the rewrite's cost depends on the table's
size, not on whose memos they are).

    python benchmarks/erasure.py [--transfers 400] [--scale small|full] [--pg URL] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.core.typed_data import address_of_key
from ledger.privacy import retention
from ledger.sample import SampleCommunity, round_robin_transfers

SCALES = {"small": 200, "full": 1000}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def summary_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms), 2)} if ms else {"n": 0}


def post_timed(ledger, subs) -> list[float]:
    out = []
    for s in subs:
        t0 = time.perf_counter()
        ledger.submit(s)
        out.append(time.perf_counter() - t0)
    return out


class Erasures:
    """Members asking for erasure one after another, `pause_s` apart, in a thread."""

    def __init__(self, ledger, members, pause_s: float):
        self.ledger, self.members, self.pause_s = ledger, members, pause_s
        self.stop, self.seconds, self.states = threading.Event(), [], {"gone": 0, "pending": 0}
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            done = retention.erase_member(self.ledger, self.members[i % len(self.members)])
            self.seconds.append(time.perf_counter() - t0)
            self.states[done.bytes_on_disk] += 1
            i += 1
            self.stop.wait(self.pause_s)

    def during(self, fn):
        self.thread.start()
        try:
            return fn()
        finally:
            self.stop.set()
            self.thread.join()

    def summary(self) -> dict:
        return {"erasures": summary_ms(self.seconds), "erasure_bytes_on_disk": self.states}


def run(n: int, folder: Path, pause_s: float) -> dict:
    path = folder / "bench.db"
    c = SampleCommunity(f"sqlite:///{path}", name="erasure bench")
    keys = c.accounts(20, credit_limit=2**50)
    members = [address_of_key(k) for k in keys]
    c.ledger.submit_many(round_robin_transfers(c.domain, keys, 200, memo_every=1))  # memos to erase
    subs = round_robin_transfers(c.domain, keys, 3 * n, offset=200, memo_every=2)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM memos").fetchone()
    try:
        quiet = post_timed(c.ledger, subs[:n])
        with_reader = Erasures(c.ledger, members, pause_s)
        busy = with_reader.during(lambda: post_timed(c.ledger, subs[n:2 * n]))
        still_held = reader.in_transaction
    finally:
        reader.rollback()
        reader.close()
    t0 = time.perf_counter()
    deadline = t0 + 120
    while retention.on_disk(c.ledger) != "gone" and time.perf_counter() < deadline:
        time.sleep(0.05)
    reclaimed_s = time.perf_counter() - t0
    gone = retention.on_disk(c.ledger) == "gone"
    control = Erasures(c.ledger, members, pause_s)
    unread = control.during(lambda: post_timed(c.ledger, subs[2 * n:]))
    c.dispose()
    return {
        "transfers_per_phase": n,
        "erasure_pause_s": pause_s,
        "held_reader_only": summary_ms(quiet),
        "held_reader_and_erasures": {**summary_ms(busy), **with_reader.summary()},
        "reader_held_throughout": still_held,
        "p99_ratio_with_erasures": round(summary_ms(busy)["p99_ms"] / summary_ms(quiet)["p99_ms"], 2),
        "reclaimed_after_reader_ended_s": round(reclaimed_s, 2) if gone else None,
        # the erasures' own write transactions, no reader: what remains of the ratio above
        "control_no_reader_with_erasures": {**summary_ms(unread), **control.summary()},
    }


def run_pg(admin_url: str, memos: int, n: int) -> dict:
    from sqlalchemy import create_engine

    from ledger.privacy import reclaim

    name = f"ayni_bench_erasure_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        c = SampleCommunity(url, name="erasure bench")
        keys = c.accounts(20, credit_limit=2**50)
        members = [address_of_key(k) for k in keys]
        c.ledger.submit_many(round_robin_transfers(c.domain, keys, 200, memo_every=1))
        with c.ledger.engine.begin() as conn:  # filler: a table of `memos` rows of a usual size
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.exec_driver_sql("INSERT INTO memos (seq, salt, memo) SELECT -g, decode(md5(g::text) || md5(g::text), "
                                 "'hex'), 'filler memo number ' || g || ' for the rewrite benchmark' "
                                 "FROM generate_series(1, %(n)s) g", {"n": max(0, memos - 200)})
        with c.ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE memos")
            size = conn.exec_driver_sql("SELECT pg_total_relation_size('memos')").scalar_one()
            rewrites = []
            for _ in range(3):
                t0 = time.perf_counter()
                conn.exec_driver_sql("VACUUM FULL memos")
                rewrites.append(time.perf_counter() - t0)
        subs = round_robin_transfers(c.domain, keys, 2 * n, offset=200, memo_every=1)
        quiet = post_timed(c.ledger, subs[:n])
        erasing = Erasures(c.ledger, members, 0.25)
        busy = erasing.during(lambda: post_timed(c.ledger, subs[n:]))
        deadline = time.perf_counter() + 60
        while retention.on_disk(c.ledger) != "gone" and time.perf_counter() < deadline:
            time.sleep(0.05)
        gone = retention.on_disk(c.ledger) == "gone"
        c.ledger.close()
        c.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return {
        "memo_rows": memos, "memos_table_bytes": size,
        "vacuum_full_memos": summary_ms(rewrites),
        "lock_timeout_ms": reclaim.LOCK_TIMEOUT_MS,
        "transfers_with_memos_quiet": summary_ms(quiet),
        "transfers_with_memos_while_members_erase": {**summary_ms(busy), **erasing.summary()},
        "gone_at_end": gone,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=None, help="Transfers per phase")
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--erasure-pause", type=float, default=0.05,
                    help="Seconds between one member's erasure and the next (a stress: members rarely ask)")
    ap.add_argument("--pg", default=None, help="PostgreSQL admin URL: also measure the rewrite (VACUUM FULL)")
    ap.add_argument("--memos", default="10000,100000", help="PostgreSQL: memo-table sizes to measure")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    n = a.transfers or SCALES[a.scale]
    with tempfile.TemporaryDirectory() as tmp:
        result = {"benchmark": "erasure", "sqlite": run(n, Path(tmp), a.erasure_pause),
                  **({"postgresql": [run_pg(a.pg, int(m), min(n, 300)) for m in a.memos.split(",")]}
                     if a.pg else {}),
                  "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                              "platform": platform.platform()}}
    text = json.dumps(result, indent=2)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
