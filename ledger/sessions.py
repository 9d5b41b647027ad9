"""Sign-in sessions as use cases (the HTTP face, api/auth.py, speaks EIP-4361 and mints
tokens; this module keeps what must be stored or checked in the database).

- Challenges: each stored once, for a few minutes, and bounded: at most `max_per_address`
  unexpired challenges per address (a new one replaces the oldest, so a flood for someone
  else's address cannot lock them out for long) and `max_total` overall (beyond it, 429 until
  some expire). Expired ones are purged whenever a challenge is issued.
- Session epochs: a token carries the log's head seq at sign-in (its epoch). A token is valid
  only while its account has no `account.status` entry after that seq, so freezing or closing
  an account (and, later, recovering its key: another status-changing entry) ends every
  session issued before it *for good*: unfreezing does not revive them. The rule reads the log
  itself, so it holds whichever path posted the change (HTTP, CLI, a script).
"""
from __future__ import annotations

from dataclasses import dataclass

from .core import errors as E
from .core.rules import AccountState
from .store import auth_tables as S

MAX_CHALLENGES_PER_ADDRESS = 5
MAX_CHALLENGES_TOTAL = 10_000


@dataclass(frozen=True)
class SessionAccount:
    account: AccountState
    revoked: bool  # a status change was posted after the session's epoch


class Sessions:
    def __init__(self, ledger, *, max_per_address: int = MAX_CHALLENGES_PER_ADDRESS,
                 max_total: int = MAX_CHALLENGES_TOTAL):
        if max_per_address < 1 or max_total < 1:
            raise ValueError("challenge bounds must be at least 1")
        self.ledger = ledger
        self.max_per_address, self.max_total = max_per_address, max_total

    def store_challenge(self, *, nonce: str, address: str, issued_at: int, expires_at: int) -> None:
        """Keep a new challenge (times in unix seconds) within the bounds, or RateLimited."""
        with self.ledger.engine.begin() as conn:
            S.purge_expired_challenges(conn, issued_at)
            S.drop_oldest_challenges(conn, address, keep=self.max_per_address - 1)
            if S.count_challenges(conn, issued_at) >= self.max_total:
                raise E.RateLimited("too many sign-in challenges are outstanding; try again shortly",
                                    retry_after_s=max(1, expires_at - issued_at))
            S.insert_challenge(conn, nonce=nonce, address=address, issued_at=issued_at, expires_at=expires_at)

    def consume_challenge(self, *, nonce: str, address: str, issued_at: int, expires_at: int, now: int):
        """None when consumed now; else the stored row (False if none) to explain why not."""
        with self.ledger.engine.begin() as conn:
            return S.consume_challenge(conn, nonce=nonce, address=address, issued_at=issued_at,
                                       expires_at=expires_at, now_s=now)

    def epoch(self) -> int:
        """The epoch of a session starting now: the log's head seq. Read before the account's
        status is checked, so a freeze racing a sign-in is always after the epoch."""
        return self.ledger.head()[0]

    def account(self, address: str, epoch: int) -> SessionAccount | None:
        """The account behind a session of `epoch`, and whether that session was revoked."""
        with self.ledger.engine.connect().execution_options(ayni_readonly=True) as conn:  # no write lock
            found = S.session_account(conn, address, epoch)
        if found is None:
            return None
        role, status, changed = found
        return SessionAccount(AccountState(address, role, status), changed)
