"""A small generic EIP-712 encoder (structs, atomic and dynamic types, arrays).

It is the reference the fast hand-written hashing in typed_data.py is tested
against, and what an auditor can read next to the EIP in one sitting."""
from __future__ import annotations

import re

from .hashing import keccak256

_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")


def _deps(types: dict, primary: str, found: set[str]) -> set[str]:
    if primary in found or primary not in types:
        return found
    found.add(primary)
    for f in types[primary]:
        base = _ARRAY.sub(r"\1", f["type"]) if _ARRAY.match(f["type"]) else f["type"]
        while _ARRAY.match(base):
            base = _ARRAY.match(base).group(1)
        _deps(types, base, found)
    return found


def encode_type(types: dict, primary: str) -> str:
    deps = _deps(types, primary, set()) - {primary}
    return "".join(f"{t}({','.join(f['type'] + ' ' + f['name'] for f in types[t])})"
                   for t in [primary] + sorted(deps))


def type_hash(types: dict, primary: str) -> bytes:
    return keccak256(encode_type(types, primary).encode())


def _int(value) -> int:
    if isinstance(value, str):
        return int(value, 16) if value.startswith("0x") else int(value)
    return int(value)


def _bytes(value) -> bytes:
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def encode_value(types: dict, typ: str, value) -> bytes:
    m = _ARRAY.match(typ)
    if m:
        return keccak256(b"".join(encode_value(types, m.group(1), v) for v in value))
    if typ in types:
        return hash_struct(types, typ, value)
    if typ == "string":
        return keccak256(value.encode("utf-8"))
    if typ == "bytes":
        return keccak256(_bytes(value))
    if typ == "address":
        return _bytes(value).rjust(32, b"\x00")
    if typ == "bool":
        return (1 if value else 0).to_bytes(32, "big")
    if typ.startswith("uint"):
        return _int(value).to_bytes(32, "big")
    if typ.startswith("int"):
        return _int(value).to_bytes(32, "big", signed=True)
    if typ.startswith("bytes"):
        return _bytes(value).ljust(32, b"\x00")
    raise ValueError(f"unsupported EIP-712 type {typ!r}")


def hash_struct(types: dict, primary: str, data: dict) -> bytes:
    return keccak256(type_hash(types, primary)
                     + b"".join(encode_value(types, f["type"], data[f["name"]]) for f in types[primary]))


def digest(full_message: dict) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)) of an eth_signTypedData_v4 document."""
    types = full_message["types"]
    return keccak256(b"\x19\x01" + hash_struct(types, "EIP712Domain", full_message["domain"])
                     + hash_struct(types, full_message["primaryType"], full_message["message"]))
