"""Concurrent posters: zero-sum, limits held, no lost update, no duplicate entry."""
import random
import threading
from collections import Counter

import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.core.typed_data import address_of_key
from ledger.service import Ledger, Posted

from .conftest import Community, _reset_pg

ACCOUNTS = 10


def hammer(url: str, threads: int, per_thread: int, *, retry_every: int = 7):
    c = Community(url)
    names = [f"a{i}" for i in range(ACCOUNTS)]
    for n in names:
        c.member(n)
    for n in names:  # tight limits: 1 h of credit, 2 h ceiling, so refusals are frequent
        c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr(n), currency="HOUR",
                                          credit_limit=60, ceiling=120))
    url_ledger = lambda: Ledger.open(url, migrate=False)
    acked: list[list[tuple[Posted, object]]] = [[] for _ in range(threads)]
    refused = Counter()
    errors: list[BaseException] = []

    def worker(t: int):
        rng = random.Random(t)
        ledger = url_ledger()  # each thread its own engine and connections, like API workers
        try:
            subs = []
            for k in range(per_thread):
                i, j = rng.sample(range(ACCOUNTS), 2)
                subs.append(c.pay(names[i], names[j], rng.randint(1, 45)))
            for k, sub in enumerate(subs):
                for attempt in (sub, sub) if k % retry_every == 0 else (sub,):  # some retries
                    try:
                        acked[t].append((ledger.submit(attempt), attempt))
                    except E.LedgerError as exc:
                        refused[exc.code] += 1
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            ledger.engine.dispose()

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    return c, [x for per in acked for x in per], refused


def check(c: Community, acked, refused):
    fresh = [(p, s) for p, s in acked if not p.duplicate]
    dups = [(p, s) for p, s in acked if p.duplicate]
    assert fresh and dups and refused["credit_limit_exceeded"] + refused["ceiling_exceeded"] > 0
    # no duplicate entry: every acknowledged digest is in the log exactly once
    log = [e for e in c.ledger.iter_entries() if e.kind == "transfer.posted"]
    in_log = Counter(e.body["digest"] for e in log)
    assert all(n == 1 for n in in_log.values())
    assert set(in_log) == {p.digest for p, _ in fresh}
    by_digest = {p.digest: p.seq for p, _ in fresh}
    assert all(by_digest[p.digest] == p.seq for p, _ in dups)  # retries answered with the original
    # no lost update: balances equal the sum of what clients were told was posted
    expected = Counter()
    for _, s in fresh:
        expected[s.action.payer] -= s.action.amount
        expected[s.action.payee] += s.action.amount
    positions = c.ledger.positions()
    for addr in {address_of_key(k) for k in c.keys.values()}:
        p = positions[(addr, "HOUR")]
        assert p.balance == expected[addr]
        assert -p.credit_limit <= p.balance <= p.ceiling  # limits held
    assert sum(p.balance for (a, cur), p in positions.items() if cur == "HOUR") == 0
    report = c.ledger.verify()
    assert report.ok, report


@pytest.mark.postgres
def test_eight_threads_post_concurrently_on_postgres(pg_server_url):
    _reset_pg(pg_server_url)
    c, acked, refused = hammer(pg_server_url, threads=8, per_thread=500)
    try:
        check(c, acked, refused)
    finally:
        c.dispose()


def test_four_threads_post_concurrently_on_sqlite(tmp_path):
    c, acked, refused = hammer(f"sqlite:///{tmp_path}/c.db", threads=4, per_thread=250)
    try:
        check(c, acked, refused)
    finally:
        c.dispose()
