"""The contract's rolling accumulator, in pure Python (no web3).

    GENESIS      = bytes24(keccak256(abi.encode("Ayni.Anchor.v1", chainid, address(this))))
    accumulator' = bytes24(keccak256(acc24 ‖ root32 ‖ uint64be(firstSeq) ‖ uint64be(lastSeq)))

Same formulas as `Anchor.accumulate` / the constructor in contracts/Anchor.sol.
"""
from __future__ import annotations

from .hashing import keccak256
from .typed_data import UINT64_MAX

GENESIS_TAG = "Ayni.Anchor.v1"


def accumulate(acc: bytes, root: bytes, first_seq: int, last_seq: int) -> bytes:
    if len(acc) != 24 or len(root) != 32:
        raise ValueError("accumulate needs a 24-byte accumulator and a 32-byte root")
    if not (0 <= first_seq <= UINT64_MAX and 0 <= last_seq <= UINT64_MAX):
        raise ValueError("sequence numbers must fit in uint64")
    return keccak256(bytes(acc) + bytes(root) + first_seq.to_bytes(8, "big") + last_seq.to_bytes(8, "big"))[:24]


def genesis(chain_id: int, contract_address: str | bytes) -> bytes:
    """GENESIS of an Anchor deployed at `contract_address` on chain `chain_id`:
    bytes24(keccak256(abi.encode(string, uint256, address)))."""
    addr = contract_address if isinstance(contract_address, bytes) else bytes.fromhex(contract_address[2:])
    if len(addr) != 20:
        raise ValueError("address must be 20 bytes")
    tag = GENESIS_TAG.encode()
    enc = (
        (0x60).to_bytes(32, "big")  # offset of the string (3 head words)
        + chain_id.to_bytes(32, "big")
        + addr.rjust(32, b"\x00")
        + len(tag).to_bytes(32, "big")
        + tag.ljust((len(tag) + 31) // 32 * 32, b"\x00")
    )
    return keccak256(enc)[:24]
