"""Sign-in challenges (api/auth.py): one row per EIP-4361 nonce the server issued.

Not part of the ledger: nothing here is in the entry log and every row may be deleted
once it has expired (api.auth.SiweAuth prunes them). A row is consumed exactly once, by
`UPDATE ... SET used_at = now WHERE nonce = ? AND used_at IS NULL AND expires_at > now`.
Created by migration 0004; defined on the shared `metadata` so the schema test sees it.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table

from .tables import ADDRESS, metadata

auth_challenges = Table(
    "auth_challenges", metadata,
    Column("nonce", String(32), primary_key=True),
    Column("address", ADDRESS, nullable=False),       # EIP-55 checksummed
    Column("issued_at", BigInteger, nullable=False),  # unix seconds
    Column("expires_at", BigInteger, nullable=False),  # unix seconds
    Column("used_at", BigInteger, nullable=True),      # unix seconds; NULL = not yet used
    Index("ix_auth_challenges_expires_at", "expires_at"),
)
