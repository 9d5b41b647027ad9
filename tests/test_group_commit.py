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


def test_database_lost_during_fallback_fails_the_rest_at_once(tmp_path, monkeypatch):
    """A bundle whose joint write fails is retried item by item; if the database is lost during
    that fallback, the first StoreConnectionLost ends it: the other items (and the other callers
    of that batch) get the 503 at once instead of each waiting WRITE_RETRY_S in turn while the
    single writer blocks everyone. The database loss is injected at the store boundary
    (Ledger._write_once): a real failover cannot be timed to land between two fallback writes."""
    import asyncio
    import time

    from ledger import service
    from ledger.sample import round_robin_transfers

    c = Community(f"sqlite:///{tmp_path}/gc.db")
    try:
        keys = c.accounts(4, credit_limit=2**40)
        subs = round_robin_transfers(c.domain, keys, 11)
        tried: list[str] = []

        def lost(self, genesis, prepared):
            if len(prepared) > 1:
                raise E.StoreConflict("joint write collided")
            tried.append(prepared[0][1].digest)
            raise E.StoreConnectionLost("database error: connection lost")
        monkeypatch.setattr(service, "WRITE_RETRY_S", 0.3)
        monkeypatch.setattr(service.Ledger, "_write_once", lost)
        committer = GroupCommitter(c.ledger)
        bundle = [c.ledger.prepare(s) for s in subs[:10]]
        t0 = time.monotonic()
        out: dict = {}

        def batch():
            out["batch"] = asyncio.run(committer.write_many_async(bundle))
        th = threading.Thread(target=batch)
        th.start()
        with pytest.raises(E.StoreConnectionLost):
            committer.submit(subs[10], timeout=60)
        th.join(60)
        elapsed = time.monotonic() - t0
        committer.close()
        assert [type(r) for r in out["batch"]] == [E.StoreConnectionLost] * 10
        assert all(r.code == "unavailable" for r in out["batch"])
        # one item found the database gone; nobody else was made to wait for it again
        assert len(set(tried)) <= 2, len(set(tried))
        assert elapsed < 5 * service.WRITE_RETRY_S
    finally:
        c.dispose()
