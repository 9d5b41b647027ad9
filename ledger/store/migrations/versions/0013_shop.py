"""Shops (docs/shops.md): shop profiles, till data on payment requests, per-payment name
consents, refund intents, the refund links projected from the log, and open payment requests
(payment_requests.payer NULL: any active member may pay it once).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def upgrade() -> None:
    with op.batch_alter_table("payment_requests") as b:
        b.alter_column("payer", existing_type=ADDRESS, nullable=True)
    op.create_table(
        "shop_profiles",
        sa.Column("address", ADDRESS),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("postal_address", sa.Text, nullable=True),
        sa.Column("opening_hours", sa.Text, nullable=True),
        sa.Column("credit_share_bp", sa.Integer, nullable=True),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_shop_profiles"),
        sa.ForeignKeyConstraint(["address"], ["accounts.address"], name="fk_shop_profiles_address_accounts"),
    )
    op.create_table(
        "shop_requests",
        sa.Column("request_id", sa.LargeBinary(32)),
        sa.Column("shop", ADDRESS, nullable=False),
        sa.Column("till", sa.String(32), nullable=True),
        sa.Column("total_minor", sa.BigInteger, nullable=True),
        sa.Column("credit_share_bp", sa.Integer, nullable=True),
        sa.Column("credit_minor", sa.BigInteger, nullable=True),
        sa.Column("checkout", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_shop_requests"),
        sa.ForeignKeyConstraint(["request_id"], ["payment_requests.id"],
                                name="fk_shop_requests_request_id_payment_requests"),
        sa.ForeignKeyConstraint(["shop"], ["accounts.address"], name="fk_shop_requests_shop_accounts"),
    )
    op.create_index("ix_shop_requests_shop", "shop_requests", ["shop"])
    op.create_table(
        "shop_name_consents",
        sa.Column("request_id", sa.LargeBinary(32)),
        sa.Column("member", ADDRESS),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "member", name="pk_shop_name_consents"),
        sa.ForeignKeyConstraint(["request_id"], ["payment_requests.id"],
                                name="fk_shop_name_consents_request_id_payment_requests"),
        sa.ForeignKeyConstraint(["member"], ["accounts.address"], name="fk_shop_name_consents_member_accounts"),
    )
    op.create_table(
        "refund_intents",
        sa.Column("id", sa.LargeBinary(32)),
        sa.Column("original_seq", sa.BigInteger, nullable=False),
        sa.Column("refund_nonce", sa.String(78), nullable=False),
        sa.Column("shop", ADDRESS, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refund_intents"),
        sa.ForeignKeyConstraint(["original_seq"], ["entries.seq"], name="fk_refund_intents_original_seq_entries"),
        sa.ForeignKeyConstraint(["shop"], ["accounts.address"], name="fk_refund_intents_shop_accounts"),
    )
    op.create_index("ix_refund_intents_original_seq", "refund_intents", ["original_seq"])
    op.create_table(
        "refund_links",
        sa.Column("seq", sa.BigInteger),
        sa.Column("original_seq", sa.BigInteger, nullable=False),
        sa.Column("refund_nonce", sa.String(78), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_refund_links"),
        sa.ForeignKeyConstraint(["seq"], ["entries.seq"], name="fk_refund_links_seq_entries"),
        sa.ForeignKeyConstraint(["original_seq"], ["entries.seq"], name="fk_refund_links_original_seq_entries"),
    )
    op.create_index("ix_refund_links_original_seq", "refund_links", ["original_seq"])


def downgrade() -> None:
    for name in ("refund_links", "refund_intents", "shop_name_consents", "shop_requests", "shop_profiles"):
        op.drop_table(name)
    op.execute("DELETE FROM payment_requests WHERE payer IS NULL")
    with op.batch_alter_table("payment_requests") as b:
        b.alter_column("payer", existing_type=ADDRESS, nullable=False)
