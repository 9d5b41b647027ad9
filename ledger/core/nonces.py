"""Replay protection for a fold over a whole log, in little memory.

Posting's LedgerState holds only the (signer, nonce) pairs of the batch it is writing (the
database's unique index holds the rest), mapped to the digest that used them so that a retry
can be told from a reuse. A verifier folding a whole log needs only membership, for every
pair ever used: as a dict of (signer, nonce) -> digest that is ~300 bytes a signed entry
(a tuple, a signer string per entry, the digest), 300 MB for a million entries. NonceSet
keeps one set of nonces per signer (the signer string once): ~60 bytes an entry, and exact
(no hashing, so no false "nonce reused" a collision could cause)."""
from __future__ import annotations


class NonceSet:
    """The used (signer, nonce) pairs, with the part of a dict's interface the fold uses
    (`key in s`, `s[key] = value`, `update`); the value (a digest) is not kept."""

    __slots__ = ("_by_signer", "_count")

    def __init__(self) -> None:
        self._by_signer: dict[str, set[int]] = {}
        self._count = 0

    def __contains__(self, key: tuple[str, int]) -> bool:
        nonces = self._by_signer.get(key[0])
        return nonces is not None and key[1] in nonces

    def __setitem__(self, key: tuple[str, int], _value: object) -> None:
        signer, nonce = key
        nonces = self._by_signer.get(signer)
        if nonces is None:
            nonces = self._by_signer[signer] = set()
        if nonce not in nonces:
            nonces.add(nonce)
            self._count += 1

    def update(self, pairs) -> None:
        for key in (pairs.keys() if hasattr(pairs, "keys") else (k for k, _ in pairs)):
            self[key] = None

    def __len__(self) -> int:
        return self._count
