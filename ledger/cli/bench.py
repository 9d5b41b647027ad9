"""`ayni bench`: run every script in benchmarks/ at one scale, write one JSON file and a short
markdown summary in which each rate stands next to its ratio to the raw hardware-bound rate
(secp256k1 recovery or keccak) that the same script measured in the same run. The README's
figures are meant to be copied from this summary, so they stay true."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from .options import fail

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "benchmarks"

# Arguments per script and scale; "full" is each script's own defaults unless listed.
# Scripts not listed get `--scale` when their --help offers it, else only `--out`.
ARGS = {
    "small": {
        "posting": ["--transfers", "1000"],
        "anchoring": ["--leaves", "100000", "--transfers", "500", "--repeat", "1"],
        "merkle": ["--leaves", "100000", "--proofs", "5000", "--repeat", "1"],
        "api": ["--transfers", "1500", "--warmup", "100", "--also-batch", "100"],
        "reconcile": ["--entries", "20000", "--members", "100"],
    },
    "full": {"api": ["--sqlite", "--also-batch", "500"]},
}
TIMEOUT_S = {"small": 900, "full": 3 * 3600}


def _accepts_scale(script: Path) -> bool:
    try:
        text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                              timeout=60, cwd=ROOT).stdout
    except subprocess.TimeoutExpired:
        return False
    return "--scale" in text


def run_script(script: Path, scale: str, tmp: Path) -> dict:
    name = script.stem
    out = tmp / f"{name}.json"
    args = ARGS[scale].get(name)
    if args is None:
        args = ["--scale", scale] if _accepts_scale(script) else []
    cmd = [sys.executable, str(script), *args, "--out", str(out)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S[scale], cwd=ROOT)
        status, tail = proc.returncode, (proc.stderr or proc.stdout)[-1500:]
    except subprocess.TimeoutExpired:
        status, tail = None, f"timed out after {TIMEOUT_S[scale]} s"
    run = {"args": args, "exit_status": status, "seconds": round(time.monotonic() - t0, 1)}
    try:
        run["result"] = json.loads(out.read_text())
    except (OSError, ValueError):
        run["result"] = None
    if status != 0 or run["result"] is None:
        run["error_tail"] = tail
    return run


# -- the summary: (figure, value, ratio to raw or None, raw rate named) ----------------------
def _g(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def figures(name: str, r: dict) -> list[tuple[str, object, float | None, str]]:
    rows: list[tuple[str, object, float | None, str]] = []

    def add(label, value, ratio=None, raw=""):
        if value is not None:
            rows.append((label, value, ratio, raw))

    if name == "posting":
        raw = r.get("raw_recover_per_s")
        for db in ("sqlite", "postgres"):
            for k, label in (("single_per_s", "one transaction per transfer"), ("batched_per_s", "batched"),
                             ("group_commit_per_s", "group commit")):
                v = _g(r, db, k)
                add(f"{db}: {label}, transfers/s", v, v / raw if v and raw else None, "secp256k1 recover")
            for t, v in sorted((_g(r, db, "group_commit_per_s_by_threads") or {}).items(), key=lambda x: int(x[0])):
                if int(t) != _g(r, db, "group_commit_threads") and int(t) != _g(r, db, "threads"):
                    add(f"{db}: group commit, {t} callers, transfers/s", v, v / raw if v and raw else None,
                        "secp256k1 recover")
            raw_cpu, v = r.get("raw_recover_cpu_per_s"), _g(r, db, "batched_cpu_per_s")
            add(f"{db}: batched, transfers per CPU second", v, v / raw_cpu if v and raw_cpu else None,
                "secp256k1 recover per CPU second")
    elif name in ("api", "bank"):
        raw = r.get("raw_recover_per_s")
        key = "transfers_per_s" if name == "api" else "acknowledged_per_s"
        for db in ("postgres", "postgres_batch", "sqlite"):
            v = _g(r, db, key)
            label = f"{db}: signed transfers/s over HTTP" if db != "postgres_batch" else \
                f"postgres: POST /v1/transfers/batch ({_g(r, db, 'batch')} a request), transfers/s"
            add(label + (" (under SIGKILLs)" if name == "bank" else ""), v,
                v / raw if v and raw else None, "secp256k1 recover")
            add("postgres: p99 latency of a batch request, ms" if db == "postgres_batch" else f"{db}: p99 latency, ms",
                _g(r, db, "latency_ms", "p99"))
            if name == "bank" and _g(r, db, "ok") is not None:
                add(f"{db}: checker faults / kills / acknowledged", f"{_g(r, db, 'faults')} / {_g(r, db, 'kills')} / "
                    f"{_g(r, db, 'acknowledged')}")
    elif name in ("merkle", "anchoring"):
        m = r.get("merkle", r) if name == "anchoring" else r
        add("Merkle build, hashes/s", m.get("build_hashes_per_s"), m.get("build_vs_raw"), "keccak")
        add("Merkle leaves + build, hashes/s", m.get("e2e_hashes_per_s"), m.get("e2e_vs_raw"), "keccak")
        gas = [g.get("gas_used") for g in r.get("gas_by_batch_size", [])]
        if gas:
            add("gas per anchor call (min-max over batch sizes)", f"{min(gas):,}-{max(gas):,}")
    elif name == "reconcile":
        raw = "secp256k1 recover, 1 core"
        add("reconcile, every signature, all cores, entries/s", r.get("full_entries_per_s"), r.get("full_vs_raw_recover"), raw)
        add("reconcile, every signature, 1 core, entries/s", r.get("one_core_entries_per_s"),
            r.get("one_core_vs_raw_recover"), raw)
        add("reconcile without signatures, entries/s", r.get("no_signatures_entries_per_s"))
        add("ayni verify, all cores, entries/s", r.get("verify_entries_per_s"), r.get("verify_vs_raw_recover"), raw)
        add("peak RSS MB: reconcile / verify / posting",
            f"{r.get('full_peak_rss_mb')} / {r.get('verify_peak_rss_mb')} / {r.get('post_peak_rss_mb')}")
    elif name == "federation":  # its ratio is to local payments on the same node, same run
        add("local payments/s over HTTP (same node)", _g(r, "local", "per_second"))
        add("remote payments/s over HTTP (two nodes)", _g(r, "remote", "per_second"),
            r.get("remote_over_local_throughput"), "local payments/s")
        add("p99 latency local / remote, ms", f"{_g(r, 'local', 'p99_ms')} / {_g(r, 'remote', 'p99_ms')}")
    elif name == "fuzz_api":
        add("fuzzed requests served / 5xx", f"{sum((r.get('requests_served_by_status') or {}).values())} / "
            f"{r.get('server_errors_5xx')}")
        add("operations failing a check", sum(x.get("operations_failed") or 0 for x in r.get("runs", [])))
    elif name == "footprint":  # what a deployment uses (docs/costs.md, "Hosting on one small VM")
        for m in r.get("memory", []):
            if "idle" in m:
                add(f"{m['db']}, {m['workers']} worker(s): RSS idle / after load, MiB",
                    f"{m['idle']['rss_mib']} / {m['after_load']['rss_mib']}")
        for db, s in (r.get("storage") or {}).items():
            add(f"{db}: database bytes per member-year (care-coop activity)", s.get("bytes_per_member_year"))
    else:  # a script this summary does not know yet: its rates and its ratios, as it names them
        for k, v in r.items():
            if isinstance(v, (int, float)) and (k.endswith("per_s") or "ratio" in k or "vs_raw" in k):
                add(k, v)
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if v >= 10 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(report: dict) -> str:
    lines = [f"# Benchmarks ({report['scale']} scale, {report['when']})", "",
             f"{report['machine']['cpus']} CPUs, Python {report['machine']['python']}. Ratios are to the raw rate "
             "the same script measured in the same run, so they travel between machines better than rates.", "",
             "| benchmark | figure | value | × raw rate |", "|---|---|---|---|"]
    for name, run in report["runs"].items():
        if run["result"] is None:
            lines.append(f"| {name} | **failed** (exit {run['exit_status']}) | | |")
            continue
        for label, value, ratio, raw in figures(name, run["result"]):
            lines.append(f"| {name} | {label} | {_fmt(value)} | "
                         f"{f'{ratio:.3g} × {raw}' if ratio is not None else '—'} |")
        if run["exit_status"] != 0:
            lines.append(f"| {name} | **exit status {run['exit_status']}** (a target or a check failed) | | |")
    return "\n".join(lines) + "\n"


def bench(scale: str = typer.Option("small", help="small (minutes) or full (the figures in the README)"),
          out: Path = typer.Option(Path("benchmarks/results"), "--out", help="Directory for bench.json and bench.md"),
          only: list[str] = typer.Option(None, "--only", help="Run just these scripts (by name, repeatable)")) -> None:
    """Run every benchmark script at one scale; write bench.json and a markdown summary."""
    if scale not in ARGS:
        fail("--scale must be small or full", 2)
    scripts = sorted(p for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        fail(f"no benchmark scripts in {BENCH_DIR} (run from a source checkout)", 2)
    if only:
        unknown = set(only) - {p.stem for p in scripts}
        if unknown:
            fail(f"no such benchmark: {', '.join(sorted(unknown))}", 2)
        scripts = [p for p in scripts if p.stem in only]
    report = {"scale": scale, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()}, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="ayni-bench-") as d:
        for script in scripts:
            typer.echo(f"running {script.name} ({scale}) ...", err=True)
            run = run_script(script, scale, Path(d))
            report["runs"][script.stem] = run
            typer.echo(f"  exit {run['exit_status']} in {run['seconds']} s", err=True)
    from ..files import write_atomic
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "bench.json", json.dumps(report, indent=2) + "\n", mode=0o644)
    md = markdown(report)
    write_atomic(out / "bench.md", md, mode=0o644)
    typer.echo(md)
    typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.md'}", err=True)
    if any(r["exit_status"] != 0 or r["result"] is None for r in report["runs"].values()):
        raise typer.Exit(1)
