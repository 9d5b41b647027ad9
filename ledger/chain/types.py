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
    block_hash: str | None = None  # 0x-hex of the block holding it (the reorg check compares it later)


@dataclass(frozen=True)
class FeeQuote:
    """What the next transaction would pay per gas (wei). EIP-1559 chains: `base_fee` (of the next
    block), `tip` (maxPriorityFeePerGas) and `max_fee` (maxFeePerGas); legacy chains: `gas_price`
    in all three and `eip1559` False. `postponed` is the reason not to send now (the fee is above the
    configured maximum), else None."""
    eip1559: bool
    base_fee: int
    tip: int
    max_fee: int
    cap: int | None = None  # the configured maximum fee per gas (None: no maximum)
    postponed: str | None = None

    @property
    def likely(self) -> int:
        """The fee per gas the transaction most likely pays: base fee + tip (never above max_fee)."""
        return min(self.base_fee + self.tip, self.max_fee) if self.eip1559 else self.max_fee

    def tx_fields(self) -> dict:
        if self.eip1559:
            return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.tip, "type": 2}
        return {"gasPrice": self.max_fee}


@dataclass(frozen=True)
class SentTx:
    """An anchor transaction the node accepted (not mined yet)."""
    tx_hash: str
    nonce: int
    max_fee: int
    tip: int
