"""Every refusal the ledger can give, each with a stable machine-readable code.

Faces map these to HTTP statuses and CLI exit codes; the code strings are part of
the public contract (clients branch on them), so never rename one.
"""
from __future__ import annotations


class LedgerError(Exception):
    """A request the ledger refuses. Nothing was written when this is raised."""

    code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:  # "code: message" reads well in logs and CLI output
        return f"{self.code}: {self.message}"


class InvalidInput(LedgerError):
    """Malformed input: wrong shape, not parseable, out of range."""

    code = "invalid_input"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class InvalidAddress(InvalidInput):
    code = "invalid_address"


class UnknownCurrency(LedgerError):
    code = "unknown_currency"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class AccountExists(LedgerError):
    code = "account_exists"


class AccountNotActive(LedgerError):
    code = "account_not_active"


class SamePayerPayee(LedgerError):
    code = "same_payer_payee"


class CreditLimitExceeded(LedgerError):
    code = "credit_limit_exceeded"


class CeilingExceeded(LedgerError):
    code = "ceiling_exceeded"


class BalanceOverflow(LedgerError):
    code = "balance_overflow"


class BadSignature(LedgerError):
    code = "bad_signature"


class WrongSigner(LedgerError):
    code = "wrong_signer"


class NotAuthorised(LedgerError):
    code = "not_authorised"


class Expired(LedgerError):
    code = "expired"


class NonceReused(LedgerError):
    """The signer already used this nonce for a *different* message (replay or conflict)."""

    code = "nonce_reused"


class MemoMismatch(LedgerError):
    code = "memo_mismatch"


class RequestAlreadyPaid(LedgerError):
    """A transfer naming a payment request that another transfer (same payer, payee,
    currency, amount) already paid."""

    code = "request_already_paid"


class InvalidTransition(LedgerError):
    code = "invalid_transition"


class NotInitialised(LedgerError):
    code = "not_initialised"


class IntegrityViolation(LedgerError):
    """Stored state contradicts the log: an invariant of docs/ledger-model.md is broken."""

    code = "integrity_violation"


# --- federation (docs/federation.md). Suggested HTTP statuses for api/errors.py:
# unknown_alliance 404, unknown_payment 404, wrong_node_signature 403, alliance_not_active 422,
# rate_mismatch 422, peer_limit_reached 422, payment_already_decided 409, stale_node_message 409.


class UnknownAlliance(LedgerError):
    """No alliance with that community (or that alliance id) is recorded here."""

    code = "unknown_alliance"


class AllianceNotActive(LedgerError):
    """The alliance is suspended or ended: no new remote payment in either direction."""

    code = "alliance_not_active"


class WrongNodeSignature(LedgerError):
    """A node-to-node message not signed by the node key the alliance names."""

    code = "wrong_node_signature"


class RateMismatch(LedgerError):
    """The amount delivered is not what the alliance's rate gives for the amount paid."""

    code = "rate_mismatch"


class PeerLimitReached(LedgerError):
    """The peer account would owe more than the alliance lets the other community owe."""

    code = "peer_limit_reached"


class PaymentAlreadyDecided(LedgerError):
    """A decision contrary to the one already recorded for this remote payment."""

    code = "payment_already_decided"


class StaleNodeMessage(LedgerError):
    """A node message signed too long ago (or too far in the future): a replay or a bad clock."""

    code = "stale_node_message"


class UnknownPayment(LedgerError):
    """A remote-payment decision for a payment this node never prepared."""

    code = "unknown_payment"


# -- payment requests (checked by the service under the log-head lock) -------------------------
class UnknownRequest(LedgerError):
    code = "unknown_request"  # HTTP 404


class RequestNotOpen(LedgerError):
    """Declined, or already paid (by another transfer)."""

    code = "request_not_open"  # HTTP 409


class RequestExpired(LedgerError):
    code = "request_expired"  # HTTP 422


class RequestMismatch(LedgerError):
    """The signed transfer does not pay exactly this request."""

    code = "request_mismatch"  # HTTP 422


# -- the database, translated by the service so no face handles driver errors ----------------
class StoreConflict(LedgerError):
    """A concurrent write collided with this one on a database constraint; nothing was written."""

    code = "write_conflict"  # HTTP 409: read again and retry


class StoreUnavailable(LedgerError):
    """The database cannot serve (unreachable, locked, schema broken); nothing was written."""

    code = "unavailable"  # HTTP 503


class StoreConnectionLost(StoreUnavailable):
    """The database connection died (server killed, failover under way, network cut) during the
    request. Unlike other refusals the outcome may be unknown: a commit whose reply was lost may
    have been written. A retry of the same signed message is always safe (postings are idempotent
    by their digest: it answers the original seq if the first attempt committed), so the answer
    is HTTP 503 with Retry-After, never a refusal the client would act on (docs/high-availability.md)."""

    retry_after_s = 1


class InsecureStorage(LedgerError):
    """A database file others may read: it holds memos, profiles and contacts, so the service
    refuses to start on it until its mode is fixed."""

    code = "insecure_storage"  # HTTP 500 (a server-side fault; raised at start-up)


class ProposalConflict(LedgerError):
    """A proposal of this alliance is already pending here with other signatures: a stored
    proposal's signatures are never replaced (docs/federation.md, "Proposals")."""

    code = "proposal_conflict"


class TooManyProposals(LedgerError):
    """Too many alliance proposals are pending here (from that community, or in all)."""

    code = "too_many_proposals"


class RateLimited(LedgerError):
    """Too many requests from one client or for one address in a window (HTTP 429). Nothing was
    written; `retry_after_s` says when the window ends."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class AllianceNotEnded(LedgerError):
    """Another alliance with that community is active or suspended here: only after it has
    ended may a new one be proposed or recorded (docs/federation.md, "Allying again")."""

    code = "alliance_not_ended"


class PaymentsInFlight(LedgerError):
    """Payments under the ended alliance with that community are still prepared: a new
    alliance waits until they are decided (docs/federation.md, "Allying again")."""

    code = "payments_in_flight"


# -- the exchange board (docs/exchange.md) -------------------------------------------------------
class UnknownListing(LedgerError):
    """No such listing, or not one the reader may see (hidden, paused, closed, expired)."""

    code = "unknown_listing"  # HTTP 404


class UnknownConversation(LedgerError):
    """No such conversation, or the reader is not one of its two parties."""

    code = "unknown_conversation"  # HTTP 404


class UnknownArrangement(LedgerError):
    """No such arrangement, or the reader is not one of its two parties."""

    code = "unknown_arrangement"  # HTTP 404


# -- shop refunds (docs/shops.md, docs/ledger-model.md "Refunds"): checked by the fold -----------
class RefundExceedsRemaining(LedgerError):
    """A refund larger than what remains refundable of the payment it returns."""

    code = "refund_exceeds_remaining"  # HTTP 409


class NotRefundable(LedgerError):
    """The entry named is not a payment that can be refunded (not a transfer, or a refund itself)."""

    code = "not_refundable"  # HTTP 409


class RefundMismatch(LedgerError):
    """The refund transfer does not return the named payment (parties, currency or refund id)."""

    code = "refund_mismatch"  # HTTP 422
