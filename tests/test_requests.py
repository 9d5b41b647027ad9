"""Payment requests (ledger/requests.py) on SQLite and PostgreSQL."""
import secrets
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from ledger import signing
from ledger.core import errors as E
from ledger.group_commit import GroupCommitter
from ledger.requests import (MAX_EXPIRY_S, PaymentRequests, RequestExpired, RequestMismatch, RequestNotOpen,
                             UnknownRequest)
from ledger.service import Ledger
from ledger.store.request_tables import payment_requests
from ledger.store.exchange_tables import schema_include_name
from ledger.store.tables import metadata


class Clock:
    """The ledger's clock, movable by tests (starts at real time so signed validUntil holds)."""

    def __init__(self, ledger):
        self.now = ledger.clock()

    def __call__(self):
        return self.now


@pytest.fixture
def rq(community):
    c = community
    metadata.create_all(c.ledger.engine, tables=[payment_requests])  # no-op once migration 0003 ran
    c.member("ana"), c.member("bea"), c.member("shop", role="shop")
    c.clock = Clock(c.ledger)
    c.ledger.clock = c.clock
    c.requests = PaymentRequests(c.ledger)
    return c


def ask(c, amount=420, *, payer="ana", payee="shop", currency="CRED", memo="vegetables", expires_in_s=3600):
    return c.requests.create(payee=c.addr(payee), payer=c.addr(payer), currency=currency, amount=amount,
                             memo=memo, expires_in_s=expires_in_s)


def paying(c, r, *, payer="ana", amount=None, payee=None, currency=None, request_id=None, **kw):
    return c.pay(payer, payee or "shop", r.amount if amount is None else amount,
                 currency=currency or r.currency,
                 request_id=bytes.fromhex(r.id[2:]) if request_id is None else request_id, **kw)


def count(c, table=payment_requests):
    with c.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- create / get / list -----------------------------------------------------------------------
def test_create_get_and_list(rq):
    c = rq
    r = ask(c)
    assert r.id.startswith("0x") and len(r.id) == 66
    assert (r.payer, r.payee, r.currency, r.amount, r.memo, r.status, r.paid_seq) == \
        (c.addr("ana"), c.addr("shop"), "CRED", 420, "vegetables", "open", None)
    assert r.expires_at - r.created_at == 3_600_000 and r.created_at == c.clock.now
    assert c.requests.get(r.id) == r
    assert c.requests.get(r.id.upper().replace("0X", "0x")) == r  # hex case does not matter
    assert c.requests.list_for(c.addr("ana"), direction="incoming") == ([r], None)
    assert c.requests.list_for(c.addr("shop"), direction="outgoing") == ([r], None)
    assert c.requests.list_for(c.addr("ana"), direction="outgoing") == ([], None)
    assert c.requests.list_for(c.addr("bea"), direction="incoming") == ([], None)


def test_unknown_and_malformed_request_ids(rq):
    with pytest.raises(UnknownRequest) as exc:
        rq.requests.get("0x" + "ab" * 32)
    assert exc.value.code == "unknown_request"
    for bad in ("", "0x12", "ab" * 32, "0x" + "zz" * 32, "0x" + "ab" * 32 + "\n", None, 7):
        with pytest.raises(E.InvalidInput):
            rq.requests.get(bad)


def _bad_creates(c):
    stranger = "0x" + "12" * 20
    return [
        (dict(payer=stranger), E.UnknownAccount),
        (dict(payee=stranger), E.UnknownAccount),
        (dict(payer="not an address"), E.InvalidAddress),
        (dict(currency="EUR"), E.UnknownCurrency),
        (dict(currency=None), E.UnknownCurrency),
        (dict(amount=0), E.InvalidAmount), (dict(amount=-5), E.InvalidAmount),
        (dict(amount=2**53), E.InvalidAmount), (dict(amount=True), E.InvalidAmount),
        (dict(amount="5"), E.InvalidAmount), (dict(amount=1.5), E.InvalidAmount),
        (dict(payer=c.addr("shop")), E.SamePayerPayee),
        (dict(expires_in_s=59), E.InvalidInput), (dict(expires_in_s=MAX_EXPIRY_S + 1), E.InvalidInput),
        (dict(expires_in_s=True), E.InvalidInput), (dict(expires_in_s=600.0), E.InvalidInput),
        (dict(memo="x" * 501), E.InvalidInput), (dict(memo="a\x00b"), E.InvalidInput),
        (dict(memo="a\ud800b"), E.InvalidInput), (dict(memo=b"bytes"), E.InvalidInput),
    ]


def test_create_refuses_bad_input_and_writes_nothing(rq):
    c = rq
    args = dict(payee=c.addr("shop"), payer=c.addr("ana"), currency="CRED", amount=1, memo=None, expires_in_s=60)
    for change, error in _bad_creates(c):
        with pytest.raises(error):
            c.requests.create(**{**args, **change})
    assert count(c) == 0
    c.requests.create(**{**args, "expires_in_s": MAX_EXPIRY_S, "memo": "x" * 500})  # the edges are fine
    c.requests.create(**{**args, "memo": ""})
    assert count(c) == 2


def test_create_refuses_frozen_accounts(rq):
    c = rq
    c.ledger.submit(signing.set_status(c.treasurer_key, c.domain, account=c.addr("ana"), status="frozen"))
    with pytest.raises(E.AccountNotActive):
        ask(c)
    with pytest.raises(E.AccountNotActive):
        ask(c, payer="bea", payee="ana")
    assert count(c) == 0


# -- decline -------------------------------------------------------------------------------------
def test_only_the_payer_declines_an_open_request(rq):
    c = rq
    r = ask(c)
    for who in ("shop", "bea"):
        with pytest.raises(E.NotAuthorised) as exc:
            c.requests.decline(r.id, by=c.addr(who))
        assert exc.value.code == "not_authorised"
    assert c.requests.get(r.id).status == "open"
    d = c.requests.decline(r.id, by=c.addr("ana"))
    assert d.status == "declined" and c.requests.get(r.id) == d
    with pytest.raises(RequestNotOpen) as exc:
        c.requests.decline(r.id, by=c.addr("ana"))
    assert exc.value.code == "request_not_open"
    before = c.ledger.transfer_count()
    with pytest.raises(RequestNotOpen):
        c.requests.pay(r.id, paying(c, r))
    assert c.ledger.transfer_count() == before
    with pytest.raises(UnknownRequest):
        c.requests.decline("0x" + "00" * 32, by=c.addr("ana"))


def test_expired_requests_can_be_neither_declined_nor_paid(rq):
    c = rq
    r = ask(c, expires_in_s=60)
    c.clock.now += 60_000
    assert c.requests.get(r.id).status == "open"  # expires_at itself is still open
    c.clock.now += 1
    assert c.requests.get(r.id).status == "expired"
    with pytest.raises(RequestExpired) as exc:
        c.requests.decline(r.id, by=c.addr("ana"))
    assert exc.value.code == "request_expired"
    snap = c.snapshot()
    with pytest.raises(RequestExpired):
        c.requests.pay(r.id, paying(c, r))
    assert c.snapshot() == snap
    assert c.requests.get(r.id).status == "expired"


# -- pay -----------------------------------------------------------------------------------------
def test_pay_posts_once_and_a_retry_returns_the_original(rq):
    c = rq
    r = ask(c)
    sub = paying(c, r, memo="thanks")
    posted = c.requests.pay(r.id, sub)
    assert not posted.duplicate and posted.kind == "transfer.posted"
    assert c.balance("ana", "CRED") == -420 and c.balance("shop", "CRED") == 420
    got = c.requests.get(r.id)
    assert (got.status, got.paid_seq) == ("paid", posted.seq)
    with c.ledger.engine.connect() as conn:  # the cache was written too
        row = conn.execute(select(payment_requests).where(payment_requests.c.id == bytes.fromhex(r.id[2:]))).one()
    assert (row.status, row.paid_seq) == ("paid", posted.seq)
    snap = c.snapshot()
    again = c.requests.pay(r.id, sub)
    assert again.duplicate and (again.seq, again.digest) == (posted.seq, posted.digest)
    assert c.snapshot() == snap
    # a second, differently signed payment of the same request is refused and writes nothing
    with pytest.raises(RequestNotOpen) as exc:
        c.requests.pay(r.id, paying(c, r))
    assert exc.value.code == "request_not_open"
    assert c.snapshot() == snap
    with pytest.raises(RequestNotOpen):
        c.requests.decline(r.id, by=c.addr("ana"))
    assert c.ledger.verify().ok


def test_pay_refuses_what_does_not_match_and_writes_nothing(rq):
    c = rq
    r = ask(c)
    other = ask(c)
    snap = c.snapshot()
    cases = [
        (paying(c, r, payer="bea"), E.NotAuthorised, "not_authorised"),
        (paying(c, r, amount=419), RequestMismatch, "request_mismatch"),
        (paying(c, r, currency="HOUR"), RequestMismatch, "request_mismatch"),
        (paying(c, r, payee="bea"), RequestMismatch, "request_mismatch"),
        (paying(c, r, request_id=bytes(32)), RequestMismatch, "request_mismatch"),
        (paying(c, other), RequestMismatch, "request_mismatch"),  # names another request
        (signing.set_status(c.treasurer_key, c.domain, account=c.addr("bea"), status="frozen"),
         E.InvalidInput, "invalid_input"),
    ]
    for sub, error, code in cases:
        with pytest.raises(error) as exc:
            c.requests.pay(r.id, sub)
        assert exc.value.code == code
    forged = paying(c, r)
    forged = type(forged)(forged.action, paying(c, r, payer="bea").signature)
    with pytest.raises(E.WrongSigner):
        c.requests.pay(r.id, forged)
    with pytest.raises(UnknownRequest):
        c.requests.pay("0x" + "cd" * 32, paying(c, r, request_id=b"\xcd" * 32))
    assert c.snapshot() == snap
    assert c.requests.get(r.id).status == "open"


def test_ledger_refusals_leave_the_request_open(rq):
    c = rq
    r = ask(c, amount=10_001)  # above ana's 100.00 CRED credit limit
    with pytest.raises(E.CreditLimitExceeded):
        c.requests.pay(r.id, paying(c, r))
    assert c.requests.get(r.id).status == "open"


def test_paid_status_comes_from_the_log_not_the_cache(rq):
    """A payment posted around pay() (crash before the cache write, or another path) still counts;
    a transfer that merely names the request with other fields does not, and does not block it."""
    c = rq
    r = ask(c)
    decoy = c.ledger.submit(paying(c, r, payer="bea"))  # bea names ana's request: not a payment of it
    assert c.requests.get(r.id).status == "open"
    direct = c.ledger.submit(paying(c, r))
    got = c.requests.get(r.id)
    assert (got.status, got.paid_seq) == ("paid", direct.seq) and direct.seq != decoy.seq
    with pytest.raises(RequestNotOpen):
        c.requests.pay(r.id, paying(c, r))


def test_two_different_payments_of_one_request_racing(rq):
    """Both pass every check, then both post: the unique key lets exactly one through."""
    c = rq
    r = ask(c)
    first, second = paying(c, r), paying(c, r)
    assert first.action.nonce != second.action.nonce

    def submit_after_the_other_won(sub):
        c.ledger.submit(first)  # the concurrent winner commits between our checks and our posting
        return c.ledger.submit(sub)

    racing = PaymentRequests(c.ledger, submit=submit_after_the_other_won)
    before = c.ledger.head()[0]
    with pytest.raises(RequestNotOpen) as exc:
        racing.pay(r.id, second)
    assert "paid" in exc.value.message
    assert c.ledger.head()[0] == before + 1  # one entry: the winner's, the loser rolled back whole
    assert c.balance("ana", "CRED") == -420
    assert c.requests.get(r.id).paid_seq == before + 1
    # the winner retrying through pay() gets its original result
    assert c.requests.pay(r.id, first).duplicate
    assert c.ledger.verify().ok


def test_the_ledger_itself_never_writes_a_second_payment(rq):
    """What Ledger.submit does today with a second key-equal transfer (and after the
    recommended service.py change): either way nothing is written."""
    c = rq
    r = ask(c)
    c.ledger.submit(paying(c, r))
    snap = c.snapshot()
    try:
        c.ledger.submit(paying(c, r))
    except E.LedgerError as exc:  # with the recommended service.py change
        assert exc.code == "request_already_paid"
    except Exception as exc:  # today: the driver's unique violation, the transaction rolled back
        assert type(exc).__name__ in ("IntegrityError", "UniqueViolation"), repr(exc)
    else:
        pytest.fail("a second payment of one request was posted")
    assert c.snapshot() == snap
    # two in one batch: today the whole batch fails; after the change only the second is refused
    r2 = ask(c)
    a, b, unrelated = paying(c, r2), paying(c, r2), c.pay("bea", "ana", 5)
    snap = c.snapshot()
    try:
        results = c.ledger.submit_many([a, b, unrelated])
    except Exception as exc:  # noqa: BLE001 - today
        assert type(exc).__name__ in ("IntegrityError", "UniqueViolation"), repr(exc)
        assert c.snapshot() == snap
    else:
        assert not isinstance(results[0], E.LedgerError) and results[1].code == "request_already_paid"
        assert not isinstance(results[2], E.LedgerError)
    assert c.ledger.verify().ok


@pytest.mark.parametrize("via", ["submit", "group_commit"])
def test_concurrent_payments_of_one_request_post_at_most_once(rq, db_url, via):
    c = rq
    rounds, racers = 4, 4
    ledgers = [Ledger.open(db_url, migrate=False, clock=c.clock) for _ in range(racers)]
    committer = GroupCommitter(c.ledger) if via == "group_commit" else None
    try:
        for _ in range(rounds):
            r = ask(c, amount=7)
            subs = [paying(c, r) for _ in range(racers)]  # all different (fresh nonces)
            before = c.ledger.head()[0]
            barrier = threading.Barrier(racers)
            outcomes = [None] * racers

            def race(i):
                reqs = PaymentRequests(ledgers[i], submit=committer.submit if committer else None)
                barrier.wait()
                try:
                    outcomes[i] = reqs.pay(r.id, subs[i])
                except Exception as exc:  # noqa: BLE001 - collected and checked below
                    outcomes[i] = exc

            threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            posted = [o for o in outcomes if not isinstance(o, Exception)]
            refused = [o for o in outcomes if isinstance(o, Exception)]
            assert len(posted) == 1 and not posted[0].duplicate, outcomes
            assert all(isinstance(x, RequestNotOpen) for x in refused), refused
            assert c.ledger.head()[0] == before + 1
            assert c.requests.get(r.id).paid_seq == posted[0].seq
        assert c.balance("ana", "CRED") == -7 * rounds
        assert c.ledger.verify().ok
    finally:
        if committer:
            committer.close()
        for lg in ledgers:
            lg.engine.dispose()


# -- listing ---------------------------------------------------------------------------------------
def test_list_filters_by_status_and_pages_without_repeats(rq):
    c = rq
    made = []
    for i in range(7):
        c.clock.now += 1 if i != 3 else 0  # two requests share a created_at: the id breaks the tie
        made.append(ask(c, amount=10 + i, expires_in_s=60 if i == 0 else 3600))
    c.requests.pay(made[1].id, paying(c, made[1]))
    c.requests.decline(made[2].id, by=c.addr("ana"))
    c.clock.now += 60_001  # made[0] expires
    statuses = {r.id: r.status for r in c.requests.list_for(c.addr("ana"), direction="incoming")[0]}
    assert statuses[made[0].id] == "expired" and statuses[made[1].id] == "paid"
    assert statuses[made[2].id] == "declined" and sum(s == "open" for s in statuses.values()) == 4
    for status in ("open", "paid", "declined", "expired"):
        got = c.requests.list_for(c.addr("ana"), direction="incoming", status=status)[0]
        assert {r.id for r in got} == {i for i, s in statuses.items() if s == status}
        assert all(r.status == status for r in got)
    # pages of 3, newest first, with a new request arriving between pages
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = c.requests.list_for(c.addr("ana"), direction="incoming", limit=3, cursor=cursor)
        seen += page
        pages += 1
        c.clock.now += 5
        ask(c, amount=99)  # newer than everything: never shows up on a later page
        if cursor is None:
            break
    assert pages == 3 and [r.id for r in seen] == [r.id for r in sorted(made, key=lambda r: (r.created_at, r.id),
                                                                               reverse=True)]
    shop_open = c.requests.list_for(c.addr("shop"), direction="outgoing", status="open", limit=500)[0]
    assert len(shop_open) == 4 + 3 and all(r.payee == c.addr("shop") for r in shop_open)


def test_list_refuses_bad_arguments(rq):
    c = rq
    ana = c.addr("ana")
    for kwargs in (dict(direction="sideways"), dict(direction="incoming", status="pending"),
                   dict(direction="incoming", cursor="!!"), dict(direction="incoming", cursor="MTIz"),
                   dict(direction="incoming", limit="10")):
        with pytest.raises(E.InvalidInput):
            c.requests.list_for(ana, **kwargs)
    with pytest.raises(E.InvalidAddress):
        c.requests.list_for("0xnope", direction="incoming")
    assert c.requests.list_for(ana, direction="incoming", limit=0) == ([], None)  # clamped to 1


def test_request_memos_are_erasable(rq):
    c = rq
    r = ask(c, memo="Mrs Lopez, 3rd floor")
    c.requests.erase_memo(r.id)
    assert c.requests.get(r.id).memo is None
    with pytest.raises(UnknownRequest):
        c.requests.erase_memo("0x" + "00" * 32)


def test_migration_0003_matches_the_table_definitions(rq):
    with rq.ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": schema_include_name}), metadata)
    mine = [d for d in diff if "payment_requests" in repr(d) or "uq_transfers_request_key" in repr(d)]
    assert mine == []


def test_random_request_ids(rq):
    ids = {ask(rq, amount=1).id for _ in range(5)}
    assert len(ids) == 5 and all(secrets.compare_digest(i, i.lower()) for i in ids)


# -- issue 13, defect 2: decline and pay decided under one lock, on every path ----------------------
def test_a_direct_submit_naming_a_declined_or_expired_request_is_refused(rq):
    """Ledger.submit (not only the HTTP path) enforces open / unexpired / not declined."""
    c = rq
    declined, expiring = ask(c), ask(c, expires_in_s=60)
    c.requests.decline(declined.id, by=c.addr("ana"))
    c.clock.now += 60_001
    snap = c.snapshot()
    with pytest.raises(E.LedgerError) as exc:
        c.ledger.submit(paying(c, declined))
    assert exc.value.code == "request_not_open" and "declined" in exc.value.message
    with pytest.raises(E.LedgerError) as exc:
        c.ledger.submit(paying(c, expiring))
    assert exc.value.code == "request_expired"
    # a transfer merely naming a closed request (other fields) is refused too
    with pytest.raises(E.LedgerError) as exc:
        c.ledger.submit(paying(c, declined, amount=1))
    assert exc.value.code == "request_not_open"
    assert c.snapshot() == snap
    # in a group-commit batch the refusals stand alone: the unrelated transfer still posts
    results = c.ledger.submit_many([paying(c, declined), c.pay("bea", "ana", 5), paying(c, expiring)])
    assert [getattr(r, "code", None) for r in results] == ["request_not_open", None, "request_expired"]
    assert c.requests.get(declined.id).status == "declined" and c.requests.get(expiring.id).status == "expired"
    assert c.balance("ana", "CRED") == 0 and c.ledger.verify().ok


def test_a_payment_in_the_batch_before_a_second_one_closes_the_request(rq):
    c = rq
    r = ask(c)
    results = c.ledger.submit_many([paying(c, r), paying(c, r), paying(c, r, payer="bea")])
    assert not isinstance(results[0], E.LedgerError)
    assert [results[1].code, results[2].code] == ["request_already_paid", "request_not_open"]
    got = c.requests.get(r.id)
    assert (got.status, got.paid_seq) == ("paid", results[0].seq)


@pytest.mark.parametrize("via", ["submit", "group_commit"])
def test_pay_racing_decline_exactly_one_wins_every_round(rq, db_url, via):
    """Real threads, separate connections, many rounds: the payer is never told "declined"
    while money moved, nor "paid" for a request that reads as declined."""
    c = rq
    rounds = 25
    payers = [Ledger.open(db_url, migrate=False, clock=c.clock) for _ in range(2)]
    committer = GroupCommitter(payers[0]) if via == "group_commit" else None
    wins = {"paid": 0, "declined": 0}
    try:
        for _ in range(rounds):
            r = ask(c, amount=3)
            sub = paying(c, r)
            before = c.ledger.head()[0]
            barrier = threading.Barrier(2)
            out: dict = {}

            def pay():
                reqs = PaymentRequests(payers[0], submit=committer.submit if committer else None)
                barrier.wait()
                try:
                    out["pay"] = reqs.pay(r.id, sub)
                except Exception as exc:  # noqa: BLE001 - checked below
                    out["pay"] = exc

            def decline():
                reqs = PaymentRequests(payers[1])
                barrier.wait()
                try:
                    out["decline"] = reqs.decline(r.id, by=c.addr("ana"))
                except Exception as exc:  # noqa: BLE001 - checked below
                    out["decline"] = exc

            threads = [threading.Thread(target=pay), threading.Thread(target=decline)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            paid_ok = not isinstance(out["pay"], Exception)
            declined_ok = not isinstance(out["decline"], Exception)
            assert paid_ok != declined_ok, out  # exactly one wins
            loser = out["decline"] if paid_ok else out["pay"]
            assert isinstance(loser, E.LedgerError) and loser.code == "request_not_open", repr(loser)
            status = c.requests.get(r.id).status
            if paid_ok:
                wins["paid"] += 1
                assert status == "paid" and c.ledger.head()[0] == before + 1
            else:
                wins["declined"] += 1
                assert status == "declined" and c.ledger.head()[0] == before
        assert c.balance("ana", "CRED") == -3 * wins["paid"]
        assert c.ledger.verify().ok
    finally:
        if committer:
            committer.close()
        for lg in payers:
            lg.engine.dispose()


def test_only_the_payer_and_the_payee_may_read_a_request(rq):
    c = rq
    r = ask(c)
    assert c.requests.read(r.id, by=c.addr("ana")) == r == c.requests.read(r.id, by=c.addr("shop"))
    with pytest.raises(E.LedgerError) as exc:
        c.requests.read(r.id, by=c.addr("bea"))
    assert exc.value.code == "forbidden"
