"""Data sovereignty: members' data-sharing grants, the access log, organisation membership.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_grants",
        sa.Column("id", sa.String(32)),
        sa.Column("member", sa.String(42), nullable=False),
        sa.Column("grantee_kind", sa.String(12), nullable=False),
        sa.Column("grantee", sa.String(120), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("until", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_grants"),
        sa.ForeignKeyConstraint(["member"], ["accounts.address"], name="fk_privacy_grants_member_accounts"),
    )
    op.create_index("ix_privacy_grants_member", "privacy_grants", ["member"])
    op.create_table(
        "privacy_access_log",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("accessor", sa.String(42), nullable=False),
        sa.Column("accessor_role", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(42), nullable=False),
        sa.Column("categories", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("basis", sa.String(12), nullable=False),
        sa.Column("resource", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_access_log"),
    )
    op.create_index("ix_privacy_access_log_subject_id", "privacy_access_log", ["subject", "id"])
    op.create_index("ix_privacy_access_log_at", "privacy_access_log", ["at"])
    op.create_table(
        "privacy_organisations",
        sa.Column("organisation", sa.String(120)),
        sa.Column("address", sa.String(42)),
        sa.PrimaryKeyConstraint("organisation", "address", name="pk_privacy_organisations"),
        sa.ForeignKeyConstraint(["address"], ["accounts.address"], name="fk_privacy_organisations_address_accounts"),
    )


def downgrade() -> None:
    op.drop_table("privacy_organisations")
    op.drop_table("privacy_access_log")
    op.drop_table("privacy_grants")
