"""Read models (ledger/queries.py): one transfer, history with filters and cursors, the log."""
import base64
import random

import pytest
from sqlalchemy import insert, text

from ledger import signing
from ledger.core import errors as E
from ledger.core.addresses import to_checksum
from ledger.queries import Queries, decode_cursor, encode_cursor
from ledger.store import tables as T


class Clock:
    def __init__(self, ledger):
        self.now = ledger.clock()

    def __call__(self):
        return self.now


@pytest.fixture
def q(community):
    c = community
    for n in ("ana", "bea", "cid"):
        c.member(n)
    c.member("shop", role="shop")
    c.clock = Clock(c.ledger)
    c.ledger.clock = c.clock
    c.queries = Queries(c.ledger)
    return c


def post(c, payer, payee, amount, currency="HOUR", **kw):
    c.clock.now += 1000
    return c.ledger.submit(c.pay(payer, payee, amount, currency, **kw))


def test_one_transfer(q):
    c = q
    p = post(c, "ana", "bea", 30, memo="garden")
    rid = b"\x07" * 32
    p2 = post(c, "bea", "shop", 125, "CRED", request_id=rid)
    v = c.queries.transfer(p.seq)
    assert (v.seq, v.at, v.payer, v.payee, v.currency, v.amount, v.request_id, v.memo, v.digest, v.direction) == \
        (p.seq, c.clock.now - 1000, c.addr("ana"), c.addr("bea"), "HOUR", 30, None, "garden", p.digest, None)
    v2 = c.queries.transfer(p2.seq)
    assert v2.request_id == "0x" + rid.hex() and v2.memo is None and v2.digest == p2.digest
    assert c.queries.transfer(1) is None  # the genesis entry is not a transfer
    assert c.queries.transfer(2) is None  # nor is an account opening
    assert c.queries.transfer(10**6) is None and c.queries.transfer(0) is None and c.queries.transfer(-3) is None
    with pytest.raises(E.InvalidInput):
        c.queries.transfer("5")


def test_history_filters(q):
    c = q
    a, b, s = c.addr("ana"), c.addr("bea"), c.addr("shop")
    t1 = post(c, "ana", "bea", 10)
    t2 = post(c, "bea", "ana", 20)
    t3 = post(c, "ana", "shop", 300, "CRED")
    mid = c.clock.now + 1  # t3.at == mid - 1, t4.at == mid + 999
    t4 = post(c, "cid", "ana", 40)
    t5 = post(c, "bea", "cid", 50)  # not ana's
    t6 = post(c, "shop", "ana", 60, "CRED", memo="refund")
    seqs = lambda page: [v.seq for v in page[0]]  # noqa: E731
    assert seqs(c.queries.history(a)) == [t6.seq, t4.seq, t3.seq, t2.seq, t1.seq]
    assert seqs(c.queries.history(a, newest_first=False)) == [t1.seq, t2.seq, t3.seq, t4.seq, t6.seq]
    assert seqs(c.queries.history(a, currency="CRED")) == [t6.seq, t3.seq]
    assert seqs(c.queries.history(a, currency="EUR")) == []
    assert seqs(c.queries.history(a, counterparty=b)) == [t2.seq, t1.seq]
    assert seqs(c.queries.history(a, counterparty=s, currency="CRED")) == [t6.seq, t3.seq]
    assert seqs(c.queries.history(a, since_ms=mid)) == [t6.seq, t4.seq]  # since inclusive
    assert seqs(c.queries.history(a, until_ms=mid)) == [t3.seq, t2.seq, t1.seq]  # until exclusive
    assert seqs(c.queries.history(a, since_ms=mid - 1000, until_ms=mid + 1000)) == [t4.seq, t3.seq]
    page = c.queries.history(a)[0]
    assert {v.seq: v.direction for v in page} == {t6.seq: "in", t4.seq: "in", t3.seq: "out", t2.seq: "in",
                                                  t1.seq: "out"}
    assert page[0].memo == "refund" and page[0].digest == t6.digest
    assert seqs(c.queries.history(c.addr("cid"))) == [t5.seq, t4.seq]
    # lower-case addresses are normalised; nonsense is refused
    assert seqs(c.queries.history(a.lower(), counterparty=b.lower())) == [t2.seq, t1.seq]
    for bad in (dict(counterparty="bob"), dict(since_ms="yesterday"), dict(until_ms=-1), dict(limit="5"),
                dict(currency=5)):
        with pytest.raises(E.InvalidInput):
            c.queries.history(a, **bad)
    with pytest.raises(E.InvalidAddress):
        c.queries.history("0x123")
    # a shop's incoming payments only
    assert [v.seq for v in c.queries.payments_to(s)[0]] == [t3.seq]
    assert c.queries.payments_to(a, counterparty=s)[0][0].seq == t6.seq


@pytest.mark.parametrize("newest_first", [True, False])
def test_pages_have_no_repeats_or_gaps_while_others_post(q, newest_first):
    c = q
    a = c.addr("ana")
    rng = random.Random(4)
    names = ["bea", "cid"]
    for _ in range(20):
        other = rng.choice(names)
        post(c, *(("ana", other) if rng.random() < 0.5 else (other, "ana")), rng.randint(1, 3))
        post(c, "bea", "cid", 1)  # noise that is not ana's
    at_start = [v.seq for v in c.queries.history(a, limit=500, newest_first=newest_first)[0]]
    assert len(at_start) == 20
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = c.queries.history(a, limit=3, cursor=cursor, newest_first=newest_first)
        assert len(page) <= 3
        seen += [v.seq for v in page]
        pages += 1
        post(c, "ana", "bea", 1)  # new transfers between page reads
        post(c, "cid", "ana", 1)
        if cursor is None:
            break
        assert pages < 100
    assert len(seen) == len(set(seen))  # no repeats
    if newest_first:  # exactly the transfers that existed at the first page, none skipped
        assert seen == at_start and pages == 7
    else:  # oldest first runs into the new ones at the end, in order, without gaps
        everything = [v.seq for v in c.queries.history(a, limit=500, newest_first=False)[0]]
        assert seen == everything[:len(seen)] and seen[:20] == at_start
    # with filters the cursor still walks only matching rows
    only_in, cursor = [], None
    while True:
        page, cursor = c.queries.history(a, counterparty=c.addr("cid"), limit=2, cursor=cursor,
                                         newest_first=newest_first)
        only_in += page
        if cursor is None:
            break
    assert only_in and all(c.addr("cid") in (v.payer, v.payee) for v in only_in)
    assert len({v.seq for v in only_in}) == len(only_in)


def test_limits_are_clamped(q):
    c = q
    c.ledger.submit_many([c.pay("ana", "bea", 1) for _ in range(260)] + [c.pay("bea", "ana", 1) for _ in range(260)])
    page, cursor = c.queries.history(c.addr("ana"), limit=10_000)
    assert len(page) == 500 and cursor is not None
    rest, end = c.queries.history(c.addr("ana"), limit=10_000, cursor=cursor)
    assert len(rest) == 20 and end is None
    assert len(c.queries.history(c.addr("ana"), limit=0)[0]) == 1
    assert len(c.queries.history(c.addr("ana"), limit=-5)[0]) == 1
    assert len(c.queries.log(limit=10_000)[0]) == 500


def test_malformed_cursors_are_invalid_input(q):
    c = q
    post(c, "ana", "bea", 1)
    b64 = lambda s: base64.urlsafe_b64encode(s).decode().rstrip("=")  # noqa: E731
    for bad in ("", "!!!", "a", b64(b"abc"), b64(b"0"), b64(b"-1"), b64(b"01"), b64(b"1.5"), b64(b" 1"),
                b64(str(2**63).encode()), b64(b"\xff\xfe"), "A" * 200, 12, b"MQ"):
        with pytest.raises(E.InvalidInput):
            c.queries.history(c.addr("ana"), cursor=bad)
    assert decode_cursor(encode_cursor(123456789)) == 123456789
    assert decode_cursor(encode_cursor(2**63 - 1)) == 2**63 - 1


def test_log_pages_in_seq_order(q):
    c = q
    for i in range(11):
        post(c, "ana", "bea", 1 + i)
    everything = list(c.ledger.iter_entries())
    got, after, pages = [], 0, 0
    while after is not None:
        page, after = c.queries.log(after_seq=after, limit=4)
        got += page
        pages += 1
    assert got == everything and pages == -(-len(everything) // 4)
    assert c.queries.log(after_seq=everything[-1].seq) == ([], None)
    exact, nxt = c.queries.log(after_seq=0, limit=len(everything))
    assert exact == everything and nxt is None  # a full last page says "the end" at once
    head = everything[-1].seq
    page, nxt = c.queries.log(after_seq=head - 2, limit=1)
    assert [e.seq for e in page] == [head - 1] and nxt == head - 1
    for bad in (-1, "3", 1.0, True):
        with pytest.raises(E.InvalidInput):
            c.queries.log(after_seq=bad)


def _fake_transfers(c, n: int, accounts: int):
    """Projection rows only (plan test): many accounts, each a small share of the table."""
    rng = random.Random(1)
    addrs = [to_checksum(f"{i + 1:040x}") for i in range(accounts)]
    head = c.ledger.head()[0]
    entries, transfers = [], []
    for seq in range(head + 1, head + n + 1):
        a, b = rng.sample(addrs, 2)
        entries.append({"seq": seq, "kind": "transfer.posted", "at": seq, "body": "{\"digest\": \"0x00\"}",
                        "entry_hash": bytes(32), "chain_hash": bytes(32)})
        transfers.append({"seq": seq, "payer": a, "payee": b, "currency": "HOUR", "amount": 1,
                          "request_id": None, "at": seq})
    with c.ledger.engine.begin() as conn:
        conn.execute(insert(T.entries), entries)
        conn.execute(insert(T.transfers), transfers)
    with c.ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return addrs


def test_history_plans_use_the_indexes(q, monkeypatch):
    c = q
    addrs = _fake_transfers(c, 20_000, 1_000)
    statements = []
    real = c.ledger._reader

    def recording_reader():
        conn = real()
        orig = conn.execute

        def execute(stmt, *a, **kw):
            statements.append(stmt)
            return orig(stmt, *a, **kw)
        conn.execute = execute
        return conn

    monkeypatch.setattr(c.ledger, "_reader", recording_reader)
    page, cursor = c.queries.history(addrs[7], limit=5)
    page2, _ = c.queries.history(addrs[7], limit=5, cursor=cursor)
    assert len(page) == 5 and page2 and page2[0].seq < page[-1].seq
    seq_query = statements[-2]  # the page-of-seqs query (the second fetches the rows by seq)
    with c.ledger.engine.connect() as conn:
        sql = str(seq_query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            plan = " | ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        else:
            plan = " | ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
    assert "ix_transfers_payer_seq" in plan and "ix_transfers_payee_seq" in plan, plan
    # (remote_legs is empty here: PostgreSQL rightly scans an empty table; its halves have
    # ix_remote_legs_payer_seq / ix_remote_legs_payee_seq for when it is not)
    assert "SCAN transfers" not in plan and "Seq Scan on transfers" not in plan, plan


def test_entry_subjects_name_whose_data_an_entry_is(q):
    from ledger.privacy.access import ALL
    c = q
    p = post(c, "ana", "bea", 30)
    assert c.queries.entry_subjects(p.seq) == [c.addr("ana"), c.addr("bea")]
    assert c.queries.entry_subjects(1) == [ALL]  # the community's genesis concerns every member
    opened = next(e for e in c.ledger.iter_entries() if e.kind == "account.opened")
    assert c.queries.entry_subjects(opened.seq) == [opened.body["account"]]
    assert c.queries.entry_subjects(p.seq + 1) == [] and c.queries.entry_subjects(0) == []
