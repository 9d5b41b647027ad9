"""A longer schemathesis run over the HTTP API of a real `ayni serve` (SQLite, 1 worker):
the schemathesis CLI fuzzes every operation of /openapi.json (examples, schema-valid and
schema-breaking data) once anonymously and once as a signed-in treasurer. Counts as JSON:
operations, failures per check, requests served by status class (from the server's /metrics),
and any 5xx. The short in-process version with every caller role is tests/test_api_schema.py.

    python benchmarks/fuzz_api.py [--max-examples 200] [--scale small|full] [--seed 1] [--out FILE]
Exit status 1 on any failure or any 5xx.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from ledger.sample import SampleCommunity  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from tests.bank import Server, sign_in  # noqa: E402

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SCALES = {"small": 25, "full": 200}
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def community(url: str) -> bytes:
    """A community with some members, a shop and transfers to find; the treasurer's key."""
    c = SampleCommunity(url, name="fuzz")
    for i, role in enumerate(("member", "member", "member", "shop")):
        c.member(f"m{i}", role)
    c.ledger.submit_many([c.pay(f"m{i % 3}", f"m{(i + 1) % 4}", 10 + i, memo=f"visit {i}") for i in range(20)])
    c.dispose()
    return c.treasurer_key


def fuzz(base: str, tmp: Path, name: str, headers: list[str], n: int, seed: int) -> dict:
    junit = tmp / f"{name}.xml"
    args = [str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-examples", str(n),
            "--seed", str(seed), "--continue-on-failure", "--report", "junit", "--report-junit-path", str(junit),
            "--suppress-health-check", "all", "--no-color"]
    for h in headers:
        args += ["-H", h]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    elapsed = time.monotonic() - t0
    out: dict = {"caller": name, "exit_status": proc.returncode, "seconds": round(elapsed, 1)}
    if not junit.exists():
        return {**out, "error": (proc.stdout + proc.stderr)[-2000:]}
    suites = ET.parse(junit).getroot()
    cases = list(suites.iter("testcase"))
    failures = Counter()
    samples = []
    for c in cases:
        for f in list(c.iter("failure")) + list(c.iter("error")):
            text = f"{f.get('message') or ''} {f.text or ''}".strip()
            failures[text.splitlines()[0][:120] if text else "?"] += 1
            if len(samples) < 10:
                samples.append(f"{c.get('name')}: {text[:400]}")
    return {**out, "operations": len(cases), "operations_failed": sum(1 for c in cases if c.find("failure") is not None
                                                                      or c.find("error") is not None),
            "failures": dict(failures), "failure_samples": samples}


def statuses(base: str) -> dict:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    by_class = Counter()
    for m in re.finditer(r'ayni_http_requests_total\{[^}]*status="(\d)\d\d"\} (\d+)', text):
        by_class[m.group(1) + "xx"] += int(m.group(2))
    return dict(by_class)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--max-examples", type=int, help="per operation (default by scale)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    n = args.max_examples or SCALES[args.scale]
    with tempfile.TemporaryDirectory(prefix="ayni-fuzz-") as d:
        tmp = Path(d)
        url = f"sqlite:///{tmp}/fuzz.db"
        treasurer = community(url)
        server = Server(url, 1, tmp)
        try:
            server.start()
            token = sign_in(server.base, treasurer)
            runs = [fuzz(server.base, tmp, "anonymous", [], n, args.seed),
                    fuzz(server.base, tmp, "treasurer", [f"Authorization: Bearer {token}",
                                                         "Ayni-Purpose: reconciliation"], n, args.seed)]
            served = statuses(server.base)
            ledger = Ledger.open(url, migrate=False)
            verify_ok = ledger.verify().ok
            ledger.engine.dispose()
        finally:
            server.stop()
    seconds = sum(r["seconds"] for r in runs)
    result = {
        "benchmark": "fuzz_api",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "max_examples_per_operation": n,
        "checks": CHECKS.split(","),
        "runs": runs,
        "requests_served_by_status": served,
        "requests_per_s": round(sum(served.values()) / seconds, 1) if seconds else None,
        "server_errors_5xx": served.get("5xx", 0),
        "ledger_verify_ok_after": verify_ok,
    }
    result["ok"] = (verify_ok and result["server_errors_5xx"] == 0
                    and all(r.get("operations") and not r["operations_failed"] for r in runs))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
