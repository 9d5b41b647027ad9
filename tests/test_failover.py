"""PostgreSQL failover under the bank workload (tests/pg_ha.py, tests/bank.py): two real
clusters, `ayni serve --workers 2` on a multi-host URL, the primary SIGKILLed mid-load and the
standby promoted; the service is not restarted. docs/high-availability.md has the figures;
benchmarks/failover.py runs longer with several kills.

Synchronous replication (synchronous_commit=on, the standby named synchronous): no
acknowledged transfer may be lost. Asynchronous: what was lost is recorded, not asserted away;
what must hold anyway is asserted (no transfer twice, zero sum, the hash chain and replay)."""
import os

import pytest

from .pg_ha import TAIL_LOSS, run_failover, unavailable_reason

SECONDS = 6.0
REASON = unavailable_reason()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(REASON is not None and os.environ.get("CI") != "true",
                                 reason=f"no PostgreSQL clusters here: {REASON}")]


def _common(r):
    f = r.figures
    print(f)
    other = [x for x in r.faults if not any(m in x for m in TAIL_LOSS)]
    assert not other, "\n".join(other[:20])  # never twice, zero sum, limits, replay, hash chain
    assert f["verify_ok"], r.verify_output  # `ayni verify` on the promoted node
    assert f["unresolved"] == 0  # every in-flight transfer got a definite answer after the failover
    assert f["served_by_one_process"] and f["acknowledged_after_last_kill"] > 0  # no restart needed
    assert f["transfers_acknowledged"] > 50


def test_synchronous_failover_loses_no_acknowledged_transfer():
    r = run_failover(synchronous=True, seconds=SECONDS)
    _common(r)
    f = r.figures
    assert f["acknowledged_lost"] == 0, [x for x in r.faults if "is in the log at" in x][:10]
    posting = [x for x in r.faults if "is in the log at" in x or "different seqs" in x or "re-post of" in x]
    assert not posting, posting[:10]


def test_asynchronous_failover_keeps_the_ledger_sound_and_counts_what_it_lost():
    r = run_failover(synchronous=False, seconds=SECONDS)
    _common(r)
    f = r.figures
    # the loss itself is the figure this run exists for (docs/high-availability.md): recorded
    print(f"asynchronous failover: {f['acknowledged_lost']} acknowledged transfers lost "
          f"of {f['transfers_acknowledged']}")
