"""Keccak-256, the one hash function of the ledger (the same as Ethereum's)."""
from Crypto.Hash import keccak as _keccak

ZERO32 = b"\x00" * 32


def keccak256(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()
