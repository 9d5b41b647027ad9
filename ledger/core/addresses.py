"""Ethereum addresses: the identity of every account (EIP-55 checksummed form)."""
from __future__ import annotations

import re
from functools import lru_cache

from .errors import InvalidAddress
from .hashing import keccak256

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)


@lru_cache(maxsize=65536)  # members' addresses recur on every transfer
def to_checksum(address_hex_lower: str) -> str:
    digest = keccak256(address_hex_lower.encode()).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(address_hex_lower, digest))


def normalize_address(value: object, *, what: str = "address") -> str:
    """Return the checksummed address; refuse malformed ones and wrong mixed-case checksums."""
    if not isinstance(value, str) or not _HEX40.fullmatch(value):
        raise InvalidAddress(f"{what} {value!r} is not a 0x-prefixed 20-byte hex address")
    body = value[2:]
    checksummed = to_checksum(body.lower())
    mixed = body != body.lower() and body != body.upper()
    if mixed and checksummed != value:
        raise InvalidAddress(f"{what} {value!r} has a wrong EIP-55 checksum (typo?)")
    return checksummed


def address_from_public_key(uncompressed: bytes) -> str:
    """Address of a 65-byte uncompressed secp256k1 public key."""
    return to_checksum(keccak256(uncompressed[1:])[-20:].hex())
