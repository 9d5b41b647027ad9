"""The fold's rules for the federation entry kinds (docs/federation.md): one rule per kind,
registered in ledger.core.fold.REGISTRY beside the others.

Each rule re-checks everything its entry carries, so a log replays and verifies alone:
the treasurer signatures on alliance terms (this side's must be an active treasurer here),
the payer's RemoteTransfer signature under the origin's domain (built from the alliance
terms), the other node's signature on the message that justified a leg, the rate, the
holds and the deadline. `check_signatures=False` is `ayni verify --no-signatures`.

Holds live in the positions (Position.held_out / held_in); a leg's state in `state.legs`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from . import errors as E
from .federation import (AllianceView, HeldPosition, RemoteTransfer, alliance_signers, apply_abort,
                         apply_commit_in, apply_commit_out, check_alliance_status_change, check_alliance_terms,
                         check_prepare_in, check_prepare_out, verify_node_message)
from .hashing import ZERO32
from .records import AllianceRecorded, AllianceStatusSet, RemoteDecided, RemotePrepared
from .rules import Position, check_admin, check_not_expired
from .typed_data import recover_signer
from .vocab import Role


@dataclass(frozen=True, slots=True)
class Leg:
    """One remote payment's leg in this log: `out` at the origin, `in` at the destination."""

    payment_id: bytes
    side: str
    alliance_id: bytes
    transfer: RemoteTransfer
    state: str  # prepared | committed | aborted
    deadline: int = 0  # origin only: the last moment it may commit
    code: str = ""  # why it aborted
    prepared_seq: int = 0
    decided_seq: int | None = None


def held(pos: Position | None) -> HeldPosition | None:
    if pos is None:
        return None
    return HeldPosition(pos.balance, pos.credit_limit, pos.ceiling, pos.held_out, pos.held_in)


def _put(st, key: tuple[str, str], h: HeldPosition) -> None:
    st.positions[key] = Position(h.balance, h.credit_limit, h.ceiling, h.held_out, h.held_in)


def _view(st, alliance_id: bytes) -> AllianceView:
    view = st.alliances.get(alliance_id)
    if view is None:
        raise E.UnknownAlliance(f"alliance 0x{alliance_id.hex()} is not recorded here")
    return view


def view_for_community(st, community: bytes) -> AllianceView | None:
    """The alliance in force with `community`: the one not ended (at most one ever is, see
    check_new_alliance), else the last recorded (ended: it refuses new payments)."""
    found = None
    for view in st.alliances.values():  # in recorded order, in the fold and in the node's state
        if view.alliance.community(view.peer_side) == community:
            if view.status != "ended":
                return view
            found = view
    return found


def check_new_alliance(alliances: dict[bytes, AllianceView], legs: dict, peer_community: bytes) -> list[AllianceView]:
    """Before another alliance with `peer_community` is proposed or recorded: every earlier one
    has ended here (alliance_not_ended otherwise: a suspended alliance may resume, so two could
    be in force) and no payment is still prepared under one (payments_in_flight: the new terms
    start from a settled peer account). Returns the earlier alliances, oldest first.
    Why a second alliance is allowed at all: cooperatives that split may ally again; the peer
    account, keyed by the community, carries over what is owed (docs/federation.md)."""
    earlier = [v for v in alliances.values() if v.alliance.community(v.peer_side) == peer_community]
    for v in earlier:
        if v.status != "ended":
            raise E.AllianceNotEnded(f"the alliance 0x{v.alliance_id.hex()} with that community is {v.status} here: "
                                     "end it before another is recorded")
    ids = {v.alliance_id for v in earlier}
    busy = sum(1 for leg in legs.values() if leg.state == "prepared" and leg.alliance_id in ids)
    if busy:
        raise E.PaymentsInFlight(f"{busy} payment(s) under the ended alliance with that community are still "
                                 "prepared: they must be decided first")
    return earlier


def _signer_is(digest: bytes, signature: str, expected: str, what: str) -> None:
    signer = recover_signer(digest, signature)
    if signer != expected:
        raise E.WrongSigner(f"{what} signed by {signer}, not by {expected}")


def _carried(rec, view: AllianceView, kinds: tuple[str, ...], check: bool) -> None:
    """The other node's message carried by a leg entry: of the expected kind, about this payment
    and alliance, signed by the node key the alliance names (no time window on replay)."""
    m = rec.message
    if m is None or m.kind not in kinds:
        raise E.InvalidInput(f"a {rec.KIND} ({rec.side}) entry carries a {' or '.join(kinds)} message")
    if m.payment_id != rec.payment_id or m.alliance_id != rec.alliance_id:
        raise E.InvalidInput("the carried node message is about another payment or alliance")
    if check:
        verify_node_message(m, rec.node_signature, view)


def _leg(st, rec) -> Leg:
    leg = st.legs.get(rec.payment_id)
    if leg is None or leg.side != rec.side or leg.alliance_id != rec.alliance_id:
        raise E.UnknownPayment(f"no {rec.side} leg of payment 0x{rec.payment_id.hex()} is prepared here")
    if leg.state != "prepared":
        raise E.PaymentAlreadyDecided(f"payment 0x{rec.payment_id.hex()} is already {leg.state} here")
    return leg


# -- the rules -----------------------------------------------------------------------------------

def alliance_recorded(st, at_ms: int, rec: AllianceRecorded, check: bool) -> None:
    a, own = rec.alliance, st.genesis.domain
    view = check_alliance_terms(a, own_community=own.salt, currencies=st.currencies, now_ms=at_ms)
    if view.own_side != rec.side:
        raise E.InvalidInput(f"this community is side {view.own_side} of the terms, not {rec.side}")
    if a.domain(rec.side).digest(ZERO32) != own.digest(ZERO32):
        raise E.InvalidInput("the terms name another chain id for this community: its signatures would not verify")
    if a.alliance_id in st.alliances:
        raise E.InvalidTransition("this alliance is already recorded here")
    earlier = check_new_alliance(st.alliances, st.legs, a.community(view.peer_side))
    if check:
        signer_a, signer_b = alliance_signers(a, rec.signature_a, rec.signature_b)
        if (signer_a if rec.side == "A" else signer_b) != rec.by:
            raise E.WrongSigner(f"this side's signature on the terms is not {rec.by}'s")
    check_admin(st.accounts.get(rec.by))
    if rec.node_message is not None:
        m = rec.node_message
        if m.kind != "alliance-recorded" or m.payment_id != ZERO32 or m.alliance_id != a.alliance_id:
            raise E.InvalidInput("the carried node message is not this alliance's alliance-recorded message")
        if check:
            verify_node_message(m, rec.node_signature, view)
    elif rec.node_signature is not None:
        raise E.InvalidInput("a node signature without its message")
    peer = view.peer_account
    if not earlier:
        if peer in st.accounts:
            raise E.AccountExists(f"account {peer} is already open")
        st.open_account(peer, Role.PEER.value)
    elif getattr(st.accounts.get(peer), "role", None) != Role.PEER.value:
        raise E.IntegrityViolation(f"the peer account {peer} of the earlier alliance is missing")
    # an alliance after an ended one reuses its peer account: the same community, so the same
    # address, and what was owed stays owed; the new pairs set the limits of their currencies
    st.alliances[a.alliance_id] = view
    for p in a.pairs:
        code = p.currency_a if view.own_side == "A" else p.currency_b
        st.positions[(peer, code)] = replace(st.positions[(peer, code)], credit_limit=view.peer_limit(code),
                                             ceiling=None)


def alliance_status(st, at_ms: int, rec: AllianceStatusSet, check: bool) -> None:
    a = rec.action
    digest = st.genesis.domain.digest(a.struct_hash())
    if digest != rec.digest:
        raise E.InvalidInput("the stored digest differs from the digest of the stored fields")
    if check:
        _signer_is(digest, rec.signature, rec.by, "alliance status")
    check_admin(st.accounts.get(rec.by))
    if (rec.by, a.nonce) in st.used_nonces:
        raise E.NonceReused("this nonce was already used by the signer")
    check_not_expired(a.valid_until, at_ms)
    view = _view(st, a.alliance_id)
    check_alliance_status_change(view.status, a.status)
    st.alliances[a.alliance_id] = replace(view, status=a.status)
    st.used_nonces[(rec.by, a.nonce)] = digest


def remote_prepared(st, at_ms: int, rec: RemotePrepared, check: bool) -> None:
    t = rec.transfer
    if rec.payment_id in st.legs:
        raise E.InvalidTransition(f"payment 0x{rec.payment_id.hex()} is already prepared here")
    if rec.side == "out":
        pid = st.genesis.domain.digest(t.struct_hash())
        if pid != rec.payment_id:
            raise E.InvalidInput("paymentId is not the payer's digest of the transfer")
        if rec.message is not None or rec.node_signature is not None or rec.deadline < at_ms:
            raise E.InvalidInput("an origin leg carries no node message and a deadline after its time")
        if check:
            _signer_is(pid, rec.payer_signature, t.payer, "remote transfer")
        if (t.payer, t.nonce) in st.used_nonces:
            raise E.NonceReused("this nonce was already used by the signer")
        view = view_for_community(st, t.payee_community)
        if view is not None and view.alliance_id != rec.alliance_id:
            raise E.InvalidInput("the entry names another alliance than the payee's community's")
        key = (t.payer, t.currency)
        new = check_prepare_out(t, now_ms=at_ms, view=view, payer=st.accounts.get(t.payer),
                                payer_pos=held(st.positions.get(key)))
        _put(st, key, new)
        st.used_nonces[(t.payer, t.nonce)] = pid
    else:
        view = _view(st, rec.alliance_id)
        pid = view.alliance.domain(view.peer_side).digest(t.struct_hash())
        if pid != rec.payment_id:
            raise E.InvalidInput("paymentId is not the payer's digest under the origin's domain")
        if rec.deadline != 0:
            raise E.InvalidInput("a destination leg has no deadline: it waits for the origin's decision")
        _carried(rec, view, ("prepare",), check)
        if check:
            _signer_is(pid, rec.payer_signature, t.payer, "remote transfer")
        peer_key, payee_key = (view.peer_account, t.payee_currency), (t.payee, t.payee_currency)
        peer, payee = check_prepare_in(t, now_ms=at_ms, view=view, payee=st.accounts.get(t.payee),
                                       payee_pos=held(st.positions.get(payee_key)),
                                       peer_pos=held(st.positions.get(peer_key)))
        _put(st, peer_key, peer)
        _put(st, payee_key, payee)
    st.legs[rec.payment_id] = Leg(rec.payment_id, rec.side, rec.alliance_id, t, "prepared", rec.deadline,
                                  prepared_seq=st.seq + 1)


def _keys(st, leg: Leg) -> tuple[tuple[str, str], tuple[str, str]]:
    """(held-out account, other account) keys: (payer, peer) at the origin, (peer, payee) at the destination."""
    view, t = st.alliances[leg.alliance_id], leg.transfer
    if leg.side == "out":
        return (t.payer, t.currency), (view.peer_account, t.currency)
    return (view.peer_account, t.payee_currency), (t.payee, t.payee_currency)


def remote_committed(st, at_ms: int, rec: RemoteDecided, check: bool) -> None:
    leg = _leg(st, rec)
    view = st.alliances[leg.alliance_id]
    if rec.code:
        raise E.InvalidInput("a commit has no code")
    a_key, b_key = _keys(st, leg)
    if leg.side == "out":
        _carried(rec, view, ("prepared",), check)
        if at_ms > leg.deadline:
            raise E.InvalidTransition("past its deadline a prepared payment is presumed aborted")
        new_a, new_b = apply_commit_out(leg.transfer.amount, held(st.positions[a_key]), held(st.positions[b_key]))
    else:
        _carried(rec, view, ("commit",), check)
        new_a, new_b = apply_commit_in(leg.transfer.delivered, held(st.positions[a_key]), held(st.positions[b_key]))
    _put(st, a_key, new_a)
    _put(st, b_key, new_b)
    st.legs[rec.payment_id] = replace(leg, state="committed", decided_seq=st.seq + 1)


def remote_aborted(st, at_ms: int, rec: RemoteDecided, check: bool) -> None:
    leg = _leg(st, rec)
    view = st.alliances[leg.alliance_id]
    a_key, b_key = _keys(st, leg)
    if leg.side == "out":
        if rec.message is None:
            # presumed abort: only the deadline justifies an abort the destination did not ask for
            if rec.code != "timeout" or at_ms <= leg.deadline or rec.node_signature is not None:
                raise E.InvalidInput("an origin aborts without a refusal only past its deadline, code timeout")
        else:
            _carried(rec, view, ("refused",), check)
            if rec.code != (rec.message.code or "refused"):
                raise E.InvalidInput("the abort's code is not the refusal's")
        (new_a,) = apply_abort(leg.transfer.amount, held(st.positions[a_key]))
        _put(st, a_key, new_a)
    else:
        _carried(rec, view, ("abort",), check)
        if rec.code != rec.message.code:
            raise E.InvalidInput("the abort's code is not the origin's")
        new_a, new_b = apply_abort(leg.transfer.delivered, held(st.positions[a_key]), held(st.positions[b_key]))
        _put(st, a_key, new_a)
        _put(st, b_key, new_b)
    st.legs[rec.payment_id] = replace(leg, state="aborted", code=rec.code, decided_seq=st.seq + 1)
