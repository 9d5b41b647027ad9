"""Use cases: initialise a community, submit signed actions, read balances, verify.

Posting discipline (docs/ledger-model.md, "Why posting is safe"):
1. Everything that needs no database happens first, outside any lock: field
   validation, memo commitment, EIP-712 digest, signature recovery, expiry.
2. One database transaction per batch: lock the log head (BEGIN IMMEDIATE on
   SQLite, SELECT ... FOR UPDATE on PostgreSQL), load the touched accounts,
   run the pure rules (ledger.core.state.apply_action) for each action in order,
   write entries + projections + nonces, move the head, commit. Each action is
   atomic on its own: a refused one leaves no trace and does not affect the others.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from sqlalchemy import Engine, bindparam, func, insert, select, update

from .core import errors as E
from .core.amounts import Currency
from .core.entries import Entry, canonical_body, verify_chain
from .core.hashing import ZERO32
from .core.rules import AccountState, Position, check_nonce, check_not_expired
from .core.state import KIND_OF, Genesis, LedgerState, action_body, zero_sum_faults
from .core.typed_data import Action, Transfer, canonical_signature, memo_hash, recover_signer
from .store import tables as T
from .store.db import make_engine, resolve_url  # noqa: F401 - faces resolve --db through the service
from .store.posting_sql import PostingSQL, driver_cursor
from .store.migrate import is_current, upgrade


NONCE_LOOKUP_CHUNK = 250  # (signer, nonce) pairs per lookup: an OR of pairs, kept under SQLite's depth cap


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Submission:
    """A signed action as a client sends it; the memo (if any) travels beside the
    signed memoHash so it can be stored off-log and erased later."""

    action: Action
    signature: str
    memo: str | None = None
    memo_salt: bytes | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    seq: int
    kind: str
    digest: str
    duplicate: bool  # True: an idempotent retry; the original entry is `seq`


@dataclass(frozen=True, slots=True)
class _Prepared:
    submission: Submission
    signer: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    chain_faults: list = field(default_factory=list)
    replay_faults: list = field(default_factory=list)
    balance_faults: list = field(default_factory=list)
    zero_sum_faults: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.chain_faults or self.replay_faults or self.balance_faults or self.zero_sum_faults)


MAX_MEMO_CHARS = 500


def check_memo(memo: object) -> None:
    if not isinstance(memo, str):
        raise E.InvalidInput("memo must be text")
    if len(memo) > MAX_MEMO_CHARS:
        raise E.InvalidInput(f"memo is longer than {MAX_MEMO_CHARS} characters")
    if "\x00" in memo or any(0xD800 <= ord(ch) <= 0xDFFF for ch in memo):
        raise E.InvalidInput("memo contains a NUL or an unpaired surrogate character")
    # Bidi controls let a note reorder what is shown around it ("5.00" read as "00.5"); memos
    # are committed as hashes, so this refuses only new notes.
    bidi = next((ch for ch in memo if ch in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)
    if bidi is not None:
        raise E.InvalidInput(f"memo contains the bidirectional control character U+{ord(bidi):04X}; "
                             "write the note without direction overrides")


def _request_key(action) -> tuple | None:
    """The key of uq_transfers_request_key: at most one transfer pays a payment request."""
    if isinstance(action, Transfer) and action.request_id != ZERO32:
        return (action.request_id, action.payer, action.payee, action.currency, action.amount)
    return None


def entry_from_row(row) -> Entry:
    return Entry(row.seq, row.kind, row.at, json.loads(row.body), row.entry_hash, row.chain_hash)


def _body_text(body: dict) -> str:
    return canonical_body(body)


class Ledger:
    def __init__(self, engine: Engine, *, clock: Callable[[], int] = now_ms):
        self.engine = engine
        self.clock = clock
        self._sql = PostingSQL(engine.dialect.name)
        self._genesis: Genesis | None = None

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, **kwargs) -> "Ledger":
        engine = make_engine(url, create=migrate)
        if migrate:
            upgrade(engine)
        elif not is_current(engine):
            engine.dispose()
            raise E.NotInitialised("this database has no current Ayni schema: run `ayni init` first")
        return cls(engine, **kwargs)

    def schema_is_current(self) -> bool:
        """True when the database's migrations are at head (readiness checks ask this)."""
        return is_current(self.engine)

    def _reader(self):
        return self.engine.connect().execution_options(ayni_readonly=True)

    # -- community -----------------------------------------------------------------
    def initialise(self, genesis: Genesis) -> Entry:
        """Write the genesis entry: domain, currencies, defaults and the first treasurer."""
        with self.engine.begin() as conn:
            if conn.execute(select(T.ledger_head.c.seq)).first() is not None:
                raise E.LedgerError("this database already holds a community", code="already_initialised")
            at = self.clock()
            entry = Entry.make(1, "community.created", at, genesis.body(), ZERO32)
            conn.execute(insert(T.entries), [self._entry_row(entry)])
            conn.execute(insert(T.currencies), [
                {"code": c.code, "name": c.name, "style": c.style, "decimals": c.decimals}
                for c in genesis.currencies])
            self._insert_account(conn, genesis, genesis.treasurer, "treasurer", 1)
            conn.execute(insert(T.ledger_head), [{"id": 1, "seq": 1, "chain_hash": entry.chain_hash}])
        self._genesis = genesis
        return entry

    @property
    def genesis(self) -> Genesis:
        if self._genesis is None:
            with self._reader() as conn:
                row = conn.execute(select(T.entries).where(T.entries.c.seq == 1)).first()
            if row is None:
                raise E.NotInitialised("no community here yet: run `ayni init` first")
            self._genesis = Genesis.from_body(json.loads(row.body))
        return self._genesis

    @property
    def currencies(self) -> dict[str, Currency]:
        return {c.code: c for c in self.genesis.currencies}

    # -- writing -------------------------------------------------------------------
    def submit(self, submission: Submission) -> Posted:
        """Apply one signed action, or raise LedgerError (and write nothing)."""
        result = self.submit_many([submission])[0]
        if isinstance(result, E.LedgerError):
            raise result
        return result

    def submit_many(self, submissions: Sequence[Submission]) -> list[Posted | E.LedgerError]:
        """Apply a batch in one transaction (group commit); one result per submission, in order.
        Each action stands alone: a refusal is returned in its place, the others proceed."""
        genesis = self.genesis
        results: list[Posted | E.LedgerError | None] = [None] * len(submissions)
        prepared: list[tuple[int, _Prepared]] = []
        now = self.clock()
        for i, sub in enumerate(submissions):
            try:
                prepared.append((i, self._prepare(genesis, sub, now)))
            except E.LedgerError as exc:
                results[i] = exc
        if prepared:
            for i, outcome in self._write(genesis, prepared):
                results[i] = outcome
        return results  # type: ignore[return-value]

    def prepare(self, submission: Submission) -> _Prepared:
        """The database-free half of posting (validation, digest, signature recovery)."""
        return self._prepare(self.genesis, submission, self.clock())

    def write_prepared(self, prepared: list[tuple[int, _Prepared]]) -> list[tuple[int, Posted | E.LedgerError]]:
        """The database half, for callers that prepared elsewhere (ledger.group_commit)."""
        return self._write(self.genesis, prepared)

    def _prepare(self, genesis: Genesis, sub: Submission, now: int) -> _Prepared:
        action = sub.action
        if type(action) not in KIND_OF:
            raise E.InvalidInput(f"cannot submit {type(action).__name__}")
        if sub.memo is not None:
            check_memo(sub.memo)
        if isinstance(action, Transfer) and sub.memo:
            if memo_hash(sub.memo, sub.memo_salt) != action.memo_hash:
                raise E.MemoMismatch("memo and salt do not hash to the signed memoHash")
        elif sub.memo:
            raise E.InvalidInput("only transfers carry a memo")
        # No expiry check here: a retry of an already posted message must get its original
        # result even after validUntil; apply_action checks expiry after the duplicate check.
        digest = genesis.domain.digest(action.struct_hash())
        signer = recover_signer(digest, sub.signature)
        if isinstance(action, Transfer) and signer != action.payer:
            raise E.WrongSigner(f"transfer signed by {signer}, not by the payer {action.payer}")
        # one stored form per signature (lowercase hex, v = 27/28), never raw bytes
        sub = Submission(action, canonical_signature(sub.signature), sub.memo, sub.memo_salt)
        return _Prepared(sub, signer, digest)

    def _write(self, genesis: Genesis, prepared: list[tuple[int, _Prepared]]):
        addresses: set[str] = set()
        nonces: set[tuple[str, str]] = set()
        for _, p in prepared:
            a = p.submission.action
            addresses.update((a.payer, a.payee) if isinstance(a, Transfer) else (p.signer, a.account))
            nonces.add((p.signer, str(a.nonce)))
        sql = self._sql
        outcomes = []
        with self.engine.begin() as conn:
            cur = driver_cursor(conn)
            cur.execute(sql.head)
            head_seq, prev_chain = cur.fetchone()
            state, nonce_seq = self._load(cur, genesis, head_seq, addresses, nonces)
            # payment requests already paid, read under the head lock (uq_transfers_request_key)
            request_keys = {_request_key(p.submission.action) for _, p in prepared} - {None}
            paid = self._paid_requests(cur, request_keys) if request_keys else set()
            at = self.clock()
            entry_rows, transfer_rows, nonce_rows, memo_rows, new_accounts = [], [], [], [], []
            status_changed: set[str] = set()
            touched: set[tuple[str, str]] = set()
            for i, p in prepared:
                a, sub = p.submission.action, p.submission
                key = (p.signer, a.nonce)
                try:
                    if check_nonce(state.used_nonces.get(key), p.digest):
                        outcomes.append((i, Posted(nonce_seq[key], KIND_OF[type(a)], "0x" + p.digest.hex(), True)))
                        continue
                    rkey = _request_key(a)
                    if rkey is not None and rkey in paid:
                        raise E.RequestAlreadyPaid("this payment request is already paid")
                    seq = state.seq + 1
                    state.apply_action(seq, at, a, p.signer, p.digest)
                    if rkey is not None:
                        paid.add(rkey)
                except E.LedgerError as exc:
                    outcomes.append((i, exc))
                    continue
                kind = KIND_OF[type(a)]
                # action_body holds only strings and ints below 2**53 (amounts are
                # bounded by MAX_AMOUNT), so its canonical text needs no re-validation.
                body = action_body(a, p.signer, sub.signature, p.digest)
                body_text = canonical_body(body, validate=False)
                entry = Entry.from_body_text(seq, kind, at, body, body_text, prev_chain)
                prev_chain = entry.chain_hash
                entry_rows.append((seq, kind, at, body_text, entry.entry_hash, entry.chain_hash))
                nonce_rows.append((p.signer, str(a.nonce), p.digest, seq))
                nonce_seq[key] = seq
                if kind == "transfer.posted":
                    transfer_rows.append((seq, a.payer, a.payee, a.currency, a.amount,
                                          None if a.request_id == ZERO32 else a.request_id, at))
                    touched.update(((a.payer, a.currency), (a.payee, a.currency)))
                    if sub.memo:
                        memo_rows.append((seq, sub.memo_salt, sub.memo))
                elif kind == "account.opened":
                    new_accounts.append((a.account, a.role, seq))
                elif kind == "limit.set":
                    touched.add((a.account, a.currency))
                else:
                    status_changed.add(a.account)
                outcomes.append((i, Posted(seq, kind, "0x" + p.digest.hex(), False)))
            if entry_rows:
                cur.executemany(sql.insert_entry, entry_rows)
                for address, role, seq in new_accounts:
                    # default rows first; the balance update below then writes whatever
                    # later actions in this batch did to the new account
                    self._insert_account(conn, genesis, address, role, seq)
                if status_changed:
                    cur.executemany(sql.update_status, [(state.accounts[a].status, a) for a in sorted(status_changed)])
                if touched:
                    positions = state.positions
                    cur.executemany(sql.update_balance, [
                        (positions[k].balance, positions[k].credit_limit, positions[k].ceiling, k[0], k[1])
                        for k in sorted(touched)])
                cur.executemany(sql.insert_nonce, nonce_rows)
                if transfer_rows:
                    cur.executemany(sql.insert_transfer, transfer_rows)
                if memo_rows:
                    cur.executemany(sql.insert_memo, memo_rows)
                cur.execute(sql.move_head, (state.seq, prev_chain))
        return outcomes

    def _paid_requests(self, cur, keys: set[tuple]) -> set[tuple]:
        ids = sorted({k[0] for k in keys})
        cur.execute(self._sql.paid_requests(len(ids)), ids)
        return {(bytes(r), payer, payee, cur_, amount) for r, payer, payee, cur_, amount in cur.fetchall()}

    def _load(self, cur, genesis: Genesis, head_seq: int, addresses: set[str], nonces: set[tuple[str, str]]):
        """A partial LedgerState holding just the accounts and nonces this batch touches."""
        sql, addrs, nonce_list = self._sql, sorted(addresses), sorted(nonces)
        state = LedgerState(genesis=genesis, seq=head_seq)
        cur.execute(sql.accounts(len(addrs)), addrs)
        for address, role, status in cur.fetchall():
            state.accounts[address] = AccountState(address, role, status)
        cur.execute(sql.positions(len(addrs)), addrs)
        for address, currency, balance, credit_limit, ceiling in cur.fetchall():
            state.positions[(address, currency)] = Position(balance, credit_limit, ceiling)
        nonce_seq: dict[tuple[str, int], int] = {}
        for i in range(0, len(nonce_list), NONCE_LOOKUP_CHUNK):  # SQLite caps expression depth at 1000
            chunk = nonce_list[i:i + NONCE_LOOKUP_CHUNK]
            cur.execute(sql.nonces(len(chunk)), [x for pair in chunk for x in pair])
            for signer, nonce, digest, seq in cur.fetchall():
                state.used_nonces[(signer, int(nonce))] = bytes(digest)
                nonce_seq[(signer, int(nonce))] = seq
        return state, nonce_seq

    def _insert_account(self, conn, genesis: Genesis, address: str, role: str, seq: int) -> None:
        conn.execute(insert(T.accounts), [{"address": address, "role": role, "status": "active",
                                           "opened_seq": seq}])
        rows = []
        for c in genesis.currencies:
            limit, ceiling = genesis.default_for(c.code, role)
            rows.append({"address": address, "currency": c.code, "balance": 0,
                         "credit_limit": limit, "ceiling": ceiling})
        conn.execute(insert(T.balances), rows)

    @staticmethod
    def _entry_row(entry: Entry) -> dict:
        return {"seq": entry.seq, "kind": entry.kind, "at": entry.at, "body": _body_text(entry.body),
                "entry_hash": entry.entry_hash, "chain_hash": entry.chain_hash}

    # -- profiles (personal data, never in the log) ------------------------------------
    def set_profile(self, address: str, *, display_name: str | None, contact: str | None = None) -> None:
        with self.engine.begin() as conn:
            if conn.execute(select(T.accounts.c.address).where(T.accounts.c.address == address)).first() is None:
                raise E.UnknownAccount(f"{address} has no account here")
            values = {"display_name": display_name, "contact": contact, "updated_at": self.clock()}
            if conn.execute(update(T.profiles).where(T.profiles.c.address == address).values(**values)).rowcount == 0:
                conn.execute(insert(T.profiles).values(address=address, **values))

    def profiles(self) -> dict[str, str | None]:
        with self._reader() as conn:
            return {r.address: r.display_name for r in conn.execute(select(T.profiles))}

    # -- reading -------------------------------------------------------------------
    def account(self, address: str) -> AccountState | None:
        with self._reader() as conn:
            r = conn.execute(select(T.accounts).where(T.accounts.c.address == address)).first()
        return AccountState(r.address, r.role, r.status) if r else None

    def accounts(self) -> list[AccountState]:
        with self._reader() as conn:
            return [AccountState(r.address, r.role, r.status)
                    for r in conn.execute(select(T.accounts).order_by(T.accounts.c.opened_seq))]

    def positions(self, address: str | None = None) -> dict[tuple[str, str], Position]:
        q = select(T.balances)
        if address is not None:
            q = q.where(T.balances.c.address == address)
        with self._reader() as conn:
            return {(r.address, r.currency): Position(r.balance, r.credit_limit, r.ceiling)
                    for r in conn.execute(q)}

    def balance_sheet(self) -> tuple[int, bytes, dict[tuple[str, str], Position]]:
        """(head seq, head chain hash, every position) from one read snapshot, so a reconciler
        can replay the log up to exactly that seq and compare."""
        from .audit import _snapshot
        with _snapshot(self.engine) as conn, conn.begin():
            r = conn.execute(select(T.ledger_head)).first()
            positions = {(b.address, b.currency): Position(b.balance, b.credit_limit, b.ceiling)
                         for b in conn.execute(select(T.balances))}
        return (r.seq, r.chain_hash, positions) if r else (0, ZERO32, positions)

    def head(self) -> tuple[int, bytes]:
        with self._reader() as conn:
            r = conn.execute(select(T.ledger_head)).first()
        return (r.seq, r.chain_hash) if r else (0, ZERO32)

    def iter_entries(self, after_seq: int = 0, page: int = 2000) -> Iterator[Entry]:
        """All entries after `after_seq`, in order, fetched page by page (constant memory)."""
        while True:
            with self._reader() as conn:
                rows = conn.execute(select(T.entries).where(T.entries.c.seq > after_seq)
                                    .order_by(T.entries.c.seq).limit(page)).all()
            for r in rows:
                yield entry_from_row(r)
            if len(rows) < page:
                return
            after_seq = rows[-1].seq

    def memo(self, seq: int) -> str | None:
        with self._reader() as conn:
            r = conn.execute(select(T.memos.c.memo).where(T.memos.c.seq == seq)).first()
        return r.memo if r else None

    def transfer_count(self) -> int:
        with self._reader() as conn:
            return conn.execute(select(func.count()).select_from(T.transfers)).scalar_one()

    # -- verification --------------------------------------------------------------
    def verify(self, *, verify_signatures: bool = True) -> VerifyReport:
        """Invariants 1, 3 and 4 and every projection, from one read snapshot (ledger.audit)."""
        from .audit import audit
        return audit(self, verify_signatures=verify_signatures)
