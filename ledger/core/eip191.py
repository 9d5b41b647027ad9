"""EIP-191 version 0x45 (`personal_sign`): what MetaMask and every wallet sign for
Sign-In with Ethereum. One definition, used by the server's sign-in check and the wallet."""
from __future__ import annotations

from .hashing import keccak256


def personal_sign_digest(message: str) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + byte length + message bytes)."""
    data = message.encode("utf-8")
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode("ascii") + data)
