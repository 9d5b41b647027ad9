"""The server's chain writer for anchoring: deploys the Anchor contract and sends anchors over
web3.py (no database here). Reading the contract is ledger/verify/anchor_reader.py, which the
writer extends and the wallet uses alone.

    from ledger.chain import AnchorChain, ChainUnavailable, AnchorReverted, WrongContract

`AnchorChain` (web3_anchor.py) is imported lazily so that importing the errors, the value
types or the pure accumulator does not pull in web3 (~0.8 s).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.core.accumulator import accumulate, genesis
from ledger.chain.errors import (
    AdminIsAnchorer,
    AnchorReverted,
    BadKeystore,
    ChainError,
    ChainUnavailable,
    InsufficientFunds,
    WrongContract,
)
from ledger.chain.types import AnchoredEvent, TxStatus

if TYPE_CHECKING:  # pragma: no cover
    from ledger.chain.web3_anchor import AnchorChain

__all__ = [
    "AdminIsAnchorer",
    "AnchorChain",
    "AnchorReverted",
    "AnchoredEvent",
    "BadKeystore",
    "ChainError",
    "ChainUnavailable",
    "InsufficientFunds",
    "TxStatus",
    "WrongContract",
    "accumulate",
    "genesis",
]


def __getattr__(name: str):
    if name == "AnchorChain":
        from ledger.chain.web3_anchor import AnchorChain

        return AnchorChain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
