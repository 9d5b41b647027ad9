"""Federation tables (docs/federation.md). The log is the truth: `alliances` and `remote_legs`
are projections of the alliance.* and remote.* entries (ayni verify compares them with the
log), written in the same transaction as the entry; `balances.held_out/held_in` (in
ledger.store.tables) are the holds. `remote_memos` is personal data kept off the log (only
memoHash crosses to the other node's log); `federation_proposals` is operational state: terms
another community proposed, waiting for this treasurer's signature (not in the log until
accepted). Every column is declared in ledger/privacy/policy.json. Created by migration 0007.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, ForeignKey, Index, LargeBinary, String, Table, Text)

from .tables import ADDRESS, metadata

alliances = Table(
    "alliances", metadata,
    Column("alliance_id", LargeBinary(32), primary_key=True),
    Column("peer_community", LargeBinary(32), nullable=False),  # again after an ended one (migration 0009)
    Column("own_side", String(1), nullable=False),                          # A | B
    Column("peer_node", ADDRESS, nullable=False),
    Column("peer_url", String(200), nullable=False),
    Column("peer_account", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("status", String(10), nullable=False),                           # active | suspended | ended
    Column("recorded_seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
    Column("status_seq", BigInteger, ForeignKey("entries.seq"), nullable=True),
)

# One row per payment leg in this log; payment_id is unique (a node holds one side of a payment).
remote_legs = Table(
    "remote_legs", metadata,
    Column("payment_id", LargeBinary(32), primary_key=True),
    Column("side", String(3), nullable=False),                              # out (origin) | in (destination)
    Column("alliance_id", LargeBinary(32), ForeignKey("alliances.alliance_id"), nullable=False),
    Column("state", String(10), nullable=False),                            # prepared | committed | aborted
    Column("payer", ADDRESS, nullable=False),
    Column("payee", ADDRESS, nullable=False),
    Column("currency", String(12), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("payee_currency", String(12), nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("code", String(64), nullable=False),
    Column("memo_hash", LargeBinary(32), nullable=False),
    Column("prepared_seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
    Column("decided_seq", BigInteger, ForeignKey("entries.seq"), nullable=True),
    Index("ix_remote_legs_state", "state"),
    # a member's history reads their legs by payer (origin) or payee (destination), keyset on seq
    Index("ix_remote_legs_payer_seq", "payer", "prepared_seq"),
    Index("ix_remote_legs_payee_seq", "payee", "prepared_seq"),
)

remote_memos = Table(
    "remote_memos", metadata,
    Column("payment_id", LargeBinary(32), ForeignKey("remote_legs.payment_id"), primary_key=True),
    Column("salt", LargeBinary(32), nullable=False),
    Column("memo", Text, nullable=False),
)

federation_proposals = Table(
    "federation_proposals", metadata,
    Column("alliance_id", LargeBinary(32), primary_key=True),
    Column("terms", Text, nullable=False),                                  # canonical JSON of the terms
    Column("proposer_side", String(1), nullable=False),
    Column("proposer_signature", String(132), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)
