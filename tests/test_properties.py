"""Invariants 1-4 of docs/ledger-model.md under random sequences of actions, refused ones
included, checked against an independent naive model of mutual credit."""
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ledger import signing
from ledger.core import errors as E
from ledger.core.state import zero_sum_faults
from ledger.core.typed_data import Transfer, address_of_key, sign_action
from ledger.service import Submission

from .conftest import Community, _reset_pg

N = 5
LIMITS = {"HOUR": (600, 2400), "CRED": (10_000, None)}  # member defaults (ledger.community)

edge = st.tuples(st.just("edge"), st.integers(0, N - 1), st.integers(0, N - 1), st.sampled_from(["HOUR", "CRED"]),
                st.sampled_from(["limit", "ceiling"]), st.integers(-1, 1))
pay = st.tuples(st.just("pay"), st.integers(0, N - 1), st.integers(0, N - 1), st.sampled_from(["HOUR", "CRED"]),
                st.integers(1, 900))
ops = st.lists(st.one_of(
    pay, pay, pay, pay,
    edge, edge, edge,  # amounts exactly on, one below, or one past a limit or a ceiling
    st.tuples(st.just("batch"), st.lists(pay, min_size=1, max_size=6)),  # one group-committed batch
    st.tuples(st.just("retry")),
    st.tuples(st.just("reuse_nonce"), st.integers(1, 50)),
    st.tuples(st.just("forge"), st.integers(0, N - 1), st.integers(0, N - 1)),
    st.tuples(st.just("limit"), st.integers(0, N - 1), st.sampled_from(["HOUR", "CRED"]), st.integers(0, 3000),
              st.none() | st.integers(0, 3000)),
    st.tuples(st.just("status"), st.integers(0, N - 1), st.sampled_from(["frozen", "active"])),
), min_size=1, max_size=40)


class Model:
    """Mutual credit in twenty lines, written without looking at ledger.core.rules."""

    def __init__(self):
        self.bal = {(i, c): 0 for i in range(N) for c in LIMITS}
        self.lim = {(i, c): LIMITS[c] for i in range(N) for c in LIMITS}
        self.frozen = set()

    def pay(self, i, j, c, a) -> bool:
        low, _ = self.lim[(i, c)]
        _, high = self.lim[(j, c)]
        if i == j or i in self.frozen or j in self.frozen or self.bal[(i, c)] - a < -low:
            return False
        if high is not None and self.bal[(j, c)] + a > high:
            return False
        self.bal[(i, c)] -= a
        self.bal[(j, c)] += a
        return True


limits = st.lists(st.tuples(st.integers(0, 3000), st.none() | st.integers(0, 3000)), min_size=N, max_size=N)


def run(c: Community, sequence, hour_limits=()):
    names = [f"m{i}" for i in range(N)]
    for n in names:
        c.member(n)
    model, last = Model(), None
    for i, (low, high) in enumerate(hour_limits):  # varied starting limits so ceilings bind too
        c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr(names[i]), currency="HOUR",
                                          credit_limit=low, ceiling=high))
        model.lim[(i, "HOUR")] = (low, high)
    for op in sequence:
        before = c.snapshot()
        if op[0] == "edge":
            _, i, j, cur, which, delta = op
            low, _ = model.lim[(i, cur)]
            _, high = model.lim[(j, cur)]
            room = model.bal[(i, cur)] + low if which == "limit" or high is None else high - model.bal[(j, cur)]
            op = ("pay", i, j, cur, max(1, min(room + delta, 2**53 - 1)))
        if op[0] == "batch":
            subs, expected = [], []
            for _, i, j, cur, a in op[1]:
                t = Transfer.create(payer=c.addr(names[i]), payee=c.addr(names[j]), currency=cur, amount=a,
                                    nonce=signing.new_nonce(), valid_until=2**40, memo_hash=b"\x00" * 32)
                subs.append(Submission(t, sign_action(c.keys[names[i]], c.domain, t)))
                expected.append(model.pay(i, j, cur, a))
            results = c.ledger.submit_many(subs)
            assert [not isinstance(r, E.LedgerError) for r in results] == expected, (op, results)
            continue
        if op[0] == "pay":
            _, i, j, cur, a = op
            t = Transfer.create(payer=c.addr(names[i]), payee=c.addr(names[j]), currency=cur, amount=a,
                                nonce=signing.new_nonce(), valid_until=2**40)
            sub = Submission(t, sign_action(c.keys[names[i]], c.domain, t))
            expected = model.pay(i, j, cur, a)
            try:
                c.ledger.submit(sub)
                assert expected, f"ledger accepted what the model refuses: {op}"
                last = sub
            except E.LedgerError:
                assert not expected, f"ledger refused what the model accepts: {op}"
                assert c.snapshot() == before
        elif op[0] == "retry" and last is not None:
            assert c.ledger.submit(last).duplicate
            assert c.snapshot() == before
        elif op[0] == "reuse_nonce" and last is not None:
            t = last.action
            other = Transfer.create(payer=t.payer, payee=t.payee, currency=t.currency, amount=t.amount + op[1],
                                    nonce=t.nonce, valid_until=t.valid_until)
            key = next(k for k in c.keys.values() if address_of_key(k) == t.payer)
            with pytest.raises(E.NonceReused):
                c.ledger.submit(Submission(other, sign_action(key, c.domain, other)))
            assert c.snapshot() == before
        elif op[0] == "forge":
            _, i, j = op
            t = Transfer.create(payer=c.addr(names[i]), payee=c.addr(names[j]), currency="HOUR", amount=1,
                                nonce=signing.new_nonce(), valid_until=2**40)
            with pytest.raises((E.WrongSigner, E.SamePayerPayee)):
                c.ledger.submit(Submission(t, sign_action(c.keys[names[(i + 1) % N]], c.domain, t)))
            assert c.snapshot() == before
        elif op[0] == "limit":
            _, i, cur, low, high = op
            c.ledger.submit(signing.set_limit(c.treasurer_key, c.domain, account=c.addr(names[i]), currency=cur,
                                              credit_limit=low, ceiling=high))
            model.lim[(i, cur)] = (low, high)
        elif op[0] == "status":
            _, i, status = op
            frozen = i in model.frozen
            try:
                c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr(names[i]), status=status))
                assert frozen == (status == "active")
                (model.frozen.add if status == "frozen" else model.frozen.discard)(i)
            except E.InvalidTransition:
                assert frozen == (status == "frozen")
    positions = c.ledger.positions()
    # Invariant 1: zero-sum per currency, in the stored balances.
    assert zero_sum_faults({k: p.balance for k, p in positions.items()}) == {}
    # The stored balances are exactly the independent model's.
    for (i, cur), amount in model.bal.items():
        assert positions[(c.addr(names[i]), cur)].balance == amount
    # Invariants 2-4: replay with every signature and limit re-checked at posting time,
    # stored balances reproduced, gap-free seq and intact hash chain.
    report = c.ledger.verify()
    assert report.ok, report
    seqs = [e.seq for e in c.ledger.iter_entries()]
    assert seqs == list(range(1, len(seqs) + 1))


@settings(max_examples=int(os.environ.get("AYNI_PROPERTY_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops, limits)
def test_invariants_hold_on_sqlite(sequence, hour_limits):
    with tempfile.TemporaryDirectory() as d:
        c = Community(f"sqlite:///{d}/p.db")
        try:
            run(c, sequence, hour_limits)
        finally:
            c.dispose()


@pytest.mark.postgres
@settings(max_examples=int(os.environ.get("AYNI_PROPERTY_EXAMPLES_PG", 12)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sequence=ops, hour_limits=limits)
def test_invariants_hold_on_postgres(pg_server_url, sequence, hour_limits):
    _reset_pg(pg_server_url)
    c = Community(pg_server_url)
    try:
        run(c, sequence, hour_limits)
    finally:
        c.dispose()
