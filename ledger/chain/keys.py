"""The anchoring key on disk: Ethereum V3 keystore (scrypt), as geth / MetaMask / eth-account
write it. Faults raise BadKeystore (code "bad_keystore") with a message saying what is wrong."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from ledger.chain.errors import BadKeystore

# Standard geth/eth-account scrypt parameters: n=2**18, r=8, p=1 (~0.5-1 s, 256 MiB).
STANDARD_SCRYPT_N = 2**18


def load_keystore(path: str, password: str) -> bytes:
    """Decrypt a V3 keystore file; returns the 32-byte private key."""
    from eth_account import Account

    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise BadKeystore(f"keystore file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadKeystore(f"cannot read keystore file {p}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise BadKeystore(f"keystore file {p} is not JSON (expected an Ethereum V3 keystore)") from None
    if not isinstance(data, dict) or not isinstance(data.get("crypto") or data.get("Crypto"), dict):
        raise BadKeystore(f"keystore file {p} is not an Ethereum V3 keystore (no 'crypto' section)")
    if data.get("version") != 3:
        raise BadKeystore(f"keystore file {p}: unsupported version {data.get('version')!r} (expected 3)")
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise BadKeystore(f"wrong passphrase for keystore {p}") from None
        raise BadKeystore(f"malformed keystore {p}: {exc}") from None
    except (KeyError, TypeError, NotImplementedError) as exc:
        raise BadKeystore(f"malformed keystore {p}: {type(exc).__name__}: {exc}") from None
    key = bytes(key)
    if len(key) != 32:
        raise BadKeystore(f"keystore {p} does not hold a 32-byte secp256k1 key")
    return key


def write_keystore(path: str, private_key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> None:
    """Encrypt `private_key` with `password` (scrypt) into a V3 keystore at `path`, mode 0600.
    Written to a temporary file in the same directory, then renamed into place (atomic)."""
    from eth_account import Account

    if len(bytes(private_key)) != 32:
        raise ValueError("private key must be 32 bytes")
    data = Account.encrypt(bytes(private_key), password, kdf="scrypt", iterations=scrypt_n)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".keystore-", dir=target.parent or ".")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
