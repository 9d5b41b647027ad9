"""The use cases against an in-memory unit of work (no database), as in "Architecture Patterns
with Python"'s FakeUnitOfWork: posting, payment requests and balance reads need nothing from
ledger.store but the UnitOfWork interface. The database tests (test_service, test_requests)
stay; these pin the domain cases and keep the interface honest."""
from __future__ import annotations

import copy
import json
import threading
from dataclasses import replace

import pytest

from ledger import signing
from ledger.community import new_genesis
from ledger.core import errors as E
from ledger.core.entries import Entry, verify_chain
from ledger.core.rules import AccountState, Position
from ledger.core.typed_data import address_of_key
from ledger.request_rules import RequestRecord
from ledger.requests import PaymentRequests
from ledger.service import Ledger, now_ms
from ledger.unit_of_work import PostingBatch, UnitOfWork


class FakeStore:
    def __init__(self):
        self.data = {"head": None, "entries": {}, "currencies": [], "accounts": {}, "positions": {},
                     "nonces": {}, "transfers": {}, "memos": {}, "requests": {}}
        self.lock = threading.RLock()  # the head lock


class FakeUnitOfWork(UnitOfWork):
    """Works on a copy; a clean exit publishes it (commit), an exception drops it (rollback)."""

    def __init__(self, store: FakeStore, readonly: bool = False):
        self.store, self.readonly, self._locked = store, readonly, False

    def __enter__(self):
        self.d = copy.deepcopy(self.store.data)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc is None and not self.readonly:
                self.store.data = self.d
        finally:
            if self._locked:
                self.store.lock.release()

    def lock_head(self):
        self.store.lock.acquire()
        self._locked = True
        self.d = copy.deepcopy(self.store.data)  # what the previous lock holder committed
        return self.d["head"]

    def head(self):
        return self.d["head"]

    def genesis_body(self):
        first = self.d["entries"].get(1)
        return json.loads(first[3]) if first else None

    def accounts(self, addresses=None):
        accounts = self.d["accounts"]
        names = accounts if addresses is None else [a for a in addresses if a in accounts]
        return {a: AccountState(a, accounts[a][0], accounts[a][1]) for a in names}

    def positions(self, addresses=None):
        return {k: Position(*v) for k, v in self.d["positions"].items() if addresses is None or k[0] in addresses}

    def nonces(self, pairs):
        return {(s, int(n)): self.d["nonces"][(s, n)] for s, n in pairs if (s, n) in self.d["nonces"]}

    def requests(self, ids):
        out = {}
        for rid in ids:
            r = self.d["requests"].get(rid)
            if r is not None:
                paid = next((seq for seq, t in self.d["transfers"].items() if (t[4], t[0], t[1], t[2], t[3])
                             == r.key()), None)
                out[rid] = RequestRecord(r.id, r.payee, r.payer, r.currency, r.amount, r.memo, r.created_at,
                                         r.expires_at, r.declined, paid)
        return out

    def add_request(self, request):
        assert request.id not in self.d["requests"]
        self.d["requests"][request.id] = request

    def decline_request(self, request_id, at):
        self.d["requests"][request_id] = replace(self.d["requests"][request_id], declined=True)

    def start_log(self, currencies):
        self.d["currencies"] = list(currencies)
        self.d["head"] = (0, bytes(32))

    def write(self, b: PostingBatch):
        d = self.d
        for row in b.entries:
            assert row[0] not in d["entries"], "seq reused"
            d["entries"][row[0]] = row
        for address, role, status, _seq in b.new_accounts:
            d["accounts"][address] = (role, status)
        for address, currency, balance, limit, ceiling in b.new_positions:
            d["positions"][(address, currency)] = (balance, limit, ceiling)
        for status, address in b.statuses:
            d["accounts"][address] = (d["accounts"][address][0], status)
        for balance, limit, ceiling, address, currency in b.positions:
            d["positions"][(address, currency)] = (balance, limit, ceiling)
        for signer, nonce, digest, seq in b.nonces:
            assert (signer, nonce) not in d["nonces"], "nonce reused"
            d["nonces"][(signer, nonce)] = (digest, seq)
        for seq, payer, payee, currency, amount, request_id, _at in b.transfers:
            key = (payer, payee, currency, amount, request_id)
            assert request_id is None or key not in d["transfers"].values(), "a request paid twice"
            d["transfers"][seq] = key
        for seq, salt, memo in b.memos:
            d["memos"][seq] = memo
        if b.head is not None:
            d["head"] = b.head


class Clock:
    def __init__(self):
        self.now = now_ms()

    def __call__(self):
        return self.now


@pytest.fixture
def fake():
    store, clock = FakeStore(), Clock()
    ledger = Ledger(unit_of_work=lambda readonly=False: FakeUnitOfWork(store, readonly), clock=clock)
    assert ledger.engine is None  # nothing here can reach a database
    treasurer = signing.new_key()
    ledger.initialise(new_genesis("In memory", address_of_key(treasurer)))
    keys = {}
    for name, role in (("ana", "member"), ("bea", "member"), ("shop", "shop")):
        keys[name] = signing.new_key()
        ledger.submit(signing.open_account(treasurer, ledger.genesis.domain, account=address_of_key(keys[name]),
                                           role=role))

    class F:
        pass
    f = F()
    f.store, f.clock, f.ledger, f.keys, f.treasurer = store, clock, ledger, keys, treasurer
    f.addr = lambda n: address_of_key(keys[n])
    f.pay = lambda payer, payee, amount, currency="HOUR", **kw: signing.transfer(
        keys[payer], ledger.genesis.domain, payee=f.addr(payee), currency=currency, amount=amount, **kw)
    f.balance = lambda n, cur="HOUR": ledger.positions(f.addr(n))[(f.addr(n), cur)].balance
    f.requests = PaymentRequests(ledger)
    return f


def entries(store):
    return [Entry(seq, kind, at, json.loads(body), eh, ch) for seq, kind, at, body, eh, ch in
            (store.data["entries"][s] for s in sorted(store.data["entries"]))]


def test_posting_and_balance_reads(fake):
    f = fake
    posted = f.ledger.submit(f.pay("ana", "bea", 90, memo="garden"))
    assert (posted.seq, posted.kind, posted.duplicate) == (5, "transfer.posted", False)
    assert (f.balance("ana"), f.balance("bea")) == (-90, 90)
    assert f.ledger.account(f.addr("shop")) == AccountState(f.addr("shop"), "shop", "active")
    assert [a.role for a in f.ledger.accounts()] == ["treasurer", "member", "member", "shop"]
    assert f.ledger.head()[0] == 5 and f.store.data["memos"][5] == "garden"
    assert sum(p.balance for (_, cur), p in f.ledger.positions().items() if cur == "HOUR") == 0
    assert verify_chain(entries(f.store)) == []


def test_refusals_write_nothing_and_retries_are_idempotent(fake):
    f = fake
    sub = f.pay("ana", "bea", 30)
    first = f.ledger.submit(sub)
    before = copy.deepcopy(f.store.data)
    assert f.ledger.submit(sub).duplicate and f.ledger.submit(sub).seq == first.seq
    for bad, code in ((f.pay("ana", "bea", 10 * 60), "credit_limit_exceeded"),
                      (f.pay("ana", "ana", 1), "same_payer_payee"),
                      (f.pay("bea", "shop", 1), "ceiling_exceeded")):
        with pytest.raises(E.LedgerError) as exc:
            f.ledger.submit(bad)
        assert exc.value.code == code
    assert f.store.data == before
    results = f.ledger.submit_many([f.pay("ana", "bea", 1), f.pay("ana", "bea", 10 * 60), f.pay("bea", "ana", 2)])
    assert [getattr(r, "code", None) for r in results] == [None, "credit_limit_exceeded", None]
    assert (f.balance("ana"), f.balance("bea")) == (-29, 29)


def test_request_payment_decline_and_expiry(fake):
    f = fake
    ask = lambda amount=400, expires_in_s=600: f.requests.create(  # noqa: E731
        payee=f.addr("shop"), payer=f.addr("ana"), currency="CRED", amount=amount, memo="bread",
        expires_in_s=expires_in_s)
    r = ask()
    paid = f.requests.pay(r.id, f.pay("ana", "shop", 400, "CRED", request_id=bytes.fromhex(r.id[2:])))
    got = f.requests.get(r.id)
    assert (got.status, got.paid_seq) == ("paid", paid.seq) and f.balance("shop", "CRED") == 400
    with pytest.raises(E.RequestNotOpen):  # a second payment
        f.requests.pay(r.id, f.pay("ana", "shop", 400, "CRED", request_id=bytes.fromhex(r.id[2:])))
    with pytest.raises(E.RequestNotOpen):  # and no decline after it
        f.requests.decline(r.id, by=f.addr("ana"))

    d = ask()
    assert f.requests.decline(d.id, by=f.addr("ana")).status == "declined"
    with pytest.raises(E.RequestNotOpen):  # the service itself refuses, not only pay()
        f.ledger.submit(f.pay("ana", "shop", 400, "CRED", request_id=bytes.fromhex(d.id[2:])))

    x = ask(expires_in_s=60)
    f.clock.now += 60_001
    with pytest.raises(E.RequestExpired):
        f.ledger.submit(f.pay("ana", "shop", 400, "CRED", request_id=bytes.fromhex(x.id[2:])))
    with pytest.raises(E.RequestExpired):
        f.requests.decline(x.id, by=f.addr("ana"))
    with pytest.raises(E.NotAuthorised):
        f.requests.decline(ask().id, by=f.addr("shop"))
    assert f.balance("ana", "CRED") == -400 and f.ledger.head()[0] == paid.seq


# -- the real unit of work: database errors leave it as domain errors ----------------------------
def test_an_unreachable_database_is_a_domain_error():
    with pytest.raises(E.StoreUnavailable) as exc:
        Ledger.open("postgresql://postgres@127.0.0.1:1/none", migrate=False)
    assert exc.value.code == "unavailable" and "\n" not in str(exc.value)
    assert str(exc.value).startswith("unavailable: database error:")


def test_a_constraint_violation_is_a_conflict_and_writes_nothing(community):
    c = community
    c.member("ana"), c.member("shop", role="shop")
    now = c.ledger.clock()
    record = RequestRecord(b"\x01" * 32, c.addr("shop"), c.addr("ana"), "HOUR", 5, None, now, now + 60_000,
                           declined=False, paid_seq=None)
    with c.ledger.unit_of_work() as uow:
        uow.add_request(record)
    snap = c.snapshot()
    with pytest.raises(E.StoreConflict) as exc:  # the same id again: a primary-key violation
        with c.ledger.unit_of_work() as uow:
            uow.add_request(replace(record, amount=6))
    assert exc.value.code == "write_conflict" and isinstance(exc.value.__cause__, Exception)
    assert c.snapshot() == snap
    assert c.ledger.head()[0] == 3  # the ledger is usable afterwards
