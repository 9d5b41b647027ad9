"""Hex encodings used across the ledger: one spelling of each."""
from __future__ import annotations

import re

from .errors import InvalidInput

_HEX32 = re.compile(r"0[xX][0-9a-fA-F]{64}", re.ASCII)


def hex0x(b: bytes) -> str:
    """Bytes as lowercase 0x-prefixed hex (the form stored in entries, receipts and exports)."""
    return "0x" + b.hex()


def parse_b32(value: object, what: str) -> bytes:
    """A 0x-prefixed 32-byte hex string as bytes, or InvalidInput naming `what`."""
    b = try_b32(value)
    if b is None:
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits")
    return b


def try_b32(value: object) -> bytes | None:
    """Like parse_b32 but None instead of an error (for verifiers that report, not raise)."""
    # a full match, not bytes.fromhex alone: fromhex skips whitespace ("0x" + 62 digits + 2 spaces)
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return bytes.fromhex(value[2:])
    return None
