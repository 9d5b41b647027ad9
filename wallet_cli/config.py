"""Wallet settings and the wallet's one error type.

Each setting is resolved, first match wins: command-line flag > environment variable >
`$XDG_CONFIG_HOME/ayni/wallet.toml` (default `~/.config/ayni/wallet.toml`) > default.

| setting        | env                    | wallet.toml key   | default                              |
|----------------|------------------------|-------------------|--------------------------------------|
| api_url        | AYNI_API_URL           | api_url           | http://127.0.0.1:8000                |
| keystore       | AYNI_KEYSTORE          | keystore          | the only key in keys_dir, if one     |
| keys_dir       | AYNI_KEYS_DIR          | keys_dir          | $XDG_CONFIG_HOME/ayni/keys           |
| password_file  | AYNI_WALLET_PASSWORD_FILE | password_file  | (none; AYNI_WALLET_PASSWORD, prompt) |
| chain_url      | AYNI_CHAIN_URL         | chain_url         | (none)                               |
| chain_id       | AYNI_CHAIN_ID          | chain_id          | (not pinned)                         |
| community_salt | AYNI_COMMUNITY_SALT    | community_salt    | (not pinned)                         |
| anchor_contract| AYNI_ANCHOR_CONTRACT   | anchor_contract   | (not pinned)                         |
| anchor_chain_id| AYNI_ANCHOR_CHAIN_ID   | anchor_chain_id   | chain_id                             |
| currency       | AYNI_CURRENCY          | currency          | the community's only currency        |
| receipts_dir   | AYNI_RECEIPTS_DIR      | receipts_dir      | $XDG_DATA_HOME/ayni/receipts         |
| timeout        | AYNI_HTTP_TIMEOUT      | timeout           | 10 (seconds)                         |

The passphrase itself is never read from the TOML file (it would sit next to the keys).
chain_id, community_salt, anchor_contract and anchor_chain_id are pins (ledger/core/trust_root.py):
facts about the community learnt from it, not from its server, that every answer is held against.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import typer

DEFAULT_API_URL = "http://127.0.0.1:8000"


class WalletError(Exception):
    """Any expected failure of a wallet command: one line for people, a stable code for
    scripts (`unreachable`, `timeout`, `bad_keystore`, `wrong_passphrase`, `config`, or the
    server's own error code such as `credit_limit_exceeded`)."""

    def __init__(self, message: str, code: str = "wallet_error"):
        super().__init__(message)
        self.message = " ".join(str(message).split())  # always one line
        self.code = code

    def __str__(self) -> str:
        return self.message


def fail(message: str, code: int = 1) -> None:
    """Print `error: <one line>` to stderr and exit non-zero: the one way every wallet command
    reports a failure. The message may quote the server (its error text, a memo, a name), so
    it is shown through ledger.core.text.visible: no control character reaches the terminal.
    `code` outside 1..255 becomes 1: a failure never exits 0 (nor 256, which the shell reads as 0)."""
    from ledger.core.text import visible
    typer.echo(f"error: {visible(' '.join(str(message).split()))}", err=True)
    raise typer.Exit(code if isinstance(code, int) and 0 < code < 256 else 1)


def note(message: str) -> None:
    """Print `note: <one line>` to stderr (progress the user should know of), shown through
    ledger.core.text.visible like every error: it may quote the server."""
    from ledger.core.text import visible
    typer.echo(f"note: {visible(' '.join(str(message).split()))}", err=True)


def _home_dir(env: str, fallback: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_home() -> Path:
    """`$XDG_CONFIG_HOME/ayni` (default `~/.config/ayni`)."""
    return _home_dir("XDG_CONFIG_HOME", ".config") / "ayni"


def data_home() -> Path:
    """`$XDG_DATA_HOME/ayni` (default `~/.local/share/ayni`)."""
    return _home_dir("XDG_DATA_HOME", ".local/share") / "ayni"


def config_file() -> Path:
    return config_home() / "wallet.toml"


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise WalletError(f"cannot read {path}: {exc.strerror}", "config") from None
    except tomllib.TOMLDecodeError as exc:
        raise WalletError(f"{path} is not valid TOML: {exc}", "config") from None


@dataclass
class WalletConfig:
    api_url: str = DEFAULT_API_URL
    keystore: str | None = None          # a key name in keys_dir, a file path, or an address
    keys_dir: Path = field(default_factory=lambda: config_home() / "keys")
    password_file: Path | None = None
    chain_url: str | None = None
    chain_id: int | None = None          # pinned: refuse to sign for another chain id
    community_salt: str | None = None    # pinned: refuse to sign for another community
    anchor_contract: str | None = None   # pinned: receipts and anchors count only in this contract
    anchor_chain_id: int | None = None   # pinned: the chain of that contract (default: chain_id)
    currency: str | None = None
    receipts_dir: Path = field(default_factory=lambda: data_home() / "receipts")
    timeout: float = 10.0


_ENV = {"api_url": "AYNI_API_URL", "keystore": "AYNI_KEYSTORE", "keys_dir": "AYNI_KEYS_DIR",
        "password_file": "AYNI_WALLET_PASSWORD_FILE", "chain_url": "AYNI_CHAIN_URL",
        "chain_id": "AYNI_CHAIN_ID", "community_salt": "AYNI_COMMUNITY_SALT", "anchor_contract": "AYNI_ANCHOR_CONTRACT",
        "anchor_chain_id": "AYNI_ANCHOR_CHAIN_ID", "currency": "AYNI_CURRENCY",
        "receipts_dir": "AYNI_RECEIPTS_DIR", "timeout": "AYNI_HTTP_TIMEOUT"}
_PATHS = ("keys_dir", "password_file", "receipts_dir")
_HEX_PINS = {"anchor_contract": r"0x[0-9a-fA-F]{40}", "community_salt": r"0x[0-9a-fA-F]{64}"}


def load_config(**flags) -> WalletConfig:
    """Resolve every setting (flag > env > wallet.toml > default). `flags` are the
    WalletConfig field names; a None value means "not given on the command line".
    Raises WalletError (code "config") for an unreadable file or a malformed value."""
    unknown = set(flags) - set(_ENV)
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    path = config_file()
    toml = _read_toml(path)
    cfg = WalletConfig()
    for name, env in _ENV.items():
        value = flags.get(name)
        source = "command line"
        if value is None and os.environ.get(env):
            value, source = os.environ[env], env
        if value is None and toml.get(name) is not None:
            value, source = toml[name], str(path)
        if value is None:
            continue
        try:
            if name in _PATHS:
                value = Path(os.path.expanduser(str(value)))
            elif name in _HEX_PINS:
                value = str(value)
                if not re.fullmatch(_HEX_PINS[name], value):
                    raise ValueError
            elif name in ("chain_id", "anchor_chain_id"):
                value = int(value)
            elif name == "timeout":
                value = float(value)
                if value <= 0:
                    raise ValueError
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise WalletError(f"{name} from {source} is malformed: {value!r}", "config") from None
        setattr(cfg, name, value)
    cfg.api_url = cfg.api_url.rstrip("/")
    return cfg




# -- shared by the command modules ---------------------------------------------------------
API_OPT = typer.Option(None, "--api", help="Ayni API base URL (else $AYNI_API_URL, wallet.toml, "
                       f"{DEFAULT_API_URL})")
KEY_OPT = typer.Option(None, "--key", help="Key to use: a name in the keys directory, a keystore file or "
                       "an address (else $AYNI_KEYSTORE, wallet.toml, the only key there is)")
PASSWORD_FILE_OPT = typer.Option(None, "--password-file", help="File holding the keystore passphrase (else "
                                 "$AYNI_WALLET_PASSWORD, else a hidden prompt)")
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output")


def handled(fn):
    """Turn every expected failure inside a command into `error: <one line>` and exit 1.
    Ledger-core refusals (a malformed amount or address) count as expected."""
    import functools

    from ledger.core.errors import LedgerError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WalletError as exc:
            fail(exc.message)
        except LedgerError as exc:
            fail(f"{exc.code}: {exc.message}")
        except OSError as exc:
            fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
        except KeyboardInterrupt:
            fail("interrupted; nothing more was sent", 130)
    return wrapper


__all__ = ["WalletConfig", "WalletError", "load_config", "fail", "note", "handled", "config_home", "data_home",
           "config_file", "DEFAULT_API_URL", "API_OPT", "KEY_OPT", "PASSWORD_FILE_OPT", "JSON_OPT"]
