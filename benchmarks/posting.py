"""Signed transfers posted per second, next to the raw signature-recovery rate
measured in the same run (the hardware-bound ceiling: every posting must recover
one secp256k1 public key). Writes JSON; see docs/ledger-model.md for the method.

    python benchmarks/posting.py [--transfers 4000] [--threads 4] [--gc-threads 4,64] [--batch 500] [--out FILE]

Group commit is measured at each client count of --gc-threads: its batches can only be as large
as the number of callers waiting, so on PostgreSQL (a commit waits for the WAL flush) its rate
grows with them. Batched posting is also given per CPU second of the posting thread
(`*_cpu_per_s`, next to `raw_recover_cpu_per_s`): on a shared machine the wall-clock rates
move with the neighbours' load, the CPU cost per transfer much less.

Every run is checked after the clock stops, or it proves nothing: a post that raised is counted
(`errors`) and not counted as throughput, the transfer rows must equal the transfers posted, and
the ledger is verified with every signature recovered again. Any failure: exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import coincurve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.group_commit import GroupCommitter  # noqa: E402
from ledger.sample import SampleCommunity, round_robin_transfers  # noqa: E402
from ledger.service import Ledger  # noqa: E402

PG_ADMIN = os.environ.get("AYNI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def raw_recover_rate(n: int, clock=time.perf_counter) -> float:
    """coincurve's recovery alone: the floor of any signed-transfer ledger in Python."""
    key = coincurve.PrivateKey()
    pairs = []
    for i in range(n):
        msg = i.to_bytes(32, "big")
        pairs.append((key.sign_recoverable(msg, hasher=None), msg))
    start = clock()
    for sig, msg in pairs:
        coincurve.PublicKey.from_signature_and_message(sig, msg, hasher=None)
    return n / (clock() - start)


def timed_cpu(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) of fn()."""
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w, time.thread_time() - c


def setup(url: str, accounts: int):
    """A community whose accounts may go deep into CRED debt: the benchmark measures postings, not refusals."""
    c = SampleCommunity(url, name="bench")
    keys = c.accounts(accounts, credit_limit=2**50)
    return c.ledger, c.domain, keys


def signed_transfers(domain, keys, n: int, offset: int = 0):
    return round_robin_transfers(domain, keys, n, offset=offset)


class Tally:
    """What a benchmark tried and what failed: a failed post is reported, never silently dropped."""

    def __init__(self):
        self.attempted = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def tried(self, n: int) -> None:
        with self._lock:
            self.attempted += n

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])

    def check(self, ledger, result: dict, already: int = 0) -> dict:
        """After the clock: rows posted == transfers attempted - failed; full verify (signatures)."""
        rows = ledger.transfer_count() - already
        report = ledger.verify(verify_signatures=True)
        result.update({"attempted": self.attempted, "errors": len(self.errors), "error_samples": self.errors[:3],
                       "transfer_rows": rows, "verify_ok": report.ok,
                       "ok": report.ok and not self.errors and rows == self.attempted})
        return result


def run_batched(ledger, subs, batch, tally: Tally):
    for k in range(0, len(subs), batch):
        tally.tried(len(subs[k:k + batch]))
        for r in ledger.submit_many(subs[k:k + batch]):
            if isinstance(r, Exception):
                tally.failed(r)


def run_threads(threads: int, subs, post, tally: Tally) -> float:
    """`threads` clients, each posting its share one transfer at a time through `post`; the rate
    counts only the posts that succeeded (failures go to `tally`)."""
    per = len(subs) // threads
    errors_before = len(tally.errors)
    tally.tried(per * threads)

    def work(t):
        for s in subs[t * per:(t + 1) * per]:
            try:
                post(s)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never a silent thread death
                tally.failed(exc)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    return (per * threads - (len(tally.errors) - errors_before)) / elapsed


def run_group_commit(ledger, subs, threads: int, tally: Tally) -> float:
    committer = GroupCommitter(ledger)
    try:
        return run_threads(threads, subs, committer.submit, tally)
    finally:
        committer.close()


def group_commit_runs(ledger, subs, threads: int, gc_threads: list[int], tally: Tally) -> tuple[float, dict]:
    """The rate at `threads` callers, and at each count of gc_threads (fresh transfers for each)."""
    counts = [threads] + [t for t in gc_threads if t != threads]
    per = len(subs) // len(counts)
    rates = {t: run_group_commit(ledger, subs[k * per:(k + 1) * per], t, tally) for k, t in enumerate(counts)}
    return rates[threads], {str(t): rates[t] for t in sorted(rates)}


def bench_sqlite(n: int, batch: int, accounts: int, threads: int, gc_threads: list[int]) -> dict:
    k = 1 + len(set(gc_threads) - {threads})
    with tempfile.TemporaryDirectory() as d:
        ledger, domain, keys = setup(f"sqlite:///{d}/bench.db", accounts)
        subs = signed_transfers(domain, keys, (2 + k) * n)
        tally, already = Tally(), ledger.transfer_count()
        single = run_threads(1, subs[:n], ledger.submit, tally)
        batched, batched_cpu = timed_cpu(lambda: run_batched(ledger, subs[n:2 * n], batch, tally))
        grouped, by_threads = group_commit_runs(ledger, subs[2 * n:], threads, gc_threads, tally)
        checked = tally.check(ledger, {}, already)
        size = Path(f"{d}/bench.db").stat().st_size + sum(
            p.stat().st_size for p in Path(d).glob("bench.db-*"))
        ledger.engine.dispose()
    return {**checked, "single_per_s": single, "batched_per_s": n / batched, "batched_cpu_per_s": n / batched_cpu,
            "batch": batch, "group_commit_threads": threads, "group_commit_per_s": grouped,
            "group_commit_per_s_by_threads": by_threads, "db_bytes_per_transfer": size / ((2 + k) * n)}


def bench_postgres(n: int, batch: int, accounts: int, threads: int, gc_threads: list[int]) -> dict:
    from sqlalchemy import create_engine, text
    name = f"ayni_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"PostgreSQL unreachable at {PG_ADMIN}: {str(exc).splitlines()[0]}"}
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        ledger, domain, keys = setup(url, accounts)
        k = 1 + len(set(gc_threads) - {threads})
        subs = signed_transfers(domain, keys, (2 + k) * n)
        tally, already = Tally(), ledger.transfer_count()
        # each client thread with its own engine, posting directly: one transaction per transfer
        single = run_threads(threads, subs[:n], lambda s, _l=threading.local(): (
            getattr(_l, "ledger", None) or setattr(_l, "ledger", Ledger.open(url, migrate=False))
            or _l.ledger).submit(s), tally)
        batched, batched_cpu = timed_cpu(lambda: run_batched(ledger, subs[n:2 * n], batch, tally))
        grouped, by_threads = group_commit_runs(ledger, subs[2 * n:], threads, gc_threads, tally)
        checked = tally.check(ledger, {}, already)
        with ledger.engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        ledger.engine.dispose()
        return {**checked, "threads": threads, "single_per_s": single, "batched_per_s": n / batched,
                "batched_cpu_per_s": n / batched_cpu, "batch": batch, "group_commit_per_s": grouped,
                "group_commit_per_s_by_threads": by_threads,
                "db_bytes_per_transfer_incl_empty_db": size / ((2 + k) * n)}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--gc-threads", default="4,64", help="group commit is also measured at these client counts")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    gc_threads = [int(t) for t in args.gc_threads.split(",") if t.strip()]
    raw = raw_recover_rate(max(2000, args.transfers))
    raw_cpu = raw_recover_rate(max(2000, args.transfers), time.thread_time)
    sqlite = bench_sqlite(args.transfers, args.batch, args.accounts, args.threads, gc_threads)
    raw_after = raw_recover_rate(max(2000, args.transfers))  # bracket the run: machines are shared
    pg = bench_postgres(args.transfers, args.batch, args.accounts, args.threads, gc_threads)
    raw_cpu = (raw_cpu + raw_recover_rate(max(2000, args.transfers), time.thread_time)) / 2
    raw_rate = (raw + raw_after) / 2
    result = {
        "benchmark": "posting",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "transfers": args.transfers,
        "raw_recover_per_s": raw_rate,
        "raw_recover_per_s_before_after": [raw, raw_after],
        "raw_recover_cpu_per_s": raw_cpu,
        "sqlite": sqlite,
        "postgres": pg,
        "ratios_to_raw_recover": {
            "sqlite_single": sqlite["single_per_s"] / raw_rate,
            "sqlite_batched": sqlite["batched_per_s"] / raw_rate,
            "sqlite_group_commit": sqlite["group_commit_per_s"] / raw_rate,
            "sqlite_batched_cpu": sqlite["batched_cpu_per_s"] / raw_cpu,
            **{f"sqlite_group_commit_{t}_threads": v / raw_rate
               for t, v in sqlite["group_commit_per_s_by_threads"].items()},
            **({"postgres_threads_single": pg["single_per_s"] / raw_rate,
                "postgres_batched": pg["batched_per_s"] / raw_rate,
                "postgres_group_commit": pg["group_commit_per_s"] / raw_rate,
                "postgres_batched_cpu": pg["batched_cpu_per_s"] / raw_cpu,
                **{f"postgres_group_commit_{t}_threads": v / raw_rate
                   for t, v in pg["group_commit_per_s_by_threads"].items()}} if "single_per_s" in pg else {}),
        },
        "target": "sqlite rate >= 0.5 x raw recover rate",
    }
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_out + "\n")
    bad = [name for name, r in (("sqlite", sqlite), ("postgres", pg)) if "skipped" not in r and not r["ok"]]
    if bad:
        print(f"posting benchmark FAILED its checks ({', '.join(bad)}): errors, rows != attempted, "
              "or verify found faults; see the JSON", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
