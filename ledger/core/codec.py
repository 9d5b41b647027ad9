"""Hex encodings used across the ledger: one spelling of each."""
from __future__ import annotations

from .errors import InvalidInput


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
    if isinstance(value, str) and len(value) == 66 and value[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None
