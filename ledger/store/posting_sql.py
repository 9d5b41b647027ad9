"""The posting hot path in plain SQL on the driver's cursor.

Same tables as ledger.store.tables, same transaction as the surrounding SQLAlchemy
connection; only the statement building is skipped. SQLAlchemy's per-statement
compile and result machinery cost ~0.2 ms a statement here, five times the
database work itself, and a posting runs about eight statements (measured in
benchmarks/posting.py; see docs/ledger-model.md)."""
from __future__ import annotations

from functools import lru_cache


class PostingSQL:
    def __init__(self, dialect: str):
        self.pg = dialect == "postgresql"
        mark = "%s" if self.pg else "?"
        self._mark = mark
        self.head = ("SELECT seq, chain_hash FROM ledger_head WHERE id = 1"
                     + (" FOR UPDATE" if self.pg else ""))
        # the head's own entry and whether any entry lies beyond it (two rows at most, by primary key)
        self.entries_from = f"SELECT seq, chain_hash FROM entries WHERE seq >= {mark} ORDER BY seq LIMIT 2"
        self.move_head = f"UPDATE ledger_head SET seq = {mark}, chain_hash = {mark} WHERE id = 1"
        self.insert_entry = f"INSERT INTO entries (seq, kind, at, body, entry_hash, chain_hash) VALUES ({', '.join([mark] * 6)})"
        self.insert_nonce = f"INSERT INTO signed_actions (signer, nonce, digest, seq) VALUES ({', '.join([mark] * 4)})"
        self.insert_transfer = ("INSERT INTO transfers (seq, payer, payee, currency, amount, request_id, at) "
                                f"VALUES ({', '.join([mark] * 7)})")
        self.insert_memo = f"INSERT INTO memos (seq, salt, memo) VALUES ({mark}, {mark}, {mark})"
        self.update_balance = (f"UPDATE balances SET balance = {mark}, credit_limit = {mark}, ceiling = {mark} "
                               f"WHERE address = {mark} AND currency = {mark}")
        self.update_position = (f"UPDATE balances SET balance = {mark}, credit_limit = {mark}, ceiling = {mark}, "
                                f"held_out = {mark}, held_in = {mark} WHERE address = {mark} AND currency = {mark}")
        self.update_status = f"UPDATE accounts SET status = {mark} WHERE address = {mark}"
        self.insert_account = f"INSERT INTO accounts (address, role, status, opened_seq) VALUES ({', '.join([mark] * 4)})"
        self.insert_balance = ("INSERT INTO balances (address, currency, balance, credit_limit, ceiling) "
                               f"VALUES ({', '.join([mark] * 5)})")
        # the cache of a request's status, written in the transaction that posts its payment
        self.mark_request_paid = f"UPDATE payment_requests SET status = 'paid', paid_seq = {mark} WHERE id = {mark}"
        if self.pg:
            # PostgreSQL: one statement per table and batch, whatever its size (arrays, unnest),
            # so a batch of 500 transfers costs the server three inserts, not 1,500, and the
            # statement text never changes (psycopg prepares it once per connection). %b: arrays
            # travel in binary, which spares psycopg escaping every element of a text array.
            self.head_entries = ("SELECT seq, chain_hash FROM entries WHERE seq >= "
                                 "(SELECT seq FROM ledger_head WHERE id = 1) ORDER BY seq LIMIT 2")
            self.accounts_any = "SELECT address, role, status FROM accounts WHERE address = ANY(%s::text[])"
            self.positions_any = ("SELECT address, currency, balance, credit_limit, ceiling, held_out, held_in "
                                  "FROM balances WHERE address = ANY(%s::text[])")
            self.nonces_any = ("SELECT s.signer, s.nonce, s.digest, s.seq FROM signed_actions s "
                               "JOIN unnest(%s::text[], %s::text[]) AS k(signer, nonce) "
                               "ON s.signer = k.signer AND s.nonce = k.nonce")
            self.insert_entries = ("INSERT INTO entries (seq, kind, at, body, entry_hash, chain_hash) SELECT * FROM "
                                   "unnest(%b::bigint[], %b::text[], %b::bigint[], %b::text[], %b::bytea[], %b::bytea[])")
            self.insert_nonces = ("INSERT INTO signed_actions (signer, nonce, digest, seq) SELECT * FROM "
                                  "unnest(%b::text[], %b::text[], %b::bytea[], %b::bigint[])")
            self.insert_transfers = ("INSERT INTO transfers (seq, payer, payee, currency, amount, request_id, at) "
                                     "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], "
                                     "%b::bigint[], %b::bytea[], %b::bigint[])")
            self.insert_memos = ("INSERT INTO memos (seq, salt, memo) SELECT * FROM "
                                 "unnest(%b::bigint[], %b::bytea[], %b::text[])")
            self.update_balances = ("UPDATE balances AS b SET balance = v.balance, credit_limit = v.credit_limit, "
                                    "ceiling = v.ceiling FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], "
                                    "%b::text[], %b::text[]) AS v(balance, credit_limit, ceiling, address, currency) "
                                    "WHERE b.address = v.address AND b.currency = v.currency")

    @lru_cache(maxsize=256)
    def _marks(self, n: int) -> str:
        return ", ".join([self._mark] * n)

    def accounts(self, n: int) -> str:
        return f"SELECT address, role, status FROM accounts WHERE address IN ({self._marks(n)})"

    def positions(self, n: int) -> str:
        return ("SELECT address, currency, balance, credit_limit, ceiling, held_out, held_in FROM balances "
                f"WHERE address IN ({self._marks(n)})")

    @lru_cache(maxsize=256)
    def nonces(self, n: int) -> str:
        """Exact (signer, nonce) primary-key lookups: a plain `nonce IN (...)` cannot use
        the (signer, nonce) key and scans the whole table under the head lock."""
        pair = f"(signer = {self._mark} AND nonce = {self._mark})"
        return f"SELECT signer, nonce, digest, seq FROM signed_actions WHERE {' OR '.join([pair] * n)}"


def driver_cursor(conn):
    """The DB-API cursor of a SQLAlchemy Connection, inside its current transaction."""
    return conn.connection.driver_connection.cursor()


def columns(rows: list[tuple]) -> list[list]:
    """Rows as one list per column: the parameters of the unnest(...) statements above."""
    return [list(c) for c in zip(*rows)]
