"""Federation: a community may be allied again after its alliance ended, so `alliances` holds
one row per alliance, no longer one per community (docs/federation.md, "Allying again").

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alliances") as b:
        b.drop_constraint("uq_alliances_peer_community", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("alliances") as b:
        b.create_unique_constraint("uq_alliances_peer_community", ["peer_community"])
