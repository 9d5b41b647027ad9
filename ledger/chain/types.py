"""Plain value types returned by the chain adapter (no web3 import)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TxStatus:
    tx_hash: str  # 0x-hex, lower case
    status: str  # "pending" | "confirmed" | "failed" | "unknown"
    block: int | None
    gas_used: int | None
    effective_gas_price: int | None
    confirmations: int  # 0 if not mined


@dataclass(frozen=True)
class AnchoredEvent:
    root: bytes  # 32 bytes
    first_seq: int
    last_seq: int
    accumulator: bytes  # 24 bytes, as emitted (the verifier recomputes it, see accumulator.py)
    tx_hash: str
    block: int
    log_index: int
