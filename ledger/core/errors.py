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


class RateLimited(LedgerError):
    """Too many requests from one client or for one address in a window (HTTP 429). Nothing was
    written; `retry_after_s` says when the window ends."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))
