"""Remote payments per second and their latency over loopback, next to local payments measured
in the same run on the same node: two real `ayni serve` (SQLite, one worker each) allied by
`ayni federation`, C concurrent clients posting payer-signed transfers to node A.

- local:  POST /v1/transfers (A's member to A's member), answered once committed in A's log;
- remote: POST /v1/remote-transfers (A's member to B's member), answered 201 once A's decision
  is durable: A's prepared entry, PREPARE to B, B's prepared entry and vote, A's commit entry
  (B's commit follows asynchronously, as the protocol allows).
Targets (issue 15): remote >= 0.4x local throughput, remote p99 <= 3x local p99.

`--faults`: the long fault run instead (the CI test is tests/test_federation_e2e.py): clients
pay both ways while both nodes are SIGKILLed and restarted repeatedly; after recovery the books
are checked as in the test (acknowledged => committed on both, no split, exactly once,
verify, mirror). Writes JSON.

    python benchmarks/federation.py [--payments 600] [--clients 8] [--faults] [--scale small|full]
                                    [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from ledger import signing  # noqa: E402
from tests.federation_nodes import (Node, ally, check_books, post, remote_payment, settle)  # noqa: E402


def pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 2)


def drive(url: str, bodies: list[dict], clients: int) -> dict:
    """Post every body once from `clients` threads (keep-alive); rate and latency of 2xx answers."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def client():
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                t0 = time.perf_counter()
                r = http.post(url, json=body)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code in (200, 201):
                        latencies.append(ms)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(bodies), "ok": len(latencies), "statuses": statuses, "seconds": round(seconds, 3),
            "per_second": round(len(latencies) / seconds, 1), "p50_ms": pct(latencies, 0.50),
            "p99_ms": pct(latencies, 0.99)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its waited-for children (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def with_cpu(a: Node, b: Node, run) -> dict:
    """`run()`'s figures plus the CPU each node spent per answered request: the cost of a payment,
    which a loaded machine (other processes) moves far less than the rate or the latency."""
    before = [cpu_seconds(n.proc.pid) for n in (a, b)]
    result = run()
    after = [cpu_seconds(n.proc.pid) for n in (a, b)]
    if None not in before + after and result["ok"]:
        result["cpu_ms_per_payment"] = {n: round((y - x) * 1000 / result["ok"], 2)
                                        for n, x, y in zip(("A", "B"), before, after)}
    return result


def throughput(tmp: Path, payments: int, clients: int, warmup: int) -> dict:
    a = Node("A", f"sqlite:///{tmp}/a.db", tmp / "A", members=40, credit_limit=10**9, via_proxy=False,
             retry_ms=2000, timeout_ms=60_000)
    b = Node("B", f"sqlite:///{tmp}/b.db", tmp / "B", members=40, credit_limit=10**9, via_proxy=False,
             retry_ms=2000, timeout_ms=60_000)
    try:
        for n in (a, b):
            n.create(ceiling=10**12)
            n.start()
        ally(a, b, limit=10**12)

        def local_bodies(k: int) -> list[dict]:
            return [signing.transfer_json(signing.transfer(a.keys[i % 40], a.domain, payee=a.address((7 * i + 1) % 40),
                                                           currency="HOUR", amount=1 + i % 50)) for i in range(k)]

        def remote_bodies(k: int) -> list[dict]:
            return [remote_payment(a, b, i % 40, (7 * i + 1) % 40, 1 + i % 50).body for i in range(k)]

        drive(a.base + "/v1/transfers", local_bodies(warmup), clients)
        drive(a.base + "/v1/remote-transfers", remote_bodies(warmup), clients)
        local = with_cpu(a, b, lambda: drive(a.base + "/v1/transfers", local_bodies(payments), clients))
        remote = with_cpu(a, b, lambda: drive(a.base + "/v1/remote-transfers", remote_bodies(payments), clients))
        ratio = remote["per_second"] / local["per_second"] if local["per_second"] else None
        p99_ratio = remote["p99_ms"] / local["p99_ms"] if local["p99_ms"] else None
        return {"local": local, "remote": remote,
                "remote_over_local_throughput": round(ratio, 3) if ratio else None,
                "remote_over_local_p99": round(p99_ratio, 3) if p99_ratio else None,
                "targets": {"throughput_ratio_min": 0.4, "p99_ratio_max": 3.0},
                "meets_targets": bool(ratio and p99_ratio and ratio >= 0.4 and p99_ratio <= 3.0)}
    finally:
        a.close()
        b.close()


def fault_run(tmp: Path, seconds: float, kills: int, clients: int, seed: int) -> dict:
    rnd = random.Random(seed)
    a = Node("A", f"sqlite:///{tmp}/a.db", tmp / "A", members=8, credit_limit=200)
    b = Node("B", f"sqlite:///{tmp}/b.db", tmp / "B", members=8, credit_limit=200)
    payments, lock, stop = [], threading.Lock(), threading.Event()
    try:
        for n in (a, b):
            n.create()
            n.start()
        ally(a, b, limit=300)  # tight: some payments meet peer_limit_reached

        def client(k: int):
            r = random.Random(seed * 100 + k)
            while not stop.is_set():
                origin, dest = (a, b) if r.random() < 0.5 else (b, a)
                p = remote_payment(origin, dest, r.randrange(8), r.randrange(8), r.randint(1, 60))
                with lock:
                    payments.append(p)
                for _ in range(60):
                    status, _ = post(origin, p, timeout=10)
                    if status is not None or stop.is_set():
                        break
                    time.sleep(0.2)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for _ in range(kills):
            time.sleep(seconds / (kills + 1))
            victim = rnd.choice((a, b, None))
            for n in ((a, b) if victim is None else (victim,)):
                n.kill()
            time.sleep(rnd.uniform(0, 1.5))
            for n in (a, b):
                if n.proc.poll() is not None:
                    n.start()
        time.sleep(seconds / (kills + 1))
        stop.set()
        for t in threads:
            t.join()
        states = settle([a, b], payments, timeout=60)
        check_books(a, b, payments, states)
        counts = {"payments": len(payments), "acknowledged": sum(p.acknowledged for p in payments),
                  "refused": sum(p.refused for p in payments),
                  "committed": sum(s == ("committed", "committed") for s in states.values())}
        return {"ok": True, "kills": kills, "seconds": seconds, **counts}
    finally:
        stop.set()
        a.close()
        b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payments", type=int, default=1000, help="timed requests of each kind")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--scale", choices=("small", "full"), default=None, help="small: 300 payments of each kind")
    ap.add_argument("--faults", action="store_true", help="the long fault run instead of the throughput run")
    ap.add_argument("--fault-seconds", type=float, default=90.0)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.scale == "small":
        args.payments, args.warmup = 300, 50
    with tempfile.TemporaryDirectory(prefix="ayni-fed-bench-") as tmp:
        if args.faults:
            result = {"fault_run": fault_run(Path(tmp), args.fault_seconds, args.kills, args.clients, args.seed)}
        else:
            result = throughput(Path(tmp), args.payments, args.clients, args.warmup)
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    result["clients"] = args.clients
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
