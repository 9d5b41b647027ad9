"""Signed transfers per second through the HTTP API: N concurrent keep-alive clients over
loopback against a real `ayni serve` (PostgreSQL, 2 workers by default), with per-request
latency, status and refusal counts, next to the raw signature-recovery rate measured in
the same run. Writes JSON; the client shares the machine with the server (load included).

Transfers are signed BEFORE the clock starts: signing is the client's (the wallet's) cost,
not the server's, so the measured loop only sends pre-encoded bodies and reads replies.

    python benchmarks/api.py [--clients 32] [--transfers 5000] [--workers 2] [--client raw|httpx]
                             [--batch N] [--sqlite] [--out FILE]

--batch N: each request is POST /v1/transfers/batch with N transfers (a shop or relay sending
many at once); statuses are counted per transfer, latency per request.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.posting import PG_ADMIN, raw_recover_rate, setup  # noqa: E402
from ledger import signing  # noqa: E402
from ledger.sample import round_robin_transfers  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from tests.servers import ServerNotReady, free_port, stop_group, wait_ready  # noqa: E402

AYNI = Path(sys.executable).parent / "ayni"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- setup ------------------------------------------------------------------------------
def transfer_body(sub) -> bytes:
    """The POST /v1/transfers JSON, encoded once (before the clock starts)."""
    body = signing.transfer_json(sub)
    return json.dumps(body, separators=(",", ":")).encode()


def presign(domain, keys, n: int) -> tuple[list[bytes], float]:
    """n signed transfers between the accounts, as request bodies; returns (bodies, signatures/s)."""
    start = time.perf_counter()
    bodies = [transfer_body(sub) for sub in round_robin_transfers(domain, keys, n)]
    return bodies, n / (time.perf_counter() - start)


# -- the server and its CPU -------------------------------------------------------------
def _stat(pid: int) -> tuple[int, str, float] | None:
    """(ppid, comm, cpu seconds) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    f = raw[raw.rindex(")") + 2:].split()
    return int(f[1]), comm, (int(f[11]) + int(f[12])) / CLK_TCK  # ppid, utime + stime


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine spent busy (not idle/iowait), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / CLK_TCK  # user..steal minus idle and iowait


def cpu_by_group(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the server's process tree, and PostgreSQL's processes.
    Callers take differences, so long-lived processes only count what they did in between."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (s := _stat(int(d))) is not None:
            procs[int(d)] = s
    tree, frontier = set(), {server_pid}
    while frontier:
        tree |= frontier
        frontier = {p for p, (ppid, _, _) in procs.items() if ppid in frontier and p not in tree}
    out = {"server_master": 0.0, "server_workers": 0.0, "postgres": 0.0}
    workers = {}
    for pid, (ppid, comm, cpu) in procs.items():
        if pid == server_pid:
            out["server_master"] += cpu
        elif pid in tree:
            out["server_workers"] += cpu  # uvicorn workers (and multiprocessing's idle resource tracker)
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers[pid] = cpu
            except OSError:
                pass
        elif comm.startswith("postgres"):
            out["postgres"] += cpu
    out["per_worker"] = workers
    out["machine_busy"] = machine_busy_s()
    return out


class Server:
    """`ayni serve` in its own process group on a free loopback port; stop() always kills the group."""

    def __init__(self, db_url: str, workers: int, tmp: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AYNI_")},
               "AYNI_SESSION_KEY_FILE": str(tmp / "session.key")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(AYNI), "serve", "--db", db_url, "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(workers)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            wait_ready(self.base, self.proc, timeout=timeout)
        except ServerNotReady as exc:
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_group(self.proc)


# -- the clients ------------------------------------------------------------------------
class RawConnection:
    """A minimal HTTP/1.1 keep-alive client over one socket: pre-encoded request bytes out,
    status + Content-Length body back. The leanest client Python has, so the figures show the
    server rather than httpx's own per-request cost (--client raw)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            await self.aclose()
        return status, data

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None


def batch_bodies(bodies: list[bytes], batch: int) -> list[bytes]:
    """Pre-encoded POST /v1/transfers/batch bodies of `batch` transfers each."""
    return [b'{"transfers":[' + b",".join(bodies[k:k + batch]) + b"]}" for k in range(0, len(bodies), batch)]


async def drive(port: int, bodies: list[bytes], clients: int, max_seconds: float, kind: str,
                batch: int = 0) -> dict:
    """`clients` concurrent keep-alive connections, each posting the next body until all are sent
    or max_seconds passed. Returns latencies (s), statuses and refusal codes. With `batch`, each
    request carries that many transfers and statuses count each transfer's own result."""
    import httpx
    base = f"http://127.0.0.1:{port}"
    path = "/v1/transfers/batch" if batch else "/v1/transfers"
    if batch:
        bodies = batch_bodies(bodies, batch)
    it = iter(range(len(bodies)))
    latencies: list[float] = []
    statuses: Counter = Counter()
    codes: Counter = Counter()
    deadline = time.perf_counter() + max_seconds

    async def one(conn) -> None:
        for i in it:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                if kind == "raw":
                    status, data = await conn.post(path, bodies[i])
                else:
                    r = await conn.post(path, content=bodies[i],
                                        headers={"content-type": "application/json"})
                    status, data = r.status_code, r.content
            except Exception as exc:  # noqa: BLE001 - counted, never fatal to the run
                latencies.append(time.perf_counter() - t0)
                statuses[f"exception:{type(exc).__name__}"] += 1
                if kind == "raw":
                    await conn.aclose()
                continue
            latencies.append(time.perf_counter() - t0)
            if batch and status == 200:
                for item in json.loads(data)["results"]:
                    statuses[str(item["status"])] += 1
                    if item["status"] >= 400:
                        codes[item["body"]["error"]["code"]] += 1
                continue
            statuses[str(status)] += 1
            if status >= 400:
                try:
                    codes[json.loads(data)["error"]["code"]] += 1
                except Exception:  # noqa: BLE001
                    codes["<no error body>"] += 1

    start = time.perf_counter()
    if kind == "raw":
        conns = [RawConnection(port) for _ in range(clients)]
        try:
            await asyncio.gather(*(one(c) for c in conns))
        finally:
            await asyncio.gather(*(c.aclose() for c in conns))
    else:
        # one AsyncClient (one keep-alive connection) per client: a single shared pool of N
        # connections costs httpcore several ms of CPU a request once N callers queue on it
        https = [httpx.AsyncClient(base_url=base, http1=True, http2=False, timeout=30.0,
                                   limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                 for _ in range(clients)]
        try:
            await asyncio.gather(*(one(h) for h in https))
        finally:
            await asyncio.gather(*(h.aclose() for h in https))
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses, "codes": codes,
            "timed_out": time.perf_counter() > deadline}


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, int(round(q * len(sorted_ms) + 0.5)) - 1))]


# -- one run ----------------------------------------------------------------------------
def run(url: str, *, workers: int, clients: int, n: int, warmup: int, accounts: int, max_seconds: float,
        kind: str, tmp: Path, batch: int = 0) -> dict:
    ledger, domain, keys = setup(url, accounts)
    base_transfers = _transfer_count(ledger)
    ledger.engine.dispose()
    bodies, sign_rate = presign(domain, keys, warmup + n)
    server = Server(url, workers, tmp)
    try:
        server.wait_ready()
        # warm-up, not timed: connections opened, worker imports and pools hot, the group-commit
        # writers started in every worker
        warm = asyncio.run(drive(server.port, bodies[:warmup], clients, max_seconds, kind, batch)) if warmup else None
        cpu0, ru0, t0 = cpu_by_group(server.proc.pid), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        res = asyncio.run(drive(server.port, bodies[warmup:], clients, max_seconds, kind, batch))
        wall = time.perf_counter() - t0
        cpu1, ru1 = cpu_by_group(server.proc.pid), resource.getrusage(resource.RUSAGE_SELF)
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
    lat = sorted(x * 1000 for x in res["latencies"])
    created = res["statuses"].get("201", 0)
    warm_created = warm["statuses"].get("201", 0) if warm else 0
    check = Ledger.open(url, migrate=False)
    try:
        report = check.verify()
        posted = _transfer_count(check) - base_transfers
    finally:
        check.engine.dispose()
    client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    cpu = {
        "wall_s": wall,
        "available_core_s": wall * (os.cpu_count() or 1),
        "client_s": client_cpu,
        "server_workers_s": cpu1["server_workers"] - cpu0["server_workers"],
        "server_master_s": cpu1["server_master"] - cpu0["server_master"],
        "postgres_s": cpu1["postgres"] - cpu0["postgres"],
        "machine_busy_s": cpu1["machine_busy"] - cpu0["machine_busy"],
        "per_worker_s": sorted(round(cpu1["per_worker"].get(p, 0) - c, 3) for p, c in cpu0["per_worker"].items()),
    }
    cpu["other_processes_s"] = max(0.0, cpu["machine_busy_s"] - cpu["client_s"] - cpu["server_workers_s"]
                                   - cpu["server_master_s"] - cpu["postgres_s"])
    cpu["server_s"] = cpu["server_workers_s"] + cpu["server_master_s"]  # one worker runs in the master
    done = sum(res["statuses"].values())  # transfers answered (one per request without --batch)
    cpu["per_transfer_ms"] = {k: 1000 * cpu[k] / done for k in ("client_s", "server_s", "postgres_s")} \
        if done else {}
    return {
        "db": url.split(":", 1)[0],
        "workers": workers,
        "clients": clients,
        "client": kind,
        "batch": batch or None,
        "requests": len(lat),
        "transfers_answered": done,
        "requested": n,
        "warmup_requests_untimed": warmup,
        "stopped_by_time_limit": res["timed_out"],
        "elapsed_s": res["elapsed"],
        "transfers_per_s": created / res["elapsed"],
        "requests_per_s": len(lat) / res["elapsed"],
        "latency_ms": {"p50": pct(lat, .50), "p90": pct(lat, .90), "p99": pct(lat, .99),
                       "max": lat[-1] if lat else float("nan"),
                       "mean": sum(lat) / len(lat) if lat else float("nan")},
        "status_counts": dict(res["statuses"]),
        "refusal_codes": dict(res["codes"]),
        "presign_per_s_excluded": sign_rate,
        "cpu": cpu,
        "verify": {"ok": report.ok, "entries": report.entries,
                   "transfers_posted_in_db": posted, "http_201_total": created + warm_created,
                   "posted_equals_201": posted == created + warm_created},
    }


def _transfer_count(ledger: Ledger) -> int:
    from sqlalchemy import func, select
    from ledger.store import tables as T
    with ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(T.entries)
                            .where(T.entries.c.kind == "transfer.posted")).scalar_one()


def run_postgres(args, tmp: Path) -> dict:
    from sqlalchemy import create_engine, text
    name = f"ayni_bench_api_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        return {"skipped": f"PostgreSQL unreachable at {PG_ADMIN}: {str(exc).splitlines()[0]}"}
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        return run(url, workers=args.workers, clients=args.clients, n=args.transfers, warmup=args.warmup,
                   accounts=args.accounts, max_seconds=args.max_seconds, kind=args.client, tmp=tmp,
                   batch=args.batch)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections")
    ap.add_argument("--transfers", type=int, default=5000, help="timed requests")
    ap.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    ap.add_argument("--client", choices=("httpx", "raw"), default="raw",
                    help="raw: a minimal asyncio HTTP/1.1 client (~0.1 ms CPU a request); httpx: one httpx.AsyncClient "
                         "per client (~3 ms CPU a request, more than the server spends)")
    ap.add_argument("--sqlite", action="store_true", help="also run SQLite with one worker")
    ap.add_argument("--batch", type=int, default=0,
                    help="N > 0: POST /v1/transfers/batch with N transfers per request (at most 500)")
    ap.add_argument("--also-batch", type=int, default=0, metavar="N",
                    help="after the run above, run PostgreSQL again with --batch N (`postgres_batch` in the JSON)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    raw = raw_recover_rate(2000)
    with tempfile.TemporaryDirectory(prefix="ayni-bench-api-") as d:
        tmp = Path(d)
        pg = run_postgres(args, tmp)
        pg_batch = None
        if args.also_batch:
            pg_batch = run_postgres(argparse.Namespace(**{**vars(args), "batch": args.also_batch}), tmp)
        sqlite = None
        if args.sqlite:
            sqlite = run(f"sqlite:///{tmp}/bench.db", workers=1, clients=args.clients, n=args.transfers,
                         warmup=args.warmup, accounts=args.accounts, max_seconds=args.max_seconds,
                         kind=args.client, tmp=tmp, batch=args.batch)
    raw_after = raw_recover_rate(2000)  # bracket the run: machines are shared
    raw_rate = (raw + raw_after) / 2
    ok = "transfers_per_s" in pg
    result = {
        "benchmark": "api",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "method": "transfers pre-signed before timing (signing is the client's cost, excluded); "
                  "keep-alive HTTP/1.1 clients in one asyncio process on the same machine as the "
                  "server and PostgreSQL; latency = request sent to response read, per request",
        "raw_recover_per_s": raw_rate,
        "raw_recover_per_s_before_after": [raw, raw_after],
        "postgres": pg,
        **({"postgres_batch": pg_batch} if pg_batch else {}),
        **({"sqlite": sqlite} if sqlite else {}),
        "ratios_to_raw_recover": {
            **({"postgres": pg["transfers_per_s"] / raw_rate} if ok else {}),
            **({"postgres_batch": pg_batch["transfers_per_s"] / raw_rate}
               if pg_batch and "transfers_per_s" in pg_batch else {}),
            **({"sqlite": sqlite["transfers_per_s"] / raw_rate} if sqlite else {}),
        },
        "target": ">= 1000 signed transfers/s with p99 <= 50 ms (PostgreSQL, 2 workers, client load included)",
        "target_met": ok and pg["transfers_per_s"] >= 1000 and pg["latency_ms"]["p99"] <= 50,
    }
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_out + "\n")
    ok_all = ok and all(r["verify"]["ok"] and r["verify"]["posted_equals_201"]
                        for r in (pg, pg_batch, sqlite) if r is not None and "verify" in r)
    if not ok_all:
        sys.exit(1)


if __name__ == "__main__":
    main()
