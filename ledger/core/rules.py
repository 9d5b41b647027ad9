"""Posting rules as pure functions: given the state they need, accept or refuse.

Each kind's rule in the fold (ledger.core.fold) calls these; posting, replay, `ayni
verify` and reconciliation all run that fold, so "what the ledger allowed" and "what an
auditor re-checks" can never drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from . import errors as E
from .amounts import MAX_BALANCE, Currency
from .typed_data import OpenAccount, SetLimit, SetStatus, Transfer
from .vocab import Role, Status


@dataclass(frozen=True, slots=True)
class AccountState:
    address: str
    role: str
    status: str  # a Status


@dataclass(frozen=True, slots=True)
class Position:
    """One account's standing in one currency."""

    balance: int
    credit_limit: int  # how far below zero the balance may go (>= 0)
    ceiling: int | None  # how far above zero it may go; None = no ceiling
    # amounts reserved by undecided remote payments (docs/federation.md, "Holds"): not
    # balances, but what is held out cannot be spent again and what is held in counts
    # toward the ceiling
    held_out: int = 0
    held_in: int = 0


def check_not_expired(valid_until: int, now_ms: int) -> None:
    if now_ms // 1000 > valid_until:
        raise E.Expired(f"the signed message expired at unix time {valid_until}")


def check_nonce(previous_digest: bytes | None, digest: bytes) -> bool:
    """True when this exact message was already applied (an idempotent retry)."""
    if previous_digest is None:
        return False
    if previous_digest == digest:
        return True
    raise E.NonceReused("this nonce was already used by the signer for a different message")


def check_transfer(t: Transfer, *, now_ms: int, currencies: Mapping[str, Currency],
                   payer: AccountState | None, payee: AccountState | None,
                   payer_pos: Position | None, payee_pos: Position | None) -> tuple[int, int]:
    """Refuse or return the new (payer, payee) balances. Atomic by construction: nothing
    is applied unless every rule passes."""
    if t.currency not in currencies:
        raise E.UnknownCurrency(f"currency {t.currency} is not used in this community")
    if t.payer == t.payee:
        raise E.SamePayerPayee("payer and payee are the same account")
    check_not_expired(t.valid_until, now_ms)
    if payer is None:
        raise E.UnknownAccount(f"payer {t.payer} has no account here")
    if payee is None:
        raise E.UnknownAccount(f"payee {t.payee} has no account here")
    for who, acct in (("payer", payer), ("payee", payee)):
        if acct.role == Role.AUDITOR:
            # an auditor reads the books; holding money would make them a party to what they check
            raise E.NotAuthorised(f"{who} {acct.address} is an auditor account, which holds no money")
        if acct.role == Role.PEER:
            # a peer account stands for another community: only remote legs move it
            raise E.NotAuthorised(f"{who} {acct.address} is a peer account, moved only by remote payments")
        if acct.status != Status.ACTIVE:
            raise E.AccountNotActive(f"{who} account {acct.address} is {acct.status}")
    if payer_pos is None or payee_pos is None:
        raise E.IntegrityViolation(f"an account has no {t.currency} position")
    new_payer = payer_pos.balance - t.amount
    new_payee = payee_pos.balance + t.amount
    fmt = currencies[t.currency].format
    # holds (federation.check_local_transfer's rule): held money cannot be spent twice, and
    # pending incoming payments count toward the ceiling
    if new_payer - payer_pos.held_out < -payer_pos.credit_limit:
        room = max(0, payer_pos.balance - payer_pos.held_out + payer_pos.credit_limit)
        raise E.CreditLimitExceeded(
            f"payer would reach {fmt(new_payer)} {t.currency}, below the credit limit of "
            f"{fmt(-payer_pos.credit_limit)} (can still spend {fmt(room)})")
    if payee_pos.ceiling is not None and new_payee + payee_pos.held_in > payee_pos.ceiling:
        raise E.CeilingExceeded(
            f"payee would reach {fmt(new_payee)} {t.currency}, above its ceiling of {fmt(payee_pos.ceiling)}")
    if new_payee > MAX_BALANCE or new_payer < -MAX_BALANCE:
        raise E.BalanceOverflow("the balance would leave the representable range")
    return new_payer, new_payee


def check_admin(signer: AccountState | None) -> None:
    if signer is None or signer.role != Role.TREASURER:
        raise E.NotAuthorised("only a treasurer may sign account administration")
    if signer.status != Status.ACTIVE:
        raise E.NotAuthorised(f"treasurer {signer.address} is {signer.status}")


def check_open_account(a: OpenAccount, existing: AccountState | None) -> None:
    if existing is not None:
        raise E.AccountExists(f"account {a.account} is already open ({existing.status})")


def check_set_limit(a: SetLimit, account: AccountState | None, currencies: Mapping[str, Currency],
                    signer: str) -> None:
    if a.account == signer:
        raise E.InvalidTransition("a treasurer cannot set the limits of their own account")
    if a.currency not in currencies:
        raise E.UnknownCurrency(f"currency {a.currency} is not used in this community")
    if account is None:
        raise E.UnknownAccount(f"account {a.account} has no account here")
    if account.status == Status.CLOSED:
        raise E.AccountNotActive(f"account {a.account} is closed")


def check_set_status(a: SetStatus, account: AccountState | None, signer: str,
                     balances: Mapping[str, int], held: Mapping[str, int] | None = None) -> None:
    if account is None:
        raise E.UnknownAccount(f"account {a.account} has no account here")
    if a.account == signer:
        raise E.InvalidTransition("a treasurer cannot change the status of their own account")
    if account.status == Status.CLOSED:
        raise E.InvalidTransition(f"account {a.account} is closed; closing is final")
    if account.status == a.status:
        raise E.InvalidTransition(f"account {a.account} is already {a.status}")
    if a.status == Status.CLOSED:
        owing = {c: b for c, b in balances.items() if b}
        if owing:
            raise E.InvalidTransition(
                f"account {a.account} cannot close with non-zero balances {owing}: settle first, "
                "because closing must not make credit vanish from the community")
        pending = {c: h for c, h in (held or {}).items() if h}
        if pending:
            raise E.InvalidTransition(
                f"account {a.account} cannot close with remote payments pending {pending}: "
                "they may still commit and move money")


def can_spend(position: Position) -> int:
    """How much the account may still pay in this currency: its balance down to -credit_limit
    (never negative). The room check_transfer's credit-limit rule leaves."""
    return max(0, position.balance + position.credit_limit)
