"""Review of issue 23 item 4 (A-1): an auditor's `reconcile` names a leaked anchoring key's
hostile batch (a freeze below 2**64-1, or a jump past any log) as a finding, not as a batch
"cut by the export"; and batches past an old export's head are never passed over silently.
Real components: py-evm (eth-tester) in process, the ledger on SQLite."""
from __future__ import annotations

import time

from ledger.anchoring import Anchoring
from ledger.core.hashing import keccak256
from ledger.core.typed_data import UINT64_MAX
from ledger.log_export import export_log
from ledger.verify.chain_types import MAX_BATCH_SIZE
from wallet_cli.reconcile import reconcile

from .test_reconcile import Coop, found

HOSTILE = keccak256(b"a leaked anchoring key")


def test_a_freeze_below_2_64_1_is_a_finding_not_a_cut_batch(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    try:
        assert coop.check(tmp_path).ok
        start = coop.anchored + 1  # inside the log: the log's head is 3 entries further
        coop.chain.wait(coop.chain.send_anchor(HOSTILE, start, UINT64_MAX - 1))
        time.sleep(1.1)  # the export is made well after the hostile batch
        report = coop.check(tmp_path)
        assert not report.ok
        (finding,) = found(report, "anchor_chain")
        assert f"hostile batch at seq {start}..{UINT64_MAX - 1} by key {coop.chain.sender}" in finding.found
        assert report.warnings == [], report.warnings  # it used to be only a "cut batch" warning
        assert report.batches_beyond == 0
    finally:
        coop.c.dispose()


def test_a_huge_jump_is_a_finding(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    try:
        head = coop.c.ledger.head()[0]
        coop.chain.wait(coop.chain.send_anchor(HOSTILE, coop.anchored + 1, head + MAX_BATCH_SIZE))
        report = coop.check(tmp_path)
        (finding,) = found(report, "anchor_chain")
        assert f"hostile batch at seq {coop.anchored + 1}..{head + MAX_BATCH_SIZE}" in finding.found
    finally:
        coop.c.dispose()


def test_batches_past_an_old_export_are_named_in_a_warning(tmp_path):
    coop = Coop(f"sqlite:///{tmp_path}/a.db")
    try:
        path = tmp_path / "old.jsonl"
        Anchoring(coop.c.ledger, coop.chain, max_batch=8).run()  # the export holds every anchored entry
        export_log(coop.c.ledger, path, anchor_contract=coop.chain.contract_address)
        head = coop.c.ledger.head()[0]
        for i in range(2):
            coop.c.ledger.submit(coop.c.pay("ana", "bea", 3 + i))
        Anchoring(coop.c.ledger, coop.chain, max_batch=8).run()
        report = reconcile(export=path, chain=coop.chain, workers=0)
        assert report.ok and report.batches_beyond == 1
        (warning,) = report.warnings
        assert f"1 chain batch(es) ({head + 1}..{head + 2}) lie beyond this export (head seq {head})" in warning
    finally:
        coop.c.dispose()
