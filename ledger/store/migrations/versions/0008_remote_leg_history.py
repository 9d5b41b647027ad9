"""A member's history lists their remote legs (ledger/queries.py): indexes by payer and by
payee on remote_legs, keyset on prepared_seq, as transfers have.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_remote_legs_payer_seq", "remote_legs", ["payer", "prepared_seq"])
    op.create_index("ix_remote_legs_payee_seq", "remote_legs", ["payee", "prepared_seq"])


def downgrade() -> None:
    op.drop_index("ix_remote_legs_payee_seq", table_name="remote_legs")
    op.drop_index("ix_remote_legs_payer_seq", table_name="remote_legs")
