"""The remote-payment protocol as a pure state machine: one leg object per payment per node.

Two-phase commit coordinated by the origin (the payer's node), with presumed abort
(docs/federation.md). Each transition takes an event and returns a `Step`: the new leg,
the entries to append (durably, in one transaction, BEFORE any message of the step is
sent), the messages to send, and what to tell the payer. No I/O, no clock, no crypto:
the node signs and verifies `NodeMessage`s at its boundary (ledger.core.federation) and
checks the posting rules (check_prepare_out / check_prepare_in) itself, passing the
result in as `refusal`.

Durable state is only the entries; `from_entries` rebuilds a leg after a crash, and the
`Restart` event then re-drives it. Fields marked volatile are lost in a crash on purpose:
the protocol never needs them for safety, only for promptness.

Who drives what after a crash (each side recovers what it holds durably):
- the origin drives its undecided legs: re-send PREPARE until a vote or the deadline, then
  decide ABORT by itself (presumed abort);
- the destination drives its prepared legs: it re-sends its PREPARED vote, which doubles as
  "what did you decide?", until a decision arrives. The origin answers every vote with its
  decision, and ABORT for a payment it never prepared.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import errors as E
from .federation import NodeMessage

DEFAULT_TIMEOUT_MS = 60_000  # origin: prepared_at + timeout is the last moment it may commit
DEFAULT_RETRY_MS = 2_000  # both: re-send interval for PREPARE, votes and decisions

ORIGIN_STATES = ("new", "prepared", "committed", "aborted")
DESTINATION_STATES = ("none", "prepared", "committed", "aborted")
ENTRY_KINDS = ("remote.prepared", "remote.committed", "remote.aborted")


@dataclass(frozen=True, slots=True)
class Payment:
    """What both legs agree on, taken from the payer's signed RemoteTransfer (the entry
    carries the signed transfer itself; the protocol only needs these fields)."""

    payment_id: bytes
    payer: str
    payee: str
    currency: str  # paid at the origin
    amount: int
    payee_currency: str  # delivered at the destination
    delivered: int


@dataclass(frozen=True, slots=True)
class Message:
    """A protocol message before signing (the node wraps it in a signed NodeMessage).
    `payment` travels with PREPARE only; `code` carries a refusal or abort reason, or, on an
    ACK, the state acknowledged."""

    kind: str  # prepare | prepared | refused | commit | abort | ack
    payment_id: bytes
    at: int
    code: str = ""
    payment: Payment | None = None


@dataclass(frozen=True, slots=True)
class LegEntry:
    """An entry to append. `side` is "out" at the origin, "in" at the destination.
    `message` is what the other node signed that justifies it (the vote for the origin's
    commit, the PREPARE and then the decision at the destination)."""

    kind: str
    side: str
    payment_id: bytes
    at: int
    payment: Payment | None = None
    message: Message | None = None
    code: str = ""
    deadline: int = 0


# --- events -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Submit:
    """The payer's signed transfer reached the origin; `refusal` is the code
    check_prepare_out raised, or "" when every rule passed."""

    now: int
    payment: Payment
    refusal: str = ""


@dataclass(frozen=True, slots=True)
class Received:
    """A message from the other node, already authenticated. At the destination, for a
    PREPARE, `refusal` is what check_prepare_in raised ("" when it passed)."""

    now: int
    message: Message
    refusal: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    now: int


@dataclass(frozen=True, slots=True)
class Restart:
    now: int


Event = Submit | Received | Tick | Restart


@dataclass(frozen=True, slots=True)
class Step:
    leg: "OriginLeg | DestinationLeg"
    entries: tuple[LegEntry, ...] = ()
    messages: tuple[Message, ...] = ()
    # to the payer (origin only): "committed", "aborted:<code>", "refused:<code>", or None (pending)
    reply: str | None = None


# --- origin -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OriginLeg:
    payment_id: bytes
    payment: Payment | None = None  # known from the payer's submission or the prepared entry
    state: str = "new"
    deadline: int = 0  # durable: prepared_at + timeout
    code: str = ""  # durable: why it aborted
    next_send: int = 0  # volatile
    delivered: bool = True  # volatile: the destination acknowledged the decision (or it is not ours to push)
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    retry_ms: int = DEFAULT_RETRY_MS

    def _msg(self, kind: str, now: int, code: str = "", payment: Payment | None = None) -> Message:
        return Message(kind, self.payment_id, now, code, payment)

    def _decide(self, now: int, commit: bool, code: str = "", vote: Message | None = None) -> Step:
        kind = "commit" if commit else "abort"
        leg = replace(self, state="committed" if commit else "aborted", code=code,
                      next_send=now + self.retry_ms, delivered=False)
        entry = LegEntry("remote.committed" if commit else "remote.aborted", "out", self.payment_id, now,
                         message=vote, code=code)
        return Step(leg, (entry,), (self._msg(kind, now, code),), "committed" if commit else f"aborted:{code}")

    def _decision(self, now: int) -> Message:
        return self._msg("commit" if self.state == "committed" else "abort", now, self.code)

    def _reply(self) -> str | None:
        return {"committed": "committed", "aborted": f"aborted:{self.code}"}.get(self.state)

    def on(self, event: Event) -> Step:
        now = event.now
        if isinstance(event, Submit):
            if self.state != "new":
                return Step(self, reply=self._reply())  # the same signed transfer again: same answer
            if event.refusal:
                return Step(self, reply=f"refused:{event.refusal}")  # nothing written, nothing sent
            if event.payment.payment_id != self.payment_id:
                raise E.InvalidInput("the submitted payment is not this leg's")
            leg = replace(self, payment=event.payment, state="prepared", deadline=now + self.timeout_ms,
                          next_send=now + self.retry_ms)
            entry = LegEntry("remote.prepared", "out", self.payment_id, now, payment=leg.payment,
                             deadline=leg.deadline)
            return Step(leg, (entry,), (self._msg("prepare", now, payment=leg.payment),))
        if isinstance(event, Restart):
            if self.state == "prepared":
                if now > self.deadline:
                    return self._decide(now, False, "timeout")
                return Step(replace(self, next_send=now + self.retry_ms),
                            messages=(self._msg("prepare", now, payment=self.payment),))
            # decided legs: the destination asks for what it still holds (it re-sends its vote)
            return Step(replace(self, delivered=True))
        if isinstance(event, Tick):
            if self.state == "prepared":
                if now > self.deadline:
                    return self._decide(now, False, "timeout")  # presumed abort
                if now >= self.next_send:
                    return Step(replace(self, next_send=now + self.retry_ms),
                                messages=(self._msg("prepare", now, payment=self.payment),))
            elif self.state in ("committed", "aborted") and not self.delivered and now >= self.next_send:
                return Step(replace(self, next_send=now + self.retry_ms), messages=(self._decision(now),))
            return Step(self)
        m = event.message
        if m.kind in ("prepared", "refused"):
            if self.state == "new":
                # never prepared here (durably, before any PREPARE), so it can never commit
                return Step(self, messages=(self._msg("abort", now, "unknown_payment"),))
            if self.state == "prepared":
                if m.kind == "refused":
                    return self._decide(now, False, m.code or "refused", vote=m)
                if now > self.deadline:
                    return self._decide(now, False, "timeout")
                return self._decide(now, True, vote=m)
            # decided: a re-sent vote is the destination asking; answer with the decision
            return Step(self, messages=(self._decision(now),))
        if m.kind == "ack":
            return Step(replace(self, delivered=True) if self.state in ("committed", "aborted") else self)
        return Step(self)  # other kinds are not for an origin leg

    @classmethod
    def from_entries(cls, payment_id: bytes, entries, **timing) -> "OriginLeg":
        """The leg as its durable entries say (after a crash); volatile fields start afresh."""
        leg = cls(payment_id, **timing)
        for e in entries:
            if e.kind == "remote.prepared":
                leg = replace(leg, state="prepared", payment=e.payment, deadline=e.deadline)
            elif e.kind == "remote.committed":
                leg = replace(leg, state="committed")
            elif e.kind == "remote.aborted":
                leg = replace(leg, state="aborted", code=e.code)
        return leg


# --- destination ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DestinationLeg:
    payment_id: bytes
    state: str = "none"
    payment: Payment | None = None
    next_send: int = 0  # volatile
    retry_ms: int = DEFAULT_RETRY_MS

    def _msg(self, kind: str, now: int, code: str = "") -> Message:
        return Message(kind, self.payment_id, now, code)

    def on(self, event: Event) -> Step:
        now = event.now
        if isinstance(event, (Restart, Tick)):
            if self.state == "prepared" and (isinstance(event, Restart) or now >= self.next_send):
                # in doubt: re-send the vote, which asks the origin for its decision
                return Step(replace(self, next_send=now + self.retry_ms), messages=(self._msg("prepared", now),))
            return Step(self)
        if isinstance(event, Submit):
            raise E.InvalidInput("a payer submits at the origin, not at the destination")
        m = event.message
        if m.kind == "prepare":
            if self.state == "none":
                if event.refusal:
                    return Step(self, messages=(self._msg("refused", now, event.refusal),))  # nothing written
                if m.payment is None or m.payment.payment_id != self.payment_id:
                    raise E.InvalidInput("a PREPARE must carry its payment")
                leg = replace(self, state="prepared", payment=m.payment, next_send=now + self.retry_ms)
                entry = LegEntry("remote.prepared", "in", self.payment_id, now, payment=m.payment, message=m)
                return Step(leg, (entry,), (self._msg("prepared", now),))
            if self.state == "prepared":
                return Step(self, messages=(self._msg("prepared", now),))  # the same vote again
            return Step(self, messages=(self._msg("ack", now, self.state),))  # decided: nothing to vote on
        if m.kind in ("commit", "abort"):
            decided = "committed" if m.kind == "commit" else "aborted"
            if self.state == "prepared":
                leg = replace(self, state=decided)
                entry = LegEntry(f"remote.{decided}", "in", self.payment_id, now, message=m, code=m.code)
                return Step(leg, (entry,), (self._msg("ack", now, decided),))
            if self.state == decided:
                return Step(self, messages=(self._msg("ack", now, decided),))  # duplicate: nothing changes
            if self.state == "none":
                if m.kind == "abort":
                    # an ABORT overtaking its PREPARE (or for a refused one): nothing to release
                    return Step(self, messages=(self._msg("ack", now, "aborted"),))
                raise E.UnknownPayment("COMMIT for a payment this node never prepared")
            raise E.PaymentAlreadyDecided(f"payment is already {self.state} here; {m.kind.upper()} refused")
        return Step(self)

    @classmethod
    def from_entries(cls, payment_id: bytes, entries, **timing) -> "DestinationLeg":
        leg = cls(payment_id, **timing)
        for e in entries:
            if e.kind == "remote.prepared":
                leg = replace(leg, state="prepared", payment=e.payment)
            elif e.kind == "remote.committed":
                leg = replace(leg, state="committed")
            elif e.kind == "remote.aborted":
                leg = replace(leg, state="aborted")
        return leg


def to_node_message(alliance_id: bytes, m: Message) -> NodeMessage:
    """The signed form of a protocol message (the PREPARE's payment travels beside it, bound
    through paymentId)."""
    return NodeMessage.create(alliance_id=alliance_id, payment_id=m.payment_id, kind=m.kind, code=m.code, at=m.at)


def from_node_message(nm: NodeMessage, payment: Payment | None = None) -> Message:
    """A verified NodeMessage as a protocol message; a PREPARE needs its payment, whose id
    must be the one the node signed."""
    if nm.kind == "prepare" and (payment is None or payment.payment_id != nm.payment_id):
        raise E.InvalidInput("a PREPARE must carry the payment whose id it signs")
    return Message(nm.kind, nm.payment_id, nm.at, nm.code, payment if nm.kind == "prepare" else None)


__all__ = ["to_node_message", "from_node_message", "Payment", "Message", "LegEntry", "Submit", "Received", "Tick", "Restart", "Step", "OriginLeg",
           "DestinationLeg", "DEFAULT_TIMEOUT_MS", "DEFAULT_RETRY_MS", "ORIGIN_STATES", "DESTINATION_STATES"]
