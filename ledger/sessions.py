"""Sign-in sessions as use cases (the HTTP face, api/auth.py, speaks EIP-4361 and mints
tokens; this module keeps what must be stored or checked in the database).

- Challenges are stateless: the server stores nothing when it issues one (its nonce carries
  a MAC of its fields, api/auth.py). Only a challenge that a key holder signed, and that
  passed every check, is written down, as *consumed*: one row per nonce, kept until the
  challenge's own expiry (then deleted at the next sign-in), so a challenge signs in at most
  once. Why: an unauthenticated client can then write nothing to storage, and nobody can
  crowd out or evict another member's challenge (no per-address or total caps to fill).
- Session epochs: a token carries the log's head seq at sign-in (its epoch). A token is valid
  only while its account has no `account.status` entry after that seq, so freezing or closing
  an account (and, later, recovering its key: another status-changing entry) ends every
  session issued before it *for good*: unfreezing does not revive them. The rule reads the log
  itself, so it holds whichever path posted the change (HTTP, CLI, a script).
"""
from __future__ import annotations

from dataclasses import dataclass

from .core.rules import AccountState
from .store import auth_tables as S
from .store.errors import domain_errors


@dataclass(frozen=True)
class SessionAccount:
    account: AccountState
    revoked: bool  # a status change was posted after the session's epoch


class Sessions:
    def __init__(self, ledger):
        self.ledger = ledger

    def consume_challenge(self, *, nonce: str, address: str, issued_at: int, expires_at: int, now: int) -> bool:
        """Record a verified challenge as used (times in unix seconds): True the first time,
        False if it was already used. Rows of expired challenges are deleted on the way."""
        with domain_errors(), self.ledger.engine.begin() as conn:
            S.purge_expired_challenges(conn, now)
            return S.record_used_challenge(conn, nonce=nonce, address=address, issued_at=issued_at,
                                           expires_at=expires_at, now_s=now)

    def epoch(self) -> int:
        """The epoch of a session starting now: the log's head seq. Read before the account's
        status is checked, so a freeze racing a sign-in is always after the epoch."""
        return self.ledger.head()[0]

    def account(self, address: str, epoch: int) -> SessionAccount | None:
        """The account behind a session of `epoch`, and whether that session was revoked."""
        # domain_errors: a failover answers 503 + Retry-After on every signed-in request, not 500
        with domain_errors(), self.ledger.engine.connect().execution_options(ayni_readonly=True) as conn:
            found = S.session_account(conn, address, epoch)
        if found is None:
            return None
        role, status, changed = found
        return SessionAccount(AccountState(address, role, status), changed)
