"""Errors of the chain adapter. Every expected fault (node down, revert, wrong contract, bad
keystore) surfaces as one of these, never as a web3 / requests / eth-tester exception type.
ChainError, ChainUnavailable and WrongContract are the verifier's (ledger/verify/chain_types.py):
the reader and the writer raise the same classes."""
from __future__ import annotations


from ledger.verify.chain_types import ChainError, ChainUnavailable, WrongContract  # noqa: F401 - shared with the reader


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


class AdminIsAnchorer(ChainError):
    """Deploying without a separate admin: the admin must be another key than the anchoring key
    (a leaked anchoring key that is also the admin can renounce the admin role or add anchoring
    keys, and then nobody can retire the contract). Only tests may opt out, explicitly."""

    code = "admin_is_anchorer"


class BadKeystore(ChainError):
    """Keystore file missing, unreadable, malformed, or the passphrase is wrong."""

    code = "bad_keystore"
