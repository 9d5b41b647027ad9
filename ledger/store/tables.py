"""SQL schema (SQLAlchemy Core). The entry log is the truth; every other table is
either a projection of it updated in the same transaction (accounts, balances,
transfers, used nonces, head) or erasable personal data kept out of it (memos,
profiles). Alembic migrations in ledger/store/migrations create exactly this."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

ADDRESS = String(42)

# The append-only log. body is canonical JSON text (ledger.core.entries).
entries = Table(
    "entries", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("entry_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
)

# One row: the last seq and chain hash. Locking it serialises writers, which a
# gap-free hash chain needs anyway; it is held only for the database work.
ledger_head = Table(
    "ledger_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
)

currencies = Table(
    "currencies", metadata,
    Column("code", String(12), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("style", String(8), nullable=False),
    Column("decimals", Integer, nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("address", ADDRESS, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("opened_seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
)

# Per account and currency: the balance (projection) and the limits that bound it.
balances = Table(
    "balances", metadata,
    Column("address", ADDRESS, ForeignKey("accounts.address"), primary_key=True),
    Column("currency", String(12), ForeignKey("currencies.code"), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("credit_limit", BigInteger, nullable=False),
    Column("ceiling", BigInteger, nullable=True),
    # holds of undecided remote payments (ledger.core.federation, migration 0007)
    Column("held_out", BigInteger, nullable=False, server_default="0"),
    Column("held_in", BigInteger, nullable=False, server_default="0"),
)

# Every signed action's (signer, nonce): replay protection and idempotency key.
signed_actions = Table(
    "signed_actions", metadata,
    Column("signer", ADDRESS, primary_key=True),
    Column("nonce", String(78), primary_key=True),  # uint256 as decimal text
    # not unique: admin messages do not name their signer, so two treasurers may sign
    # the same SetLimit; (signer, nonce) is the key that matters
    Column("digest", LargeBinary(32), nullable=False),
    Column("seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
)

# Query projection of transfer entries (history by account).
transfers = Table(
    "transfers", metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("payer", ADDRESS, nullable=False),
    Column("payee", ADDRESS, nullable=False),
    Column("currency", String(12), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("request_id", LargeBinary(32), nullable=True),
    Column("at", BigInteger, nullable=False),
    Index("ix_transfers_payer_seq", "payer", "seq"),
    Index("ix_transfers_payee_seq", "payee", "seq"),
)

# Personal data, outside the log: deleting a row here never breaks a hash.
memos = Table(
    "memos", metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True, autoincrement=False),
    Column("salt", LargeBinary(32), nullable=False),
    Column("memo", Text, nullable=False),
)

profiles = Table(
    "profiles", metadata,
    Column("address", ADDRESS, ForeignKey("accounts.address"), primary_key=True),
    Column("display_name", String(120), nullable=True),
    Column("contact", String(240), nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# Anchoring: one row per attempt to commit entries first_seq..last_seq to a chain.
# status: sending (row written, transaction not yet known to be sent) | pending (sent,
# tx_hash known) | confirmed | failed (reverted or lost; a new row retries the range).
anchor_batches = Table(
    "anchor_batches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("contract", ADDRESS, nullable=False),
    Column("status", String(10), nullable=False),
    Column("tx_hash", String(66), nullable=True),
    Column("block", BigInteger, nullable=True),
    Column("gas_used", BigInteger, nullable=True),
    Column("effective_gas_price", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_anchor_batches_contract_first_seq", "contract", "first_seq"),
)


# Tables defined beside their use cases, on this same metadata (imported last: they
# refer to the tables above).
from . import auth_tables, federation_tables, privacy_tables, request_tables  # noqa: E402,F401
from . import exchange_tables  # noqa: E402,F401  (after request_tables: the board links requests)
from . import shop_tables  # noqa: E402,F401  (after request_tables: shops extend requests)
