"""Federation: holds on balances, the alliances and remote_legs projections, remote memos
(off the log) and pending alliance proposals (operational state). docs/federation.md.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def upgrade() -> None:
    with op.batch_alter_table("balances") as b:
        b.add_column(sa.Column("held_out", sa.BigInteger, nullable=False, server_default="0"))
        b.add_column(sa.Column("held_in", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "alliances",
        sa.Column("alliance_id", sa.LargeBinary(32)),
        sa.Column("peer_community", sa.LargeBinary(32), nullable=False),
        sa.Column("own_side", sa.String(1), nullable=False),
        sa.Column("peer_node", ADDRESS, nullable=False),
        sa.Column("peer_url", sa.String(200), nullable=False),
        sa.Column("peer_account", ADDRESS, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("recorded_seq", sa.BigInteger, nullable=False),
        sa.Column("status_seq", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("alliance_id", name="pk_alliances"),
        sa.UniqueConstraint("peer_community", name="uq_alliances_peer_community"),
        sa.ForeignKeyConstraint(["peer_account"], ["accounts.address"], name="fk_alliances_peer_account_accounts"),
        sa.ForeignKeyConstraint(["recorded_seq"], ["entries.seq"], name="fk_alliances_recorded_seq_entries"),
        sa.ForeignKeyConstraint(["status_seq"], ["entries.seq"], name="fk_alliances_status_seq_entries"),
    )
    op.create_table(
        "remote_legs",
        sa.Column("payment_id", sa.LargeBinary(32)),
        sa.Column("side", sa.String(3), nullable=False),
        sa.Column("alliance_id", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("payer", ADDRESS, nullable=False),
        sa.Column("payee", ADDRESS, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("payee_currency", sa.String(12), nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("deadline", sa.BigInteger, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("memo_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("prepared_seq", sa.BigInteger, nullable=False),
        sa.Column("decided_seq", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("payment_id", name="pk_remote_legs"),
        sa.ForeignKeyConstraint(["alliance_id"], ["alliances.alliance_id"],
                                name="fk_remote_legs_alliance_id_alliances"),
        sa.ForeignKeyConstraint(["prepared_seq"], ["entries.seq"], name="fk_remote_legs_prepared_seq_entries"),
        sa.ForeignKeyConstraint(["decided_seq"], ["entries.seq"], name="fk_remote_legs_decided_seq_entries"),
    )
    op.create_index("ix_remote_legs_state", "remote_legs", ["state"])
    op.create_table(
        "remote_memos",
        sa.Column("payment_id", sa.LargeBinary(32)),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("payment_id", name="pk_remote_memos"),
        sa.ForeignKeyConstraint(["payment_id"], ["remote_legs.payment_id"],
                                name="fk_remote_memos_payment_id_remote_legs"),
    )
    op.create_table(
        "federation_proposals",
        sa.Column("alliance_id", sa.LargeBinary(32)),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("proposer_side", sa.String(1), nullable=False),
        sa.Column("proposer_signature", sa.String(132), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("alliance_id", name="pk_federation_proposals"),
    )


def downgrade() -> None:
    op.drop_table("federation_proposals")
    op.drop_table("remote_memos")
    op.drop_index("ix_remote_legs_state", "remote_legs")
    op.drop_table("remote_legs")
    op.drop_table("alliances")
    with op.batch_alter_table("balances") as b:
        b.drop_column("held_in")
        b.drop_column("held_out")
