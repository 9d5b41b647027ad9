"""The entry log's canonical encoding and hash chain.

An entry is `{"seq", "kind", "at", "body"}` encoded as canonical JSON: keys
sorted, no spaces, ASCII only, integers only where they are exact in every
language (|n| < 2**53), everything bigger as a decimal string, no floats. Any
implementation can rebuild the bytes and so the hashes (docs/ledger-model.md).

    entry_hash = keccak256(canonical_bytes)
    chain_hash = keccak256(prev_chain_hash ‖ entry_hash), with 32 zero bytes before seq 1
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .codec import hex0x
from .errors import InvalidInput
from .findings import Finding
from .hashing import ZERO32, keccak256
from .vocab import KINDS

_SAFE_INT = 2**53


def _check_value(value: object, path: str) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if -_SAFE_INT < value < _SAFE_INT:
            return
        raise InvalidInput(f"{path}: integer {value} must be encoded as a decimal string")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path}: keys must be strings")
            _check_value(item, f"{path}.{key}")
        return
    raise InvalidInput(f"{path}: {type(value).__name__} has no canonical encoding")


def canonical_body(body: dict, *, validate: bool = True) -> str:
    """The body's canonical JSON text (what the entries table stores)."""
    if validate:
        _check_value(body, "body")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _document(seq: int, kind: str, at: int, body_text: str) -> bytes:
    # Keys in sorted order (at, body, kind, seq): identical to json.dumps(sort_keys=True)
    # of the whole document, without encoding the body twice.
    return ('{"at":%d,"body":%s,"kind":%s,"seq":%d}' % (at, body_text, json.dumps(kind), seq)).encode("ascii")


def canonical_bytes(seq: int, kind: str, at: int, body: dict) -> bytes:
    if not (isinstance(seq, int) and isinstance(at, int)) or isinstance(seq, bool) or isinstance(at, bool):
        raise InvalidInput("seq and at must be integers")
    return _document(seq, kind, at, canonical_body(body))


def chain_next(prev_chain_hash: bytes, entry_hash: bytes) -> bytes:
    return keccak256(prev_chain_hash + entry_hash)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    kind: str
    at: int  # unix time in milliseconds, the ledger's clock when the entry was written
    body: dict
    entry_hash: bytes
    chain_hash: bytes

    @classmethod
    def make(cls, seq: int, kind: str, at: int, body: dict, prev_chain_hash: bytes) -> "Entry":
        if kind not in KINDS:
            raise InvalidInput(f"unknown entry kind {kind!r}")
        entry_hash = keccak256(canonical_bytes(seq, kind, at, body))
        return cls(seq, kind, at, body, entry_hash, chain_next(prev_chain_hash, entry_hash))

    @classmethod
    def from_body_text(cls, seq: int, kind: str, at: int, body: dict, body_text: str,
                       prev_chain_hash: bytes) -> "Entry":
        """Hot path: `body_text` is canonical_body(body) already (ledger.service builds it once
        and stores exactly those bytes)."""
        entry_hash = keccak256(_document(seq, kind, at, body_text))
        return cls(seq, kind, at, body, entry_hash, chain_next(prev_chain_hash, entry_hash))

    def as_dict(self) -> dict:
        return {"seq": self.seq, "kind": self.kind, "at": self.at, "body": self.body,
                "entryHash": hex0x(self.entry_hash), "chainHash": hex0x(self.chain_hash)}


def verify_chain(entries, *, prev_chain_hash: bytes = ZERO32, expect_seq: int = 1) -> list[Finding]:
    """Recompute every hash from the stored content; report each break with where it is.

    `entries` yields Entry-like records in seq order (a suffix may be checked by
    passing the previous chain hash and the first expected seq)."""
    faults: list[Finding] = []
    prev = prev_chain_hash
    for e in entries:
        if e.seq != expect_seq:
            faults.append(Finding("sequence", e.seq, str(expect_seq), str(e.seq), detail="seq gap or reorder"))
        entry_hash = keccak256(canonical_bytes(e.seq, e.kind, e.at, e.body))
        if entry_hash != e.entry_hash:
            faults.append(Finding("entry_hash", e.seq, hex0x(entry_hash), hex0x(e.entry_hash),
                                  detail="entry hash does not match content"))
        chain = chain_next(prev, e.entry_hash)
        if chain != e.chain_hash:
            faults.append(Finding("chain_hash", e.seq, hex0x(chain), hex0x(e.chain_hash),
                                  detail="chain hash does not link to previous entry"))
        prev = e.chain_hash
        expect_seq = e.seq + 1
    return faults
