"""Payment requests, and the unique key that makes paying one request twice impossible.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def upgrade() -> None:
    op.create_table(
        "payment_requests",
        sa.Column("id", sa.LargeBinary(32)),
        sa.Column("payee", ADDRESS, nullable=False),
        sa.Column("payer", ADDRESS, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("memo", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("paid_seq", sa.BigInteger, nullable=True),
        sa.Column("declined_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_payment_requests"),
        sa.ForeignKeyConstraint(["payee"], ["accounts.address"], name="fk_payment_requests_payee_accounts"),
        sa.ForeignKeyConstraint(["payer"], ["accounts.address"], name="fk_payment_requests_payer_accounts"),
        sa.ForeignKeyConstraint(["currency"], ["currencies.code"], name="fk_payment_requests_currency_currencies"),
        sa.ForeignKeyConstraint(["paid_seq"], ["entries.seq"], name="fk_payment_requests_paid_seq_entries"),
    )
    op.create_index("ix_payment_requests_payer_created_at", "payment_requests", ["payer", "created_at"])
    op.create_index("ix_payment_requests_payee_created_at", "payment_requests", ["payee", "created_at"])
    # Fails on an existing database only if one request was already paid twice (it never
    # could be through PaymentRequests.pay); NULL request ids are not in the index at all.
    op.create_index("uq_transfers_request_key", "transfers",
                    ["request_id", "payer", "payee", "currency", "amount"], unique=True,
                    sqlite_where=sa.text("request_id IS NOT NULL"),
                    postgresql_where=sa.text("request_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_transfers_request_key", table_name="transfers")
    op.drop_table("payment_requests")
