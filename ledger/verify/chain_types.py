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

# No real ledger reaches these, so a batch past either bound is hostile (a leaked anchoring key
# freezing the contract or jumping it far ahead of the log), never a ledger batch: it proves no
# receipt. Same bounds in contracts/Anchor.sol (isAnchored) and docs/anchoring.md.
IMPLAUSIBLE_SEQ = 2**62  # a batch whose lastSeq is at least this (a log of 4.6e18 entries)
MAX_BATCH_SIZE = 2**20  # entries in one batch at most (the anchorer's --max-batch is capped at it)


def implausible(first_seq: int, last_seq: int) -> bool:
    """True for a batch no honest anchorer sends (see IMPLAUSIBLE_SEQ, MAX_BATCH_SIZE)."""
    return last_seq >= IMPLAUSIBLE_SEQ or last_seq - first_seq >= MAX_BATCH_SIZE


@dataclass(frozen=True)
class Retirement:
    """Why an Anchor contract takes no more honest batches.

    hostile: an anchoring key anchored an implausible batch `at_seq..last_seq` (ending at
    2**64 - 1 or past IMPLAUSIBLE_SEQ, or larger than MAX_BATCH_SIZE): a leaked key can, and the
    contract cannot tell it from a real batch when it is sent. `admin_retired`: the admin also
    called `retire()` (after the hostile batch, if any). Not hostile: the admin called `retire()`
    after seq `at_seq - 1`.
    What stays provable is what the admin checkpointed or what matches the ledger's log: batches
    anchored after the last checkpoint by a key that may be the leaked one prove only as much as
    the log they match (an auditor's `ayni-wallet reconcile` checks them against it)."""

    hostile: bool
    at_seq: int  # first seq of the hostile batch, or the first seq after an admin retirement
    tx_hash: str | None = None  # the hostile batch's transaction
    block: int | None = None
    last_seq: int = UINT64_MAX  # the hostile batch's last seq
    sender: str | None = None  # the key that sent the hostile batch (None if not looked up)
    admin_retired: bool = False  # the admin called retire() (after the hostile batch, if any)

    @property
    def hostile_batch(self) -> str:
        return (f"hostile batch at seq {self.at_seq}..{self.last_seq} by key {self.sender or '?'} "
                f"(tx {self.tx_hash}, block {self.block})")

    @property
    def message(self) -> str:
        provable = ("what stays provable is what the admin checkpointed or what matches the ledger's log: batches "
                    "anchored after the last checkpoint by a key that may be the leaked one are only as good as "
                    "the log they match")
        if self.hostile:
            then = ("; the admin then retired the contract" if self.admin_retired else "")
            return (f"anchor history holds a {self.hostile_batch}: no ledger reaches that, so an anchoring key "
                    f"leaked{then}; nothing honest can be anchored after seq {self.at_seq - 1} in this contract "
                    f"and this batch proves nothing; {provable}; treat that key as leaked and deploy a new "
                    "Anchor contract")
        return (f"the anchor contract was retired by its admin after seq {self.at_seq - 1}; {provable}; "
                "later entries must be anchored in a new contract")
