"""Plain value types returned by the chain adapter (no web3 import)."""
from __future__ import annotations

from dataclasses import dataclass

from ledger.verify.chain_types import AnchoredEvent, Retirement  # noqa: F401 - one definition, the reader's


@dataclass(frozen=True)
class TxStatus:
    tx_hash: str  # 0x-hex, lower case
    status: str  # "pending" | "confirmed" | "failed" | "unknown"
    block: int | None
    gas_used: int | None
    effective_gas_price: int | None
    confirmations: int  # 0 if not mined
