"""Keccak-256, the one hash function of the ledger (the same as Ethereum's).

safe-pysha3 is a thin C binding (~2 us a call here); pycryptodome goes through
ctypes (~13 us). Hashing sits on every hot path (typed data, entry chain, Merkle
trees), so the fast one is a dependency and the slow one only a fallback.
"""
try:
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    from Crypto.Hash import keccak as _keccak

    def keccak256(data: bytes) -> bytes:
        return _keccak.new(digest_bits=256, data=data).digest()

ZERO32 = b"\x00" * 32
