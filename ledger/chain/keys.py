"""The anchoring key on disk: the V3 keystore of ledger.keystore, with its faults as the chain
adapter's BadKeystore (code "bad_keystore") so `ayni chain` reports them like other chain faults."""
from __future__ import annotations

from ledger import keystore
from ledger.chain.errors import BadKeystore

STANDARD_SCRYPT_N = keystore.STANDARD_SCRYPT_N


def load_keystore(path: str, password: str) -> bytes:
    """Decrypt a V3 keystore file; returns the 32-byte private key."""
    try:
        return keystore.load_key(path, password)
    except keystore.KeystoreError as exc:
        raise BadKeystore(exc.message) from None


def write_keystore(path: str, private_key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> None:
    """Encrypt `private_key` into a V3 keystore at `path`, mode 0600, replacing the file atomically
    (`ayni chain new-key` refuses an existing path itself)."""
    keystore.write_keystore(path, private_key, password, scrypt_n=scrypt_n, exclusive=False)
