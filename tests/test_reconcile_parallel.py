"""Signatures recovered on every core (ledger/verify/parallel.py) make the same findings, at the
same seqs, as one core: `ayni-wallet reconcile` (export and HTTP) and `ayni verify`, with
--jobs 1 and --jobs 2, chunks of 4 entries so that tampered entries sit at chunk edges.

The ledger is real (SQLite and PostgreSQL), edited in the database the way a dishonest server
would; the pool is forced on for these small logs (threshold 0), as it is on for big ones."""
import json

import pytest
from sqlalchemy import select

from ledger.audit import audit
from ledger.core.reconcile import Reconciler
from ledger.log_export import export_log
from ledger.store import tables as T
from ledger.verify.parallel import Recovery, signature_job
from wallet_cli.reconcile import reconcile

from .conftest import Community
from .test_reconcile_attacks import client_for

CHUNK = 4  # entries per chunk: chunk k holds seqs 4k+1 .. 4k+4
PAIRS = [("ana", "bea"), ("bea", "cho"), ("cho", "ana")]


class Log:
    """3 members and 20 transfers: seqs 1 (genesis), 2-4 (accounts), 5-24 (transfers)."""

    def __init__(self, url):
        self.c = c = Community(url)
        for n in ("ana", "bea", "cho"):
            c.member(n)
        for i in range(20):
            payer, payee = PAIRS[i % 3]
            c.ledger.submit(c.pay(payer, payee, 3 + i % 5))
        self.engine = c.ledger.engine

    def body(self, seq: int) -> dict:
        with self.engine.connect() as conn:
            return json.loads(conn.execute(select(T.entries.c.body).where(T.entries.c.seq == seq)).scalar_one())

    def write(self, seq: int, body: dict) -> None:
        """Replace entry `seq`'s body and re-chain every hash from it on (a careful forger)."""
        from .test_reconcile import Coop
        Coop.write_entry(self, seq, body, rechain=True)

    def reconcile_export(self, tmp_path, jobs: int):
        path = tmp_path / f"log-{jobs}.jsonl"
        export_log(self.c.ledger, path)
        return reconcile(export=path, skip_chain=True, jobs=jobs, parallel_threshold=0, parallel_chunk=CHUNK)

    def reconcile_http(self, tmp_path, jobs: int):
        client = client_for(self.c.ledger, self.c.treasurer_key, tmp_path)
        return reconcile(client=client, checkpoint=tmp_path / f"ck-{jobs}.jsonl", skip_chain=True, jobs=jobs,
                         parallel_threshold=0, page=CHUNK)

    def verify(self, jobs: int):
        return audit(self.c.ledger, jobs=jobs, parallel_threshold=0, page=CHUNK)


@pytest.fixture
def log(db_url):
    lg = Log(db_url)
    yield lg
    lg.c.dispose()


def tamper_signature(log: Log, seq: int) -> None:
    body = log.body(seq)
    sig = bytearray.fromhex(body["signature"][2:])
    sig[7] ^= 1  # still 65 bytes of hex: it recovers to some other key, or to none
    body["signature"] = "0x" + sig.hex()
    log.write(seq, body)


def findings(report) -> list[dict]:
    return [d.as_dict() for d in report.discrepancies]


def verify_findings(report) -> list[str]:
    return [str(f) for f in report.chain_faults + report.replay_faults + report.balance_faults]


@pytest.mark.parametrize("seq", [8, 9, 24], ids=["last-of-a-chunk", "first-of-a-chunk", "last-entry"])
def test_a_tampered_signature_is_found_at_its_seq_on_one_core_and_two(log, tmp_path, seq):
    tamper_signature(log, seq)
    one, two = log.reconcile_export(tmp_path, 1), log.reconcile_export(tmp_path, 2)
    assert [d["check"] for d in findings(one) if d["seq"] == seq] == ["signature"]
    assert findings(one) == findings(two)
    assert one.signatures_checked == two.signatures_checked == 23
    over_http = log.reconcile_http(tmp_path, 2)
    assert findings(over_http) == findings(one)
    v1, v2 = log.verify(1), log.verify(2)
    assert [f.seq for f in v1.replay_faults] == [seq] and v1.replay_faults[0].code == "signature"
    assert verify_findings(v1) == verify_findings(v2) and not v2.ok


def test_a_nonce_replayed_across_a_chunk_boundary_is_found_on_one_core_and_two(log, tmp_path):
    """The server re-posts the signed transfer of seq 6 (chunk 2) as seq 13 (chunk 4): a valid
    signature with a used nonce. The worker that recovers seq 13 never saw seq 6; the fold does."""
    log.write(13, log.body(6))
    one, two = log.reconcile_export(tmp_path, 1), log.reconcile_export(tmp_path, 2)
    reused = [d for d in findings(one) if d["check"] == "rules"]
    assert [d["seq"] for d in reused] == [13] and "nonce" in reused[0]["found"]
    assert not [d for d in findings(one) if d["check"] == "signature"]
    assert findings(one) == findings(two)
    assert findings(log.reconcile_http(tmp_path, 2)) == findings(one)
    v1, v2 = log.verify(1), log.verify(2)
    assert [f.seq for f in v1.replay_faults][:1] == [13]
    assert verify_findings(v1) == verify_findings(v2)


def test_an_honest_log_passes_on_two_cores_with_every_signature_recovered_ahead(log, tmp_path):
    assert log.reconcile_export(tmp_path, 2).ok
    assert log.verify(2).ok
    # the pool really answered: every signed entry's signer came back from a worker
    path = tmp_path / "log.jsonl"
    export_log(log.c.ledger, path)
    from ledger.core import log_format
    with open(path, encoding="ascii") as f, Recovery(2, threshold=0, chunk=CHUNK) as recovery:
        rec = Reconciler(signature_check=recovery.check)
        for entry in recovery.entries(log_format.ExportReader(f).entries(),
                                      lambda e: signature_job(e["seq"], e["body"])):
            rec.feed(entry)
        rec.finish_log()
    assert rec.report.ok and recovery.recovered == rec.report.signatures_checked == 23


def test_a_torn_export_fails_where_a_sequential_read_fails(log, tmp_path):
    """Reading ahead must not move an error earlier: a file torn at seq 10 is refused (exit 2) the same way."""
    from wallet_cli.reconcile import ReconcileInputError
    path = tmp_path / "log.jsonl"
    export_log(log.c.ledger, path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:10]) + lines[10][:40])
    errors = []
    for jobs in (1, 2):
        with pytest.raises(ReconcileInputError) as exc:
            reconcile(export=path, skip_chain=True, jobs=jobs, parallel_threshold=0, parallel_chunk=CHUNK)
        errors.append(str(exc.value))
    assert errors[0] == errors[1]


def test_the_commands_take_jobs_and_report_the_bad_signature(log, tmp_path):
    """`ayni verify --jobs 2` and `ayni-wallet reconcile --log F --jobs 2`: exit 1, the finding at its seq."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    tamper_signature(log, 9)
    path = tmp_path / "log.jsonl"
    export_log(log.c.ledger, path)

    def run(code, *args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                              cwd=root, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    v = run("from ledger.cli import main; main()", "verify", "--db", str(log.c.ledger.engine.url.render_as_string(
        hide_password=False)), "--jobs", "2", "--json")
    assert v.returncode == 1, v.stderr
    assert [(f["code"], f["seq"]) for f in json.loads(v.stdout)["replay_faults"]] == [("signature", 9)]
    r = run("from wallet_cli.main import main; main()", "reconcile", "--log", str(path), "--skip-chain",
            "--jobs", "2", "--json")
    assert r.returncode == 1, r.stderr
    assert [(d["check"], d["seq"]) for d in json.loads(r.stdout)["discrepancies"]] == [("signature", 9)]


def test_a_killed_worker_neither_hangs_nor_changes_the_findings(log, tmp_path):
    """A pool worker killed mid-run (the OOM killer, an operator's kill -9) took a chunk with it:
    the run must not wait for ever for that chunk; it recovers it, and the rest, in this process
    and makes the findings a sequential run makes. The first chunk is padded with 3,000 extra
    signatures so that a worker is surely busy with it when every worker is killed."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    from ledger.core import log_format
    tamper_signature(log, 9)
    expected = findings(log.reconcile_export(tmp_path, 1))
    path = tmp_path / "log.jsonl"
    export_log(log.c.ledger, path)
    with open(path, encoding="ascii") as f:
        entries = list(log_format.ExportReader(f).entries())
    pad = signature_job(5, log.body(5))
    padding = [(-1 - i, pad[1], pad[2]) for i in range(3000)]  # seqs no entry asks for
    chunks = [entries[i:i + CHUNK] for i in range(0, len(entries), CHUNK)]

    def source():
        yield chunks[0]
        time.sleep(0.05)  # the padded chunk is in a worker now
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)
        yield from chunks[1:]

    def jobs_of(chunk):
        jobs = [j for j in (signature_job(e["seq"], e["body"]) for e in chunk) if j is not None]
        return jobs + padding if chunk is chunks[0] else jobs
    out: dict = {}

    def run():
        with Recovery(2, threshold=0, chunk=CHUNK) as recovery:
            rec = Reconciler(signature_check=recovery.check)
            for chunk in recovery.chunks(source(), jobs_of):
                for entry in chunk:
                    rec.feed(entry)
            rec.finish_log()
            out["report"] = rec.report
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "recovery hung after a worker died"
    assert findings(out["report"]) == expected
    assert [d["seq"] for d in expected if d["check"] == "signature"] == [9]


def test_verify_stops_recovering_signatures_once_the_replay_stopped(log):
    """`ayni verify` reports the first replay fault and replays no further, so the signatures
    of the pages read after it are not sent to the pool (an honest log has 23 to recover)."""
    tamper_signature(log, 9)
    with Recovery(2, threshold=0, chunk=CHUNK, ahead=1) as recovery:  # one page ahead: seq 9 is met early
        report = audit(log.c.ledger, page=CHUNK, recovery=recovery)
    assert [(f.code, f.seq) for f in report.replay_faults] == [("signature", 9)]
    assert verify_findings(report) == verify_findings(log.verify(1))
    assert recovery.recovered < 23, recovery.recovered
