"""The bank workload (tests/bank.py) at length: a real `ayni serve` on PostgreSQL (2 workers) and
on SQLite (1 worker), 16 clients, tight limits, the server SIGKILLed and restarted during the
run; the checker's verdict and counts as JSON, with the acknowledged-transfer rate next to the
raw signature-recovery rate measured in the same run.

    python benchmarks/bank.py [--seconds 120] [--kills 10] [--clients 16] [--scale small|full]
                              [--no-sqlite] [--out FILE]
Exit status 1 if the checker found any fault.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.posting import PG_ADMIN, raw_recover_rate  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from tests.bank import BankConfig, check, run  # noqa: E402

SCALES = {"small": {"seconds": 20.0, "kills": 3}, "full": {"seconds": 120.0, "kills": 10}}


def one(url: str, cfg: BankConfig) -> dict:
    with tempfile.TemporaryDirectory(prefix="ayni-bank-") as d:
        hist = run(url, Path(d), cfg)
    ledger = Ledger.open(url, migrate=False)
    try:
        faults, counts = check(hist, ledger)
    finally:
        ledger.engine.dispose()
    return {**counts, "ok": not faults, "fault_samples": faults[:20]}


def postgres(cfg: BankConfig) -> dict:
    from sqlalchemy import create_engine, text
    name = f"ayni_bench_bank_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - no server: say so in the JSON
        admin.dispose()
        return {"skipped": f"PostgreSQL unreachable at {PG_ADMIN}: {str(exc).splitlines()[0]}"}
    try:
        return one(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, cfg)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--seconds", type=float, help="traffic per database (default by scale)")
    ap.add_argument("--kills", type=int, help="SIGKILL + restart count per database (default by scale)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    scale = SCALES[args.scale]
    base = dict(seconds=args.seconds or scale["seconds"], kills=scale["kills"] if args.kills is None else args.kills,
                clients=args.clients, accounts=args.accounts, seed=args.seed)
    raw = raw_recover_rate(2000)
    pg = postgres(BankConfig(workers=2, **base))
    sqlite = None
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="ayni-bank-db-") as d:
            sqlite = one(f"sqlite:///{d}/bank.db", BankConfig(workers=1, **base))
    raw_after = raw_recover_rate(2000)  # bracket the run: the machine is shared
    raw_rate = (raw + raw_after) / 2
    runs = {"postgres": pg, **({"sqlite": sqlite} if sqlite else {})}
    result = {
        "benchmark": "bank",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "method": "tests/bank.py: clients sign in their own threads (client cost included), post random "
                  "transfers among few accounts with tight limits, re-post some acknowledged ones, read the "
                  "balance sheet; the server's process group is SIGKILLed and restarted `kills` times; "
                  "unanswered transfers are retried with the same signed payload until answered",
        "raw_recover_per_s": raw_rate,
        **runs,
        "ratios_to_raw_recover": {k: v["acknowledged_per_s"] / raw_rate for k, v in runs.items()
                                  if v.get("acknowledged_per_s")},
        "ok": all(v.get("ok", "skipped" in v) for v in runs.values()),
    }
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_out + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
