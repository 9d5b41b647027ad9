"""The unit of work: one transaction, and the repository the use cases read and write through.

A use case (post a batch, pay or decline a payment request, open a community, read balances)
opens one unit of work, does all its reads and writes through it, and leaves the block: a
clean exit commits, an exception rolls everything back. Because the request check and the
posting of the transfer that pays it run in the same unit of work after `lock_head()`, and a
decline takes the same lock, a request can never be both declined and paid.

`ledger.store.unit_of_work.SqlUnitOfWork` is the real one (SQLite, PostgreSQL; it turns
database errors into ledger.core.errors); tests/test_unit_of_work.py runs the use cases
against an in-memory one, which is how the interface below is kept honest.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable

from .core.rules import AccountState, Position
from .request_rules import RequestRecord


@dataclass
class PostingBatch:
    """Every row one posting transaction writes (tuples in the column order given)."""

    entries: list[tuple] = field(default_factory=list)  # (seq, kind, at, body_text, entry_hash, chain_hash)
    new_accounts: list[tuple] = field(default_factory=list)  # (address, role, status, opened_seq)
    new_positions: list[tuple] = field(default_factory=list)  # (address, currency, balance, limit, ceiling)
    statuses: list[tuple] = field(default_factory=list)  # (status, address)
    positions: list[tuple] = field(default_factory=list)  # (balance, limit, ceiling, address, currency)
    nonces: list[tuple] = field(default_factory=list)  # (signer, nonce as decimal text, digest, seq)
    transfers: list[tuple] = field(default_factory=list)  # (seq, payer, payee, currency, amount, request_id, at)
    memos: list[tuple] = field(default_factory=list)  # (seq, salt, memo)
    paid_requests: list[tuple] = field(default_factory=list)  # (seq, request_id): the status cache
    refunds: list[tuple] = field(default_factory=list)  # (seq, original_seq, refund_nonce text, amount)
    head: tuple[int, bytes] | None = None  # the new (seq, chain_hash)


class UnitOfWork(abc.ABC):
    """Use as `with uow:`; commit on a clean exit, roll back on an exception."""

    @abc.abstractmethod
    def __enter__(self) -> "UnitOfWork": ...

    @abc.abstractmethod
    def __exit__(self, exc_type, exc, tb) -> None: ...

    # -- the log head ----------------------------------------------------------------------------
    @abc.abstractmethod
    def lock_head(self) -> tuple[int, bytes] | None:
        """(seq, chain_hash), locked until the end of the unit of work; None before genesis."""

    @abc.abstractmethod
    def head(self) -> tuple[int, bytes] | None:
        """The same without the lock (readers)."""

    @abc.abstractmethod
    def genesis_body(self) -> dict | None:
        """The body of entry 1 (community.created), or None before genesis."""

    # -- accounts and balances -------------------------------------------------------------------
    @abc.abstractmethod
    def accounts(self, addresses: Iterable[str] | None = None) -> dict[str, AccountState]:
        """The named accounts that exist (every account, in opening order, for None)."""

    @abc.abstractmethod
    def positions(self, addresses: Iterable[str] | None = None) -> dict[tuple[str, str], Position]:
        """(address, currency) -> Position for the named accounts (all for None)."""

    @abc.abstractmethod
    def nonces(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, int], tuple[bytes, int]]:
        """(signer, nonce) -> (digest, seq) for the (signer, decimal nonce) pairs already used."""

    # -- payment requests ------------------------------------------------------------------------
    @abc.abstractmethod
    def requests(self, ids: Iterable[bytes]) -> dict[bytes, RequestRecord]:
        """The named payment requests that exist, each with its paid_seq read from the log."""

    @abc.abstractmethod
    def add_request(self, request: RequestRecord) -> None: ...

    @abc.abstractmethod
    def decline_request(self, request_id: bytes, at: int) -> None: ...

    # -- refunds (ledger.core.refunds) ------------------------------------------------------------
    def refundables(self, seqs: Iterable[int]) -> dict:
        """seq -> (Paid, digest, refunded so far, used refund nonces) for the named entries that
        are transfers: what the fold needs to check a refund of them, read under the head lock."""
        raise NotImplementedError("this unit of work keeps no refunds")

    # -- writing -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def start_log(self, currencies: list[tuple]) -> None:
        """Before genesis: the currency rows (code, name, style, decimals) and an empty head."""

    @abc.abstractmethod
    def write(self, batch: PostingBatch) -> None:
        """Write a posting batch, in the order that keeps every foreign key satisfied."""

    # -- the posting path's shortcuts: same meaning, fewer round trips where a store can ----------
    def lock_and_load(self, addresses, pairs):
        """lock_head(), then accounts(addresses), positions(addresses) and nonces(pairs), read under
        the lock: (head or None, accounts, positions, nonces). A store may send them together."""
        head = self.lock_head()
        if head is None:
            return None, {}, {}, {}
        return head, self.accounts(addresses), self.positions(addresses), self.nonces(pairs)

    def write_last(self, batch: PostingBatch) -> None:
        """write(batch) when it is the unit of work's last statement: a store may commit with it
        (the unit of work still commits, or rolls back after an error, on leaving the block)."""
        self.write(batch)
