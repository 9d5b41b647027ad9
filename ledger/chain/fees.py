"""Fee rules for anchoring transactions (pure: no web3, no I/O).

EIP-1559 (type-2) transactions name two prices per gas: the tip (maxPriorityFeePerGas, what the
block producer gets) and the cap (maxFeePerGas, the most the sender pays: base fee + tip, never
more). Ayni sets the cap to 2 x base fee + tip, so the transaction stays includable while the
base fee doubles (it can rise 12.5% per full block), and never above the operator's maximum fee
per gas. A batch is postponed while base fee + tip exceeds that maximum: anchoring can wait
(posting never does), a surprise bill cannot be taken back.

A stuck transaction is replaced by one with the same nonce and both prices raised by at least
10%: geth, Nethermind, Erigon and Hardhat refuse a replacement below that bump ("replacement
transaction underpriced"), and one nonce means at most one of the two can ever be mined.
"""
from __future__ import annotations

from ledger.chain.types import FeeQuote

GWEI = 10**9
REPLACEMENT_BUMP_PERCENT = 10  # nodes' minimum raise for a same-nonce replacement
# The largest fee per gas a flag may name: a million gwei is far above any chain's price, and keeps
# every fee (and the 2 x base + tip cap) well inside the batch table's 64-bit columns.
MAX_FEE_GWEI = 1_000_000


def gwei(wei: int | None) -> str:
    """A fee per gas in gwei for people: '2', '0.001', '1.5'."""
    if wei is None:
        return "?"
    from decimal import Decimal
    text = f"{Decimal(int(wei)) / GWEI:.9f}".rstrip("0").rstrip(".")  # exact: no float rounding
    return text or "0"


def to_wei_per_gas(gwei_value: float | str, *, allow_zero: bool = False) -> int:
    """'1.5' gwei -> 1_500_000_000 wei, exactly (no float rounding of the decimal text). Zero only
    when `allow_zero` (a tip: OP Stack and Arbitrum blocks take a zero tip)."""
    from decimal import Decimal, InvalidOperation
    try:
        d = Decimal(str(gwei_value))
    except InvalidOperation:
        raise ValueError(f"not a fee in gwei: {gwei_value!r}") from None
    if not d.is_finite() or d < 0 or (d == 0 and not allow_zero):
        raise ValueError(f"a fee in gwei must be {'0 or more' if allow_zero else 'positive'}, got {gwei_value!r}")
    if d > MAX_FEE_GWEI:
        raise ValueError(f"{gwei_value} gwei is above {MAX_FEE_GWEI:,} gwei, more than any chain charges")
    wei = d * GWEI
    if wei != wei.to_integral_value():
        raise ValueError(f"{gwei_value} gwei is not a whole number of wei")
    return int(wei)


def bump(value: int) -> int:
    """The smallest price a node accepts for a replacement: +10%, rounded up."""
    return value + -(-value * REPLACEMENT_BUMP_PERCENT // 100)


def quote(*, base_fee: int | None, tip: int, gas_price: int | None = None, cap: int | None = None) -> FeeQuote:
    """The fees of a new transaction. `base_fee` None means a chain without EIP-1559 (legacy
    gasPrice = `gas_price`). Postponed when the price to pay exceeds `cap`."""
    if base_fee is None:
        price = int(gas_price or 0)
        postponed = (f"postponed: fee {gwei(price)} gwei > max {gwei(cap)} gwei"
                     if cap is not None and price > cap else None)
        return FeeQuote(False, price, 0, price, cap, postponed)
    max_fee = 2 * base_fee + tip
    postponed = None
    if cap is not None:
        if base_fee + tip > cap:
            postponed = (f"postponed: fee {gwei(base_fee + tip)} gwei (base {gwei(base_fee)} + tip {gwei(tip)} gwei) "
                         f"> max {gwei(cap)} gwei")
        max_fee = min(max_fee, cap)
    return FeeQuote(True, base_fee, tip, max_fee, cap, postponed)


def replacement(old_max_fee: int, old_tip: int, now: FeeQuote) -> FeeQuote | str:
    """Fees for a same-nonce replacement of a transaction sent with (old_max_fee, old_tip), given
    what a new transaction would pay now: both raised by at least 10% and enough for the current
    base fee, bounded by the cap. A reason (str) when no acceptable replacement fits under the cap."""
    cap = now.cap
    if not now.eip1559:
        price = max(bump(old_max_fee), now.max_fee)
        if cap is not None and price > cap:
            return (f"cannot replace: a replacement needs {gwei(bump(old_max_fee))} gwei or more, "
                    f"above the max fee {gwei(cap)} gwei")
        return FeeQuote(False, price, 0, price, cap)
    tip = max(bump(old_tip), now.tip)
    max_fee = max(bump(old_max_fee), 2 * now.base_fee + tip)
    if cap is not None:
        max_fee = min(max_fee, cap)
    if max_fee < bump(old_max_fee) or tip > max_fee:
        return (f"cannot replace: a replacement needs max fee {gwei(bump(old_max_fee))} gwei and tip "
                f"{gwei(bump(old_tip))} gwei or more; the max fee per gas is {gwei(cap)} gwei")
    if now.base_fee + tip > max_fee:  # would be stuck too: keep the attempt for when it can help
        return (f"postponed: a replacement would pay base {gwei(now.base_fee)} + tip {gwei(tip)} gwei, "
                f"above the max fee {gwei(max_fee)} gwei")
    return FeeQuote(True, now.base_fee, tip, max_fee, cap)
