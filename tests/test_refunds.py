"""Refunds linked in the log (ledger.core.refunds, docs/ledger-model.md "Refunds"): the fold
refuses a refund beyond what remains, of someone else's payment, or of a refund; posting under
concurrency (threads, two ledgers = two API workers) cannot exceed the original; replay, verify
and reconciliation flag a log holding a refund beyond its payment. SQLite and PostgreSQL."""
from __future__ import annotations

import threading

import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.core.codec import hex0x
from ledger.core.entries import Entry
from ledger.core.fold import replay
from ledger.core.reconcile import Reconciler
from ledger.core.refunds import RefundTransfer, refund_id
from ledger.requests import PaymentRequests
from ledger.service import Ledger, Submission
from ledger.shops import Shops


@pytest.fixture
def shop(community):
    c = community
    c.member("ana"), c.member("bea"), c.member("shop", role="shop"), c.member("other", role="shop")
    c.requests = PaymentRequests(c.ledger)
    c.shops = Shops(c.ledger, c.requests)
    return c


def paid(c, amount=1000, payer="ana", payee="shop"):
    return c.ledger.submit(c.pay(payer, payee, amount, currency="CRED")).seq


def refund_sub(c, intent, *, signer="shop", amount=None, payee=None):
    return signing.transfer(c.keys[signer], c.domain, payee=payee or intent["payee"], currency=intent["currency"],
                            amount=intent["amount"] if amount is None else amount,
                            request_id=bytes.fromhex(intent["refundId"][2:]))


def refund(c, seq, amount, **kw):
    intent = c.shops.prepare_refund(seq, c.addr("shop"), amount)
    return c.requests.pay(intent["refundId"], refund_sub(c, intent, **kw))


def test_refund_links_both_ways_and_caps_at_the_original(shop):
    c = shop
    seq = paid(c)
    r1 = refund(c, seq, 300)
    assert c.balance("ana", "CRED") == -700 and c.balance("shop", "CRED") == 700
    st = c.shops.refund_state(seq)
    assert st["refunds"] == [{"seq": r1.seq, "amount": 300}] and st["refundableRemaining"] == 700
    assert c.shops.refund_state(r1.seq)["refundOf"] == seq
    assert c.shops.refund_links([seq, r1.seq]) == {seq: {"refunds": [{"seq": r1.seq, "amount": 300}]},
                                                  r1.seq: {"refundOf": seq}}
    # the link is in the entry itself, beside the signed fields
    entry = list(c.ledger.iter_entries(r1.seq - 1))[0]
    assert entry.body["refundOf"]["seq"] == seq and int(entry.body["refundOf"]["refundNonce"]) >= 0
    with pytest.raises(E.RefundExceedsRemaining):
        c.shops.prepare_refund(seq, c.addr("shop"), 701)
    refund(c, seq, 700)
    assert c.shops.refund_state(seq)["refundableRemaining"] == 0
    with pytest.raises(E.RefundExceedsRemaining):
        c.shops.prepare_refund(seq, c.addr("shop"), 1)
    assert c.ledger.verify().ok


def test_two_prepared_refunds_cannot_together_exceed_it(shop):
    c = shop
    seq = paid(c)
    a = c.shops.prepare_refund(seq, c.addr("shop"), 600)
    b = c.shops.prepare_refund(seq, c.addr("shop"), 600)  # each fits alone: the fold decides at posting
    c.requests.pay(a["refundId"], refund_sub(c, a))
    before = c.snapshot()
    with pytest.raises(E.RefundExceedsRemaining):
        c.requests.pay(b["refundId"], refund_sub(c, b))
    assert c.snapshot() == before  # nothing written


def test_bad_refunds_are_refused_by_the_fold(shop):
    c = shop
    seq = paid(c)
    # someone else's payment: only its payee may prepare, and a crafted refund is refused by the fold
    with pytest.raises(E.NotAuthorised):
        c.shops.prepare_refund(seq, c.addr("other"), 100)
    intent = c.shops.prepare_refund(seq, c.addr("shop"), 100)
    with pytest.raises(E.NotAuthorised):  # the prepared id is the shop's to sign
        c.requests.pay(intent["refundId"], refund_sub(c, intent, signer="other"))
    forged = RefundTransfer.of(refund_sub(c, intent, signer="other").action, seq, int(intent["refundNonce"]))
    with pytest.raises(E.RefundMismatch):
        c.ledger.submit(Submission(forged, signing.sign_action(c.keys["other"], c.domain, forged)))
    # the link must match the signed requestId: another nonce, another original
    t = refund_sub(c, intent).action
    for bad in (RefundTransfer.of(t, seq, int(intent["refundNonce"]) + 1), RefundTransfer.of(t, seq - 1, 0)):
        with pytest.raises((E.RefundMismatch, E.NotRefundable)):
            c.ledger.submit(Submission(bad, signing.sign_action(c.keys["shop"], c.domain, bad)))
    # to a third party instead of the payer
    with pytest.raises(E.RefundMismatch):
        c.requests.pay(intent["refundId"], refund_sub(c, intent, payee=c.addr("bea")))
    wrong = RefundTransfer.of(refund_sub(c, intent, payee=c.addr("bea")).action, seq, int(intent["refundNonce"]))
    with pytest.raises(E.RefundMismatch):
        c.ledger.submit(Submission(wrong, signing.sign_action(c.keys["shop"], c.domain, wrong)))
    # a refund of a refund: refused (a refund is final; paying back is a new payment)
    signed = refund_sub(c, intent)
    r = c.requests.pay(intent["refundId"], signed)
    with pytest.raises(E.NotAuthorised):  # ana is the payee of the refund, but ...
        c.shops.prepare_refund(r.seq, c.addr("shop"), 50)
    with pytest.raises(E.NotRefundable):
        c.shops.prepare_refund(r.seq, c.addr("ana"), 50)
    # a refund id is used once, even for an amount that would fit
    again = signing.transfer(c.keys["shop"], c.domain, payee=c.addr("ana"), currency="CRED", amount=100,
                             request_id=bytes.fromhex(intent["refundId"][2:]))
    with pytest.raises(E.RefundMismatch, match="already used"):
        c.requests.pay(intent["refundId"], again)
    # an idempotent retry of the posted refund returns it
    retry = c.requests.pay(intent["refundId"], signed)
    assert retry.duplicate and retry.seq == r.seq
    assert c.ledger.verify().ok


def test_concurrent_refunds_on_two_ledgers_never_exceed_the_payment(shop, db_url):
    """Two writers (two Ledger objects on one database, as two API workers), many threads: each
    prepared refund fits alone, together they exceed the payment; the total posted never does."""
    c = shop
    seq = paid(c, 1000)
    intents = [c.shops.prepare_refund(seq, c.addr("shop"), 150) for _ in range(12)]
    subs = [refund_sub(c, i) for i in intents]
    second = Ledger.open(db_url, migrate=False)
    reqs = [c.requests, PaymentRequests(second)]
    outcomes: list = [None] * len(subs)
    go = threading.Barrier(len(subs))

    def run(i):
        go.wait()
        try:
            outcomes[i] = reqs[i % 2].pay(intents[i]["refundId"], subs[i]).seq
        except E.LedgerError as exc:
            outcomes[i] = exc.code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(subs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    second.close()
    posted = [o for o in outcomes if isinstance(o, int)]
    assert len(posted) == 6, outcomes  # 6 x 150 = 900 <= 1000 < 7 x 150
    assert {o for o in outcomes if not isinstance(o, int)} <= {"refund_exceeds_remaining", "write_conflict"}
    assert c.shops.refund_state(seq)["refunded"] == 900
    assert c.balance("ana", "CRED") == -100 and c.ledger.verify().ok


def test_replay_and_reconcile_flag_a_refund_beyond_its_payment(shop):
    """A log whose second refund (validly signed by the shop) exceeds the payment: every
    verifier that runs the fold says so, at that entry."""
    c = shop
    seq = paid(c, 1000)
    a = c.shops.prepare_refund(seq, c.addr("shop"), 600)
    b = c.shops.prepare_refund(seq, c.addr("shop"), 600)
    c.requests.pay(a["refundId"], refund_sub(c, a))
    entries = list(c.ledger.iter_entries())
    assert replay(entries).refunded == {seq: 600}
    # the server (or a database edit) appends the second refund without the rule
    sub = refund_sub(c, b)
    t = RefundTransfer.of(sub.action, seq, int(b["refundNonce"]))
    digest = c.domain.digest(t.struct_hash())
    body = {**{"payer": t.payer, "payee": t.payee, "currency": t.currency, "amount": t.amount,
               "memoHash": hex0x(t.memo_hash), "requestId": hex0x(t.request_id), "nonce": str(t.nonce),
               "validUntil": str(t.valid_until), "signature": sub.signature.lower(), "digest": hex0x(digest)},
            "refundOf": t.link()}
    from ledger.core.typed_data import canonical_signature
    body["signature"] = canonical_signature(sub.signature)
    last = entries[-1]
    bad = Entry.make(last.seq + 1, "transfer.posted", last.at + 1, body, last.chain_hash)
    with pytest.raises(E.IntegrityViolation, match="refund_exceeds_remaining"):
        replay(entries + [bad])
    rec = Reconciler()
    for e in entries + [bad]:
        rec.feed(e.as_dict())
    rec.finish_log()
    found = [f for f in rec.report.discrepancies if f.seq == bad.seq]
    assert found and "refund_exceeds_remaining" in found[0].found
    # the same entry within the limit is accepted by the same fold
    assert refund_id(bytes.fromhex(c.ledger.iter_entries(seq - 1).__next__().body["digest"][2:]),
                     int(b["refundNonce"])) == t.request_id


def test_refund_link_is_bound_by_the_signature(shop):
    """Moving a posted refund's link to another payment breaks the fold: the signed requestId
    no longer recomputes."""
    c = shop
    s1, s2 = paid(c, 500), paid(c, 500)
    r = refund(c, s1, 200)
    entries = list(c.ledger.iter_entries())
    e = entries[r.seq - 1]
    moved = {**e.body, "refundOf": {**e.body["refundOf"], "seq": s2}}
    prev = entries[r.seq - 2]
    tampered = entries[:r.seq - 1] + [Entry.make(e.seq, e.kind, e.at, moved, prev.chain_hash)]
    with pytest.raises(E.IntegrityViolation, match="refund_mismatch"):
        replay(tampered)
    # and a plain copy of the refund without its link is just a transfer: the link cannot be dropped silently
    # without the projection disagreeing (refund_links is written from the entry)
    assert c.shops.refund_state(s1)["refunds"] == [{"seq": r.seq, "amount": 200}]


def _link_faults(c):
    rep = c.ledger.verify()
    return [(f.seq, f.detail) for f in rep.replay_faults if f.table == "refund_links"]


def test_verify_audits_refund_links_and_posting_counts_refunds_from_the_log(shop):
    """refund_links caps refunds at posting, so `ayni verify` compares it with every refund
    entry (missing, altered, extra rows are findings), and posting counts the earlier refunds'
    amounts from their entries: an altered row cannot let a refund beyond the payment through."""
    from sqlalchemy import delete, insert, update

    from ledger.store.shop_tables import refund_links as RL
    c = shop
    seq = paid(c, 1000)
    intent = c.shops.prepare_refund(seq, c.addr("shop"), 500)  # prepared early: fits until r1 posts
    r1 = refund(c, seq, 600)
    assert c.ledger.verify().ok and _link_faults(c) == []
    with c.ledger.engine.begin() as conn:  # the row now says 100 was refunded
        conn.execute(update(RL).where(RL.c.seq == r1.seq).values(amount=100))
    assert [s for s, _ in _link_faults(c)] == [r1.seq]
    # what both parties are shown comes from the refund's transfer, not from the altered row
    assert c.shops.refund_state(seq)["refunds"] == [{"seq": r1.seq, "amount": 600}]
    with pytest.raises(E.RefundExceedsRemaining):
        c.shops.prepare_refund(seq, c.addr("shop"), 500)
    before = c.snapshot()
    with pytest.raises(E.RefundExceedsRemaining):
        c.requests.pay(intent["refundId"], refund_sub(c, intent))
    assert c.snapshot() == before
    with c.ledger.engine.begin() as conn:  # a missing row
        conn.execute(delete(RL).where(RL.c.seq == r1.seq))
    assert [s for s, _ in _link_faults(c)] == [r1.seq]
    before = c.snapshot()
    with pytest.raises(E.RefundExceedsRemaining):  # the refund is still found, from the transfers back
        c.requests.pay(intent["refundId"], refund_sub(c, intent))
    assert c.snapshot() == before
    with c.ledger.engine.begin() as conn:  # restored, plus an extra row on a plain payment
        conn.execute(insert(RL).values(seq=r1.seq, original_seq=seq, refund_nonce=intent["refundNonce"], amount=600))
        conn.execute(insert(RL).values(seq=seq, original_seq=seq, refund_nonce="1", amount=1))
    assert sorted(s for s, _ in _link_faults(c)) == [seq, r1.seq]  # wrong nonce on r1; seq is no refund


def test_payments_from_an_allied_community_are_in_the_takings_and_refused_a_till_refund(db_url, tmp_path):
    """A shop paid from an allied community (a committed destination leg): the feed lists it at its
    commit entry, the report counts it (totals equal the ledger's balance), and a till refund of it
    is refused as not_refundable (it is returned by a remote payment), not as an unknown entry."""
    import random

    from tests.test_federation_ledger import (
        Clock,
        Net,
        Side,
        _pay_and_settle,
        ally,
        remote,
    )
    clock = Clock()
    a, b = Side(f"sqlite:///{tmp_path}/a.db", "Coop A", clock), Side(db_url, "Coop B", clock)
    try:
        a.c.member("ana")
        b.c.member("bea"), b.c.member("shop", role="shop")
        ally(a, b)
        reqs = PaymentRequests(b.ledger)
        shops = Shops(b.ledger, reqs)
        local = b.ledger.submit(b.c.pay("bea", "shop", 25, currency="CRED")).seq
        r = a.node.submit(*remote(a, "ana", b, "shop", 30, "CRED"))  # 30 CRED at A is 20 CRED at B
        _pay_and_settle(a, b, Net(a, b, random.Random(1)), [(a, r["outbox"])])
        assert b.c.balance("shop", "CRED") == 45
        items, nxt = shops.feed(b.c.addr("shop"))
        assert [(i["kind"], i["amount"], i.get("remote", {}).get("paymentId")) for i in items] == [
            ("payment", 25, None), ("payment", 20, r["paymentId"])]
        assert items[1]["seq"] > local and shops.feed(b.c.addr("shop"), after=nxt)[0] == []
        assert shops.feed(b.c.addr("shop"), after=items[0]["seq"])[0] == items[1:]
        from datetime import UTC, datetime
        day = datetime.fromtimestamp(clock() / 1000, tz=UTC).date().isoformat()
        _, totals = shops.report(b.c.addr("shop"), from_day=day, to_day=day)
        assert totals == [{"currency": "CRED", "count": 2, "sum": 45, "refunds": 0, "net": 45}]
        from sqlalchemy import select

        from ledger.store.federation_tables import remote_legs
        with b.ledger.engine.connect() as conn:
            prepared = conn.execute(select(remote_legs.c.prepared_seq)).scalar_one()
        assert prepared < items[1]["seq"]
        for seq in (items[1]["seq"], prepared):  # its commit entry (as the feed shows it) or its prepare
            with pytest.raises(E.NotRefundable, match="allied community"):
                shops.prepare_refund(seq, b.c.addr("shop"), 1)
        with pytest.raises(E.LedgerError) as other:
            shops.prepare_refund(items[1]["seq"], b.c.addr("bea"), 1)
        assert other.value.code == "not_found"
        assert b.ledger.verify().ok
    finally:
        a.ledger.close(), b.ledger.close()
