"""What a deployment really uses, for the cost report's small-VM lines (docs/costs.md):

1. resident memory of `ayni serve` (the whole process tree: master and workers) with 1 and 2
   workers, idle after start and after a short load of real signed transfers over HTTP
   (RSS, and PSS, which does not count pages shared between processes twice);
2. database bytes per member-year at the care-coop preset's activity (ledger/costs/model.py:
   transfers per member per month x 12), measured by posting that many real signed transfers
   for a scaled number of members into SQLite and PostgreSQL and extrapolating per member;
3. CPU at the preset's peak hour: the server's measured CPU seconds per transfer over HTTP
   times the peak hour's transfers (an assumption stated in the output), as a share of the
   small VM's vCPUs.

Loopback only, free ports, throwaway databases. Writes JSON.

    python benchmarks/footprint.py [--members 40] [--load 300] [--scale small|full] [--out FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api import Server, cpu_by_group, drive, presign  # noqa: E402
from benchmarks.posting import PG_ADMIN, setup, signed_transfers  # noqa: E402
from ledger.costs import model  # noqa: E402
from ledger.costs.prices import load as load_prices  # noqa: E402

# Peak hour: a care cooperative's visits happen on working days, in daytime. Assumption (ours):
# 22 active days a month, the busiest hour carrying 20% of a day's transfers.
ACTIVE_DAYS_PER_MONTH = 22
PEAK_HOUR_SHARE_OF_DAY = 0.20
MIB = 2**20


# -- memory of a process tree -------------------------------------------------------------
def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        out.append(p)
        frontier += children.get(p, [])
    return out


def memory(pid: int) -> dict:
    """Summed RSS and PSS (kB figures from /proc) of `pid` and all its descendants."""
    rss = pss = 0
    procs = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
            procs += 1
        except OSError:
            continue
    return {"rss_mib": round(rss / MIB, 1), "pss_mib": round(pss / MIB, 1), "processes": procs}


def serve_footprint(url: str, workers: int, load: int, tmp: Path) -> dict:
    ledger, domain, keys = setup(url, 20)
    ledger.engine.dispose()
    bodies, _ = presign(domain, keys, load)
    server = Server(url, workers, tmp)
    try:
        server.wait_ready()
        time.sleep(2.0)  # workers finish importing and settle
        idle = memory(server.proc.pid)
        cpu0 = cpu_by_group(server.proc.pid)
        res = asyncio.run(drive(server.port, bodies, 4, 300.0, "raw"))
        cpu1 = cpu_by_group(server.proc.pid)
        loaded = memory(server.proc.pid)
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
    created = res["statuses"].get("201", 0)
    server_cpu = (cpu1["server_workers"] - cpu0["server_workers"]) + (cpu1["server_master"] - cpu0["server_master"])
    # every postgres process on the machine: an upper bound where other work shares the server;
    # an SQLite server has none of its own (what others' PostgreSQL did meanwhile is not ours)
    pg_cpu = max(0.0, cpu1["postgres"] - cpu0["postgres"]) if url.startswith("postgresql") else 0.0
    return {"db": url.split(":", 1)[0], "workers": workers, "idle": idle, "after_load": loaded,
            "load_transfers_201": created, "load_elapsed_s": round(res["elapsed"], 2),
            "cpu_ms_per_transfer": {"server": 1000 * server_cpu / created if created else None,
                                    "postgres": 1000 * pg_cpu / created if created else None}}


# -- database bytes per member-year ---------------------------------------------------------
def sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    return path.stat().st_size


def pg_bytes(ledger) -> int:
    from sqlalchemy import text
    with ledger.engine.connect() as conn:  # data pages of every table and index (WAL not counted)
        return conn.execute(text("SELECT pg_database_size(current_database())")).scalar()


def storage(url: str, members: int, per_member_year: int, size) -> dict:
    ledger, domain, keys = setup(url, members)
    try:
        before = size(ledger)
        subs = signed_transfers(domain, keys, members * per_member_year)
        t0 = time.perf_counter()
        for s in subs:
            ledger.submit(s)  # one transaction per transfer, as the API posts them
        elapsed = time.perf_counter() - t0
        after = size(ledger)
        assert ledger.verify(verify_signatures=False).ok
    finally:
        ledger.engine.dispose()
    grown = after - before
    return {"members": members, "transfers": len(subs), "bytes_before": before, "bytes_after": after,
            "bytes_per_transfer": round(grown / len(subs), 1),
            "bytes_per_member_year": round(grown / members),
            "post_seconds": round(elapsed, 2)}


def with_pg_database(fn):
    from sqlalchemy import create_engine, text
    name = f"ayni_footprint_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - no server here: say so in the output
        admin.dispose()
        return {"skipped": f"PostgreSQL unreachable at {PG_ADMIN}: {str(exc).splitlines()[0]}"}
    try:
        return fn(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=None, help="members whose year of activity is posted")
    ap.add_argument("--load", type=int, default=None, help="signed transfers posted over HTTP per server")
    ap.add_argument("--scale", choices=("small", "full"), default="full")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    members = args.members or (10 if args.scale == "small" else 40)
    load = args.load or (100 if args.scale == "small" else 400)
    preset = model.PRESETS["care-coop"]
    per_member_year = round(preset.transfers_per_member * 12)
    prices = load_prices()
    tmp = Path(tempfile.mkdtemp(prefix="ayni-footprint-"))

    serving = [serve_footprint(f"sqlite:///{tmp / 'serve1.db'}", 1, load, tmp)]
    stores = {"sqlite": storage(f"sqlite:///{tmp / 'store.db'}", members, per_member_year,
                                lambda _l: sqlite_bytes(tmp / "store.db"))}
    if not args.no_postgres:
        for workers in (1, 2):
            r = with_pg_database(lambda url, w=workers: serve_footprint(url, w, load, tmp))
            serving.append(r if "skipped" not in r else {"db": "postgresql", "workers": workers, **r})
        stores["postgresql"] = with_pg_database(lambda url: storage(url, members, per_member_year, pg_bytes))

    # CPU at the preset's peak hour, from the measured server (+ PostgreSQL) CPU per HTTP transfer
    peak_per_hour = preset.transfers_per_month / ACTIVE_DAYS_PER_MONTH * PEAK_HOUR_SHARE_OF_DAY
    vcpus = prices.hosting.small_vm.vcpus
    peak = []
    for s in serving:
        per = s.get("cpu_ms_per_transfer") or {}
        if per.get("server") is None:
            continue
        ms = per["server"] + (per.get("postgres") or 0.0)
        peak.append({"db": s["db"], "workers": s["workers"], "cpu_ms_per_transfer": round(ms, 3),
                     "peak_hour_cpu_s": round(peak_per_hour * ms / 1000, 3),
                     "peak_hour_share_of_small_vm": peak_per_hour * ms / 1000 / (3600 * vcpus)})
    per_year = {db: s.get("bytes_per_member_year") for db, s in stores.items()}
    result = {
        "benchmark": "footprint",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]},
        "preset": {"name": preset.name, "members": preset.members,
                   "transfers_per_member_month": preset.transfers_per_member,
                   "transfers_per_member_year": per_member_year,
                   "transfers_per_month": preset.transfers_per_month},
        "memory": serving,
        "storage": stores,
        "preset_db_bytes_per_year": {db: (b * preset.members if b else None) for db, b in per_year.items()},
        "cpu_peak_hour": {"assumption": f"{ACTIVE_DAYS_PER_MONTH} active days a month, the busiest hour "
                                        f"carries {PEAK_HOUR_SHARE_OF_DAY:.0%} of a day's transfers",
                          "transfers_in_peak_hour": round(peak_per_hour, 2), "small_vm_vcpus": vcpus,
                          "by_server": peak},
        "small_vm": {"label": prices.hosting.small_vm.label, "ram_gib": prices.hosting.small_vm.ram_gib,
                     "disk_gib": prices.hosting.small_vm.disk_gib},
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
