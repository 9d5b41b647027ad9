"""Member keys: Ethereum V3 keystores (scrypt), the format geth and MetaMask read and write.

Keys live in the keys directory (default `$XDG_CONFIG_HOME/ayni/keys`, mode 0700), one
`NAME.json` per key (mode 0600). A private key is never printed, logged or passed on a
command line; the passphrase comes from --password-file, $AYNI_WALLET_PASSWORD or a hidden
prompt. Files appear atomically (temporary file, then a hard link that never overwrites).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

import typer

from ledger.core.addresses import normalize_address
from ledger.core.errors import InvalidAddress
from ledger.core.hashing import keccak256
from ledger.core.typed_data import address_of_key

from .config import (JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletConfig, WalletError, handled,
                     load_config)

STANDARD_SCRYPT_N = 2**18   # geth / eth-account default: ~1 s and 256 MiB to unlock
LIGHT_SCRYPT_N = 2**12      # geth's --lightkdf: for small devices; weaker against guessing
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# -- functions (used by the other command modules) -----------------------------------------
def keystore_address(path: Path) -> str:
    """The address a keystore file declares (no passphrase needed, as in geth)."""
    data = _read_keystore(path)
    try:
        return normalize_address("0x" + str(data["address"]).removeprefix("0x"))
    except (KeyError, InvalidAddress):
        raise WalletError(f"keystore {path} names no valid address", "bad_keystore") from None


def _read_keystore(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise WalletError(f"no keystore at {path}", "bad_keystore") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WalletError(f"cannot read keystore {path}: {getattr(exc, 'strerror', None) or exc}",
                          "bad_keystore") from None
    except ValueError:
        raise WalletError(f"{path} is not JSON (expected an Ethereum V3 keystore)", "bad_keystore") from None
    if not isinstance(data, dict) or data.get("version") != 3 or not isinstance(
            data.get("crypto") or data.get("Crypto"), dict):
        raise WalletError(f"{path} is not an Ethereum V3 keystore", "bad_keystore")
    return data


def _derive(crypto: dict, password: str) -> bytes:
    import hashlib
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
    """Decrypt a V3 keystore (scrypt or pbkdf2, aes-128-ctr, as geth / MetaMask / eth-account
    write them); the 32-byte private key. WalletError with code `wrong_passphrase` or
    `bad_keystore` (one line, nothing about the key) otherwise.

    Written out here (hashlib + pycryptodome) rather than eth_account.Account.decrypt, whose
    import alone costs more than the rest of a wallet command; tests check both agree."""
    from Crypto.Cipher import AES
    data = _read_keystore(Path(path))
    crypto = data.get("crypto") or data.get("Crypto")
    try:
        if crypto.get("cipher") != "aes-128-ctr":
            raise NotImplementedError(f"cipher {crypto.get('cipher')!r}")
        derived = _derive(crypto, password)
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        if keccak256(derived[16:32] + ciphertext) != bytes.fromhex(crypto["mac"]):
            raise WalletError(f"wrong passphrase for keystore {path}", "wrong_passphrase")
        iv = bytes.fromhex(crypto["cipherparams"]["iv"])
        key = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).decrypt(ciphertext)
    except (KeyError, TypeError, ValueError, NotImplementedError) as exc:
        raise WalletError(f"malformed keystore {path}: {type(exc).__name__} {exc}", "bad_keystore") from None
    if len(key) != 32:
        raise WalletError(f"keystore {path} does not hold a 32-byte key", "bad_keystore")
    declared = data.get("address")
    if declared and str(declared).lower().removeprefix("0x") != address_of_key(key)[2:].lower():
        raise WalletError(f"keystore {path} declares address 0x{declared} but holds another key", "bad_keystore")
    return key


def encrypt_key(key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> dict:
    """The V3 keystore document of `key`: scrypt (r=8, p=1), aes-128-ctr, keccak MAC."""
    import hashlib
    import uuid

    from Crypto.Cipher import AES
    salt, iv = secrets.token_bytes(32), secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=scrypt_n, r=8, p=1, dklen=32,
                             maxmem=128 * scrypt_n * 8 + 2**24)
    ciphertext = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(key)
    return {"address": address_of_key(key)[2:].lower(), "id": str(uuid.uuid4()), "version": 3,
            "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": iv.hex()}, "ciphertext": ciphertext.hex(),
                       "kdf": "scrypt", "kdfparams": {"dklen": 32, "n": scrypt_n, "r": 8, "p": 1, "salt": salt.hex()},
                       "mac": keccak256(derived[16:32] + ciphertext).hex()}}


def write_keystore(path: Path, key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> None:
    """Encrypt `key` into a V3 keystore at `path` (mode 0600). Never overwrites: the file is
    written to a temporary name in the same directory and hard-linked into place."""
    write_new_file(path, json.dumps(encrypt_key(key, password, scrypt_n=scrypt_n)).encode())


def write_new_file(path: Path, content: bytes, *, mode: int = 0o600, overwrite: bool = False) -> None:
    """Atomically create `path` with `content`: readers see no file or the whole file.
    Refuses (WalletError `exists`) to replace an existing file unless `overwrite`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise WalletError(f"{path} exists; refusing to overwrite it", "exists") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def keystore_files(keys_dir: Path) -> list[Path]:
    return sorted(p for p in Path(keys_dir).glob("*.json") if p.is_file()) if Path(keys_dir).is_dir() else []


def resolve_keystore(cfg: WalletConfig) -> Path:
    """The keystore file the config selects: a name in keys_dir, a path, or an address
    (matched against the keystores in keys_dir); with nothing selected, the only key there."""
    sel = cfg.keystore
    if sel is None:
        found = keystore_files(cfg.keys_dir)
        if len(found) == 1:
            return found[0]
        if not found:
            raise WalletError(f"no key in {cfg.keys_dir}: create one with `ayni-wallet new` or give --key",
                              "no_key")
        raise WalletError(f"{len(found)} keys in {cfg.keys_dir}: choose one with --key NAME (see "
                          "`ayni-wallet list`)", "no_key")
    if _ADDRESS.fullmatch(sel):
        for p in keystore_files(cfg.keys_dir):
            with contextlib.suppress(WalletError):
                if keystore_address(p).lower() == sel.lower():
                    return p
        raise WalletError(f"no keystore for {sel} in {cfg.keys_dir}", "no_key")
    if _NAME.fullmatch(sel) and not sel.endswith(".json") and (cfg.keys_dir / f"{sel}.json").is_file():
        return cfg.keys_dir / f"{sel}.json"
    path = Path(os.path.expanduser(sel))
    if path.is_file():
        return path
    raise WalletError(f"no key named {sel!r} in {cfg.keys_dir} and no such file", "no_key")


def read_password(cfg: WalletConfig, *, confirm: bool = False, what: str = "keystore passphrase") -> str:
    """--password-file (or $AYNI_WALLET_PASSWORD_FILE / wallet.toml), else
    $AYNI_WALLET_PASSWORD, else a hidden prompt on a terminal."""
    if cfg.password_file is not None:
        try:
            password = cfg.password_file.read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise WalletError(f"cannot read password file {cfg.password_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}", "config") from None
    elif os.environ.get("AYNI_WALLET_PASSWORD"):
        password = os.environ["AYNI_WALLET_PASSWORD"]
    elif sys.stdin.isatty():
        password = typer.prompt(what, hide_input=True, confirmation_prompt=confirm)
    else:
        raise WalletError("no passphrase: give --password-file FILE or set AYNI_WALLET_PASSWORD", "no_password")
    if not password:
        raise WalletError("the passphrase is empty", "no_password")
    return password


def unlock(cfg: WalletConfig) -> bytes:
    """The configured key, decrypted with the configured passphrase."""
    return load_key(resolve_keystore(cfg), read_password(cfg))


def _check_raw_key(text: str) -> bytes:
    raw = text.strip().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        raise WalletError("a raw private key is 32 bytes as 64 hex digits (optionally 0x-prefixed)", "invalid_key")
    key = bytes.fromhex(raw)
    if not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
        raise WalletError("that number is not a valid secp256k1 private key", "invalid_key")
    return key


def _target(cfg: WalletConfig, name: str | None, address: str) -> Path:
    name = name or address.lower()[2:]
    if not _NAME.fullmatch(name) or name.endswith(".json"):
        raise WalletError(f"key name {name!r} must be 1-64 letters, digits, '.', '_' or '-'", "invalid_input")
    cfg.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in keystore_files(cfg.keys_dir):
        try:
            known = keystore_address(p)
        except WalletError:  # a stray file in the directory is not this key
            continue
        if known == address:
            raise WalletError(f"this key is already in the wallet as {p.stem!r}", "exists")
    return cfg.keys_dir / f"{name}.json"


# -- commands ------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    @app.command("new")
    @handled
    def new(name: str = typer.Option(None, "--name", help="Name of the key (default: its address)"),
            light_kdf: bool = typer.Option(False, "--light-kdf", help="Weaker scrypt (N=4096, as geth "
                                           "--lightkdf) for slow devices; the default is N=262144"),
            password_file: Path = PASSWORD_FILE_OPT) -> None:
        """Create a key, encrypted as a V3 keystore (geth / MetaMask format). Prints its address."""
        cfg = load_config(password_file=password_file)
        key = secrets.token_bytes(32)
        while not 0 < int.from_bytes(key, "big") < _SECP256K1_N:  # practically never loops
            key = secrets.token_bytes(32)
        address = address_of_key(key)
        path = _target(cfg, name, address)
        write_keystore(path, key, read_password(cfg, confirm=True, what="new passphrase"),
                       scrypt_n=LIGHT_SCRYPT_N if light_kdf else STANDARD_SCRYPT_N)
        typer.echo(f"{address}\nkeystore: {path}")

    @app.command("import")
    @handled
    def import_(source: Path = typer.Argument(None, help="A V3 keystore file; with --raw, a file holding "
                                              "the hex private key ('-' or nothing: read it from stdin)"),
                raw: bool = typer.Option(False, "--raw", help="SOURCE holds a raw hex private key"),
                name: str = typer.Option(None, "--name", help="Name of the key (default: its address)"),
                light_kdf: bool = typer.Option(False, "--light-kdf", help="Weaker scrypt for a raw key"),
                password_file: Path = PASSWORD_FILE_OPT) -> None:
        """Import a key: a V3 keystore (checked with its passphrase) or a raw hex key (--raw).

        A keystore is stored as is; a raw key is encrypted with the passphrase. The key is
        never echoed: give a raw key in a file or on stdin, never on the command line."""
        cfg = load_config(password_file=password_file)
        if raw:
            if source is None or str(source) == "-":
                text = (typer.prompt("private key (hex)", hide_input=True) if sys.stdin.isatty()
                        else sys.stdin.read())
            else:
                text = source.read_text()
            key = _check_raw_key(text)
            path = _target(cfg, name, address_of_key(key))
            write_keystore(path, key, read_password(cfg, confirm=True, what="new passphrase"),
                           scrypt_n=LIGHT_SCRYPT_N if light_kdf else STANDARD_SCRYPT_N)
        else:
            if source is None:
                raise WalletError("give the keystore file to import (or --raw for a hex key)", "invalid_input")
            key = load_key(source, read_password(cfg))  # proves the passphrase before storing
            path = _target(cfg, name, address_of_key(key))
            write_new_file(path, source.read_bytes())
        typer.echo(f"{address_of_key(key)}\nkeystore: {path}")

    @app.command("address")
    @handled
    def address(key: str = KEY_OPT, as_json: bool = JSON_OPT) -> None:
        """The address of the selected key (no passphrase needed)."""
        cfg = load_config(keystore=key)
        path = resolve_keystore(cfg)
        addr = keystore_address(path)
        typer.echo(json.dumps({"address": addr, "keystore": str(path)}) if as_json else addr)

    @app.command("list")
    @handled
    def list_(as_json: bool = JSON_OPT) -> None:
        """The keys in the keys directory: name, address, file."""
        cfg = load_config()
        rows = []
        for p in keystore_files(cfg.keys_dir):
            try:
                rows.append({"name": p.stem, "address": keystore_address(p), "keystore": str(p)})
            except WalletError as exc:
                rows.append({"name": p.stem, "address": None, "keystore": str(p), "problem": exc.message})
        if as_json:
            typer.echo(json.dumps(rows))
            return
        if not rows:
            typer.echo(f"no keys in {cfg.keys_dir} (create one with `ayni-wallet new`)")
        for r in rows:
            typer.echo(f"{r['name']:<24} {r['address'] or r['problem']}")
