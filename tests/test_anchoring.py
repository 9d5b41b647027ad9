"""Anchoring the log on the embedded EVM: batches, crash recovery, receipts, privacy."""
import copy
import json

import pytest

from ledger import signing
from ledger.anchoring import Anchoring
from ledger.chain import AnchorChain
from ledger.core import errors as E
from ledger.core.merkle import build_entry_tree
from ledger.core.receipts import ReceiptInvalid, check_receipt_offline, verify_receipt

from .chain_helpers import transcript
from .conftest import Community


@pytest.fixture(scope="module")
def chain_factory():
    def make():
        chain = AnchorChain.embedded()
        chain.deploy()
        return chain
    return make


def busy_community(url, transfers=40):
    c = Community(url)
    for n in ("ana", "bea", "cho"):
        c.member(n)
    for i in range(transfers):
        payer, payee = [("ana", "bea"), ("bea", "cho"), ("cho", "ana")][i % 3]
        c.ledger.submit(c.pay(payer, payee, 5 + i % 10, memo=f"visit {i}"))
    return c


def test_everything_gets_anchored_in_contiguous_batches(sqlite_url, chain_factory):
    c = busy_community(sqlite_url)
    chain = chain_factory()
    report = Anchoring(c.ledger, chain, max_batch=10).run()
    head = c.ledger.head()[0]
    assert report.anchored_through == head and report.confirmed == len(report.gas_used) == -(-head // 10)
    assert max(report.gas_used) <= 31_500
    batches = Anchoring(c.ledger, chain).batches()
    assert [(b["first_seq"], b["last_seq"]) for b in batches] == [(s, min(s + 9, head)) for s in range(1, head + 1, 10)]
    entries = {e.seq: e.entry_hash for e in c.ledger.iter_entries()}
    for b, event in zip(batches, chain.anchored_events()):
        root = build_entry_tree([(s, entries[s]) for s in range(b["first_seq"], b["last_seq"] + 1)]).root
        assert b["root"] == root == event.root and b["status"] == "confirmed" and b["gas_used"] > 21_000
    assert chain.last_anchored_seq() == head
    # new entries go into the next batch; nothing is anchored twice
    c.ledger.submit(c.pay("ana", "cho", 1))
    again = Anchoring(c.ledger, chain, max_batch=10).run()
    assert again.sent == 1 and chain.last_anchored_seq() == head + 1
    assert Anchoring(c.ledger, chain).run().sent == 0


def test_gas_per_anchor_does_not_grow_with_batch_size(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=60)
    chain = chain_factory()
    small = Anchoring(c.ledger, chain, max_batch=2).run(max_batches=3)
    big = Anchoring(c.ledger, chain, max_batch=1000).run()
    assert big.sent == 1 and abs(big.gas_used[-1] - small.gas_used[-1]) < 100


def test_crash_after_sending_before_recording_is_recovered_from_the_chain(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=10)
    chain = chain_factory()
    job = Anchoring(c.ledger, chain, max_batch=5)
    # what a crash leaves: the row says "sending", the transaction did reach the chain
    root = job.tree(1, 5).root
    job._record(1, 5, root, "sending")
    chain.send_anchor(root, 1, 5)
    report = job.run()
    assert report.adopted == 1 and report.failed == 0
    assert [(e.first_seq, e.last_seq) for e in chain.anchored_events()] == \
        [(1, 5)] + [(s, min(s + 4, c.ledger.head()[0])) for s in range(6, c.ledger.head()[0] + 1, 5)]
    assert all(b["status"] == "confirmed" for b in job.batches())


def test_crash_before_sending_is_retried_once(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=4)
    chain = chain_factory()
    job = Anchoring(c.ledger, chain, max_batch=100)
    job._record(1, 3, job.tree(1, 3).root, "sending")  # crashed before the send
    report = job.run()
    assert report.failed == 1 and report.sent == 1
    assert [(e.first_seq, e.last_seq) for e in chain.anchored_events()] == [(1, c.ledger.head()[0])]
    assert [b["status"] for b in job.batches()] == ["failed", "confirmed"]


def test_a_chain_holding_another_history_is_flagged(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=4)
    chain = chain_factory()
    chain.send_anchor(b"\x42" * 32, 1, 3)  # the anchoring key was used to anchor a forged root
    with pytest.raises(E.IntegrityViolation, match="differs"):
        Anchoring(c.ledger, chain).run()


def test_receipt_verifies_and_any_edit_is_caught(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=12)
    chain = chain_factory()
    Anchoring(c.ledger, chain, max_batch=8).run()
    seq = [e.seq for e in c.ledger.iter_entries() if e.kind == "transfer.posted"][5]
    receipt = json.loads(json.dumps(Anchoring(c.ledger, contract=chain.contract_address).receipt(seq)))
    assert verify_receipt(receipt, chain) == []
    assert "visit" not in json.dumps(receipt)  # the memo is not in the receipt, only its salted hash

    edited = copy.deepcopy(receipt)
    edited["entry"]["body"]["amount"] += 1
    with pytest.raises(ReceiptInvalid, match="edited"):
        check_receipt_offline(edited)
    forged_root = copy.deepcopy(receipt)
    forged_root["root"] = "0x" + "11" * 32
    with pytest.raises(ReceiptInvalid, match="proof"):
        check_receipt_offline(forged_root)
    # hex fields follow the one rule of ledger.core.codec (no whitespace slipped past fromhex)
    for field, bad in (("root", "0x" + "11" * 31 + "  "), ("leaf", "11" * 32)):
        with pytest.raises(ReceiptInvalid, match=f"malformed: {field} must be 0x followed by 64 hex digits"):
            check_receipt_offline(dict(receipt, **{field: bad}))
    wrong_chain = dict(receipt, chainId=receipt["chainId"] + 1)
    assert "chain" in verify_receipt(wrong_chain, chain)[0]
    other = chain_factory()  # a contract where nothing was anchored
    assert verify_receipt(dict(receipt, contract=other.contract_address), other)[0].startswith("no batch")


def test_receipt_for_unanchored_or_unknown_entries_says_why(sqlite_url, chain_factory):
    c = busy_community(sqlite_url, transfers=3)
    job = Anchoring(c.ledger, chain_factory())
    with pytest.raises(E.LedgerError) as exc:
        job.receipt(2)
    assert exc.value.code == "not_anchored"
    with pytest.raises(E.LedgerError) as exc:
        job.receipt(10_000)
    assert exc.value.code == "unknown_entry"


def test_nothing_personal_reaches_the_chain(tmp_path):
    """Invariant 6: every byte the demo sends to the chain is free of addresses, names and memos."""
    from rich.console import Console

    from ledger.cli.demo import run_demo
    import io
    result = run_demo(str(tmp_path / "demo.db"), transfers=80, seed=7, console=Console(file=io.StringIO()))
    chain = result["anchoring"]["chain"]
    blob = b"".join(transcript(chain))
    assert len(blob) > 1000  # the scan saw the anchoring transactions
    from ledger.service import Ledger
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'demo.db'}", migrate=False)
    secrets = [bytes.fromhex(a.address[2:]) for a in ledger.accounts()]
    secrets += [name.encode() for name in ledger.profiles().values() if name]
    secrets += [m.encode() for m in ("home visit", "help with errands", "errand")]
    for s in secrets:
        assert s not in blob and s.hex().encode() not in blob


def test_database_faults_reach_the_caller_as_domain_errors(sqlite_url, chain_factory):
    """The anchorer reads and writes its batch rows itself: a database fault there (here the
    table is gone) is a StoreUnavailable LedgerError the faces already answer, not a driver's
    OperationalError that the HTTP face would turn into a 500 and the CLI into a traceback."""
    import sqlite3
    c = busy_community(sqlite_url, transfers=3)
    chain = chain_factory()
    job = Anchoring(c.ledger, chain)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("ALTER TABLE anchor_batches RENAME TO anchor_batches_gone")
    for call in (job.batches, job.run, lambda: job._record(1, 2, b"\x01" * 32, "sending"),
                 lambda: job._set(1, status="failed")):
        with pytest.raises(E.LedgerError) as exc:
            call()
        assert isinstance(exc.value, E.StoreUnavailable) and "anchor_batches" in exc.value.message


def test_export_log_replaces_the_file_whole_or_not_at_all(sqlite_url, tmp_path):
    """`ayni export-log` writes through ledger.files.write_atomic: the new export replaces the old
    one whole (0600: it names every account), and a failure part-way leaves the old one and no
    temporary file behind."""
    import os
    import sqlite3

    from ledger.core.log_format import ExportReader
    from ledger.log_export import export_log
    c = busy_community(sqlite_url, transfers=3)
    out = tmp_path / "exports" / "log.jsonl"
    assert export_log(c.ledger, out)["entries"] == c.ledger.head()[0]
    first = out.read_bytes()
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert ExportReader(iter(first.decode().splitlines())).header["headSeq"] == c.ledger.head()[0]
    c.ledger.submit(c.pay("ana", "bea", 1))
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("ALTER TABLE entries RENAME TO entries_gone")
    with pytest.raises(E.LedgerError):
        export_log(c.ledger, out)
    assert out.read_bytes() == first and sorted(p.name for p in out.parent.iterdir()) == ["log.jsonl"]
