"""Errors of the chain adapter. Every expected fault (node down, revert, wrong contract, bad
keystore) surfaces as one of these, never as a web3 / requests / eth-tester exception type."""
from __future__ import annotations


class ChainError(Exception):
    """Base class; `code` is a stable machine-readable string, `message` a human one."""

    code = "chain_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ChainUnavailable(ChainError):
    """The node does not answer: connection refused, timeout, HTTP error, RPC down."""

    code = "chain_unavailable"


class AnchorReverted(ChainError):
    """The contract refused the call (revert on estimate/send, or a mined receipt with status 0).

    `error_name` is the decoded custom error (e.g. "NotContiguous", "ZeroRoot",
    "AccessControlUnauthorizedAccount", "Error", "Panic") or None if no revert data was
    available; `error_args` the decoded arguments (dict, possibly empty); `data` the raw revert
    data (bytes, possibly empty)."""

    code = "anchor_reverted"

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        error_args: dict | None = None,
        data: bytes = b"",
    ):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = dict(error_args or {})
        self.data = data


class InsufficientFunds(ChainError):
    """The anchoring key cannot pay for the gas (top it up); nothing was sent."""

    code = "insufficient_funds"


class WrongContract(ChainError):
    """No code at the address, code that is not an Ayni Anchor, or the wrong chain id."""

    code = "wrong_contract"


class BadKeystore(ChainError):
    """Keystore file missing, unreadable, malformed, or the passphrase is wrong."""

    code = "bad_keystore"
