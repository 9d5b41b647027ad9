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
