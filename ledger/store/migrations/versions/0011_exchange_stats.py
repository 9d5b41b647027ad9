"""The exchange board's statistics, frozen per closed month: hoursByCategory's figures (counts
and minutes per month and category, no person) are written once a month has closed, so
retention erasing arrangements never changes a released figure. docs/exchange.md.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_stats_months",
        sa.Column("month", sa.String(7)),
        sa.Column("frozen_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("month", name="pk_exchange_stats_months"),
    )
    op.create_table(
        "exchange_stats_cells",
        sa.Column("month", sa.String(7)),
        sa.Column("category", sa.String(40)),
        sa.Column("minutes", sa.BigInteger, nullable=False),
        sa.Column("arrangements", sa.BigInteger, nullable=False),
        sa.Column("providers", sa.BigInteger, nullable=False),
        sa.Column("receivers", sa.BigInteger, nullable=False),
        sa.Column("top_provider_minutes", sa.BigInteger, nullable=False),
        sa.Column("top_receiver_minutes", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("month", "category", name="pk_exchange_stats_cells"),
    )


def downgrade() -> None:
    op.drop_table("exchange_stats_cells")
    op.drop_table("exchange_stats_months")
