"""PostgreSQL failover under the bank workload, at length (tests/pg_ha.py, tests/test_failover.py):
two real PostgreSQL 15 clusters, `ayni serve --workers 2` on a multi-host URL, 16 clients, and
several times: SIGKILL the primary, promote the standby, rebuild the dead node with pg_rewind as
the new standby (the service is never restarted). Runs synchronous replication (promoted at
once, and promoted after the service's own retry window so clients see 503 and retry) and
asynchronous replication, each over a replication link with the same added latency.

    python benchmarks/failover.py [--scale small|full] [--seconds S] [--kills K]
                                  [--link-delay-ms 10] [--only sync|async] [--out FILE]
JSON: per run the transfers acknowledged, acknowledged-but-lost (0 required with synchronous
replication; recorded, not required, with asynchronous), kill-to-promoted and
kill-to-first-new-acknowledgement seconds, 503s, in-doubt transfers recovered as duplicates.
Exit status 1 if a synchronous run lost an acknowledged transfer or any run broke an invariant
(a transfer twice, a non-zero sum, a broken hash chain, `ayni verify` failing).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.service import WRITE_RETRY_S
from tests.pg_ha import TAIL_LOSS, run_failover, unavailable_reason

SCALES = {"small": {"seconds": 30.0, "kills": 2}, "full": {"seconds": 120.0, "kills": 4}}


def one(name: str, *, synchronous: bool, promote_after_s: float, seconds: float, kills: int,
        clients: int, link_delay_s: float) -> dict:
    t0 = time.monotonic()
    r = run_failover(synchronous=synchronous, seconds=seconds, kills=kills, clients=clients,
                     promote_after_s=promote_after_s, link_delay_s=link_delay_s)
    f = r.figures
    broken = [x for x in r.faults if not any(m in x for m in TAIL_LOSS)]
    ok = not broken and f["verify_ok"] and f["unresolved"] == 0 and f["answers_5xx_not_retryable"] == 0
    if synchronous:
        ok = ok and f["acknowledged_lost"] == 0 and not r.faults
    return {"run": name, **f, "wall_s": round(time.monotonic() - t0, 1), "ok": ok,
            "invariant_faults": broken[:10],
            "tail_loss_samples": [x for x in r.faults if any(m in x for m in TAIL_LOSS)][:10],
            "verify": r.verify_output[:300]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--seconds", type=float, help="traffic per run (default by scale)")
    ap.add_argument("--kills", type=int, help="primary SIGKILLs per run (default by scale)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--link-delay-ms", type=float, default=10.0,
                    help="one-way latency added to the replication link (0: bare loopback)")
    ap.add_argument("--only", choices=("sync", "async"), help="run only the synchronous or asynchronous runs")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    reason = unavailable_reason()
    result: dict = {"benchmark": "failover",
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                "platform": platform.platform()}}
    if reason:
        result.update(skipped=reason, ok=True)
    else:
        scale = SCALES[args.scale]
        common = {"seconds": args.seconds or scale["seconds"],
                      "kills": scale["kills"] if args.kills is None else args.kills,
                      "clients": args.clients, "link_delay_s": args.link_delay_ms / 1000}
        runs = []
        if args.only != "async":
            runs += [one("synchronous, promoted at once", synchronous=True, promote_after_s=0.0, **common),
                     one(f"synchronous, promoted after {WRITE_RETRY_S + 1:g} s", synchronous=True,
                         promote_after_s=WRITE_RETRY_S + 1, **common)]
        if args.only != "sync":
            runs.append(one("asynchronous, promoted at once", synchronous=False, promote_after_s=0.0, **common))
        result.update(
            method="tests/pg_ha.py + tests/bank.py: two PostgreSQL 15 clusters made by the run (streaming "
                   "replication through a relay adding the link delay), ayni serve --workers 2 on a multi-host "
                   "URL (target_session_attrs=read-write), 16 clients posting signed transfers and retrying "
                   "unanswered ones with the same signed payload; each kill SIGKILLs the primary's postmaster and "
                   "backends, promotes the standby (pg_ctl promote), and rebuilds the dead node with pg_rewind "
                   "as the new standby before the next kill",
            runs=runs, ok=all(r["ok"] for r in runs))
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_out + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
