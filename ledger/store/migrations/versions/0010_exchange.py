"""The exchange board: listings (with full-text search), moderation log, conversations,
messages, arrangements, thank-you notes. docs/exchange.md.

Full-text search differs per database and is outside the SQLAlchemy metadata
(ledger/store/exchange_tables.py): an FTS5 table on SQLite, a GIN expression index on
PostgreSQL.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def _fk(table, column, ref, ref_column):
    return sa.ForeignKeyConstraint([column], [f"{ref}.{ref_column}"], name=f"fk_{table}_{column}_{ref}")


def upgrade() -> None:
    op.create_table(
        "listings",
        sa.Column("id", sa.String(32)),
        sa.Column("author", ADDRESS, nullable=False),
        sa.Column("kind", sa.String(5), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("area", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("price_unit", sa.String(5), nullable=False),
        sa.Column("price", sa.BigInteger, nullable=True),
        sa.Column("availability", sa.Text, nullable=True),
        sa.Column("slots", sa.String(300), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("shuffle_key", sa.BigInteger, nullable=False),
        sa.Column("shuffle_day", sa.BigInteger, nullable=False),
        sa.Column("shuffle_rank", sa.BigInteger, nullable=False),
        sa.Column("text_rowid", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger, nullable=True),
        sa.Column("hidden_at", sa.BigInteger, nullable=True),
        sa.Column("hidden_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_listings"),
        sa.UniqueConstraint("text_rowid", name="uq_listings_text_rowid"),
        _fk("listings", "author", "accounts", "address"),
        _fk("listings", "currency", "currencies", "code"),
    )
    op.create_index("ix_listings_created_at", "listings", ["created_at"])
    op.create_index("ix_listings_author", "listings", ["author"])
    op.create_index("ix_listings_expires_at", "listings", ["expires_at"])
    op.create_index("ix_listings_shuffle_rank", "listings", ["shuffle_rank", "id"])
    op.create_index("ix_listings_shuffle_day", "listings", ["shuffle_day"])
    op.create_table(
        "listing_moderation",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("listing_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(6), nullable=False),
        sa.Column("moderator", ADDRESS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_listing_moderation"),
        _fk("listing_moderation", "listing_id", "listings", "id"),
    )
    op.create_index("ix_listing_moderation_listing_id", "listing_moderation", ["listing_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32)),
        sa.Column("listing_id", sa.String(32), nullable=False),
        sa.Column("author", ADDRESS, nullable=False),
        sa.Column("responder", ADDRESS, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.UniqueConstraint("listing_id", "responder", name="uq_conversations_listing_id_responder"),
        _fk("conversations", "listing_id", "listings", "id"),
        _fk("conversations", "responder", "accounts", "address"),
    )
    op.create_index("ix_conversations_author_last_at", "conversations", ["author", "last_at"])
    op.create_index("ix_conversations_responder_last_at", "conversations", ["responder", "last_at"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("sender", ADDRESS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        _fk("messages", "conversation_id", "conversations", "id"),
    )
    op.create_index("ix_messages_conversation_id_id", "messages", ["conversation_id", "id"])
    op.create_table(
        "arrangements",
        sa.Column("id", sa.String(32)),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("listing_id", sa.String(32), nullable=False),
        sa.Column("proposer", ADDRESS, nullable=False),
        sa.Column("provider", ADDRESS, nullable=False),
        sa.Column("receiver", ADDRESS, nullable=False),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("when_text", sa.Text, nullable=True),
        sa.Column("minutes", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
        sa.Column("request_id", sa.LargeBinary(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_arrangements"),
        _fk("arrangements", "conversation_id", "conversations", "id"),
        _fk("arrangements", "listing_id", "listings", "id"),
        _fk("arrangements", "currency", "currencies", "code"),
    )
    op.create_index("ix_arrangements_provider_created_at", "arrangements", ["provider", "created_at"])
    op.create_index("ix_arrangements_receiver_created_at", "arrangements", ["receiver", "created_at"])
    op.create_index("ix_arrangements_conversation_id", "arrangements", ["conversation_id"])
    op.create_index("ix_arrangements_request_id", "arrangements", ["request_id"])
    op.create_table(
        "thanks",
        sa.Column("arrangement_id", sa.String(32)),
        sa.Column("sender", ADDRESS),
        sa.Column("recipient", ADDRESS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("arrangement_id", "sender", name="pk_thanks"),
        _fk("thanks", "arrangement_id", "arrangements", "id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        # whole words, case-folded, accents kept (as PostgreSQL's 'simple' configuration)
        # rowid = listings.text_rowid, so a match joins on an integer without reading the index's content
        op.execute("CREATE VIRTUAL TABLE listings_fts USING fts5(listing_id UNINDEXED, title, description, "
                   "tokenize = 'unicode61 remove_diacritics 0')")
    else:
        op.execute("CREATE INDEX ix_listings_search ON listings USING gin "
                   "(to_tsvector('simple', title || ' ' || description))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE listings_fts")
    for table in ("thanks", "arrangements", "messages", "conversations", "listing_moderation", "listings"):
        op.drop_table(table)
