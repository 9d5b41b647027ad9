"""Payment requests (ledger/requests.py): a payee asks a payer for an amount.

Not part of the entry log: a request is an invitation to pay, and the payment itself is an
ordinary signed Transfer whose `requestId` names the request. Whether a request is paid
is therefore read from the `transfers` projection (a transfer with this request's id and
exactly its payer, payee, currency and amount); `status`/`paid_seq` here only cache it.

`uq_transfers_request_key` makes a second payment of one request impossible at the
database level: two transfers naming the same request with the same payer, payee,
currency and amount cannot both exist, whatever path posted them. It is partial
(`request_id IS NOT NULL`), so ordinary transfers are not in it at all. It is attached to
the `transfers` table from here so that importing this module makes the shared
`metadata` match what migration 0003 creates.

Created by migration 0003; defined on the shared `metadata` (import this module at the
end of ledger/store/tables.py so the schema test and `Community.snapshot()` see it).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, LargeBinary, String, Table, Text

from .tables import ADDRESS, metadata, transfers

payment_requests = Table(
    "payment_requests", metadata,
    Column("id", LargeBinary(32), primary_key=True),          # random; the Transfer's requestId
    Column("payee", ADDRESS, ForeignKey("accounts.address"), nullable=False),
    Column("payer", ADDRESS, ForeignKey("accounts.address"), nullable=True),  # NULL: an open request (any member pays once)
    Column("currency", String(12), ForeignKey("currencies.code"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("memo", Text, nullable=True),                      # personal data: erasable
    Column("created_at", BigInteger, nullable=False),         # unix ms, ledger clock
    Column("expires_at", BigInteger, nullable=False),         # unix ms
    Column("status", String(10), nullable=False),             # open | declined | paid (cache)
    Column("paid_seq", BigInteger, ForeignKey("entries.seq"), nullable=True),  # cache of the paying transfer
    Column("declined_at", BigInteger, nullable=True),         # unix ms
    Index("ix_payment_requests_payer_created_at", "payer", "created_at"),
    Index("ix_payment_requests_payee_created_at", "payee", "created_at"),
)

# At most one transfer per (request, payer, payee, currency, amount): no double payment.
request_key = Index(
    "uq_transfers_request_key",
    transfers.c.request_id, transfers.c.payer, transfers.c.payee, transfers.c.currency, transfers.c.amount,
    unique=True,
    sqlite_where=transfers.c.request_id.isnot(None),
    postgresql_where=transfers.c.request_id.isnot(None),
)
