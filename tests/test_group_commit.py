"""Group commit: many client threads, one writer; every caller gets its own correct result."""
import threading

import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.group_commit import GroupCommitter

from .conftest import Community


def test_concurrent_callers_each_get_their_result_and_invariants_hold(community):
    c = community
    names = [f"m{i}" for i in range(6)]
    for n in names:
        c.member(n)
    committer = GroupCommitter(c.ledger, max_batch=64)
    # five members pay a sixth, an hour at a time, far past their 10 h credit limits
    subs = [c.pay(names[1 + i % 5], names[0], 60 + i % 7) for i in range(240)]
    results: dict[int, object] = {}

    def worker(t):
        for k in range(t, len(subs), 12):
            try:
                results[k] = committer.submit(subs[k])
            except E.LedgerError as exc:
                results[k] = exc

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    committer.close()
    posted = {k: r for k, r in results.items() if not isinstance(r, E.LedgerError)}
    refused = {k: r for k, r in results.items() if isinstance(r, E.LedgerError)}
    assert len(results) == 240 and posted and refused  # limits bite: 10 h of credit each
    assert all(isinstance(r, E.CreditLimitExceeded) or isinstance(r, E.CeilingExceeded) for r in refused.values())
    log = {e.body["digest"]: e for e in c.ledger.iter_entries() if e.kind == "transfer.posted"}
    assert {r.digest for r in posted.values()} == set(log)
    for k, r in posted.items():  # each caller was told the seq of its own transfer
        assert log[r.digest].seq == r.seq and log[r.digest].body["amount"] == subs[k].action.amount
    assert c.ledger.verify().ok
    # a bad signature is refused in the caller's thread, before anything is queued
    forged = subs[0].__class__(subs[0].action, "0x" + "11" * 65)
    with pytest.raises(E.LedgerError):
        GroupCommitter(c.ledger).submit(forged)
