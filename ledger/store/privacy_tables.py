"""Data-sharing grants, the access log and organisation membership (ledger/privacy/).

None of this is in the entry log: grants are the member's revocable preferences, the access
log records reads (never writes to the ledger), and organisation membership lets a grant to a
named organisation be honoured for the accounts acting for it. Every column is declared in
ledger/privacy/policy.json. Created by migration 0005.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table

from .tables import ADDRESS, metadata

privacy_grants = Table(
    "privacy_grants", metadata,
    Column("id", String(32), primary_key=True),                 # random hex, names the grant for revoke
    Column("member", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("grantee_kind", String(12), nullable=False),          # role | account | organisation
    Column("grantee", String(120), nullable=False),
    Column("category", String(32), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("until", BigInteger, nullable=False),                 # unix ms, exclusive
    Column("created_at", BigInteger, nullable=False),            # unix ms
    Index("ix_privacy_grants_member", "member"),
)

# One row per read of another member's data. subject "*" = every member (a bulk read by a
# treasurer, e.g. a page of the log): one row per request, shown to every member.
privacy_access_log = Table(
    "privacy_access_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),                    # unix ms
    Column("accessor", ADDRESS, nullable=False),
    Column("accessor_role", String(16), nullable=False),
    Column("subject", String(42), nullable=False),               # member address or "*"
    Column("categories", String(200), nullable=False),           # comma-separated category ids
    Column("purpose", String(40), nullable=False),
    Column("basis", String(12), nullable=False),                 # policy (essential purpose) | grant
    Column("resource", String(80), nullable=False),              # the route template, e.g. GET /v1/log
    Index("ix_privacy_access_log_subject_id", "subject", "id"),
    Index("ix_privacy_access_log_at", "at"),
)

privacy_organisations = Table(
    "privacy_organisations", metadata,
    Column("organisation", String(120), primary_key=True),
    Column("address", ADDRESS, ForeignKey("accounts.address"), primary_key=True),
)
