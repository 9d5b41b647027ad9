"""Ethereum V3 keystores (scrypt or pbkdf2, aes-128-ctr, keccak MAC): the format geth, MetaMask
and eth-account read and write. One implementation for the anchoring key (`ayni chain`) and
members' keys (`ayni-wallet`).

Written out here (hashlib + pycryptodome) rather than eth_account's encrypt/decrypt, whose
import alone costs more than the rest of a wallet command; tests check eth-account opens what
this writes and the other way round. Files are written atomically (ledger.files) with mode 0600.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from pathlib import Path

from ledger.core.hashing import keccak256
from ledger.core.typed_data import address_of_key
from ledger.files import write_atomic

STANDARD_SCRYPT_N = 2**18   # geth / eth-account default: ~1 s and 256 MiB to unlock
LIGHT_SCRYPT_N = 2**12      # geth's --lightkdf: for small devices; weaker against guessing


class KeystoreError(Exception):
    """A keystore that cannot be opened: one line saying why (never anything about the key).
    `code`: `wrong_passphrase` or `bad_keystore`."""

    def __init__(self, message: str, code: str = "bad_keystore"):
        super().__init__(message)
        self.message, self.code = message, code

    def __str__(self) -> str:
        return self.message


def read_keystore(path: Path | str) -> dict:
    """The keystore document at `path`, checked to be a V3 keystore (not decrypted)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"keystore file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read keystore {p}: {getattr(exc, 'strerror', None) or exc}") from None
    except ValueError:
        raise KeystoreError(f"{p} is not JSON (expected an Ethereum V3 keystore)") from None
    if not isinstance(data, dict) or not isinstance(data.get("crypto") or data.get("Crypto"), dict):
        raise KeystoreError(f"{p} is not an Ethereum V3 keystore (no 'crypto' section)")
    if data.get("version") != 3:
        raise KeystoreError(f"{p}: unsupported keystore version {data.get('version')!r} (expected 3)")
    return data


def _derive(crypto: dict, password: str) -> bytes:
    params, kdf = crypto.get("kdfparams") or {}, crypto.get("kdf")
    salt = bytes.fromhex(params["salt"])
    if kdf == "scrypt":
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=int(params["dklen"]),
                              maxmem=128 * n * r * p + 2**24)
    if kdf == "pbkdf2":
        if params.get("prf") != "hmac-sha256":
            raise NotImplementedError(f"pbkdf2 prf {params.get('prf')!r}")
        return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(params["c"]), int(params["dklen"]))
    raise NotImplementedError(f"key derivation {kdf!r}")


def load_key(path: Path | str, password: str) -> bytes:
    """Decrypt a V3 keystore; the 32-byte private key, or KeystoreError."""
    from Crypto.Cipher import AES
    data = read_keystore(path)
    crypto = data.get("crypto") or data.get("Crypto")
    try:
        if crypto.get("cipher") != "aes-128-ctr":
            raise NotImplementedError(f"cipher {crypto.get('cipher')!r}")
        derived = _derive(crypto, password)
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        if keccak256(derived[16:32] + ciphertext) != bytes.fromhex(crypto["mac"]):
            raise KeystoreError(f"wrong passphrase for keystore {path}", "wrong_passphrase")
        iv = bytes.fromhex(crypto["cipherparams"]["iv"])
        key = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).decrypt(ciphertext)
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise KeystoreError(f"malformed keystore {path}: {type(exc).__name__} {exc}") from None
    if len(key) != 32:
        raise KeystoreError(f"keystore {path} does not hold a 32-byte secp256k1 key")
    declared = data.get("address")
    if declared and str(declared).lower().removeprefix("0x") != address_of_key(key)[2:].lower():
        raise KeystoreError(f"keystore {path} declares address 0x{declared} but holds another key")
    return key


def encrypt_key(key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> dict:
    """The V3 keystore document of `key`: scrypt (r=8, p=1), aes-128-ctr, keccak MAC."""
    from Crypto.Cipher import AES
    key = bytes(key)
    if len(key) != 32:
        raise ValueError("private key must be 32 bytes")
    salt, iv = secrets.token_bytes(32), secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=scrypt_n, r=8, p=1, dklen=32,
                             maxmem=128 * scrypt_n * 8 + 2**24)
    ciphertext = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(key)
    return {"address": address_of_key(key)[2:].lower(), "id": str(uuid.uuid4()), "version": 3,
            "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": iv.hex()}, "ciphertext": ciphertext.hex(),
                       "kdf": "scrypt", "kdfparams": {"dklen": 32, "n": scrypt_n, "r": 8, "p": 1, "salt": salt.hex()},
                       "mac": keccak256(derived[16:32] + ciphertext).hex()}}


def write_keystore(path: Path | str, key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N,
                   exclusive: bool = True) -> Path:
    """Encrypt `key` into a V3 keystore at `path` (mode 0600, atomically). `exclusive`:
    refuse (FileExistsError) to replace an existing file, which may hold another key."""
    return write_atomic(path, json.dumps(encrypt_key(key, password, scrypt_n=scrypt_n)), mode=0o600,
                        exclusive=exclusive)
