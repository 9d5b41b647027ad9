"""Initial schema: entry log, head, currencies, accounts, balances, signed actions,
transfers projection, memos, profiles.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_entries"),
    )
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_head"),
    )
    op.create_table(
        "currencies",
        sa.Column("code", sa.String(12)),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("style", sa.String(8), nullable=False),
        sa.Column("decimals", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_currencies"),
    )
    op.create_table(
        "accounts",
        sa.Column("address", ADDRESS),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("opened_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_accounts"),
        sa.ForeignKeyConstraint(["opened_seq"], ["entries.seq"], name="fk_accounts_opened_seq_entries"),
    )
    op.create_table(
        "balances",
        sa.Column("address", ADDRESS),
        sa.Column("currency", sa.String(12)),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("credit_limit", sa.BigInteger, nullable=False),
        sa.Column("ceiling", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("address", "currency", name="pk_balances"),
        sa.ForeignKeyConstraint(["address"], ["accounts.address"], name="fk_balances_address_accounts"),
        sa.ForeignKeyConstraint(["currency"], ["currencies.code"], name="fk_balances_currency_currencies"),
    )
    op.create_table(
        "signed_actions",
        sa.Column("signer", ADDRESS),
        sa.Column("nonce", sa.String(78)),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("signer", "nonce", name="pk_signed_actions"),
        sa.ForeignKeyConstraint(["seq"], ["entries.seq"], name="fk_signed_actions_seq_entries"),
    )
    op.create_table(
        "transfers",
        sa.Column("seq", sa.BigInteger, autoincrement=False),
        sa.Column("payer", ADDRESS, nullable=False),
        sa.Column("payee", ADDRESS, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.LargeBinary(32), nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_transfers"),
        sa.ForeignKeyConstraint(["seq"], ["entries.seq"], name="fk_transfers_seq_entries"),
    )
    op.create_index("ix_transfers_payer_seq", "transfers", ["payer", "seq"])
    op.create_index("ix_transfers_payee_seq", "transfers", ["payee", "seq"])
    op.create_table(
        "memos",
        sa.Column("seq", sa.BigInteger, autoincrement=False),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_memos"),
        sa.ForeignKeyConstraint(["seq"], ["entries.seq"], name="fk_memos_seq_entries"),
    )
    op.create_table(
        "profiles",
        sa.Column("address", ADDRESS),
        sa.Column("display_name", sa.String(120), nullable=True),
        sa.Column("contact", sa.String(240), nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_profiles"),
        sa.ForeignKeyConstraint(["address"], ["accounts.address"], name="fk_profiles_address_accounts"),
    )


def downgrade() -> None:
    for table in ("profiles", "memos", "transfers", "signed_actions", "balances", "accounts",
                  "currencies", "ledger_head", "entries"):
        op.drop_table(table)
