"""The exchange board's statistics, frozen per closed month: hoursByCategory's figures (counts
and minutes per month and category, no person) are written once a month has closed, so
retention erasing arrangements never changes a released figure. And search over normalised
text (ledger.core.exchange.search_text: NFC, case-folded, words only) on both databases:
the column listings.search_text indexed by PostgreSQL's GIN index, the same text in SQLite's
FTS5 rows. docs/exchange.md.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

from ledger.core.exchange import search_text

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


    op.add_column("listings", sa.Column("search_text", sa.Text, nullable=False, server_default=""))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, title, description, text_rowid FROM listings")).all()
    sqlite = bind.dialect.name == "sqlite"
    for r in rows:
        bind.execute(sa.text("UPDATE listings SET search_text = :s WHERE id = :id"),
                     {"s": search_text(f"{r.title} {r.description}"), "id": r.id})
        if sqlite:
            bind.execute(sa.text("DELETE FROM listings_fts WHERE rowid = :r"), {"r": r.text_rowid})
            bind.execute(sa.text("INSERT INTO listings_fts (rowid, listing_id, title, description) "
                                 "VALUES (:r, :id, :t, :d)"),
                         {"r": r.text_rowid, "id": r.id, "t": search_text(r.title), "d": search_text(r.description)})
    if not sqlite:
        op.execute("DROP INDEX ix_listings_search")
        op.execute("CREATE INDEX ix_listings_search ON listings USING gin (to_tsvector('simple', search_text))")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.execute("DROP INDEX ix_listings_search")
        op.execute("CREATE INDEX ix_listings_search ON listings USING gin "
                   "(to_tsvector('simple', title || ' ' || description))")
    op.drop_column("listings", "search_text")  # SQLite's FTS rows keep the normalised text: still found
    op.drop_table("exchange_stats_cells")
    op.drop_table("exchange_stats_months")
