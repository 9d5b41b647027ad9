"""Shops (ledger/shops.py, docs/shops.md): the public profile a shop publishes, what a till adds
to a payment request (till label, mixed-payment reference, checkout), a customer's consent to
show their name for one payment, refund intents, and the refund links projected from the log.

Only `refund_links` is a projection of the entry log (each refund's `refundOf`, written in the
transaction that posts the refund); everything else is off-log data of the shop or customer,
declared in ledger/privacy/policy.json. Created by migration 00NN_shop (after 0011)."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from .tables import ADDRESS, metadata

# public data the shop chooses to publish (unpublished: kept for the shop only; erasable)
shop_profiles = Table(
    "shop_profiles", metadata,
    Column("address", ADDRESS, ForeignKey("accounts.address"), primary_key=True),
    Column("name", Text, nullable=False),
    Column("postal_address", Text, nullable=True),
    Column("opening_hours", Text, nullable=True),
    Column("credit_share_bp", Integer, nullable=True),       # mixed payments: share of a price in credit
    Column("published", Boolean, nullable=False),
    Column("updated_at", BigInteger, nullable=False),        # unix ms
)

# what a till adds to a payment request: label, mixed reference, whether a customer made it
shop_requests = Table(
    "shop_requests", metadata,
    Column("request_id", LargeBinary(32), ForeignKey("payment_requests.id"), primary_key=True),
    Column("shop", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("till", String(32), nullable=True),
    Column("total_minor", BigInteger, nullable=True),
    Column("credit_share_bp", Integer, nullable=True),
    Column("credit_minor", BigInteger, nullable=True),
    Column("checkout", Boolean, nullable=False),             # made by the customer from the standing code
    Index("ix_shop_requests_shop", "shop"),
)

# a customer's consent that the shop sees their display name for this one payment
shop_name_consents = Table(
    "shop_name_consents", metadata,
    Column("request_id", LargeBinary(32), ForeignKey("payment_requests.id"), primary_key=True),
    Column("member", ADDRESS, ForeignKey("accounts.address"), primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# a refund the shop prepared: the id its signed Transfer names (ledger.core.refunds.refund_id)
refund_intents = Table(
    "refund_intents", metadata,
    Column("id", LargeBinary(32), primary_key=True),
    Column("original_seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
    Column("refund_nonce", String(78), nullable=False),      # uint256 as decimal text
    Column("shop", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_refund_intents_original_seq", "original_seq"),
)

# projection of the log: refund entry -> the payment it returns
refund_links = Table(
    "refund_links", metadata,
    Column("seq", BigInteger, ForeignKey("entries.seq"), primary_key=True),
    Column("original_seq", BigInteger, ForeignKey("entries.seq"), nullable=False),
    Column("refund_nonce", String(78), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index("ix_refund_links_original_seq", "original_seq"),
)

SHOP_TABLES = (shop_profiles, shop_requests, shop_name_consents, refund_intents, refund_links)
