"""The exchange board (ledger/exchange.py, docs/exchange.md): listings, their moderation log,
conversations, messages, arrangements and thank-you notes.

None of this is in the entry log: it is members' own, mutable and erasable data (every column
is declared in ledger/privacy/policy.json; retention erases it a period after the listing
closes). The only link to money is `arrangements.request_id`, the payment request the
provider sent; the request and the signed payment are kept by the ledger's own rules.

Full-text search lives beside the tables, per database, and is created by migration 0010 only:
- SQLite: the FTS5 table `listings_fts(listing_id UNINDEXED, title, description)`, written by
  the service in the transaction that writes the listing (FTS5 keeps shadow tables
  `listings_fts_*`);
- PostgreSQL: the GIN expression index `ix_listings_search` on SEARCH_EXPR.
Neither can be described by SQLAlchemy metadata, so `schema_include_name` tells schema
comparisons (tests, `policy.undeclared_columns`) to leave them out."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .tables import ADDRESS, metadata

listings = Table(
    "listings", metadata,
    Column("id", String(32), primary_key=True),                # random hex
    Column("author", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("kind", String(5), nullable=False),                 # offer | need
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(40), nullable=False),            # an id of the cooperative's list
    Column("area", String(40), nullable=False),                # a neighbourhood id, never coordinates
    Column("currency", String(12), ForeignKey("currencies.code"), nullable=False),
    Column("price_unit", String(5), nullable=False),           # hour | item | agree
    Column("price", BigInteger, nullable=True),                # minor units; null when "to agree"
    Column("availability", Text, nullable=True),
    Column("slots", String(300), nullable=True),               # "mon 09:00-12:00;..."
    Column("status", String(8), nullable=False),               # active | paused | closed
    Column("shuffle_key", BigInteger, nullable=False),         # random < 2**31: the daily shuffle's input
    # the shuffle of day `shuffle_day`, kept so a shuffled page is an index range, not a sort of every
    # listing: shuffle_rank = ledger.core.exchange.shuffle_rank(shuffle_day, shuffle_key), refreshed
    # for all listings by the first shuffled search of a new day
    Column("shuffle_day", BigInteger, nullable=False),
    Column("shuffle_rank", BigInteger, nullable=False),
    Column("text_rowid", BigInteger, nullable=False, unique=True),  # random: its row in SQLite's FTS5 index
    Column("created_at", BigInteger, nullable=False),          # unix ms
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Column("hidden_at", BigInteger, nullable=True),            # moderation: hidden since
    Column("hidden_reason", Text, nullable=True),
    Column("search_text", Text, nullable=False, server_default=""),  # core.exchange.search_text(title + description)
    Index("ix_listings_created_at", "created_at"),
    Index("ix_listings_author", "author"),
    Index("ix_listings_expires_at", "expires_at"),
    Index("ix_listings_shuffle_rank", "shuffle_rank", "id"),
    Index("ix_listings_shuffle_day", "shuffle_day"),
)

# Every hide and unhide, shown to the author with the listing.
listing_moderation = Table(
    "listing_moderation", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("listing_id", String(32), ForeignKey("listings.id"), nullable=False),
    Column("action", String(6), nullable=False),               # hide | unhide
    Column("moderator", ADDRESS, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_listing_moderation_listing_id", "listing_id"),
)

conversations = Table(
    "conversations", metadata,
    Column("id", String(32), primary_key=True),
    Column("listing_id", String(32), ForeignKey("listings.id"), nullable=False),
    Column("author", ADDRESS, nullable=False),                 # the listing's author
    Column("responder", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),             # the latest message
    UniqueConstraint("listing_id", "responder"),
    Index("ix_conversations_author_last_at", "author", "last_at"),
    Index("ix_conversations_responder_last_at", "responder", "last_at"),
)

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False),
    Column("sender", ADDRESS, nullable=False),
    Column("body", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_messages_conversation_id_id", "conversation_id", "id"),
)

arrangements = Table(
    "arrangements", metadata,
    Column("id", String(32), primary_key=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False),
    Column("listing_id", String(32), ForeignKey("listings.id"), nullable=False),
    Column("proposer", ADDRESS, nullable=False),
    Column("provider", ADDRESS, nullable=False),
    Column("receiver", ADDRESS, nullable=False),
    Column("what", Text, nullable=False),
    Column("when_text", Text, nullable=True),
    Column("minutes", BigInteger, nullable=True),
    Column("currency", String(12), ForeignKey("currencies.code"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),              # proposed | accepted | cancelled
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("request_id", LargeBinary(32), nullable=True),      # the linked payment request (not a FK: it outlives us)
    Index("ix_arrangements_provider_created_at", "provider", "created_at"),
    Index("ix_arrangements_receiver_created_at", "receiver", "created_at"),
    Index("ix_arrangements_conversation_id", "conversation_id"),
    Index("ix_arrangements_request_id", "request_id"),
)

thanks = Table(
    "thanks", metadata,
    Column("arrangement_id", String(32), ForeignKey("arrangements.id"), primary_key=True),
    Column("sender", ADDRESS, primary_key=True),
    Column("recipient", ADDRESS, nullable=False),
    Column("body", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
)

EXCHANGE_TABLES = (thanks, arrangements, messages, conversations, listing_moderation, listings)  # children first

# -- full-text search (migration 0010; outside the metadata) -------------------------------------
FTS_TABLE = "listings_fts"
SEARCH_INDEX = "ix_listings_search"
SEARCH_EXPR = "to_tsvector('simple', listings.search_text)"  # migration 0011: normalised text
SEARCH_INDEX_EXPR = "to_tsvector('simple', search_text)"


def is_search_object(name: str | None) -> bool:
    """The FTS5 table and its shadow tables (SQLite) or the GIN index (PostgreSQL)."""
    return bool(name) and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_") or name == SEARCH_INDEX)


def schema_include_name(name, type_, parent_names) -> bool:
    """Alembic `include_name`: compare everything but the search objects above."""
    return not is_search_object(name)


# -- the board's statistics, frozen per closed month (migration 0011) ----------------------------
# Aggregates only: no address, no arrangement id. Written once per closed (UTC) month, so what
# /v1/stats releases for a month never changes when retention later erases the arrangements.
exchange_stats_months = Table(
    "exchange_stats_months", metadata,
    Column("month", String(7), primary_key=True),              # "2026-10": frozen
    Column("frozen_at", BigInteger, nullable=False),
)

exchange_stats_cells = Table(
    "exchange_stats_cells", metadata,
    Column("month", String(7), primary_key=True),
    Column("category", String(40), primary_key=True),
    Column("minutes", BigInteger, nullable=False),
    Column("arrangements", BigInteger, nullable=False),
    Column("providers", BigInteger, nullable=False),           # distinct, counted at freezing
    Column("receivers", BigInteger, nullable=False),
    Column("top_provider_minutes", BigInteger, nullable=False),  # the dominance rule's inputs
    Column("top_receiver_minutes", BigInteger, nullable=False),
)
