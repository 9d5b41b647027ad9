"""Anchoring on a public chain: what a batch's transaction was sent with and where it landed.

- nonce: the anchoring key's nonce of the batch's transaction. A replacement (stuck
  transaction, raised tip) and a re-send after a drop reuse it, so two transactions for one
  batch can never both be mined.
- max_fee_per_gas, priority_fee_per_gas: the EIP-1559 fees of the last transaction sent (or
  the legacy gas price in max_fee_per_gas); a replacement must raise both by at least 10%.
- sent_at: when the last transaction was sent (ms); a replacement is due after a configured wait.
- tx_hashes: every transaction hash sent for this batch, space-separated (the original and
  its replacements): whichever is mined is recorded in tx_hash.
- attempts: transactions sent for this batch (1 + replacements).
- block_hash: the hash of the block that confirmed the batch; a reorg is seen when the
  canonical block at that number has another hash.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = [
    ("nonce", sa.BigInteger),
    ("max_fee_per_gas", sa.BigInteger),
    ("priority_fee_per_gas", sa.BigInteger),
    ("sent_at", sa.BigInteger),
    ("tx_hashes", sa.Text),
    ("attempts", sa.Integer),
    ("block_hash", sa.String(66)),
]


def upgrade() -> None:
    with op.batch_alter_table("anchor_batches") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("anchor_batches") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
