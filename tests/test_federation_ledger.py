"""Federation inside the ledger (issue 15): two REAL ledgers (SQLite + SQLite, PostgreSQL +
SQLite), each with a FederationNode, wired in-process by a test transport that drops,
duplicates, reorders and delays node messages, with "crashes" that throw the node and its
Ledger away and reopen them from the database. After quiescence both logs agree payment by
payment, both are zero-sum, the peer accounts mirror, `Ledger.verify()` passes on both and
no hold remains. Bad input is refused with its own code and nothing written."""
from __future__ import annotations

import random
import secrets
import time

import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.core import fold
from ledger.core.codec import hex0x
from ledger.core.federation import (Alliance, AllianceStatus, CurrencyPair, NodeMessage, RemoteTransfer, peer_address,
                                    sign_node_message)
from ledger.core.hashing import ZERO32
from ledger.core.typed_data import memo_hash, sign_digest
from ledger.federation.node import FederationNode
from ledger.service import Ledger
from tests.conftest import Community

FAR = 4_000_000_000  # validUntil far in the future (unix seconds)


class Clock:
    def __init__(self):
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now


class Side:
    """One community: its ledger (reopened on a crash), node key, treasurer, members."""

    def __init__(self, url: str, name: str, clock: Clock, *, timeout_ms=60_000):
        self.url, self.clock, self.timeout_ms = url, clock, timeout_ms
        self.c = Community(url, name=name, clock=clock)
        self.node_key = signing.new_key()
        self.node = FederationNode(self.c.ledger, self.node_key, timeout_ms=timeout_ms, retry_ms=1_000)

    @property
    def ledger(self) -> Ledger:
        return self.node.ledger

    def crash(self) -> None:
        """Throw away the node and its Ledger (volatile state lost), reopen from the database."""
        self.node.ledger.close()
        ledger = Ledger.open(self.url, clock=self.clock)
        self.c.ledger = ledger
        self.node = FederationNode(ledger, self.node_key, timeout_ms=self.timeout_ms, retry_ms=1_000)

    @property
    def community(self) -> bytes:
        return self.c.domain.salt

    def url_of(self) -> str:
        return f"http://{'a' if self.c.ledger.genesis.community.endswith('A') else 'b'}.example:8000"

    def balances(self) -> dict:
        return {k: p.balance for k, p in self.ledger.positions().items()}


def _terms(a: Side, b: Side, *, limit_a=600, limit_b=600, pairs=None, nonce=1) -> Alliance:
    pairs = pairs or [CurrencyPair.create(currency_a="HOUR", currency_b="HOUR", units_a=1, units_b=1,
                                          limit_a=limit_a, limit_b=limit_b),
                      CurrencyPair.create(currency_a="CRED", currency_b="CRED", units_a=3, units_b=2,
                                          limit_a=50_000, limit_b=50_000)]
    return Alliance.create(community_a=a.community, chain_id_a=a.c.domain.chain_id, node_a=a.node.address,
                           url_a="http://a.example:8000", community_b=b.community, chain_id_b=b.c.domain.chain_id,
                           node_b=b.node.address, url_b="http://b.example:8000", pairs=pairs, nonce=nonce,
                           valid_until=FAR)


def _treasurer_sig(side: Side, alliance: Alliance, which: str) -> str:
    return sign_digest(side.c.treasurer_key, alliance.domain(which).digest(alliance.struct_hash()))


def ally(a: Side, b: Side, **kw) -> Alliance:
    """A proposes, B accepts, A records on B's node-signed acceptance."""
    terms = _terms(a, b, **kw)
    proposal = a.node.propose(terms.message(), _treasurer_sig(a, terms, "A"))
    assert b.node.receive_proposal(proposal) == {"allianceId": hex0x(terms.alliance_id), "status": "proposed"}
    acceptance = b.node.accept(hex0x(terms.alliance_id), _treasurer_sig(b, terms, "B"))
    assert a.node.receive_acceptance(acceptance)["status"] == "active"
    return terms


def remote(payer: Side, name: str, payee: Side, payee_name: str, amount: int, currency="HOUR", *, delivered=None,
           memo=None, nonce=None, valid_until=FAR):
    """A payer-signed RemoteTransfer: (message, signature, memo, salt)."""
    pair_rate = {"HOUR": (1, 1), "CRED": (3, 2)}[currency]
    here_is_a = payer.c.ledger.genesis.community.endswith("A")
    units_here, units_there = pair_rate if here_is_a else pair_rate[::-1]
    if delivered is None:
        delivered = amount * units_there // units_here
    salt = secrets.token_bytes(32) if memo else None
    t = RemoteTransfer.create(payer=payer.c.addr(name), payee_community=payee.community,
                              payee=payee.c.addr(payee_name), currency=currency, amount=amount,
                              payee_currency=currency, delivered=delivered,
                              nonce=nonce if nonce is not None else secrets.randbits(64), valid_until=valid_until,
                              memo_hash=memo_hash(memo, salt))
    sig = sign_digest(payer.c.keys[name], payer.c.domain.digest(t.struct_hash()))
    return t.message(), sig, memo, hex0x(salt) if salt else None


class Net:
    """The in-process transport: a bag of (to, wire) messages; `deliver` hands one to its
    node and puts the reply back in the bag. Faults: drop, duplicate, reorder (random pick)."""

    def __init__(self, a: Side, b: Side, rng: random.Random):
        self.sides = {"http://a.example:8000": a, "http://b.example:8000": b}
        self.bag: list[tuple[str, dict]] = []
        self.rng = rng
        self.refused: list[str] = []

    def send(self, items) -> None:
        self.bag.extend(items)

    def deliver(self, i: int) -> None:
        to, wire = self.bag.pop(i)
        side = self.sides[to]
        other = next(url for url, s in self.sides.items() if s is not side)
        try:
            reply = side.node.handle(wire)
        except E.LedgerError as exc:  # duplicates inside the window, stale re-sends: refused, nothing changes
            self.refused.append(exc.code)
            return
        if reply is not None:
            self.bag.append((other, reply))


def _pay_and_settle(a, b, net, payments):
    for side, outbox in payments:
        net.send(outbox)
    while net.bag:
        net.deliver(0)


@pytest.fixture
def pair(db_url, tmp_path):
    clock = Clock()
    a = Side(db_url, "Coop A", clock)
    b = Side(f"sqlite:///{tmp_path}/b.db", "Coop B", clock)
    for s in (a, b):
        for n in ("ana", "bea", "cho"):
            s.c.member(n)
    yield a, b, clock
    for s in (a, b):
        s.ledger.close()


def _check_quiescent(a: Side, b: Side, acknowledged: set[str]):
    """The invariants after quiescence."""
    legs = {}
    for side in (a, b):
        state = fold.replay(side.ledger.iter_entries())
        assert side.ledger.verify().ok, side.ledger.verify()
        assert fold.zero_sum_faults(state.balances()) == {}
        assert all(p.held_out == 0 and p.held_in == 0 for p in state.positions.values()), "a hold remains"
        assert not side.node.pending()
        legs[side] = state
    la, lb = legs[a].legs, legs[b].legs
    for pid in set(la) | set(lb):
        states = {s.state for s in (la.get(pid), lb.get(pid)) if s is not None}
        assert states in ({"committed"}, {"aborted"}), (pid.hex(), states)
        if "committed" in states:
            assert pid in la and pid in lb
    for pid in acknowledged:
        key = bytes.fromhex(pid[2:])
        assert la.get(key, lb.get(key)).state == "committed"
        assert (la.get(key) or lb.get(key)) and key in la and key in lb
    # per-payment mirror (docs/federation.md, "Mirror, per payment")
    for here, there, st_here, st_there in ((a, b, legs[a], legs[b]), (b, a, legs[b], legs[a])):
        peer = peer_address(there.community)
        for cur in ("HOUR", "CRED"):
            out = sum(l.transfer.amount for l in st_here.legs.values()
                      if l.side == "out" and l.state == "committed" and l.transfer.currency == cur)
            inn = sum(l.transfer.delivered for l in st_here.legs.values()
                      if l.side == "in" and l.state == "committed" and l.transfer.payee_currency == cur)
            assert st_here.positions[(peer, cur)].balance == out - inn
    # each entry kind's body round-trips through its record
    for side in (a, b):
        for e in side.ledger.iter_entries():
            assert fold.decode(e.kind, e.body).body() == e.body


def test_alliance_then_payments_both_ways_commit_on_both_ledgers(pair):
    a, b, clock = pair
    terms = ally(a, b)
    assert [x["status"] for x in a.node.alliances()] == ["active"] == [x["status"] for x in b.node.alliances()]
    assert a.ledger.account(peer_address(b.community)).role == "peer"
    net = Net(a, b, random.Random(1))
    r1 = a.node.submit(*remote(a, "ana", b, "bea", 90, memo="home visit"))
    r2 = b.node.submit(*remote(b, "cho", a, "bea", 30, "CRED"))  # 30 CRED at B is 45 CRED at A (2:3)
    assert r1["state"] == r2["state"] == "prepared"
    # the hold counts against what ana may spend locally
    held = a.ledger.positions(a.c.addr("ana"))[(a.c.addr("ana"), "HOUR")]
    assert held.held_out == 90 and held.balance == 0
    with pytest.raises(E.CreditLimitExceeded):
        a.ledger.submit(a.c.pay("ana", "cho", 600 - 90 + 1))
    _pay_and_settle(a, b, net, [(a, r1["outbox"]), (b, r2["outbox"])])
    assert a.node.payment(r1["paymentId"])["state"] == "committed" == b.node.payment(r1["paymentId"])["state"]
    assert a.c.balance("ana") == -90 and b.c.balance("bea") == 90
    assert b.c.balance("cho", "CRED") == -30 and a.c.balance("bea", "CRED") == 45
    # the memo crossed to the payee's node, off both logs (only memoHash is in them)
    with b.ledger.unit_of_work(readonly=True) as uow:
        assert uow.remote_memo(bytes.fromhex(r1["paymentId"][2:])).memo == "home visit"
    assert all("home visit" not in e.body.__repr__() for s in (a, b) for e in s.ledger.iter_entries())
    _check_quiescent(a, b, {r1["paymentId"], r2["paymentId"]})
    # a retry of the same signed transfer is the same payment, never a second one
    again = a.node.submit(*remote(a, "ana", b, "bea", 90))  # another nonce: a second payment
    assert again["paymentId"] != r1["paymentId"]


def test_refusal_by_the_destination_aborts_on_both_sides(pair):
    a, b, clock = pair
    ally(a, b, limit_b=100)  # B lets A owe it at most 100 HOUR
    net = Net(a, b, random.Random(2))
    r = a.node.submit(*remote(a, "ana", b, "bea", 150))
    _pay_and_settle(a, b, net, [(a, r["outbox"])])
    assert a.node.payment(r["paymentId"])["state"] == "aborted"
    assert a.node.payment(r["paymentId"])["code"] == "peer_limit_reached"
    with pytest.raises(E.UnknownPayment):
        b.node.payment(r["paymentId"])  # nothing was written at B
    _check_quiescent(a, b, set())


def test_presumed_abort_past_the_deadline(pair):
    a, b, clock = pair
    ally(a, b)
    net = Net(a, b, random.Random(3))
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    net.send(r["outbox"])
    net.deliver(0)  # B prepares; its vote is lost
    net.bag.clear()
    clock.now += 61_000
    a.crash()
    net.send(a.node.due())  # past the deadline: A aborts (written) and tells B
    assert a.node.payment(r["paymentId"])["state"] == "aborted"
    assert a.node.payment(r["paymentId"])["code"] == "timeout"
    net.send(b.node.due())  # B, in doubt, asks by its vote; A answers ABORT
    while net.bag:
        net.deliver(0)
    _check_quiescent(a, b, set())


@pytest.mark.parametrize("seed", range(6))
def test_faults_and_crashes_at_every_step_leave_both_ledgers_agreeing(pair, seed):
    a, b, clock = pair
    ally(a, b, limit_a=300, limit_b=300)
    rng = random.Random(seed)
    net = Net(a, b, rng)
    acknowledged: set[str] = set()
    submitted = []
    names = ("ana", "bea", "cho")
    for step in range(120):
        r = rng.random()
        if r < 0.15 and len(submitted) < 25:
            payer, payee = (a, b) if rng.random() < 0.5 else (b, a)
            try:
                res = payer.node.submit(*remote(payer, rng.choice(names), payee, rng.choice(names),
                                                rng.randint(1, 120), rng.choice(("HOUR", "CRED"))))
            except E.LedgerError:
                continue
            submitted.append((payer, res["paymentId"]))
            if rng.random() < 0.8:
                net.send(res["outbox"])
        elif r < 0.55 and net.bag:
            i = rng.randrange(len(net.bag))  # reorder: any message may go next
            if rng.random() < 0.1:
                net.bag.pop(i)  # drop
            else:
                if rng.random() < 0.1:
                    net.bag.append(net.bag[i])  # duplicate
                net.deliver(i)
        elif r < 0.65:
            rng.choice((a, b)).crash()  # at any step, between any two messages
        elif r < 0.8:
            side = rng.choice((a, b))
            net.send(side.node.due())
        elif r < 0.9:
            clock.now += rng.choice((200, 1_000, 5_000, 30_000))  # delay
        else:  # a local payment between members meanwhile (holds count)
            side = rng.choice((a, b))
            try:
                side.ledger.submit(side.c.pay(rng.choice(names[:2]), "cho", rng.randint(1, 200)))
            except E.LedgerError:
                pass
        for payer, pid in submitted:  # what the payer was told
            if payer.node.payment(pid)["state"] == "committed":
                acknowledged.add(pid)
    # quiescence: both up, every message delivered, the clock past every deadline
    clock.now += 120_000
    for _ in range(10):
        net.send(a.node.due())
        net.send(b.node.due())
        while net.bag:
            net.deliver(0)
        clock.now += 2_000
    _check_quiescent(a, b, acknowledged)


# --- bad input: each refused with its own code, nothing written ----------------------------------

def _status(side: Side, alliance: Alliance, status: str, nonce: int):
    a = AllianceStatus.create(alliance_id=alliance.alliance_id, status=status, nonce=nonce, valid_until=FAR)
    return a.message(), sign_digest(side.c.treasurer_key, side.c.domain.digest(a.struct_hash()))


def _refused(side: Side, code: str, call):
    before = side.c.snapshot()
    with pytest.raises(E.LedgerError) as exc:
        call()
    assert exc.value.code == code, exc.value
    assert side.c.snapshot() == before, "a refusal wrote something"


def test_bad_input_each_refused_with_its_own_code_and_nothing_written(pair):
    a, b, clock = pair
    # no alliance yet: a payment to B's community, or a message naming an alliance, is unknown
    _refused(a, "unknown_alliance", lambda: a.node.submit(*remote(a, "ana", b, "bea", 5)))
    terms = _terms(a, b, limit_b=100)
    stray = NodeMessage.create(alliance_id=terms.alliance_id, payment_id=ZERO32, kind="commit", at=clock.now)
    _refused(b, "unknown_alliance", lambda: b.node.handle(
        {"message": stray.message(), "signature": sign_node_message(a.node_key, a.c.domain, stray)}))
    assert ally(a, b, limit_b=100) == terms

    # the payer signed a delivered amount the alliance's rate does not give
    _refused(a, "rate_mismatch", lambda: a.node.submit(*remote(a, "ana", b, "bea", 30, "CRED", delivered=21)))

    # a PREPARE signed with another key than the alliance names for A's node
    r = a.node.submit(*remote(a, "ana", b, "bea", 20))
    (_, prepare), = r["outbox"]
    nm = NodeMessage.from_message(prepare["message"])
    forged = {**prepare, "signature": sign_node_message(signing.new_key(), a.c.domain, nm)}
    _refused(b, "wrong_node_signature", lambda: b.node.handle(forged))
    reflected = dict(prepare)  # A's own message sent back to A: not signed by B's node
    _refused(a, "wrong_node_signature", lambda: a.node.handle(reflected))

    # a stale message (signed more than the window ago) and a replay of one already received
    old = NodeMessage.create(alliance_id=nm.alliance_id, payment_id=nm.payment_id, kind="prepare", at=clock.now - 301_000)
    _refused(b, "stale_node_message", lambda: b.node.handle(
        {**prepare, "message": old.message(), "signature": sign_node_message(a.node_key, a.c.domain, old)}))
    vote = b.node.handle(prepare)  # accepted once: B prepares
    assert NodeMessage.from_message(vote["message"]).kind == "prepared"
    _refused(b, "stale_node_message", lambda: b.node.handle(prepare))  # the same signed message again
    assert a.node.handle(vote)["message"]["kind"] == "commit"

    # the peer limit: B lets A owe at most 100 HOUR; 20 are owed, 81 more are refused by B's vote
    r2 = a.node.submit(*remote(a, "cho", b, "bea", 81))
    before = b.c.snapshot()
    (_, prepare2), = r2["outbox"]
    refusal = b.node.handle(prepare2)
    assert refusal["message"]["kind"] == "refused" and refusal["message"]["code"] == "peer_limit_reached"
    assert b.c.snapshot() == before
    a.node.handle(refusal)
    assert a.node.payment(r2["paymentId"])["state"] == "aborted"
    assert a.node.payment(r2["paymentId"])["code"] == "peer_limit_reached"

    # suspended: refused at the origin (nothing written), and by the destination's vote
    a.node.set_status(*_status(a, terms, "suspended", 901))
    _refused(a, "alliance_not_active", lambda: a.node.submit(*remote(a, "ana", b, "bea", 5)))
    b.node.set_status(*_status(b, terms, "suspended", 902))
    a.node.set_status(*_status(a, terms, "active", 903))
    r3 = a.node.submit(*remote(a, "ana", b, "bea", 5))
    (_, prepare3), = r3["outbox"]
    assert b.node.handle(prepare3)["message"]["code"] == "alliance_not_active"
    # the same signed status twice is one entry; a repeated status is refused
    seq = a.ledger.head()[0]
    a.node.set_status(*_status(a, terms, "active", 903))
    assert a.ledger.head()[0] == seq
    _refused(a, "invalid_transition", lambda: a.node.set_status(*_status(a, terms, "active", 904)))
    for side in (a, b):
        assert side.ledger.verify().ok


def test_holds_block_closing_and_a_suspension_lets_payments_in_flight_finish(pair):
    a, b, clock = pair
    terms = ally(a, b)
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    (_, prepare), = r["outbox"]
    vote = b.node.handle(prepare)
    # ana has nothing but a hold: closing would let the hold's payment vanish
    close = signing.set_status(a.c.treasurer_key, a.c.domain, account=a.c.addr("ana"), status="closed")
    _refused(a, "invalid_transition", lambda: a.ledger.submit(close))
    # a peer account moves only by remote legs
    with pytest.raises(E.NotAuthorised):
        a.ledger.submit(signing.transfer(a.c.keys["cho"], a.c.domain, payee=peer_address(b.community),
                                         currency="HOUR", amount=1))
    b.node.set_status(*_status(b, terms, "suspended", 7))
    decision = a.node.handle(vote)
    assert b.node.handle(decision)["message"] == {**decision["message"], "kind": "ack", "code": "committed",
                                                  "at": clock.now}
    assert b.node.payment(r["paymentId"])["state"] == "committed"
    for side in (a, b):
        assert side.ledger.verify().ok


def test_a_payee_frozen_after_prepare_is_credited_by_commit_and_refuses_new_payments(pair):
    """docs/federation.md, "A decision is final, even for a frozen payee": B voted PREPARED for
    bea, then froze her; A's COMMIT still credits her (the decision cannot be undone on one
    ledger), while a PREPARE arriving after the freeze is refused."""
    a, b, clock = pair
    ally(a, b)
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    (_, prepare), = r["outbox"]
    vote = b.node.handle(prepare)
    assert vote["message"]["kind"] == "prepared"
    b.ledger.submit(signing.set_status(b.c.treasurer_key, b.c.domain, account=b.c.addr("bea"), status="frozen"))
    assert b.ledger.account(b.c.addr("bea")).status == "frozen"
    before = b.balances()[(b.c.addr("bea"), "HOUR")]
    b.node.handle(a.node.handle(vote))
    assert b.node.payment(r["paymentId"])["state"] == "committed"
    assert b.balances()[(b.c.addr("bea"), "HOUR")] == before + 10
    later = a.node.submit(*remote(a, "ana", b, "bea", 5))
    (_, prepare2), = later["outbox"]
    assert b.node.handle(prepare2)["message"]["code"] == "account_not_active"
    for side in (a, b):
        assert side.ledger.verify().ok


def test_every_carried_signature_is_rechecked_on_replay(pair):
    """Each log verifies alone: a committed leg whose carried vote is signed by another key, or
    a prepared leg whose payer signature is not the payer's, is a finding for `ayni verify`."""
    a, b, clock = pair
    ally(a, b)
    net = Net(a, b, random.Random(9))
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    _pay_and_settle(a, b, net, [(a, r["outbox"])])
    entries = list(a.ledger.iter_entries())
    for kind, tamper in (("remote.committed", lambda body: {**body, "nodeSignature": sign_node_message(
                            signing.new_key(), b.c.domain, NodeMessage.from_message(body["message"]))}),
                         ("remote.prepared", lambda body: {**body, "payerSignature": sign_digest(
                            a.c.keys["cho"], a.c.domain.digest(RemoteTransfer.from_message(body["transfer"])
                                                               .struct_hash()))})):
        state = fold.LedgerState()
        for e in entries:
            if e.kind == kind:
                finding = fold.step(state, e.seq, e.kind, e.at, tamper(e.body))
                assert isinstance(finding, fold.Finding) and finding.seq == e.seq, finding
                assert finding.code == "rules"
                break
            assert fold.apply(state, e) is state


def test_a_retried_submission_and_a_repeated_acceptance_change_nothing(pair):
    a, b, clock = pair
    terms = _terms(a, b)
    proposal = a.node.propose(terms.message(), _treasurer_sig(a, terms, "A"))
    b.node.receive_proposal(proposal)
    acceptance = b.node.accept(hex0x(terms.alliance_id), _treasurer_sig(b, terms, "B"))
    seq_b = b.ledger.head()[0]
    again = b.node.accept(hex0x(terms.alliance_id), _treasurer_sig(b, terms, "B"))
    assert b.ledger.head()[0] == seq_b and again["terms"] == acceptance["terms"]
    a.node.receive_acceptance(acceptance)
    seq_a = a.ledger.head()[0]
    a.node.receive_acceptance(again)
    assert a.ledger.head()[0] == seq_a
    signed = remote(a, "ana", b, "bea", 7)
    first = a.node.submit(*signed)
    seq_a = a.ledger.head()[0]
    assert a.node.submit(*signed)["paymentId"] == first["paymentId"] and a.ledger.head()[0] == seq_a
    # the alliance's terms are public; the fold opened both peer accounts with the agreed limits
    assert a.ledger.positions(peer_address(b.community))[(peer_address(b.community), "HOUR")].credit_limit == 600


def test_each_log_alone_reconciles_and_a_leg_is_its_parties_data(pair, tmp_path):
    """`ayni-wallet reconcile` replays an exported log with federation entries like any other;
    a prepared leg's receipt is its payer's and payee's data, not every member's."""
    from ledger.log_export import export_log
    from ledger.privacy.visibility import entry_subjects
    from wallet_cli.reconcile import reconcile
    a, b, clock = pair
    ally(a, b)
    net = Net(a, b, random.Random(5))
    r = a.node.submit(*remote(a, "ana", b, "bea", 12, memo="bread"))
    _pay_and_settle(a, b, net, [(a, r["outbox"])])
    for side, name in ((a, "a"), (b, "b")):
        path = tmp_path / f"{name}.jsonl"
        export_log(side.ledger, path)
        report = reconcile(export=path, workers=0, skip_chain=True)
        assert report.ok, report.discrepancies
        (prepared,) = [e for e in side.ledger.iter_entries() if e.kind == "remote.prepared"]
        assert entry_subjects(prepared.kind, prepared.body) == [a.c.addr("ana"), b.c.addr("bea")]


def test_a_crash_before_and_after_every_message_and_lost_replies(pair):
    """Both nodes are thrown away and reopened from their databases around every delivery, and
    a third of the replies are lost after the receiver appended its entries (the crash between
    an entry's commit and its message): payments progress only through recovery (`due()`)."""
    a, b, clock = pair
    ally(a, b, limit_a=200, limit_b=200)
    rng = random.Random(11)
    bag: list[tuple[Side, dict]] = []
    sides = {"http://a.example:8000": a, "http://b.example:8000": b}
    told = set()
    for i in range(8):
        payer, payee = (a, b) if i % 2 == 0 else (b, a)
        res = payer.node.submit(*remote(payer, ("ana", "bea", "cho")[i % 3], payee, "bea", 10 + i))
        bag += [(sides[url], w) for url, w in res["outbox"]]
        told.add(res["paymentId"])
    for _ in range(40):
        while bag:
            to, wire = bag.pop(rng.randrange(len(bag)))
            to.crash()
            try:
                reply = to.node.handle(wire)
            except E.LedgerError:
                continue
            to.crash()
            if reply is not None and rng.random() > 0.33:
                bag.append((b if to is a else a, reply))
        clock.now += 1_500
        for side in (a, b):
            side.crash()
            bag += [(sides[url], w) for url, w in side.node.due()]
        if not bag:
            break
    assert not a.node.pending() and not b.node.pending()
    committed = [pid for pid in told if _state_of(a, b, pid) == "committed"]
    assert len(committed) == 8, "every payment commits through recovery alone"
    _check_quiescent(a, b, set(committed))


def _state_of(a: Side, b: Side, pid: str) -> str:
    for side in (a, b):
        try:
            p = side.node.payment(pid)
        except E.UnknownPayment:
            continue
        if p["side"] == "out":
            return p["state"]
    return "unknown"


def test_a_node_cannot_decide_the_other_sides_leg_nor_reuse_a_nonce(pair):
    a, b, clock = pair
    terms = ally(a, b)
    r = a.node.submit(*remote(a, "ana", b, "bea", 10))
    pid = bytes.fromhex(r["paymentId"][2:])
    # B's node sends COMMIT for A's own (origin) leg: only the origin decides
    commit = NodeMessage.create(alliance_id=terms.alliance_id, payment_id=pid, kind="commit", at=clock.now)
    _refused(a, "unknown_payment", lambda: a.node.handle(
        {"message": commit.message(), "signature": sign_node_message(b.node_key, b.c.domain, commit)}))
    # and COMMIT for a payment B never prepared
    _refused(b, "unknown_payment", lambda: b.node.handle(
        {"message": commit.message(), "signature": sign_node_message(a.node_key, a.c.domain, commit)}))
    # the payer's nonce is shared with local transfers: one use per signer
    a.ledger.submit(a.c.pay("bea", "cho", 1, nonce=4242))
    _refused(a, "nonce_reused", lambda: a.node.submit(*remote(a, "bea", b, "ana", 5, nonce=4242)))


def test_ayni_verify_compares_the_federation_projections_with_the_log(pair):
    from sqlalchemy import update

    from ledger.store import tables as T
    from ledger.store.federation_tables import alliances, remote_legs
    a, b, clock = pair
    ally(a, b)
    a.node.submit(*remote(a, "ana", b, "bea", 10))  # prepared: ana holds 10
    assert a.ledger.verify().ok
    ana = (T.balances.c.address == a.c.addr("ana")) & (T.balances.c.currency == "HOUR")
    for table, tamper, restore in (
            ("remote_legs", update(remote_legs).values(state="committed"), update(remote_legs).values(state="prepared")),
            ("alliances", update(alliances).values(status="suspended"), update(alliances).values(status="active")),
            ("balances", update(T.balances).where(ana).values(held_out=0),
             update(T.balances).where(ana).values(held_out=10))):
        with a.ledger.transaction() as conn:
            conn.execute(tamper)
        report = a.ledger.verify()
        assert not report.ok and table in {f.table for f in report.replay_faults + report.balance_faults}
        with a.ledger.transaction() as conn:
            conn.execute(restore)
        assert a.ledger.verify().ok, table


def test_handle_many_runs_a_batch_in_one_transaction_and_refuses_each_bad_message_alone(pair):
    a, b, clock = pair
    ally(a, b)
    outs = [a.node.submit(*remote(a, ("ana", "bea", "cho")[i % 3], b, "bea", 5 + i)) for i in range(5)]
    prepares = [w for r in outs for _, w in r["outbox"]]
    nm = NodeMessage.from_message(prepares[0]["message"])
    forged = {**prepares[0], "signature": sign_node_message(signing.new_key(), a.c.domain, nm)}
    head = b.ledger.head()[0]
    results = b.node.handle_many([*prepares, forged, prepares[1]])
    assert [r["message"]["kind"] for r in results[:5]] == ["prepared"] * 5
    assert [r.code for r in results[5:]] == ["wrong_node_signature", "stale_node_message"]
    assert b.ledger.head()[0] == head + 5
    decisions = a.node.handle_many(results[:5])
    assert [d["message"]["kind"] for d in decisions] == ["commit"] * 5
    acks = b.node.handle_many(decisions)
    assert a.node.handle_many(acks) == [None] * 5
    _check_quiescent(a, b, {r["paymentId"] for r in outs})
