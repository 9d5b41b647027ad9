"""Errors and values of reading an Anchor contract (no web3 import: cheap to import).

Every expected fault of a chain node (down, wrong contract) surfaces as one of these, never
as a web3 / requests / eth-tester exception type. The server's writer (ledger.chain) raises
the same classes, plus its own for sending (AnchorReverted, InsufficientFunds)."""
from __future__ import annotations

from dataclasses import dataclass


class ChainError(Exception):
    """Base class; `code` is a stable machine-readable string, `message` a human one."""

    code = "chain_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ChainUnavailable(ChainError):
    """The node does not answer: connection refused, timeout, HTTP error, RPC down."""

    code = "chain_unavailable"


class WrongContract(ChainError):
    """No code at the address, code that is not an Ayni Anchor, or the wrong chain id."""

    code = "wrong_contract"


@dataclass(frozen=True)
class AnchoredEvent:
    root: bytes  # 32 bytes
    first_seq: int
    last_seq: int
    accumulator: bytes  # 24 bytes, as emitted (the verifier recomputes it, see core/accumulator.py)
    tx_hash: str
    block: int
    log_index: int


UINT64_MAX = 2**64 - 1  # a head's lastSeq once the contract takes no more batches


@dataclass(frozen=True)
class Retirement:
    """Why an Anchor contract takes no more batches (its head's lastSeq is 2**64 - 1).

    hostile: an anchoring key anchored a batch `at_seq..2**64-1` (a leaked key can: the contract
    cannot tell it from a real batch); otherwise the admin called `retire()` after `at_seq - 1`.
    Either way the batches through `at_seq - 1` stay verifiable (contracts/Anchor.sol
    `isKnownState`)."""

    hostile: bool
    at_seq: int  # first seq nothing honest can be anchored at
    tx_hash: str | None = None  # the hostile batch's transaction
    block: int | None = None

    @property
    def message(self) -> str:
        if self.hostile:
            return (f"anchor history ends in a hostile retirement at seq {self.at_seq}: an anchoring key anchored "
                    f"a batch {self.at_seq}..{UINT64_MAX} (tx {self.tx_hash}, block {self.block}), so nothing "
                    f"can be anchored after seq {self.at_seq - 1}; batches through seq {self.at_seq - 1} stay "
                    "verifiable, but that anchoring key must be treated as leaked and the cooperative must "
                    "deploy a new Anchor contract")
        return (f"the anchor contract was retired by its admin after seq {self.at_seq - 1}; batches through "
                f"seq {self.at_seq - 1} stay verifiable, later entries must be anchored in a new contract")
