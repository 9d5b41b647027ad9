"""Member keys: Ethereum V3 keystores (scrypt), the format geth and MetaMask read and write.

Keys live in the keys directory (default `$XDG_CONFIG_HOME/ayni/keys`, mode 0700), one
`NAME.json` per key (mode 0600). A private key is never printed, logged or passed on a
command line; the passphrase comes from --password-file, $AYNI_WALLET_PASSWORD or a hidden
prompt. The keystore format itself is ledger/keystore.py (shared with the anchoring key).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

import typer

from ledger import keystore
from ledger.core.addresses import normalize_address
from ledger.core.errors import InvalidAddress
from ledger.core.typed_data import address_of_key
from ledger.files import write_atomic
from ledger.keystore import LIGHT_SCRYPT_N, STANDARD_SCRYPT_N

from .config import (JSON_OPT, KEY_OPT, PASSWORD_FILE_OPT, WalletConfig, WalletError, handled,
                     load_config)


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
        return keystore.read_keystore(path)
    except keystore.KeystoreError as exc:
        raise WalletError(exc.message, exc.code) from None


def load_key(path: Path | str, password: str) -> bytes:
    """Decrypt a V3 keystore (ledger.keystore); WalletError with code `wrong_passphrase` or
    `bad_keystore` (one line, nothing about the key) otherwise."""
    try:
        return keystore.load_key(path, password)
    except keystore.KeystoreError as exc:
        raise WalletError(exc.message, exc.code) from None


def write_keystore(path: Path, key: bytes, password: str, *, scrypt_n: int = STANDARD_SCRYPT_N) -> None:
    """Encrypt `key` into a V3 keystore at `path` (mode 0600, atomically). Never overwrites."""
    write_new_file(path, json.dumps(keystore.encrypt_key(key, password, scrypt_n=scrypt_n)).encode())


def write_new_file(path: Path, content: bytes, *, mode: int = 0o600, overwrite: bool = False) -> None:
    """Atomically create `path` with `content` (ledger.files): readers see no file or the whole
    file. Refuses (WalletError `exists`) to replace an existing file unless `overwrite`."""
    try:
        write_atomic(path, content, mode=mode, exclusive=not overwrite)
    except FileExistsError:
        raise WalletError(f"{path} exists; refusing to overwrite it", "exists") from None


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


@handled
def address(key: str = KEY_OPT, as_json: bool = JSON_OPT) -> None:
    """The address of the selected key (no passphrase needed)."""
    cfg = load_config(keystore=key)
    path = resolve_keystore(cfg)
    addr = keystore_address(path)
    typer.echo(json.dumps({"address": addr, "keystore": str(path)}) if as_json else addr)


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
