"""FederationNode: one community's side of the federation, inside its ledger (no HTTP).

It drives the pure protocol legs (ledger.core.federation_protocol) against the database:
each step's entries are appended through the fold (ledger.core.fold: the same rules that
replay and `ayni verify` run) in ONE transaction under the head lock, before any message of
the step is returned to the caller to send. Durable state is only the log (and its
projections: alliances, remote_legs, holds in balances); the protocol legs' volatile
fields (next re-send, decision acknowledged) live in this object and are lost on a crash on
purpose: `due()` on a fresh node re-drives every undecided leg (docs/federation.md).

The wire forms (JSON dicts) are those of /work/wt/FED_INTERFACE.md and docs/federation.md:
a node message is {"message": NodeMessage, "signature"}; a PREPARE adds "transfer",
"payerSignature" and optionally "memo"/"memoSalt" (shown to the payee; never in a log).
"""
from __future__ import annotations

import json
import threading
from dataclasses import replace

import coincurve

from ..core import errors as E
from ..core.codec import hex0x, parse_b32
from ..core.federation import (
    Alliance,
    AllianceStatus,
    AllianceView,
    NodeMessage,
    RemoteTransfer,
    ReplayWindow,
    check_alliance_terms,
    verify_node_message,
)
from ..core.federation_protocol import (
    DestinationLeg,
    OriginLeg,
    Payment,
    Received,
    Restart,
    Submit,
    Tick,
    from_node_message,
    to_node_message,
)
from ..core.federation_rules import Leg, check_new_alliance, view_for_community
from ..core.fold import LedgerState
from ..core.hashing import ZERO32
from ..core.records import (
    AllianceRecorded,
    AllianceStatusSet,
    RemoteAborted,
    RemoteCommitted,
    RemotePrepared,
    alliance_terms_body,
    remote_transfer_body,
)
from ..core.rules import check_admin
from ..core.text import check_memo
from ..core.typed_data import (
    address_of_key,
    canonical_signature,
    memo_hash,
    recover_signer,
)
from ..store.federation_repo import FederationRows
from .batching import Combiner
from .posting import NOT_A_VOTE, FederationStore, Refusal

DEFAULT_WINDOW_MS = 300_000
# Pending proposals are written by other nodes before any treasurer looked at them: capped so a
# proposing node (or many) cannot fill the table (docs/federation.md, "Proposals").
MAX_PENDING_PER_COMMUNITY = 10
MAX_PENDING = 100
MAX_BATCH = 64        # node messages per batch (POST /v1/federation/messages) and payers per transaction
SUBMIT_WAIT_S = 60.0  # a payer's request never waits forever on the writer


def _proposer_community(row) -> bytes:
    return Alliance.from_message(json.loads(row.terms)).community(row.proposer_side)

def _payment(leg: Leg) -> Payment:
    t = leg.transfer
    return Payment(leg.payment_id, t.payer, t.payee, t.currency, t.amount, t.payee_currency, t.delivered)


class FederationNode:
    def __init__(self, ledger, node_key: bytes | None, *, timeout_ms: int = 60_000, retry_ms: int = 2_000,
                 clock=None, window_ms: int = DEFAULT_WINDOW_MS):
        self.ledger = ledger
        self.node_key = node_key
        self.address = address_of_key(node_key) if node_key else None
        self._signer = None  # coincurve.PrivateKey of node_key (as sign_node_message signs)
        self.timeout_ms, self.retry_ms, self.window_ms = timeout_ms, retry_ms, window_ms
        self.clock = clock or ledger.clock
        self._lock = threading.RLock()
        self._replay = ReplayWindow(window_ms)
        self._store = FederationStore(lambda: ledger.genesis)
        self._legs: dict[bytes, OriginLeg | DestinationLeg] = {}  # volatile protocol fields
        self._submits = Combiner(self._submit_batch, max_batch=MAX_BATCH)

    @property
    def community_id(self) -> bytes:
        return self.ledger.genesis.domain.salt

    @property
    def domain(self):
        return self.ledger.genesis.domain

    # -- signing -------------------------------------------------------------------------------
    def _sign(self, nm: NodeMessage) -> dict:
        if self.node_key is None:
            raise E.InvalidInput("this node has no node key: create one with `ayni federation node new-key`")
        if self._signer is None:  # the key object once: building it derives the public key each time
            self._signer = coincurve.PrivateKey(self.node_key)
        sig = self._signer.sign_recoverable(self.domain.digest(nm.struct_hash()), hasher=None)
        return {"message": nm.message(), "signature": hex0x(sig[:64]) + format(sig[64] + 27, "02x")}

    def _wire(self, view: AllianceView, m, uow=None, *, memo: tuple | None = None) -> dict:
        """The signed wire form of a protocol message; a PREPARE carries the transfer and the
        memo (`memo` = (text, salt) when the caller has it, else read through `uow`)."""
        wire = self._sign(to_node_message(view.alliance_id, m))
        if m.kind == "prepare":
            rec = self._store.prepared[m.payment_id]
            wire["transfer"] = remote_transfer_body(rec.transfer)
            wire["payerSignature"] = rec.payer_signature
            if memo is None and uow is not None:
                row = uow.remote_memo(m.payment_id)
                memo = (row.memo, bytes(row.salt)) if row is not None else None
            if memo is not None:
                wire["memo"], wire["memoSalt"] = memo[0], hex0x(memo[1])
        return wire

    @staticmethod
    def _peer_url(view: AllianceView) -> str:
        return view.alliance.url_a if view.peer_side == "A" else view.alliance.url_b

    def _check_own_node(self, a: Alliance, side: str) -> None:
        if self.address is not None and a.node(side) != self.address:
            raise E.InvalidInput(f"the terms name node {a.node(side)} for this community, not this node's key "
                                 f"{self.address}")

    # -- alliances -----------------------------------------------------------------------------
    def propose(self, terms: dict, treasurer_signature: str) -> dict:
        """Check terms this community's treasurer signed; the proposal document to send to the peer."""
        a = Alliance.from_message(terms)
        view = check_alliance_terms(a, own_community=self.community_id, currencies=self.ledger.currencies,
                                    now_ms=self.clock())
        self._check_own_node(a, view.own_side)
        signer = recover_signer(a.domain(view.own_side).digest(a.struct_hash()), treasurer_signature)
        check_admin(self.ledger.account(signer))
        self._check_can_ally(a, view, in_flight=True)
        vouch = self._sign(NodeMessage.create(alliance_id=a.alliance_id, payment_id=a.alliance_id, kind="propose",
                                              at=self.clock()))
        return {"allianceId": hex0x(a.alliance_id), "terms": alliance_terms_body(a), "side": view.own_side,
                "signature": canonical_signature(treasurer_signature),
                "nodeMessage": vouch["message"], "nodeSignature": vouch["signature"]}

    def receive_proposal(self, proposal: dict) -> dict:
        """The other community's signed terms: kept pending (not in the log) until our treasurer accepts."""
        if not isinstance(proposal, dict):
            raise E.InvalidInput("a proposal must be an object")
        a = Alliance.from_message(proposal.get("terms"))
        view = check_alliance_terms(a, own_community=self.community_id, currencies=self.ledger.currencies,
                                    now_ms=self.clock())
        if proposal.get("side") != view.peer_side:
            raise E.InvalidInput(f"the proposer is side {view.peer_side} of these terms")
        self._check_own_node(a, view.own_side)
        # the proposing node vouches for the terms: only the node the terms name can store them here
        if not isinstance(proposal.get("nodeMessage"), dict):
            raise E.InvalidInput("a proposal needs the proposing node's signed `propose` message "
                                 "(nodeMessage, nodeSignature)")
        nm = NodeMessage.from_message(proposal.get("nodeMessage"))
        if nm.kind != "propose" or nm.alliance_id != a.alliance_id or nm.payment_id != a.alliance_id:
            raise E.InvalidInput("a proposal needs the proposing node's signed `propose` message for these terms")
        verify_node_message(nm, proposal.get("nodeSignature"), view, now_ms=self.clock(), window_ms=self.window_ms)
        recover_signer(a.domain(view.peer_side).digest(a.struct_hash()), proposal.get("signature"))
        signature = canonical_signature(proposal["signature"])
        self._check_can_ally(a, view, in_flight=False)  # in flight now, decided by acceptance
        with self._lock, self.ledger.unit_of_work() as uow:
            recorded = a.alliance_id in self._store.views(uow)
            if not recorded:
                self._keep_proposal(uow, a, view, signature)
        return {"allianceId": hex0x(a.alliance_id), "status": "recorded" if recorded else "proposed"}

    def _check_can_ally(self, a: Alliance, view: AllianceView, *, in_flight: bool) -> None:
        """A proposal with a community we are (or were) allied with: refused while the earlier
        alliance is not ended here (alliance_not_ended), so it is not kept pending for ever, and
        on the proposing side while payments under it are prepared (payments_in_flight); the
        fold re-checks both when the alliance is recorded."""
        with self.ledger.unit_of_work(readonly=True) as uow:
            views = self._store.views(uow)
            legs = self._store.leg_records(uow, uow.leg_rows(undecided=True)) if in_flight else {}
        if a.alliance_id not in views:
            check_new_alliance(views, legs, a.community(view.peer_side))

    def _keep_proposal(self, uow, a: Alliance, view: AllianceView, signature: str) -> None:
        """Store a verified proposal once: the same one again changes nothing, other signatures
        for a pending alliance are refused (never replaced), and the pending ones are capped."""
        pending = uow.proposal(a.alliance_id)
        if pending is not None:
            if pending.proposer_signature != signature:
                raise E.ProposalConflict(f"a proposal of alliance {hex0x(a.alliance_id)} is already pending here "
                                         "with another signature")
            return
        now_s = self.clock() // 1000
        rows, expired = [], []
        for r in uow.proposals():  # terms past validUntil can no longer be accepted: they make room
            (expired if Alliance.from_message(json.loads(r.terms)).valid_until < now_s else rows).append(r)
        if expired:
            uow.write_federation(FederationRows(drop_proposals=[bytes(r.alliance_id) for r in expired]))
        peer = a.community(view.peer_side)
        from_peer = sum(1 for r in rows if _proposer_community(r) == peer)
        if from_peer >= MAX_PENDING_PER_COMMUNITY or len(rows) >= MAX_PENDING:
            raise E.TooManyProposals(f"too many alliance proposals are pending here ({from_peer} from that "
                                     f"community, {len(rows)} in all): the treasurer must accept or let them lapse")
        uow.put_proposal(a.alliance_id, alliance_terms_body(a), view.peer_side, signature, self.clock())

    def proposals(self, *, with_terms: bool = False) -> list[dict]:
        """Pending proposals. Without terms (the public listing): which community proposes, from
        which node and URL; the terms only for one asked by id (what the treasurer signs)."""
        with self.ledger.unit_of_work(readonly=True) as uow:
            rows = uow.proposals()
        out = []
        for r in rows:
            terms = json.loads(r.terms)
            a = Alliance.from_message(terms)
            side = r.proposer_side
            item = {"allianceId": hex0x(bytes(r.alliance_id)), "peerCommunity": hex0x(a.community(side)),
                    "peerNode": a.node(side), "peerUrl": a.url_a if side == "A" else a.url_b,
                    "receivedAt": r.received_at}
            out.append({**item, "terms": terms, "side": side} if with_terms else item)
        return out

    def proposal(self, alliance_id: str) -> dict:
        aid = hex0x(parse_b32(alliance_id, "allianceId"))
        for p in self.proposals(with_terms=True):
            if p["allianceId"] == aid:
                return p
        raise E.UnknownAlliance(f"no proposal of alliance {aid} is pending here")

    def _acceptance(self, a: Alliance, signature_a: str, signature_b: str) -> dict:
        nm = NodeMessage.create(alliance_id=a.alliance_id, payment_id=ZERO32, kind="alliance-recorded",
                                at=self.clock())
        return {**self._sign(nm), "terms": alliance_terms_body(a), "signatureA": signature_a,
                "signatureB": signature_b}

    def _recorded(self, uow, alliance_id: bytes) -> AllianceRecorded | None:
        for r in uow.alliance_rows():
            if bytes(r.alliance_id) == alliance_id:
                return AllianceRecorded.from_body(uow.entry_bodies([r.recorded_seq])[r.recorded_seq])
        return None

    def accept(self, alliance_id: str, treasurer_signature: str) -> dict:
        """Our treasurer signed a pending proposal: record alliance.recorded (both signatures) and
        return the node-signed acceptance to send to the proposer. Idempotent."""
        aid = parse_b32(alliance_id, "allianceId")
        with self._lock, self.ledger.unit_of_work() as uow:
            done = self._recorded(uow, aid)
            if done is None:
                row = uow.proposal(aid)
                if row is None:
                    raise E.UnknownAlliance(f"no proposal of alliance {hex0x(aid)} is pending here")
                a = Alliance.from_message(json.loads(row.terms))
                own = a.side_of(self.community_id)
                mine = canonical_signature(treasurer_signature)
                by = recover_signer(a.domain(own).digest(a.struct_hash()), mine)
                sa, sb = (mine, row.proposer_signature) if own == "A" else (row.proposer_signature, mine)
                st, chain = self._store.state(uow, addresses=[by], undecided=True)  # legs in flight: the rule
                done = AllianceRecorded(a, own, sa, sb, by)
                self._store.append(uow, st, chain, done, self.clock(), FederationRows(drop_proposals=[aid]))
        return self._acceptance(done.alliance, done.signature_a, done.signature_b)

    def receive_acceptance(self, message: dict) -> dict:
        """The peer node's signed `alliance-recorded`: record the same alliance here. Idempotent."""
        if not isinstance(message, dict):
            raise E.InvalidInput("an acceptance must be an object")
        nm = NodeMessage.from_message(message.get("message"))
        a = Alliance.from_message(message.get("terms"))
        if nm.kind != "alliance-recorded" or nm.alliance_id != a.alliance_id or nm.payment_id != ZERO32:
            raise E.InvalidInput("not an alliance-recorded message for these terms")
        view = AllianceView(a, a.side_of(self.community_id))
        self._check_own_node(a, view.own_side)
        # Everything that needs no write first, outside the node's lock: anyone can post terms
        # naming their own key as the other node, so the node signature alone proves nothing.
        # What does: THIS community's treasurer signed these very terms (only our proposal or
        # our acceptance carries that). A forgery is refused here, without the lock or a
        # write transaction (review 15 D1).
        verify_node_message(nm, message.get("signature"), view, now_ms=self.clock(), window_ms=self.window_ms)
        sa, sb = canonical_signature(message.get("signatureA")), canonical_signature(message.get("signatureB"))
        by = recover_signer(a.domain(view.own_side).digest(a.struct_hash()), sa if view.own_side == "A" else sb)
        check_admin(self.ledger.account(by))
        if a.alliance_id in self._store.terms:  # recorded already (terms are cached once recorded)
            return {"allianceId": hex0x(a.alliance_id), "status": "active"}
        with self._lock, self.ledger.unit_of_work() as uow:
            if self._recorded(uow, a.alliance_id) is None:
                st, chain = self._store.state(uow, addresses=[by], undecided=True)
                rec = AllianceRecorded(a, view.own_side, sa, sb, by, nm, canonical_signature(message["signature"]))
                self._store.append(uow, st, chain, rec, self.clock())
        return {"allianceId": hex0x(a.alliance_id), "status": "active"}

    def set_status(self, message: dict, signature: str) -> dict:
        """A treasurer-signed AllianceStatus: the alliance.status entry. Idempotent for the same message."""
        if not isinstance(message, dict):
            raise E.InvalidInput("an alliance status must be an object")
        try:
            a = AllianceStatus.create(alliance_id=message["allianceId"], status=message["status"],
                                      nonce=message["nonce"], valid_until=message["validUntil"])
        except KeyError as exc:
            raise E.InvalidInput(f"alliance status lacks {exc}") from None
        digest = self.domain.digest(a.struct_hash())
        sig = canonical_signature(signature)
        by = recover_signer(digest, sig)
        with self._lock, self.ledger.unit_of_work() as uow:
            st, chain = self._store.state(uow, addresses=[by], nonces=[(by, str(a.nonce))])
            if st.used_nonces.get((by, a.nonce)) != digest:  # else: this very message, already recorded
                self._store.append(uow, st, chain, AllianceStatusSet(a, by, sig, digest), self.clock())
        return {"allianceId": hex0x(a.alliance_id), "status": a.status}

    def alliances(self) -> list[dict]:
        """Public terms of every alliance recorded here (no personal data)."""
        with self.ledger.unit_of_work(readonly=True) as uow:
            views = self._store.views(uow)
        return [{"allianceId": hex0x(aid), "peerCommunity": hex0x(v.alliance.community(v.peer_side)),
                 "peerUrl": self._peer_url(v), "peerNode": v.alliance.node(v.peer_side), "side": v.own_side,
                 "peerAccount": v.peer_account, "status": v.status,
                 "pairs": [p.message() for p in v.alliance.pairs]} for aid, v in views.items()]

    # -- payments ------------------------------------------------------------------------------
    def _payment_dict(self, leg: Leg) -> dict:
        t = leg.transfer
        return {"paymentId": hex0x(leg.payment_id), "side": leg.side, "state": leg.state, "code": leg.code,
                "allianceId": hex0x(leg.alliance_id), "payer": t.payer, "payee": t.payee,
                "payeeCommunity": hex0x(t.payee_community), "currency": t.currency, "amount": t.amount,
                "payeeCurrency": t.payee_currency, "delivered": t.delivered, "deadline": leg.deadline,
                "memoHash": hex0x(t.memo_hash)}

    def submit(self, message: dict, signature: str, memo: str | None = None, memo_salt: str | None = None) -> dict:
        """The payer's signed RemoteTransfer at the origin: a durable remote.prepared (out) holding
        the amount, or a LedgerError and nothing written. The same signed transfer again returns
        the leg's state. "outbox": the PREPARE to send now, as (peer_url, wire) pairs.

        Concurrent payers' transfers are group-committed: checked (signatures, memo) in the
        caller's thread, then appended in ONE transaction per batch (by whichever payer's thread
        finds none running: batching.Combiner), each entry on its own (a refused transfer refuses
        only itself). The PREPAREs are signed after the
        commit, so none can leave before its entry is durable."""
        item = self._checked_transfer(message, signature, memo, memo_salt)
        leg, view, messages = self._submits.run(item, SUBMIT_WAIT_S)
        memo_row = (memo, item[4]) if memo else None
        return {**leg, "outbox": [(self._peer_url(view), self._wire(view, m, memo=memo_row)) for m in messages]}

    def _checked_transfer(self, message, signature, memo, memo_salt) -> tuple:
        """What needs no database: the transfer's form, the payer's signature, the memo's hash."""
        t = RemoteTransfer.from_message(message)
        pid = self.domain.digest(t.struct_hash())
        sig = canonical_signature(signature)
        signer = recover_signer(pid, sig)
        if signer != t.payer:
            raise E.WrongSigner(f"remote transfer signed by {signer}, not by the payer {t.payer}")
        salt = None
        if memo:
            check_memo(memo)
            salt = parse_b32(memo_salt, "memoSalt")
            if memo_hash(memo, salt) != t.memo_hash:
                raise E.MemoMismatch("memo and salt do not hash to the signed memoHash")
        return t, pid, sig, memo or None, salt

    def _submit_batch(self, items: list) -> list:
        """The group-commit writer: every item's prepared entry in one transaction. If the
        transaction itself fails (the database, not a rule), each item is retried alone so one
        poisoned item cannot sink its neighbours."""
        try:
            return self._submit_in_one_transaction(items)
        except Exception:  # rolled back as a whole: retried one by one below
            if len(items) == 1:
                raise
        out = []
        for item in items:
            try:
                out.append(self._submit_in_one_transaction([item])[0])
            except Exception as exc:  # noqa: BLE001 - reported to that payer only
                out.append(exc)
        return out

    def _submit_in_one_transaction(self, items: list) -> list:
        results: list = [None] * len(items)
        fresh: dict[bytes, OriginLeg] = {}
        with self._lock:
            with self.ledger.unit_of_work() as uow:
                st, chain = self._store.state(uow, addresses=[t.payer for t, *_ in items],
                                              payment_ids=[pid for _, pid, *_ in items],
                                              nonces=[(t.payer, str(t.nonce)) for t, *_ in items])
                now = self.clock()
                for i, (t, pid, sig, memo, salt) in enumerate(items):
                    if pid in st.legs:  # the same signed transfer again (or twice in this batch): its state
                        results[i] = (self._payment_dict(st.legs[pid]), None, [])
                        continue
                    view = view_for_community(st, t.payee_community)
                    leg = OriginLeg(pid, timeout_ms=self.timeout_ms, retry_ms=self.retry_ms)
                    payment = Payment(pid, t.payer, t.payee, t.currency, t.amount, t.payee_currency, t.delivered)
                    step = leg.on(Submit(now, payment))
                    (entry,) = step.entries
                    rec = RemotePrepared("out", view.alliance_id if view else ZERO32, pid, t, sig, entry.deadline)
                    rows = FederationRows(memos=[(pid, salt, memo)] if memo else [])
                    try:
                        chain = self._store.append(uow, st, chain, rec, now, rows)
                    except E.LedgerError as exc:
                        if isinstance(exc, NOT_A_VOTE):
                            raise
                        results[i] = exc  # the rules refused this one: nothing of it written
                        continue
                    fresh[pid] = step.leg
                    results[i] = (self._payment_dict(st.legs[pid]), view, step.messages)
            # volatile fields once the entries are durable, still under the lock: the driver's
            # due() never sees these legs without them (it would take them for a restart)
            self._legs.update(fresh)
        return results

    def payment(self, payment_id: str) -> dict:
        pid = parse_b32(payment_id, "paymentId")
        with self.ledger.unit_of_work(readonly=True) as uow:
            legs = self._store.leg_records(uow, uow.leg_rows([pid]))
        if pid not in legs:
            raise E.UnknownPayment(f"no remote payment {hex0x(pid)} here")
        return self._payment_dict(legs[pid])

    def pending(self) -> list[dict]:
        with self.ledger.unit_of_work(readonly=True) as uow:
            legs = self._store.leg_records(uow, uow.leg_rows(undecided=True))
        return [self._payment_dict(leg) for leg in legs.values()]

    # -- the protocol --------------------------------------------------------------------------
    def _protocol_leg(self, st: LedgerState, pid: bytes, side: str):
        """The protocol leg as the durable state says, with the volatile fields kept in memory."""
        return self._protocol_leg_of(st.legs.get(pid), pid, side)

    def _protocol_leg_of(self, leg: Leg | None, pid: bytes, side: str):
        cached = self._legs.get(pid)
        if side == "out":
            fresh = OriginLeg(pid, timeout_ms=self.timeout_ms, retry_ms=self.retry_ms)
            if leg is not None:
                fresh = replace(fresh, payment=_payment(leg), state=leg.state, deadline=leg.deadline, code=leg.code)
        else:
            fresh = DestinationLeg(pid, retry_ms=self.retry_ms)
            if leg is not None:
                fresh = replace(fresh, state=leg.state, payment=_payment(leg))
        if cached is not None and type(cached) is type(fresh) and cached.state == fresh.state:
            return cached
        return fresh

    def _record_for(self, entry, view: AllianceView, received: tuple[NodeMessage, str] | None, transfer=None,
                    payer_signature=None):
        nm, sig = received if received else (None, None)
        aid = view.alliance_id
        if entry.kind == "remote.prepared":  # only the destination prepares on a message
            return RemotePrepared("in", aid, entry.payment_id, transfer, payer_signature, 0, nm, sig)
        cls = RemoteCommitted if entry.kind == "remote.committed" else RemoteAborted
        if entry.message is None:
            nm = sig = None  # a presumed abort carries no message
        return cls(entry.side, aid, entry.payment_id, entry.code, nm, sig)

    def receive(self, body: dict) -> dict | None:
        """What the messages endpoint was sent: one wire message (its reply or None; a refusal
        raises), or a batch {"messages": [wire, ...]} handled in one transaction, answered
        {"results": [...]} with, per message in order, its reply, None, or {"error": {"code",
        "message"}}: a refused message refuses only itself."""
        if not (isinstance(body, dict) and "messages" in body):
            return self.handle(body)
        wires = body["messages"]
        if not isinstance(wires, list) or not 0 < len(wires) <= MAX_BATCH:
            raise E.InvalidInput(f"`messages` must be a list of 1 to {MAX_BATCH} node messages")
        return {"results": [{"error": {"code": r.code, "message": r.message}} if isinstance(r, E.LedgerError) else r
                            for r in self.handle_many(wires)]}

    def handle(self, wire: dict) -> dict | None:
        """A node-to-node message: verify (alliance, node key, window, replay), append the step's
        entries durably, return the signed reply (or None). LedgerError on bad input."""
        result = self.handle_many([wire])[0]
        if isinstance(result, E.LedgerError):
            raise result
        return result

    def handle_many(self, wires: list) -> list:
        """Several node messages in ONE transaction (one commit for all: what a driver or an HTTP
        batch uses to amortise the fsync). One result per message, in order: the signed reply,
        None, or the LedgerError that refused it (a refused message changes nothing; the others
        proceed). A database failure raises and writes nothing."""
        results: list = [None] * len(wires)
        now = self.clock()
        checked = []
        for i, wire in enumerate(wires):  # the signatures first, outside the lock (the costly part)
            try:
                checked.append((i, self._verified(wire, now)))
            except E.LedgerError as exc:
                results[i] = exc
        work = []
        with self._lock:
            batch_digests: set[bytes] = set()
            for i, item in checked:
                try:
                    item = self._admitted(item, now, batch_digests)
                except E.LedgerError as exc:
                    results[i] = exc
                    continue
                if item is not None:
                    work.append((i, item))
            if not work:
                return results
            with self.ledger.unit_of_work() as uow:
                payees = [item[6].payee for _, item in work if item[6] is not None]
                st, chain = self._store.state(uow, addresses=payees, payment_ids=[item[1].payment_id
                                                                                  for _, item in work])
                now = self.clock()
                done, replies = [], []
                for i, (view, nm, sig, msg, side, wire, transfer, payer_sig, digest) in work:
                    try:
                        reply, chain = self._step(uow, st, chain, now, view, nm, sig, msg, side, wire, transfer,
                                                  payer_sig)
                        done.append((digest, nm.at))
                        if reply is not None:
                            replies.append((i, view, reply))
                    except E.LedgerError as exc:
                        if isinstance(exc, NOT_A_VOTE):
                            raise
                        results[i] = exc
            for digest, at in done:
                self._replay.check_and_remember(digest, at, now)
        # signed once the batch is durable (and outside the lock): no reply can leave before its entry
        for i, view, reply in replies:
            results[i] = self._wire(view, reply) if reply.kind != "prepare" else self._wire_with_memo(view, reply)
        return results

    def _wire_with_memo(self, view: AllianceView, m) -> dict:
        with self.ledger.unit_of_work(readonly=True) as uow:
            return self._wire(view, m, uow)

    def _verified(self, wire, now: int):
        """Check one message without the lock: its form, alliance, node signature and window
        (and recover the payer's signature of a PREPARE, which its rule asks for again: the
        recovery is cached, so under the lock it costs nothing)."""
        if not isinstance(wire, dict):
            raise E.InvalidInput("a node message must be an object")
        nm = NodeMessage.from_message(wire.get("message"))
        if nm.kind == "propose":
            raise E.InvalidInput("a `propose` message goes with its terms to /v1/federation/alliances/proposals")
        if nm.kind == "alliance-recorded":  # never in a batch: one per alliance, at its own endpoint
            raise E.InvalidInput("an `alliance-recorded` message goes with its terms to "
                                 "/v1/federation/alliances/acceptances")
        view = self._view_to_verify(nm.alliance_id)
        verify_node_message(nm, wire.get("signature"), view, now_ms=now, window_ms=self.window_ms)
        transfer = payer_sig = payment = None
        if nm.kind == "prepare":
            transfer = RemoteTransfer.from_message(wire.get("transfer"))
            payer_sig = canonical_signature(wire.get("payerSignature"))
            pid = view.alliance.domain(view.peer_side).digest(transfer.struct_hash())
            payment = Payment(pid, transfer.payer, transfer.payee, transfer.currency, transfer.amount,
                              transfer.payee_currency, transfer.delivered)
            try:
                recover_signer(pid, payer_sig)
            except E.LedgerError:
                pass  # the rule refuses it under the lock, as a vote
        return nm, wire, view, (transfer, payer_sig, payment)

    def _admitted(self, item, now: int, batch_digests: set):
        """Under the lock: the replay check, and what needs no transaction (an ACK: None).
        Else the step's inputs."""
        nm, wire, view, prepare = item
        digest = view.alliance.domain(view.peer_side).digest(nm.struct_hash())
        if digest in self._replay._seen or digest in batch_digests:
            raise E.StaleNodeMessage("this node message was already received (a replay or a duplicate)")
        batch_digests.add(digest)
        sig = canonical_signature(wire["signature"])
        transfer, payer_sig, payment = prepare
        msg = from_node_message(nm, payment)
        if nm.kind == "ack":
            # the destination applied our decision: only the volatile "delivered" flag changes,
            # so no transaction (and no head lock) is needed
            cached = self._legs.get(nm.payment_id)
            if isinstance(cached, OriginLeg):
                self._legs[nm.payment_id] = cached.on(Received(now, msg)).leg
            self._replay.check_and_remember(digest, nm.at, now)
            return None
        side = "in" if nm.kind in ("prepare", "commit", "abort") else "out"
        return view, nm, sig, msg, side, wire, transfer, payer_sig, digest

    def _view_to_verify(self, alliance_id: bytes) -> AllianceView | None:
        """The alliance whose node key signs the message. Terms never change once recorded, so a
        known alliance needs no read; its status is the rules' business, under the head lock."""
        a = self._store.terms.get(alliance_id)
        if a is not None:
            return AllianceView(a, a.side_of(self.community_id))
        with self.ledger.unit_of_work(readonly=True) as uow:
            return self._store.views(uow).get(alliance_id)

    def _step(self, uow, st, chain, now, view, nm, sig, msg, side, wire, transfer, payer_sig):
        """One verified message inside the batch's transaction: (reply to sign, new chain hash)."""
        pid = nm.payment_id
        known = st.legs.get(pid)
        if known is not None and (known.alliance_id != view.alliance_id or known.side != side):
            # a message about a leg this node holds on the other side, or under another alliance
            raise E.UnknownPayment(f"no {side} leg of payment {hex0x(pid)} under this alliance here")
        leg = self._protocol_leg(st, pid, side)
        step = leg.on(Received(now, msg))
        if step.entries and step.entries[0].kind == "remote.prepared":
            rows = self._incoming_memo(wire, transfer, pid)
            record = self._record_for(step.entries[0], view, (nm, sig), transfer, payer_sig)
            try:
                chain = self._store.append(uow, st, chain, record, now, rows, refusable=True)
            except Refusal as refused:  # the rules refuse: vote REFUSED with the code, write nothing
                step = leg.on(Received(now, msg, refused.error.code))
        else:
            for entry in step.entries:
                chain = self._store.append(uow, st, chain, self._record_for(entry, view, (nm, sig)), now)
        self._legs[pid] = step.leg
        return (step.messages[0] if step.messages else None), chain

    @staticmethod
    def _incoming_memo(wire: dict, t: RemoteTransfer, pid: bytes) -> FederationRows:
        """The memo the origin sent to show the payee: kept (off the log) only if it is the one
        the payer committed to; a mismatching one is dropped, not a reason to refuse."""
        memo, salt = wire.get("memo"), wire.get("memoSalt")
        if not memo:
            return FederationRows()
        try:
            check_memo(memo)
            salt_bytes = parse_b32(salt, "memoSalt")
        except E.LedgerError:
            return FederationRows()
        if memo_hash(memo, salt_bytes) != t.memo_hash:
            return FederationRows()
        return FederationRows(memos=[(pid, salt_bytes, memo)])

    def due(self, now_ms: int | None = None, *, payment_id: bytes | None = None) -> list[tuple[str, dict]]:
        """What to send now, as (peer_url, wire): PREPAREs of undecided origin legs (or their
        presumed abort, written here, past the deadline), votes of prepared destination legs,
        and decisions not yet acknowledged. The driver calls it on start and every retry_ms.

        `payment_id`: that payment's only (a payer re-posting a transfer still prepared): no
        other leg's re-send is advanced (it would be taken as sent and wait a retry interval
        more), and no write transaction unless its presumed abort is due."""
        if payment_id is not None:
            return self._due_one(payment_id, now_ms)
        with self._lock:
            now = self.clock() if now_ms is None else now_ms
            with self.ledger.unit_of_work(readonly=True) as uow:
                undecided = uow.leg_rows(undecided=True)
            unacked = [pid for pid, leg in self._legs.items()
                       if isinstance(leg, OriginLeg) and leg.state in ("committed", "aborted") and not leg.delivered]
            if not undecided and not unacked:
                return []
            out = []
            with self.ledger.unit_of_work() as uow:
                st, chain = self._store.state(uow, payment_ids=unacked, undecided=True)
                for pid, leg in st.legs.items():
                    view = st.alliances[leg.alliance_id]
                    proto = self._protocol_leg(st, pid, leg.side)
                    event = Tick(now) if self._legs.get(pid) is proto else Restart(now)
                    step = proto.on(event)
                    for entry in step.entries:  # the origin's presumed abort
                        chain = self._store.append(uow, st, chain, self._record_for(entry, view, None), now)
                    self._legs[pid] = step.leg
                    out += [(self._peer_url(view), self._wire(view, m, uow)) for m in step.messages]
            return out

    def _due_one(self, pid: bytes, now_ms: int | None) -> list[tuple[str, dict]]:
        with self._lock:
            now = self.clock() if now_ms is None else now_ms
            with self.ledger.unit_of_work(readonly=True) as uow:
                leg = self._store.leg_records(uow, uow.leg_rows([pid])).get(pid)
                cached = self._legs.get(pid)
                unacked = (isinstance(cached, OriginLeg) and cached.state in ("committed", "aborted")
                           and not cached.delivered)
                if leg is None or (leg.state != "prepared" and not unacked):
                    return []
                view = self._store.views(uow)[leg.alliance_id]
                proto = self._protocol_leg_of(leg, pid, leg.side)
                step = proto.on(Tick(now) if cached is proto else Restart(now))
                if not step.entries:  # nothing to write: only the volatile fields advance
                    self._legs[pid] = step.leg
                    return [(self._peer_url(view), self._wire(view, m, uow)) for m in step.messages]
            with self.ledger.unit_of_work() as uow:  # its presumed abort: written before ABORT leaves
                st, chain = self._store.state(uow, payment_ids=[pid])
                proto = self._protocol_leg(st, pid, leg.side)
                step = proto.on(Tick(now) if self._legs.get(pid) is proto else Restart(now))
                for entry in step.entries:
                    chain = self._store.append(uow, st, chain, self._record_for(entry, view, None), now)
                self._legs[pid] = step.leg
                return [(self._peer_url(view), self._wire(view, m, uow)) for m in step.messages]
