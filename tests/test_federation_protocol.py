"""The remote-payment protocol (ledger.core.federation_protocol): unit tests of every
transition, then a deterministic simulation of two nodes under a hostile network and
crashes, checked against the atomicity invariants of docs/federation.md.

The simulation runs the real pure pieces: the protocol legs, and the posting rules of
ledger.core.federation (check_prepare_out / check_prepare_in / apply_commit_* / apply_abort),
folded over each node's durable entries exactly as replay will fold them. A crash throws
away everything but the entries; the restart rebuilds books and legs from them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import pytest

from ledger.core import errors as E
from ledger.core import federation as F
from ledger.core.federation_protocol import (DestinationLeg, LegEntry, Message, OriginLeg, Payment, Received, Restart,
                                             Submit, Tick, from_node_message, to_node_message)
from ledger.core.hashing import keccak256
from ledger.core.rules import AccountState
from ledger.core.typed_data import address_of_key

PID = keccak256(b"payment 1")
PAY = Payment(PID, "0xpayer", "0xpayee", "HOUR", 90, "HOUR", 90)
T0, TIMEOUT, RETRY = 1_000_000, 10_000, 1_000


def origin(**kw) -> OriginLeg:
    return OriginLeg(PID, timeout_ms=TIMEOUT, retry_ms=RETRY, **kw)


def msg(kind, at=T0, code="", payment=None) -> Message:
    return Message(kind, PID, at, code, payment)


def kinds(step) -> list[str]:
    return [m.kind for m in step.messages]


def prepared_origin() -> OriginLeg:
    return origin().on(Submit(T0, PAY)).leg


def prepared_destination() -> DestinationLeg:
    return DestinationLeg(PID, retry_ms=RETRY).on(Received(T0, msg("prepare", payment=PAY))).leg


# --- origin -----------------------------------------------------------------------------------

def test_submit_prepares_durably_then_sends_prepare():
    s = origin().on(Submit(T0, PAY))
    assert s.leg.state == "prepared" and s.leg.deadline == T0 + TIMEOUT
    assert [(e.kind, e.side, e.payment, e.deadline) for e in s.entries] == [("remote.prepared", "out", PAY,
                                                                            T0 + TIMEOUT)]
    assert kinds(s) == ["prepare"] and s.messages[0].payment == PAY and s.reply is None


def test_refused_submission_writes_and_sends_nothing():
    s = origin().on(Submit(T0, PAY, refusal="credit_limit_exceeded"))
    assert s.leg.state == "new" and not s.entries and not s.messages
    assert s.reply == "refused:credit_limit_exceeded"


def test_duplicate_submission_answers_from_the_leg():
    leg = prepared_origin()
    pending = leg.on(Submit(T0 + 5, PAY))
    assert pending.leg == leg and not pending.entries and not pending.messages and pending.reply is None
    committed = leg.on(Received(T0 + 10, msg("prepared"))).leg
    again = committed.on(Submit(T0 + 20, PAY))
    assert again.reply == "committed" and not again.entries and not again.messages


def test_prepared_vote_commits_and_carries_the_vote():
    vote = msg("prepared", T0 + 50)
    s = prepared_origin().on(Received(T0 + 50, vote))
    assert s.leg.state == "committed" and s.reply == "committed" and kinds(s) == ["commit"]
    assert [(e.kind, e.message) for e in s.entries] == [("remote.committed", vote)]


def test_refused_vote_aborts_with_the_destinations_code():
    vote = msg("refused", code="peer_limit_reached")
    s = prepared_origin().on(Received(T0 + 50, vote))
    assert s.leg.state == "aborted" and s.reply == "aborted:peer_limit_reached"
    assert [(e.kind, e.code, e.message) for e in s.entries] == [("remote.aborted", "peer_limit_reached", vote)]
    assert [(m.kind, m.code) for m in s.messages] == [("abort", "peer_limit_reached")]


def test_presumed_abort_after_the_deadline():
    leg = prepared_origin()
    assert kinds(leg.on(Tick(T0 + RETRY - 1))) == []
    resend = leg.on(Tick(T0 + RETRY))
    assert kinds(resend) == ["prepare"] and not resend.entries
    assert leg.on(Tick(T0 + TIMEOUT)).leg.state == "prepared"  # the deadline itself is still in time
    s = leg.on(Tick(T0 + TIMEOUT + 1))
    assert s.leg.state == "aborted" and s.reply == "aborted:timeout" and kinds(s) == ["abort"]
    late = leg.on(Received(T0 + TIMEOUT + 1, msg("prepared")))  # a vote after the deadline is too late
    assert late.leg.state == "aborted" and late.entries[0].kind == "remote.aborted"


def test_decided_origin_answers_votes_with_its_decision_and_resends_until_acknowledged():
    s = prepared_origin().on(Received(T0 + 1, msg("prepared")))
    leg = s.leg
    assert kinds(leg.on(Received(T0 + 2, msg("prepared")))) == ["commit"]  # a re-sent vote is a question
    assert kinds(leg.on(Tick(T0 + 1 + RETRY))) == ["commit"]
    acked = leg.on(Received(T0 + 3, msg("ack", code="committed"))).leg
    assert kinds(acked.on(Tick(T0 + 10 * RETRY))) == []
    assert not leg.on(Received(T0 + 2, msg("refused", code="x"))).entries  # nothing contradicts a decision


def test_origin_answers_abort_for_a_payment_it_never_prepared():
    s = origin().on(Received(T0, msg("prepared")))
    assert s.leg.state == "new" and not s.entries
    assert [(m.kind, m.code) for m in s.messages] == [("abort", "unknown_payment")]


def test_origin_restart_resends_prepare_or_aborts_past_the_deadline():
    entries = origin().on(Submit(T0, PAY)).entries
    leg = OriginLeg.from_entries(PID, entries, timeout_ms=TIMEOUT, retry_ms=RETRY)
    assert leg.state == "prepared" and leg.payment == PAY and leg.deadline == T0 + TIMEOUT
    assert kinds(leg.on(Restart(T0 + 5))) == ["prepare"]
    s = leg.on(Restart(T0 + TIMEOUT + 1))
    assert s.leg.state == "aborted" and [e.kind for e in s.entries] == ["remote.aborted"]
    decided = OriginLeg.from_entries(PID, entries + s.entries)
    assert decided.state == "aborted" and decided.code == "timeout"
    assert kinds(decided.on(Restart(T0 + 10 * TIMEOUT))) == []  # the destination asks for what it holds


# --- destination ------------------------------------------------------------------------------

def test_prepare_holds_durably_then_votes():
    prepare = msg("prepare", payment=PAY)
    s = DestinationLeg(PID).on(Received(T0, prepare))
    assert s.leg.state == "prepared" and kinds(s) == ["prepared"]
    assert [(e.kind, e.side, e.payment, e.message) for e in s.entries] == [("remote.prepared", "in", PAY, prepare)]


def test_refusal_writes_nothing_and_votes_refused():
    s = DestinationLeg(PID).on(Received(T0, msg("prepare", payment=PAY), refusal="peer_limit_reached"))
    assert s.leg.state == "none" and not s.entries
    assert [(m.kind, m.code) for m in s.messages] == [("refused", "peer_limit_reached")]


def test_duplicate_prepare_gets_the_stored_vote():
    leg = prepared_destination()
    s = leg.on(Received(T0 + 1, msg("prepare", payment=PAY), refusal="whatever"))
    assert s.leg == leg and not s.entries and kinds(s) == ["prepared"]


@pytest.mark.parametrize("decision,state", [("commit", "committed"), ("abort", "aborted")])
def test_decision_is_recorded_once_and_acknowledged(decision, state):
    d = msg(decision, T0 + 5)
    s = prepared_destination().on(Received(T0 + 5, d))
    assert s.leg.state == state and [(m.kind, m.code) for m in s.messages] == [("ack", state)]
    assert [(e.kind, e.message) for e in s.entries] == [(f"remote.{state}", d)]
    dup = s.leg.on(Received(T0 + 6, msg(decision, T0 + 6)))
    assert dup.leg == s.leg and not dup.entries and kinds(dup) == ["ack"]
    late_prepare = s.leg.on(Received(T0 + 7, msg("prepare", payment=PAY)))
    assert not late_prepare.entries and [(m.kind, m.code) for m in late_prepare.messages] == [("ack", state)]
    contrary = "abort" if decision == "commit" else "commit"
    with pytest.raises(E.PaymentAlreadyDecided) as exc:
        s.leg.on(Received(T0 + 8, msg(contrary)))
    assert exc.value.code == "payment_already_decided"


def test_abort_before_prepare_is_acknowledged_and_writes_nothing():
    s = DestinationLeg(PID).on(Received(T0, msg("abort", code="timeout")))
    assert s.leg.state == "none" and not s.entries and kinds(s) == ["ack"]


def test_signed_form_round_trips_and_a_prepare_needs_its_payment():
    aid = keccak256(b"alliance")
    for m in (msg("prepare", payment=PAY), msg("refused", code="peer_limit_reached"), msg("ack", code="committed")):
        nm = to_node_message(aid, m)
        assert (nm.alliance_id, nm.payment_id, nm.kind, nm.code, nm.at) == (aid, PID, m.kind, m.code, m.at)
        assert from_node_message(nm, m.payment) == m
    with pytest.raises(E.InvalidInput):
        from_node_message(to_node_message(aid, msg("prepare", payment=PAY)), replace(PAY, payment_id=b"\x01" * 32))


def test_commit_for_an_unknown_payment_is_refused():
    with pytest.raises(E.UnknownPayment) as exc:
        DestinationLeg(PID).on(Received(T0, msg("commit")))
    assert exc.value.code == "unknown_payment"


def test_in_doubt_destination_resends_its_vote_until_decided():
    leg = prepared_destination()
    assert kinds(leg.on(Tick(T0 + RETRY - 1))) == []
    assert kinds(leg.on(Tick(T0 + RETRY))) == ["prepared"]
    entries = DestinationLeg(PID).on(Received(T0, msg("prepare", payment=PAY))).entries
    restarted = DestinationLeg.from_entries(PID, entries)
    assert restarted.state == "prepared" and restarted.payment == PAY
    assert kinds(restarted.on(Restart(T0 + 1))) == ["prepared"]
    assert kinds(DestinationLeg(PID).on(Restart(T0))) == []


# --- the simulation --------------------------------------------------------------------------------

SIM_TIMEOUT, SIM_RETRY, WINDOW = 8_000, 700, 20_000
HOUR_PAIR = F.CurrencyPair.create(currency_a="HOUR", currency_b="HOUR", units_a=1, units_b=1, limit_a=500,
                                  limit_b=400)
CRED_PAIR = F.CurrencyPair.create(currency_a="CREDA", currency_b="CREDB", units_a=3, units_b=2, limit_a=600,
                                  limit_b=300)
ALLIANCE = F.Alliance.create(
    community_a=keccak256(b"sim A"), chain_id_a=1, node_a=address_of_key(keccak256(b"na")),
    url_a="http://127.0.0.1:1", community_b=keccak256(b"sim B"), chain_id_b=1,
    node_b=address_of_key(keccak256(b"nb")), url_b="http://127.0.0.1:2", pairs=[HOUR_PAIR, CRED_PAIR], nonce=1,
    valid_until=2**40)
NODE_KEYS = {"A": keccak256(b"na"), "B": keccak256(b"nb")}
MEMBERS = {side: [address_of_key(keccak256(f"{side} member {i}".encode())) for i in range(4)] for side in "AB"}
CURRENCIES = {"A": ("HOUR", "CREDA"), "B": ("HOUR", "CREDB")}


@dataclass
class Books:
    """A node's ledger derived from its entries by the federation rules (what replay does)."""

    side: str
    view: F.AllianceView
    accounts: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)

    @classmethod
    def opened(cls, side: str) -> "Books":
        b = cls(side, F.AllianceView(ALLIANCE, side))
        for i, m in enumerate(MEMBERS[side]):
            b.accounts[m] = AccountState(m, "member", "active")
            for c in CURRENCIES[side]:
                b.positions[(m, c)] = F.HeldPosition(0, 300, 450 if i == 3 else None)
        peer = b.view.peer_account
        b.accounts[peer] = AccountState(peer, "peer", "active")
        for c in CURRENCIES[side]:
            b.positions[(peer, c)] = F.HeldPosition(0, b.view.peer_limit(c), None)
        return b

    def apply(self, record) -> None:
        kind, e, t = record
        P = self.positions
        if kind == "status":
            self.view = replace(self.view, status=e)
        elif kind == "local":
            payer, payee, cur, amount = e
            F.check_local_transfer(amount, P[(payer, cur)], P[(payee, cur)])
            P[(payer, cur)] = replace(P[(payer, cur)], balance=P[(payer, cur)].balance - amount)
            P[(payee, cur)] = replace(P[(payee, cur)], balance=P[(payee, cur)].balance + amount)
        elif e.side == "out":
            payer, peer = (t.payer, t.currency), (self.view.peer_account, t.currency)
            if e.kind == "remote.prepared":  # replay re-checks the rule the service checked
                P[payer] = F.check_prepare_out(t, now_ms=e.at, view=self.view, payer=self.accounts.get(t.payer),
                                               payer_pos=P.get(payer))
            elif e.kind == "remote.committed":
                P[payer], P[peer] = F.apply_commit_out(t.amount, P[payer], P[peer])
            else:
                (P[payer],) = F.apply_abort(t.amount, P[payer])
        else:
            payee, peer = (t.payee, t.payee_currency), (self.view.peer_account, t.payee_currency)
            if e.kind == "remote.prepared":
                P[peer], P[payee] = F.check_prepare_in(t, now_ms=e.at, view=self.view,
                                                       payee=self.accounts.get(t.payee), payee_pos=P.get(payee),
                                                       peer_pos=P.get(peer))
            elif e.kind == "remote.committed":
                P[peer], P[payee] = F.apply_commit_in(t.delivered, P[peer], P[payee])
            else:
                P[peer], P[payee] = F.apply_abort(t.delivered, P[peer], P[payee])


class Node:
    def __init__(self, side: str, sim: "Simulation"):
        self.side, self.sim, self.up = side, sim, True
        self.log: list = []  # durable: (kind, entry, transfer) records, appended atomically per step
        self.restart_from_log()

    def restart_from_log(self) -> None:
        """What a process has after (re)start: only what its log says."""
        self.books = Books.opened(self.side)
        self.replay_window = F.ReplayWindow(WINDOW)  # volatile: lost in a crash, on purpose
        for r in self.log:
            self.books.apply(r)
        self.out: dict[bytes, OriginLeg] = {}
        self.inn: dict[bytes, DestinationLeg] = {}
        by_pid: dict[tuple[str, bytes], list] = {}
        for kind, e, _ in self.log:
            if kind == "leg":
                by_pid.setdefault((e.side, e.payment_id), []).append(e)
        for (side, pid), es in by_pid.items():
            if side == "out":
                self.out[pid] = OriginLeg.from_entries(pid, es, timeout_ms=SIM_TIMEOUT, retry_ms=SIM_RETRY)
            else:
                self.inn[pid] = DestinationLeg.from_entries(pid, es, retry_ms=SIM_RETRY)

    def durable_state(self, side: str, pid: bytes) -> str:
        state = "none"
        for kind, e, _ in self.log:
            if kind == "leg" and e.side == side and e.payment_id == pid:
                state = e.kind.split(".")[1]
        return state

    def run(self, step) -> None:
        """Append the step's entries (one transaction), then maybe crash, then send."""
        leg = step.leg
        (self.out if isinstance(leg, OriginLeg) else self.inn)[leg.payment_id] = leg
        for e in step.entries:
            record = ("leg", e, self.sim.transfers[e.payment_id])
            self.books.apply(record)
            self.log.append(record)
            self.sim.check_never_split(e)
        if step.reply:
            self.sim.replies[leg.payment_id] = step.reply
        if step.entries and self.sim.rng.random() < self.sim.p_crash_after_append:
            self.crash()  # the entries are durable, the messages never left
            return
        for m in step.messages:
            self.sim.send(self.side, m)

    def crash(self) -> None:
        self.up = False
        self.out, self.inn, self.books = {}, {}, None

    def restart(self) -> None:
        self.up = True
        self.restart_from_log()
        for leg in list(self.out.values()) + list(self.inn.values()):
            self.run(leg.on(Restart(self.sim.now)))
            if not self.up:
                return

    def tick(self) -> None:
        for leg in list(self.out.values()) + list(self.inn.values()):
            self.run(leg.on(Tick(self.sim.now)))
            if not self.up:
                return

    def submit(self, t: F.RemoteTransfer, pid: bytes) -> None:
        leg = self.out.get(pid, OriginLeg(pid, timeout_ms=SIM_TIMEOUT, retry_ms=SIM_RETRY))
        refusal = ""
        if leg.state == "new":
            try:
                F.check_prepare_out(t, now_ms=self.sim.now, view=self.books.view,
                                    payer=self.books.accounts.get(t.payer),
                                    payer_pos=self.books.positions.get((t.payer, t.currency)))
            except E.LedgerError as exc:
                refusal = exc.code
        payment = Payment(pid, t.payer, t.payee, t.currency, t.amount, t.payee_currency, t.delivered)
        self.run(leg.on(Submit(self.sim.now, payment, refusal)))

    def local(self, payer: str, payee: str, cur: str, amount: int) -> None:
        P = self.books.positions
        try:
            F.check_local_transfer(amount, P[(payer, cur)], P[(payee, cur)])
        except E.LedgerError:
            return
        record = ("local", (payer, payee, cur, amount), None)
        self.books.apply(record)
        self.log.append(record)

    def set_status(self, status: str) -> None:
        if self.books.view.status != status:
            record = ("status", status, None)
            self.books.apply(record)
            self.log.append(record)

    def receive_wire(self, item) -> None:
        if not self.sim.signed:
            if abs(self.sim.now - item.at) > WINDOW:
                self.sim.stale += 1  # stale_node_message: refused, as if lost
                return
            return self.receive(item)
        nm, signature, payment, forged = item
        try:
            F.verify_node_message(nm, signature, self.books.view, now_ms=self.sim.now, window_ms=WINDOW)
        except E.StaleNodeMessage:
            self.sim.stale += 1
            return
        except E.WrongNodeSignature:
            assert forged, "a genuine message was refused"
            self.sim.forged_refused += 1
            return
        assert not forged, "a forged or reflected message was accepted"
        try:
            digest = ALLIANCE.domain(self.sim.other(self.side)).digest(nm.struct_hash())
            self.replay_window.check_and_remember(digest, nm.at, self.sim.now)
        except E.StaleNodeMessage:
            self.sim.duplicates_refused += 1
            return
        self.receive(from_node_message(nm, payment))

    def receive(self, m: Message) -> None:
        now = self.sim.now
        if m.kind in ("prepare", "commit", "abort"):
            leg = self.inn.get(m.payment_id, DestinationLeg(m.payment_id, retry_ms=SIM_RETRY))
            refusal = ""
            if m.kind == "prepare" and leg.state == "none":
                t = self.sim.transfers[m.payment_id]
                try:
                    F.check_prepare_in(t, now_ms=now, view=self.books.view, payee=self.books.accounts.get(t.payee),
                                       payee_pos=self.books.positions.get((t.payee, t.payee_currency)),
                                       peer_pos=self.books.positions.get((self.books.view.peer_account,
                                                                          t.payee_currency)))
                except E.LedgerError as exc:
                    refusal = exc.code
            step = leg.on(Received(now, m, refusal))  # raises on a contrary decision: a protocol bug
        else:
            leg = self.out.get(m.payment_id, OriginLeg(m.payment_id, timeout_ms=SIM_TIMEOUT, retry_ms=SIM_RETRY))
            step = leg.on(Received(now, m))
        self.run(step)


class Simulation:
    def __init__(self, seed: int, *, p_crash_after_append: float = 0.05, signed: bool = False):
        self.rng = random.Random(seed)
        self.now = 1_700_000_000_000
        self.p_crash_after_append = p_crash_after_append
        self.transfers: dict[bytes, F.RemoteTransfer] = {}
        self.replies: dict[bytes, str] = {}
        self.network: list[tuple[str, Message]] = []
        self.stale = self.forged = self.forged_refused = self.duplicates_refused = 0
        self.signed = signed
        self.nonce = 0
        self.nodes = {"A": Node("A", self), "B": Node("B", self)}

    @staticmethod
    def other(side: str) -> str:
        return "B" if side == "A" else "A"

    def check_never_split(self, e: LegEntry) -> None:
        """At every instant: no payment committed on one side and aborted on the other."""
        if e.kind == "remote.prepared":
            return
        mine = e.kind.split(".")[1]
        other_side = "in" if e.side == "out" else "out"
        for node in self.nodes.values():
            theirs = node.durable_state(other_side, e.payment_id)
            assert {mine, theirs} != {"committed", "aborted"}, f"split decision on {e.payment_id.hex()}"

    def new_payment(self) -> None:
        side = self.rng.choice("AB")
        node = self.nodes[side]
        if not node.up:
            return
        if self.transfers and self.rng.random() < 0.15:  # the payer's client retries a submission
            pid = self.rng.choice(list(self.transfers))
            t = self.transfers[pid]
            if t.payee_community != ALLIANCE.community(side):  # only its origin takes it
                node.submit(t, pid)
            return
        direction = "AB" if side == "A" else "BA"
        pair = self.rng.choice([HOUR_PAIR, CRED_PAIR])
        here, there = pair.currencies(direction)
        amount = self.rng.randint(1, 250)
        delivered = max(1, F.delivered_for(amount, pair, direction))
        if self.rng.random() < 0.05:
            delivered += 1  # a payer who signed another rate: rate_mismatch, nothing written
        self.nonce += 1
        t = F.RemoteTransfer.create(
            payer=self.rng.choice(MEMBERS[side]), payee_community=ALLIANCE.community(self.other(side)),
            payee=self.rng.choice(MEMBERS[self.other(side)]), currency=here, amount=amount, payee_currency=there,
            delivered=delivered, nonce=self.nonce, valid_until=2**40)
        pid = F.payment_id(ALLIANCE.domain(side), t)
        self.transfers[pid] = t
        node.submit(t, pid)

    def send(self, sender: str, m: Message) -> None:
        if self.signed:  # what goes on the wire: the NodeMessage, its signature, the payment beside it
            nm = to_node_message(ALLIANCE.alliance_id, m)
            m = (nm, F.sign_node_message(NODE_KEYS[sender], ALLIANCE.domain(sender), nm), m.payment, False)
        self.network.append((self.other(sender), m))

    def forge(self) -> None:
        """An attacker on the network: a decision signed with another key, or a message
        reflected back to the node that signed it. Both must be refused."""
        genuine = [item for item in self.network if not item[1][3]]  # (reflecting a reflection is genuine)
        if not genuine:
            return
        to, (nm, sig, payment, _) = self.rng.choice(genuine)
        if self.rng.random() < 0.5:
            fake = replace(nm, kind=self.rng.choice(["commit", "abort", "prepared"]))
            self.network.append((to, (fake, F.sign_node_message(keccak256(b"intruder"), ALLIANCE.domain(
                self.other(to)), fake), payment, True)))
        else:
            self.network.append((self.other(to), (nm, sig, payment, True)))
        self.forged += 1

    def deliver(self, index: int) -> None:
        to, m = self.network.pop(index)
        if self.nodes[to].up:
            self.nodes[to].receive_wire(m)

    def chaos_step(self) -> None:
        r = self.rng.random()
        n = self.nodes[self.rng.choice("AB")]
        if r < 0.22:
            self.new_payment()
        elif r < 0.50 and self.network:
            self.deliver(self.rng.randrange(len(self.network)))  # any order
        elif r < 0.55 and self.network:
            self.network.pop(self.rng.randrange(len(self.network)))  # lost
        elif r < 0.60 and self.network:
            self.network.append(self.rng.choice(self.network))  # duplicated
        elif r < 0.62 and self.network and self.signed:
            self.forge()
        elif r < 0.72:
            self.now += self.rng.randint(0, 2_500)
        elif r < 0.84 and n.up:
            n.tick()
        elif r < 0.88 and n.up:
            n.crash()
        elif r < 0.94 and not n.up:
            n.restart()
        elif r < 0.97 and n.up:
            members = MEMBERS[n.side]
            n.local(self.rng.choice(members), self.rng.choice(members), self.rng.choice(CURRENCIES[n.side]),
                    self.rng.randint(1, 200))
        elif n.up:
            n.set_status(self.rng.choice(["active", "active", "suspended"]))
        for node in self.nodes.values():
            if node.up:
                check_limits(node.books)

    def quiesce(self) -> None:
        """Both nodes up, every message delivered, time past every deadline: all settles."""
        self.p_crash_after_append = 0.0
        for node in self.nodes.values():
            if not node.up:
                node.restart()
        for _ in range(400):
            for node in self.nodes.values():
                node.tick()
            while self.network:
                self.deliver(self.rng.randrange(len(self.network)))
            if not self.network and not any_prepared(self) and self.now > self.last_deadline():
                return
            self.now += SIM_RETRY
        stuck = [(n.side, type(leg).__name__, leg.state) for n in self.nodes.values()
                 for legs in (n.out, n.inn) for leg in legs.values() if leg.state == "prepared"]
        raise AssertionError(f"the protocol did not settle: {stuck}")

    def last_deadline(self) -> int:
        return max([leg.deadline for n in self.nodes.values() for leg in n.out.values()], default=0)


def any_prepared(sim: Simulation) -> bool:
    return any(leg.state == "prepared" for n in sim.nodes.values() for legs in (n.out, n.inn)
               for leg in legs.values())


def check_limits(b: Books) -> None:
    """Holds count: nothing ever goes past a credit limit, a peer limit or a ceiling, pending included."""
    for (addr, cur), p in b.positions.items():
        assert p.balance - p.held_out >= -p.credit_limit, (addr, cur, p)
        assert p.ceiling is None or p.balance + p.held_in <= p.ceiling, (addr, cur, p)
        assert p.held_out >= 0 and p.held_in >= 0


def check_settled(sim: Simulation) -> dict[str, int]:
    a, b = sim.nodes["A"], sim.nodes["B"]
    outcomes = {"committed": 0, "aborted": 0, "refused": 0}
    for pid, t in sim.transfers.items():
        origin, dest = (a, b) if t.payee_community == ALLIANCE.community_b else (b, a)
        o, d = origin.durable_state("out", pid), dest.durable_state("in", pid)
        assert o != "prepared" and d != "prepared", "something stayed pending"
        assert (o == "committed") == (d == "committed"), f"one-sided commit: origin {o}, destination {d}"
        reply = sim.replies.get(pid, "")
        if reply == "committed":
            assert o == d == "committed"
        elif reply.startswith(("aborted", "refused")):
            assert o != "committed" and d != "committed"
        outcomes["committed" if o == "committed" else "aborted" if o == "aborted" else "refused"] += 1
        # each leg is recorded once: one prepared, at most one decision
        for node, side in ((origin, "out"), (dest, "in")):
            legs = [e for k, e, _ in node.log if k == "leg" and e.side == side and e.payment_id == pid]
            kinds = [e.kind for e in legs]
            assert kinds in ([], ["remote.prepared", "remote.committed"], ["remote.prepared", "remote.aborted"]), kinds
            if side == "out" and kinds == ["remote.prepared", "remote.committed"]:
                assert legs[1].at <= legs[0].deadline, "committed after the deadline"
    for node in (a, b):
        totals: dict[str, int] = {}
        for (_, cur), p in node.books.positions.items():
            assert p.held_out == 0 and p.held_in == 0, "a hold outlived its payment"
            totals[cur] = totals.get(cur, 0) + p.balance
        assert all(v == 0 for v in totals.values()), f"node {node.side} is not zero-sum: {totals}"
        # replay from the log alone gives the same books
        replayed = Books.opened(node.side)
        for r in node.log:
            replayed.apply(r)
        assert replayed.positions == node.books.positions
    # the peer accounts mirror each other, payment by payment (each side at its own rate)
    for side, node in (("A", a), ("B", b)):
        other = sim.nodes[sim.other(side)]
        for cur in CURRENCIES[side]:
            expected = 0
            for pid, t in sim.transfers.items():
                if a.durable_state("out", pid) != "committed" and b.durable_state("out", pid) != "committed":
                    continue
                if t.payee_community == ALLIANCE.community(sim.other(side)) and t.currency == cur:
                    expected += t.amount  # we were paid into the peer account (we owe the other side)
                if t.payee_community == ALLIANCE.community(side) and t.payee_currency == cur:
                    expected -= t.delivered  # we paid out of it (the other side owes us)
            assert node.books.positions[(node.books.view.peer_account, cur)].balance == expected
    peer_a = a.books.positions[(a.books.view.peer_account, "HOUR")].balance
    peer_b = b.books.positions[(b.books.view.peer_account, "HOUR")].balance
    assert peer_a == -peer_b  # 1:1 pair: exact mirror
    return outcomes


SEEDS = range(250)


def test_simulation_under_faults_settles_atomically():
    totals = {"committed": 0, "aborted": 0, "refused": 0}
    stale = 0
    for seed in SEEDS:
        sim = Simulation(seed)
        for _ in range(250):
            sim.chaos_step()
        sim.quiesce()
        for k, v in check_settled(sim).items():
            totals[k] += v
        stale += sim.stale
    # the scheduler really exercised every outcome (a test that cannot fail proves nothing)
    assert totals["committed"] > 200 and totals["aborted"] > 50 and totals["refused"] > 50, totals
    assert stale > 0


def test_simulation_with_a_crash_after_every_append_still_settles():
    """Every step that writes crashes before its messages leave: progress only by recovery."""
    committed = 0
    for seed in range(20):
        sim = Simulation(1000 + seed, p_crash_after_append=1.0)
        for _ in range(150):
            sim.chaos_step()
        sim.quiesce()
        committed += check_settled(sim)["committed"]
    assert committed > 10  # recovery alone carried payments to commit


def test_a_reliable_network_commits_what_the_rules_allow():
    sim = Simulation(7, p_crash_after_append=0.0)
    for _ in range(60):
        sim.new_payment()
        while sim.network:
            sim.deliver(0)
    outcomes = check_settled(sim)
    assert outcomes["committed"] > 20
    # without faults nothing times out: every abort is the destination's refusal, with its code
    aborted = [r for r in sim.replies.values() if r.startswith("aborted")]
    assert all(r.split(":")[1] in ("peer_limit_reached", "ceiling_exceeded") for r in aborted), aborted
    assert len(sim.replies) == len(sim.transfers)  # every payer got an answer


def test_simulation_with_signed_node_messages_refuses_forgeries():
    """The same schedules over the wire format: every message a NodeMessage signed by the
    sender's node key and verified by the receiver (window included); an attacker injects
    decisions signed with another key and reflects messages back to their signer."""
    forged = refused = duplicates = 0
    for seed in range(25):
        sim = Simulation(5000 + seed, signed=True)
        for _ in range(250):
            sim.chaos_step()
        sim.quiesce()
        check_settled(sim)
        forged, refused = forged + sim.forged, refused + sim.forged_refused
        duplicates += sim.duplicates_refused
    assert duplicates > 10  # the replay window refused exact duplicates, and everything still settled
    assert forged > 20 and refused > 10  # (each accepted forgery would have failed an assertion)


def test_a_destination_down_longer_than_the_timeout():
    """B is down: A's prepared payments abort at their deadline and their payers are told;
    when B returns nothing of them is left anywhere, and new payments go through."""
    sim = Simulation(11, p_crash_after_append=0.0)
    sim.nodes["B"].crash()
    for _ in range(8):
        sim.new_payment()
    pending = [pid for pid in sim.transfers if sim.nodes["A"].out.get(pid, OriginLeg(pid)).state == "prepared"]
    assert pending and all(pid not in sim.replies for pid in pending)
    for _ in range(SIM_TIMEOUT // SIM_RETRY + 1):  # A keeps re-sending PREPARE; all of it is lost
        sim.now += SIM_RETRY
        sim.nodes["A"].tick()
        while sim.network:
            sim.deliver(0)
    assert all(sim.replies[pid] == "aborted:timeout" for pid in pending)
    sim.nodes["B"].restart()
    while sim.network:
        sim.deliver(0)
    check_settled(sim)
    assert all(sim.nodes["B"].durable_state("in", pid) == "none" for pid in pending)
    before = len(sim.transfers)
    for _ in range(6):
        sim.new_payment()
        while sim.network:
            sim.deliver(0)
    assert check_settled(sim)["committed"] > 0 and len(sim.transfers) > before
