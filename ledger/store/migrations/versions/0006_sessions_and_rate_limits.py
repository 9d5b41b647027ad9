"""Session revocation and rate limits: a partial index over the log's account.status entries
(tokens issued before an account's last status change are refused), shared rate-limit
counters, and an index to bound sign-in challenges per address.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    status = sa.text("kind = 'account.status'")
    op.create_index("ix_entries_account_status_seq", "entries", ["seq"],
                    sqlite_where=status, postgresql_where=status)
    op.create_index("ix_auth_challenges_address", "auth_challenges", ["address"])
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(200)),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limit_counters"),
    )
    op.create_index("ix_rate_limit_counters_expires_at", "rate_limit_counters", ["expires_at"])


def downgrade() -> None:
    op.drop_table("rate_limit_counters")
    op.drop_index("ix_auth_challenges_address", "auth_challenges")
    op.drop_index("ix_entries_account_status_seq", "entries")
