"""The unit of work on SQLAlchemy (SQLite and PostgreSQL): one connection, one transaction.

`lock_head()` is the lock every writer of the log takes: BEGIN IMMEDIATE already holds
SQLite's write lock, PostgreSQL takes a row lock on ledger_head (READ COMMITTED: every
statement after it sees what the previous lock holder committed). The posting statements run
on the driver's cursor (ledger.store.posting_sql: SQLAlchemy's per-statement cost would be
most of a posting's time); the rest uses SQLAlchemy Core on the same connection. Any
database exception leaves this class as a ledger.core.errors.LedgerError (store.errors)."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import Engine, and_, insert, or_, select, update

from ..core.errors import IntegrityViolation
from ..core.rules import AccountState, Position
from ..request_rules import RequestRecord
from ..unit_of_work import PostingBatch, UnitOfWork
from . import tables as T
from .errors import as_domain_error
from .federation_repo import FederationRepository
from .posting_sql import PostingSQL, columns, driver_cursor
from .stored import account_state, entry_body
from .request_tables import payment_requests as R

NONCE_LOOKUP_CHUNK = 250  # (signer, nonce) pairs per lookup: an OR of pairs, kept under SQLite's depth cap

# The one transfer that pays a request: same id, payer, payee, currency and amount. The
# unique index uq_transfers_request_key guarantees there is at most one, and serves the join.
# An open request (payer NULL, docs/shops.md) is paid by whoever paid it: the posting lock lets
# only one transfer pay it (ledger.request_rules.check_transfer_naming).
PAYS = and_(T.transfers.c.request_id == R.c.id, or_(R.c.payer.is_(None), T.transfers.c.payer == R.c.payer),
            T.transfers.c.payee == R.c.payee, T.transfers.c.currency == R.c.currency,
            T.transfers.c.amount == R.c.amount)
REQUESTS_WITH_PAYMENT = select(R, T.transfers.c.seq.label("pay_seq"), T.transfers.c.payer.label("pay_payer")) \
    .select_from(R.outerjoin(T.transfers, PAYS))


def request_record(row) -> RequestRecord:
    return RequestRecord(bytes(row.id), row.payee, row.payer, row.currency, row.amount, row.memo,
                         row.created_at, row.expires_at, row.status == "declined", row.pay_seq, row.pay_payer)


class SqlUnitOfWork(FederationRepository, UnitOfWork):
    def __init__(self, engine: Engine, sql: PostingSQL, *, readonly: bool = False):
        self.engine, self.sql, self.readonly = engine, sql, readonly
        self.conn = self._tx = self._cur = None

    def __enter__(self) -> "SqlUnitOfWork":
        try:
            conn = self.engine.connect()
            try:
                if self.readonly:  # SQLite: a plain BEGIN, readers never take the write lock
                    conn.execution_options(ayni_readonly=True)
                self._tx = conn.begin()
            except BaseException:
                conn.close()
                raise
        except Exception as exc:  # noqa: BLE001 - translated or re-raised unchanged
            _raise_translated(exc)
        self.conn, self._cur = conn, None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        except Exception as failure:  # noqa: BLE001
            if exc is None:  # the commit failed: nothing written, or (connection lost) unknown
                self._close()
                _raise_translated(failure)
        self._close()
        if exc is not None and isinstance(exc, Exception):
            mapped = as_domain_error(exc)
            if mapped is not None:
                raise mapped from exc

    def _close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the connection is discarded either way
            pass

    @property
    def cur(self):
        if self._cur is None:
            self._cur = driver_cursor(self.conn)
        return self._cur

    # -- the log head ----------------------------------------------------------------------------
    def lock_head(self):
        """The head, locked; checked against the entry it names (one primary-key lookup): a head
        moved without its entry would have the next posting leave a gap in the log, or chain
        onto a hash no entry has."""
        self.cur.execute(self.sql.head)
        row = self.cur.fetchone()
        if row is None:
            return None
        seq, chain_hash = row[0], bytes(row[1])
        if seq:
            self.cur.execute(self.sql.entries_from, (seq,))
            _check_head(seq, chain_hash, self.cur.fetchall())
        return seq, chain_hash

    def lock_and_load(self, addresses, pairs):
        """PostgreSQL: the head lock and every read a posting needs in one round trip (a pipeline:
        the server runs them in order, so the reads run after the lock is granted and, at READ
        COMMITTED, see everything the previous holder committed)."""
        if not self.sql.pg:
            return super().lock_and_load(addresses, pairs)
        sql, pg = self.sql, self.conn.connection.driver_connection
        addrs = sorted(set(addresses))
        pairs = sorted(set(pairs))
        head, entries, accounts, positions, nonces = (pg.cursor() for _ in range(5))
        with pg.pipeline():
            head.execute(sql.head)
            entries.execute(sql.head_entries)
            accounts.execute(sql.accounts_any, (addrs,))
            positions.execute(sql.positions_any, (addrs,))
            nonces.execute(sql.nonces_any, ([a for a, _ in pairs], [n for _, n in pairs]))
        row = head.fetchone()
        if row is None:
            return None, {}, {}, {}
        seq, chain_hash = row[0], bytes(row[1])
        if seq:
            _check_head(seq, chain_hash, entries.fetchall())
        return ((seq, chain_hash),
                {a: account_state(a, role, status) for a, role, status in accounts.fetchall()},
                {(a, c): Position(balance, limit, ceiling, out, in_)
                 for a, c, balance, limit, ceiling, out, in_ in positions.fetchall()},
                {(signer, int(nonce)): (bytes(digest), seq) for signer, nonce, digest, seq in nonces.fetchall()})

    def chain_hash_at(self, seq: int) -> bytes | None:
        """The chain hash of entry `seq` (the service's fork guard: ledger.service.Ledger)."""
        r = self.conn.execute(select(T.entries.c.chain_hash).where(T.entries.c.seq == seq)).first()
        return bytes(r.chain_hash) if r else None

    def head(self):
        r = self.conn.execute(select(T.ledger_head.c.seq, T.ledger_head.c.chain_hash)).first()
        return (r.seq, bytes(r.chain_hash)) if r else None

    def genesis_body(self):
        r = self.conn.execute(select(T.entries.c.body).where(T.entries.c.seq == 1)).first()
        return entry_body(1, r.body) if r else None

    # -- accounts and balances -------------------------------------------------------------------
    def accounts(self, addresses: Iterable[str] | None = None) -> dict[str, AccountState]:
        if addresses is None:
            rows = self.conn.execute(select(T.accounts.c.address, T.accounts.c.role, T.accounts.c.status)
                                     .order_by(T.accounts.c.opened_seq)).all()
        else:
            addrs = sorted(set(addresses))
            if not addrs:
                return {}
            self.cur.execute(self.sql.accounts(len(addrs)), addrs)
            rows = self.cur.fetchall()
        return {a: account_state(a, role, status) for a, role, status in rows}

    def positions(self, addresses: Iterable[str] | None = None) -> dict[tuple[str, str], Position]:
        if addresses is None:
            rows = self.conn.execute(select(T.balances.c.address, T.balances.c.currency, T.balances.c.balance,
                                            T.balances.c.credit_limit, T.balances.c.ceiling, T.balances.c.held_out,
                                            T.balances.c.held_in)).all()
        else:
            addrs = sorted(set(addresses))
            if not addrs:
                return {}
            self.cur.execute(self.sql.positions(len(addrs)), addrs)
            rows = self.cur.fetchall()
        return {(a, c): Position(balance, limit, ceiling, out, in_) for a, c, balance, limit, ceiling, out, in_ in rows}

    def nonces(self, pairs):
        pairs = sorted(set(pairs))
        found: dict[tuple[str, int], tuple[bytes, int]] = {}
        for i in range(0, len(pairs), NONCE_LOOKUP_CHUNK):  # SQLite caps expression depth at 1000
            chunk = pairs[i:i + NONCE_LOOKUP_CHUNK]
            self.cur.execute(self.sql.nonces(len(chunk)), [x for pair in chunk for x in pair])
            for signer, nonce, digest, seq in self.cur.fetchall():
                found[(signer, int(nonce))] = (bytes(digest), seq)
        return found

    # -- payment requests ------------------------------------------------------------------------
    def requests(self, ids):
        ids = sorted(set(ids))
        if not ids:
            return {}
        rows = self.conn.execute(REQUESTS_WITH_PAYMENT.where(R.c.id.in_(ids))).all()
        return {bytes(r.id): request_record(r) for r in rows}

    def add_request(self, request: RequestRecord) -> None:
        self.conn.execute(insert(R).values(
            id=request.id, payee=request.payee, payer=request.payer, currency=request.currency,
            amount=request.amount, memo=request.memo, created_at=request.created_at,
            expires_at=request.expires_at, status="open", paid_seq=None, declined_at=None))

    def decline_request(self, request_id: bytes, at: int) -> None:
        self.conn.execute(update(R).where(R.c.id == request_id).values(status="declined", declined_at=at))

    # -- refunds (ledger.core.refunds) ------------------------------------------------------------
    def refundables(self, seqs):
        from .shop_refunds import load_refundables  # shops' SQL lives beside their tables
        return load_refundables(self.conn, seqs)

    # -- writing -----------------------------------------------------------------------------------
    def start_log(self, currencies: list[tuple]) -> None:
        self.conn.execute(insert(T.currencies), [dict(zip(("code", "name", "style", "decimals"), c))
                                                 for c in currencies])
        self.conn.execute(insert(T.ledger_head), [{"id": 1, "seq": 0, "chain_hash": bytes(32)}])

    def write(self, b: PostingBatch) -> None:
        if self.sql.pg:
            return self._write_pg(b, commit=False)
        sql, cur = self.sql, self.cur
        if b.entries:
            cur.executemany(sql.insert_entry, b.entries)
        if b.new_accounts:
            cur.executemany(sql.insert_account, b.new_accounts)
        if b.new_positions:
            cur.executemany(sql.insert_balance, b.new_positions)
        if b.statuses:
            cur.executemany(sql.update_status, b.statuses)
        if b.positions:
            cur.executemany(sql.update_balance, b.positions)
        if b.nonces:
            cur.executemany(sql.insert_nonce, b.nonces)
        if b.transfers:
            cur.executemany(sql.insert_transfer, b.transfers)
        if b.memos:
            cur.executemany(sql.insert_memo, b.memos)
        if b.paid_requests:
            cur.executemany(sql.mark_request_paid, b.paid_requests)
        if b.refunds:  # the refund links, a projection of each refund's refundOf
            from .shop_tables import refund_links
            self.conn.execute(insert(refund_links), [dict(zip(("seq", "original_seq", "refund_nonce", "amount"), r, strict=True))
                                                     for r in b.refunds])
        if b.head is not None:
            cur.execute(sql.move_head, b.head)

    def write_last(self, b: PostingBatch) -> None:
        if self.sql.pg:
            return self._write_pg(b, commit=True)
        return self.write(b)

    def _write_pg(self, b: PostingBatch, *, commit: bool) -> None:
        """One round trip for the whole batch (a pipeline), one statement per table (unnest), and
        with `commit` the COMMIT in the same round trip. A failing statement aborts the rest of
        the pipeline, COMMIT included, and the transaction rolls back: nothing half-written."""
        sql, cur, pg = self.sql, self.cur, self.conn.connection.driver_connection
        with pg.pipeline():
            if b.entries:
                cur.execute(sql.insert_entries, columns(b.entries))
            if b.new_accounts:
                cur.executemany(sql.insert_account, b.new_accounts)
            if b.new_positions:
                cur.executemany(sql.insert_balance, b.new_positions)
            if b.statuses:
                cur.executemany(sql.update_status, b.statuses)
            if b.positions:
                cur.execute(sql.update_balances, columns(b.positions))
            if b.nonces:
                cur.execute(sql.insert_nonces, columns(b.nonces))
            if b.transfers:
                cur.execute(sql.insert_transfers, columns(b.transfers))
            if b.memos:
                cur.execute(sql.insert_memos, columns(b.memos))
            if b.paid_requests:
                cur.executemany(sql.mark_request_paid, b.paid_requests)
            if b.refunds:  # the refund links, a projection of each refund's refundOf
                cur.executemany("INSERT INTO refund_links (seq, original_seq, refund_nonce, amount) "
                                "VALUES (%s, %s, %s, %s)", b.refunds)
            if b.head is not None:
                cur.execute(sql.move_head, b.head)
            if commit:  # psycopg's own commit() then finds no transaction open and sends nothing
                cur.execute("COMMIT")


def _check_head(seq: int, chain_hash: bytes, rows) -> None:
    """The locked head against the entry it names (and nothing beyond it)."""
    problem = ("there is no such entry" if not rows or rows[0][0] != seq else
               "that entry's chain hash differs" if bytes(rows[0][1]) != chain_hash else
               f"entry {rows[1][0]} lies beyond it" if len(rows) > 1 else None)
    if problem:
        # a head moved back would otherwise make every posting collide with an existing
        # entry and be told to retry for ever; moved forward, it would open a gap
        raise IntegrityViolation(f"the log's head names entry {seq}, but {problem}: the database "
                                 "was altered; nothing was written (run `ayni verify`)")


def _raise_translated(exc: Exception):
    mapped = as_domain_error(exc)
    if mapped is None:
        raise exc
    raise mapped from exc
