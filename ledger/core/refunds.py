"""Refunds: a transfer that returns (part of) an earlier payment, linked to it IN THE LOG.

A refund is an ordinary signed Transfer from the original payee back to the original payer,
with one difference the signature binds: its `requestId` is

    refund_id(original_digest, refund_nonce) = keccak256(REFUND_TAG ‖ original_digest ‖ uint256(refund_nonce))

where REFUND_TAG = keccak256("AyniRefund") and original_digest is the EIP-712 digest of the
payment being refunded (unique per signed transfer in this community's domain). The entry body
carries the link unsigned, beside the signed fields: `"refundOf": {"seq": <original seq>,
"refundNonce": "<decimal>"}`. The fold (ledger.core.fold) recomputes the id from the original
it has folded, so a body that names another original fails the signature's binding, and
checks that the refund returns money the original moved: payer = original payee, payee =
original payer, same currency, the original is a payment (not itself a refund), each refund id
used once, and the refunds of one payment never add up to more than it. Posting, replay,
`ayni verify` and reconciliation all run that fold, so a refund beyond the original cannot be
posted and a log holding one is flagged wherever it is re-checked (docs/ledger-model.md)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from . import errors as E
from .hashing import keccak256
from .typed_data import Transfer

REFUND_TAG = keccak256(b"AyniRefund")
UINT256_MAX = 2 ** 256 - 1


def refund_id(original_digest: bytes, refund_nonce: int) -> bytes:
    """The requestId a refund Transfer must name: binds the original payment and the nonce."""
    if not isinstance(refund_nonce, int) or isinstance(refund_nonce, bool) or not 0 <= refund_nonce <= UINT256_MAX:
        raise E.InvalidInput("refundNonce must be an integer in uint256 range")
    return keccak256(REFUND_TAG + original_digest + refund_nonce.to_bytes(32, "big"))


@dataclass(frozen=True, slots=True)
class RefundTransfer(Transfer):
    """A Transfer that refunds entry `refund_of` (its seq). The signed message (struct hash,
    digest) is exactly the Transfer's; `refund_of` and `refund_nonce` ride beside it in the
    entry body and are checked against the signed requestId by the fold."""

    refund_of: int = 0
    refund_nonce: int = 0

    @classmethod
    def of(cls, t: Transfer, refund_of: int, refund_nonce: int) -> RefundTransfer:
        if isinstance(refund_of, bool) or not isinstance(refund_of, int) or refund_of < 1:
            raise E.InvalidInput("refundOf.seq must be a positive entry number")
        if isinstance(refund_nonce, bool) or not isinstance(refund_nonce, int) or not 0 <= refund_nonce <= UINT256_MAX:
            raise E.InvalidInput("refundOf.refundNonce must be an integer in uint256 range")
        return cls(**{f.name: getattr(t, f.name) for f in fields(Transfer)}, refund_of=refund_of,
                   refund_nonce=refund_nonce)

    def link(self) -> dict:
        return {"seq": self.refund_of, "refundNonce": str(self.refund_nonce)}


@dataclass(frozen=True, slots=True)
class Paid:
    """What the fold keeps of each posted transfer so a later refund can be checked against it
    (a few fields per transfer; its digest is kept beside it in LedgerState.paid_digests)."""

    payer: str
    payee: str
    currency: str
    amount: int
    nonce: int
    is_refund: bool


def check_refund(t: RefundTransfer, original: Paid | None, original_digest: bytes | None, refunded: int,
                 used: bool) -> int:
    """Refuse, or return the original's refunded total after this refund. Pure."""
    if original is None or original_digest is None:
        raise E.NotRefundable(f"entry {t.refund_of} is not a transfer posted here")
    if original.is_refund:
        # a refund is final: returning a refund is just a new payment, signed by whoever pays
        raise E.NotRefundable(f"entry {t.refund_of} is itself a refund and cannot be refunded")
    if t.payer != original.payee or t.payee != original.payer:
        raise E.RefundMismatch(f"a refund of entry {t.refund_of} goes from its payee {original.payee} "
                               f"back to its payer {original.payer}")
    if t.currency != original.currency:
        raise E.RefundMismatch(f"a refund of entry {t.refund_of} is in its currency {original.currency}")
    if t.request_id != refund_id(original_digest, t.refund_nonce):
        raise E.RefundMismatch("the signed requestId is not the refund id of this payment and refund nonce")
    if used:
        raise E.RefundMismatch(f"refund nonce {t.refund_nonce} of entry {t.refund_of} was already used")
    total = refunded + t.amount
    if total > original.amount:
        raise E.RefundExceedsRemaining(
            f"entry {t.refund_of} paid {original.amount}; {refunded} already refunded, so at most "
            f"{original.amount - refunded} remains refundable, not {t.amount}")
    return total


def load_refunds(state, refundables: dict) -> None:
    """Put what posting read of the refunded payments into a posting batch's fold state."""
    for seq, (paid, digest, refunded, nonces) in refundables.items():
        state.paid[seq] = paid
        state.used_nonces.setdefault((paid.payer, paid.nonce), digest)
        state.paid_digests[seq] = digest
        if refunded:
            state.refunded[seq] = refunded
        state.refund_keys.update((seq, n) for n in nonces)
