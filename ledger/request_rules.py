"""The rules of a payment request, pure: what its status is at a given time, and whether a
transfer naming it may be posted. The service runs `check_transfer_naming` under the log-head
lock, in the transaction that posts the transfer; decline runs `check_declinable` under the
same lock. So "declined" and "paid" can never both be true (docs/privacy.md lists the data)."""
from __future__ import annotations

from dataclasses import dataclass

from typing import Mapping

from .core import errors as E
from .core.rules import AccountState
from .core.typed_data import Transfer
from .core.vocab import Role, Status


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A payment request as stored, with `paid_seq` derived from the log (the one transfer with
    the request's id, payer, payee, currency and amount), never from a cache."""

    id: bytes
    payee: str
    payer: str
    currency: str
    amount: int
    memo: str | None
    created_at: int  # unix ms
    expires_at: int  # unix ms; still open at exactly expires_at
    declined: bool
    paid_seq: int | None
    paid_by: str | None = None  # who paid it (from the log); for an open request the payer it got

    def status(self, now: int) -> str:
        if self.paid_seq is not None:
            return "paid"
        if self.declined:
            return "declined"
        return "expired" if now > self.expires_at else "open"

    def key(self) -> tuple:
        return (self.id, self.payer, self.payee, self.currency, self.amount)

    @property
    def open_to_all(self) -> bool:
        """An open request (docs/shops.md): no payer named, any active member may pay it once."""
        return self.payer is None

    @property
    def hex_id(self) -> str:
        return "0x" + self.id.hex()


def check_request_parties(accounts: Mapping[str, AccountState], *, payer: str, payee: str) -> None:
    """May `payee` ask `payer` for a payment? Both must be open, active accounts that hold
    money: an auditor reads the books, and a request by or of one could never be paid
    (ledger.core.rules.check_transfer refuses transfers with an auditor), so it is refused
    when asked, not left open for the payer to trip over."""
    for who, address in (("payee", payee), ("payer", payer)):
        if address is None:  # an open request: whoever pays is checked by the transfer rule
            continue
        account = accounts.get(address)
        if account is None:
            raise E.UnknownAccount(f"{who} {address} has no account here")
        if account.role == Role.AUDITOR:
            raise E.NotAuthorised(f"{who} {address} is an auditor account, which holds no money")
        if account.status != Status.ACTIVE:
            raise E.AccountNotActive(f"{who} account {address} is {account.status}")


def pays(transfer: Transfer, request: RequestRecord) -> bool:
    """True when the transfer is exactly this request's payment (the uq_transfers_request_key);
    an open request is paid by any payer's transfer with its id, payee, currency and amount."""
    if request.payer is None:
        return (transfer.request_id, transfer.payee, transfer.currency, transfer.amount) \
            == (request.id, request.payee, request.currency, request.amount)
    return (transfer.request_id, transfer.payer, transfer.payee, transfer.currency, transfer.amount) \
        == request.key()


def refuse_unless_open(request: RequestRecord, now: int) -> None:
    status = request.status(now)
    if status == "paid":
        raise E.RequestNotOpen(f"payment request {request.hex_id} is already paid (entry {request.paid_seq})")
    if status == "declined":
        raise E.RequestNotOpen(f"payment request {request.hex_id} was declined")
    if status == "expired":
        raise E.RequestExpired(f"payment request {request.hex_id} expired at {request.expires_at} (unix ms)")


def check_transfer_naming(transfer: Transfer, request: RequestRecord, at: int) -> bool:
    """May `transfer`, which names `request`, be posted at `at`? Raises when not; returns True
    when it pays the request. A transfer naming a request with other fields is not a payment
    of it (and cannot block it), but it is still refused once the request is closed."""
    if pays(transfer, request) and request.paid_seq is not None:
        raise E.RequestAlreadyPaid(f"payment request {request.hex_id} is already paid (entry {request.paid_seq})")
    refuse_unless_open(request, at)
    return pays(transfer, request)


def check_declinable(request: RequestRecord, by: str, now: int) -> None:
    if request.payer is None:
        raise E.InvalidTransition("an open request names no payer: nobody declines it, it expires")
    if by != request.payer:
        raise E.NotAuthorised("only the payer may decline a payment request")
    refuse_unless_open(request, now)
