"""Use cases: initialise a community, submit signed actions, read balances, verify.

Posting discipline (docs/ledger-model.md, "Why posting is safe"):
1. Everything that needs no database happens first, outside any lock: field
   validation, memo commitment, EIP-712 digest, signature recovery, expiry.
2. One unit of work per batch (ledger.unit_of_work): lock the log head (BEGIN
   IMMEDIATE on SQLite, SELECT ... FOR UPDATE on PostgreSQL), load the touched
   accounts, nonces and named payment requests, run the pure rules
   (ledger.core.state.apply_action, ledger.request_rules) for each action in order,
   write entries + projections + nonces, move the head, commit. Each action is
   atomic on its own: a refused one leaves no trace and does not affect the others.
Database failures reach callers as ledger.core.errors (the store translates them).
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

from sqlalchemy import Engine, func, insert, select, text, update

from .core import errors as E
from .core.amounts import Currency
from .core.entries import Entry, canonical_body
from .core.hashing import ZERO32
from .core.refunds import RefundTransfer, load_refunds
from .core.rules import AccountState, Position, check_nonce
from .core.state import KIND_OF, Genesis, LedgerState, action_body
from .core.text import check_memo, check_user_text  # check_memo: also re-exported for older importers
from .core.typed_data import Action, Transfer, canonical_signature, memo_hash, recover_signer
from .request_rules import check_transfer_naming
from .store import tables as T
from .store.db import make_engine, resolve_url  # noqa: F401 - faces resolve --db through the service
from .store.errors import domain_errors
from .store.stored import entry_body
from .store.migrate import is_current, upgrade
from .store.posting_sql import PostingSQL
from .store.unit_of_work import SqlUnitOfWork
from .unit_of_work import PostingBatch, UnitOfWork

# What a profile may hold (ledger.core.text's rule, these lengths): names and contacts are
# shown to other members next to amounts, so they obey the same rule as memos.
PROFILE_LIMITS = {"displayName": 120, "contact": 240}


# How long a posting waits for a lost database connection to come back (pool_pre_ping and the
# multi-host URL find the new primary) before answering 503: a failover that promotes within
# this window is invisible to clients, a slower one is retried by them (docs/high-availability.md).
WRITE_RETRY_S = 3.0
_log = logging.getLogger("ayni.ledger")


# A primary's current timeline is in its WAL file names; a standby's in its control file.
_TIMELINE_SQL = ("CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint()) "
                 "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END")


class Diverged(E.StoreConnectionLost):
    """The database's log is behind, or differs from, what this process saw (Ledger._guard)."""


class _ChainAt:
    """chain_hash_at on a plain connection (the fork guard outside a unit of work)."""

    def __init__(self, conn):
        self.conn = conn

    def chain_hash_at(self, seq: int) -> bytes | None:
        r = self.conn.execute(select(T.entries.c.chain_hash).where(T.entries.c.seq == seq)).first()
        return bytes(r.chain_hash) if r else None


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
    # the entry body and its canonical text depend on nothing the database holds: made here,
    # outside the head lock (in the caller's thread), so the writer only folds, hashes and writes
    body: dict | None = None
    body_text: str | None = None


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


def check_profile_field(what: str, value: object) -> str | None:
    """A profile field as stored: None for absent or empty, else text obeying the text rule."""
    if value is None or value == "":
        return None
    return check_user_text(value, field=what, max_chars=PROFILE_LIMITS[what])


def _paid(request, seq: int):
    return replace(request, paid_seq=seq)


def entry_from_row(row) -> Entry:
    # an unparseable stored body is IntegrityViolation, not an unexplained 500
    return Entry(row.seq, row.kind, row.at, entry_body(row.seq, row.body), row.entry_hash, row.chain_hash)


class Ledger:
    def __init__(self, engine: Engine | None = None, *, clock: Callable[[], int] = now_ms,
                 unit_of_work: Callable[..., UnitOfWork] | None = None, fork_guard: bool = False):
        """`unit_of_work(readonly=False)` makes a fresh UnitOfWork; by default one on `engine`.
        A ledger built on another unit of work (tests' in-memory one) has no engine: only the
        use cases that go through the unit of work (posting, requests, balances) work there."""
        self.engine = engine
        self.clock = clock
        if unit_of_work is None:
            sql = PostingSQL(engine.dialect.name)
            unit_of_work = lambda readonly=False: SqlUnitOfWork(engine, sql, readonly=readonly)  # noqa: E731
        self.unit_of_work = unit_of_work
        self._genesis: Genesis | None = None
        # The highest (seq, chain hash, server timeline) this process has read or written: the
        # fork guard (_guard). The timeline is re-read after each new database connection.
        self._seen: tuple[int, bytes, int | None] | None = None
        self._timeline_dirty = True
        # On in the long-running server (api.app): a process that already served the log must not
        # serve or post on an older or different one. Off in one-shot commands and in-process
        # tools, which start fresh, and so that a database altered in place is still served as it
        # is: catching that is verify's and reconcile's job, which need to read it.
        self.fork_guard = fork_guard
        if engine is not None and engine.dialect.name == "postgresql":
            from sqlalchemy import event

            @event.listens_for(engine, "connect")
            def _new_connection(*_):  # maybe another server now (a failover): re-read its timeline
                self._timeline_dirty = True
        self.on_close: list[Callable[[], None]] = []  # e.g. stop the erasure reclaimer's retries

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, **kwargs) -> "Ledger":
        with domain_errors():  # an unreachable server or a locked file is a LedgerError too
            engine = make_engine(url, create=migrate)
            try:
                if migrate:
                    upgrade(engine)
                elif not is_current(engine):
                    raise E.NotInitialised("this database has no current Ayni schema: run `ayni init` first")
            except BaseException:
                engine.dispose()
                raise
        return cls(engine, **kwargs)

    @classmethod
    def create(cls, url: str | None = None, **kwargs) -> "Ledger":
        """Open the database at `url`, creating it (and its schema) if needed: `ayni init`."""
        return cls.open(url, migrate=True, **kwargs)

    def close(self) -> None:
        """Release the database connections (a command's last step)."""
        while self.on_close:
            self.on_close.pop()()
        if self.engine is not None:
            self.engine.dispose()

    def schema_is_current(self) -> bool:
        """True when the database's migrations are at head (readiness checks ask this)."""
        with domain_errors():
            return is_current(self.engine)

    def _reader(self):
        return self.engine.connect().execution_options(ayni_readonly=True)

    @contextmanager
    def transaction(self):
        """A read-write SQLAlchemy connection in one transaction, for the off-log use cases
        (privacy, anchoring); database errors leave it as LedgerError."""
        with domain_errors(), self.engine.begin() as conn:
            yield conn

    # -- community -----------------------------------------------------------------
    def initialise(self, genesis: Genesis) -> Entry:
        """Write the genesis entry: domain, currencies, defaults and the first treasurer."""
        with self.unit_of_work() as uow:
            if uow.lock_head() is not None:
                raise E.LedgerError("this database already holds a community", code="already_initialised")
            at = self.clock()
            entry = Entry.make(1, "community.created", at, genesis.body(), ZERO32)
            uow.start_log([(c.code, c.name, c.style, c.decimals) for c in genesis.currencies])
            batch = PostingBatch(head=(1, entry.chain_hash))
            batch.entries.append((entry.seq, entry.kind, entry.at, canonical_body(entry.body), entry.entry_hash,
                                  entry.chain_hash))
            self._open_account(batch, genesis, genesis.treasurer, "treasurer", 1)
            uow.write(batch)
        self._genesis = genesis
        return entry

    @property
    def genesis(self) -> Genesis:
        if self._genesis is None:
            with self.unit_of_work(readonly=True) as uow:
                body = uow.genesis_body()
            if body is None:
                raise E.NotInitialised("no community here yet: run `ayni init` first")
            self._genesis = Genesis.from_body(body)
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
        # action_body holds only strings and ints below 2**53 (amounts are bounded by
        # MAX_AMOUNT), so its canonical text needs no re-validation.
        body = action_body(action, signer, sub.signature, digest)
        return _Prepared(sub, signer, digest, body, canonical_body(body, validate=False))

    def _write(self, genesis: Genesis, prepared: list[tuple[int, _Prepared]]):
        """`_write_once`, tried again while the database connection is lost (a PostgreSQL
        failover) for up to WRITE_RETRY_S. Safe because posting is idempotent by digest: a
        first attempt whose COMMIT went through before the connection died is found by the
        retry in the nonce table and answered with its original seq (`duplicate`). After the
        deadline the caller gets StoreConnectionLost (HTTP 503, Retry-After) and retries itself."""
        deadline = time.monotonic() + WRITE_RETRY_S
        pause = 0.05
        while True:
            try:
                return self._write_once(genesis, prepared)
            except E.StoreConnectionLost as exc:
                if isinstance(exc, Diverged) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def _write_once(self, genesis: Genesis, prepared: list[tuple[int, _Prepared]]):
        addresses: set[str] = set()
        nonces: set[tuple[str, str]] = set()
        request_ids: set[bytes] = set()
        for _, p in prepared:
            a = p.submission.action
            if isinstance(a, Transfer):
                addresses.update((a.payer, a.payee))
                if a.request_id != ZERO32:
                    request_ids.add(a.request_id)
            else:
                addresses.update((p.signer, a.account))
            nonces.add((p.signer, str(a.nonce)))
        outcomes = []
        with self.unit_of_work() as uow:
            # the head lock and every read under it (one round trip on PostgreSQL)
            head, accounts, positions, used = uow.lock_and_load(addresses, nonces)
            head_seq, prev_chain = head
            self._guard(head_seq, prev_chain, uow)
            state = LedgerState(genesis=genesis, seq=head_seq)
            state.accounts.update(accounts)
            state.positions.update(positions)
            nonce_seq = {key: seq for key, (_, seq) in used.items()}
            state.used_nonces.update({key: digest for key, (digest, _) in used.items()})
            # the payment requests named, read under the head lock: a decline (which takes the
            # same lock) and a payment are decided one after the other, never both
            requests = uow.requests(request_ids) if request_ids else {}
            # shops: the payments refunded in this batch, read under the same lock (ledger.core.refunds)
            refund_of = {p.submission.action.refund_of for _, p in prepared
                         if p.submission.action.__class__ is RefundTransfer}
            if refund_of:
                load_refunds(state, uow.refundables(refund_of))
            at = self.clock()
            batch = PostingBatch()
            status_changed: set[str] = set()
            touched: set[tuple[str, str]] = set()
            for i, p in prepared:
                a, sub = p.submission.action, p.submission
                key = (p.signer, a.nonce)
                try:
                    if check_nonce(state.used_nonces.get(key), p.digest):
                        outcomes.append((i, Posted(nonce_seq[key], KIND_OF[type(a)], "0x" + p.digest.hex(), True)))
                        continue
                    seq = state.seq + 1
                    request = requests.get(a.request_id) if isinstance(a, Transfer) else None
                    pays = request is not None and check_transfer_naming(a, request, at)
                    state.apply_action(seq, at, a, p.signer, p.digest)
                except E.LedgerError as exc:
                    outcomes.append((i, exc))
                    continue
                kind = KIND_OF[type(a)]
                body, body_text = p.body, p.body_text
                if body_text is None:  # prepared elsewhere without it
                    body = action_body(a, p.signer, sub.signature, p.digest)
                    body_text = canonical_body(body, validate=False)
                entry = Entry.from_body_text(seq, kind, at, body, body_text, prev_chain)
                prev_chain = entry.chain_hash
                batch.entries.append((seq, kind, at, body_text, entry.entry_hash, entry.chain_hash))
                batch.nonces.append((p.signer, str(a.nonce), p.digest, seq))
                nonce_seq[key] = seq
                if kind == "transfer.posted":
                    batch.transfers.append((seq, a.payer, a.payee, a.currency, a.amount,
                                            None if a.request_id == ZERO32 else a.request_id, at))
                    touched.update(((a.payer, a.currency), (a.payee, a.currency)))
                    if sub.memo:
                        batch.memos.append((seq, sub.memo_salt, sub.memo))
                    if pays:
                        requests[request.id] = _paid(request, seq)
                        batch.paid_requests.append((seq, request.id))
                    if a.__class__ is RefundTransfer:
                        batch.refunds.append((seq, a.refund_of, str(a.refund_nonce), a.amount))
                elif kind == "account.opened":
                    self._open_account(batch, genesis, a.account, a.role, seq)
                elif kind == "limit.set":
                    touched.add((a.account, a.currency))
                else:
                    status_changed.add(a.account)
                outcomes.append((i, Posted(seq, kind, "0x" + p.digest.hex(), False)))
            if batch.entries:
                batch.statuses = [(state.accounts[a].status, a) for a in sorted(status_changed)]
                positions = state.positions
                batch.positions = [(positions[k].balance, positions[k].credit_limit, positions[k].ceiling, k[0], k[1])
                                   for k in sorted(touched)]
                batch.head = (state.seq, prev_chain)
                uow.write_last(batch)  # nothing follows: PostgreSQL commits in the same round trip
        self._saw(state.seq, prev_chain)
        return outcomes

    def _guard(self, seq: int, chain_hash: bytes, uow=None) -> None:
        """Refuse a database whose log is behind what this process already saw, or differs at a
        seq it knows: an old primary that came back after a failover (first in a multi-host URL),
        or a restored backup under a running service. Posting there would fork the log, and reads
        would go back in time (docs/high-availability.md, "When the old primary comes back")."""
        seen = self._seen
        if seen is None or not self.fork_guard:
            return
        known_seq, known_chain, known_timeline = seen
        if seq == known_seq:
            bad = chain_hash != known_chain
        elif seq < known_seq:
            bad = True
        else:
            at = getattr(uow, "chain_hash_at", None) if uow is not None else None
            bad = at is not None and at(known_seq) not in (None, known_chain)
        if bad and known_timeline is not None:
            now = self._timeline()
            if now is not None and now > known_timeline:
                # a promoted standby (newer timeline) whose log ends before what this process saw:
                # asynchronous replication lost the tail. That is the new truth (docs section 5),
                # not an old server: say so loudly and go on from here.
                _log.critical("ledger rolled back by a failover: the promoted server (timeline %s) has "
                              "the log up to seq %s; this process had seen seq %s on timeline %s: the "
                              "entries after seq %s that were acknowledged are lost "
                              "(docs/high-availability.md section 5)", now, seq, known_seq, known_timeline,
                              seq)
                self._seen = None
                return
        if bad:
            msg = (f"this database's log (head seq {seq}) is behind or differs from the log this process "
                   f"already saw (seq {known_seq}): it may be an old primary that came back after a "
                   "failover; refusing to read or post on it. Fence that server or remove it from the "
                   "database URL (docs/high-availability.md)")
            _log.critical("ledger diverged: %s", msg)
            raise Diverged(msg)  # 503 + Retry-After: fixing the URL or fencing cures it

    def _saw(self, seq: int, chain_hash: bytes) -> None:
        seen = self._seen
        if seen is None or seq >= seen[0]:
            timeline = seen[2] if seen is not None else None
            if self._timeline_dirty or timeline is None:
                now = self._timeline()  # None if the server went away just now: keep the last known
                if now is not None:
                    self._timeline_dirty, timeline = False, now
            self._seen = (seq, chain_hash, timeline)

    def _timeline(self) -> int | None:
        """The PostgreSQL server's timeline (a promotion increments it); None elsewhere."""
        if self.engine is None or self.engine.dialect.name != "postgresql":
            return None
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(text(f"SELECT {_TIMELINE_SQL}")).scalar())
        except Exception:  # noqa: BLE001 - unknown: the guard then refuses rather than accepts
            return None

    @staticmethod
    def _open_account(batch: PostingBatch, genesis: Genesis, address: str, role: str, seq: int) -> None:
        """The account row and its default position per currency; balance updates later in the
        batch then write whatever later actions did to the new account."""
        batch.new_accounts.append((address, role, "active", seq))
        for c in genesis.currencies:
            limit, ceiling = genesis.default_for(c.code, role)
            batch.new_positions.append((address, c.code, 0, limit, ceiling))

    # -- profiles (personal data, never in the log) ------------------------------------
    def set_profile(self, address: str, *, display_name: str | None, contact: str | None = None) -> None:
        """Set a member's profile; empty text clears a field. Names and contacts are shown to
        other members beside amounts, so they obey the one text rule (ledger.core.text)."""
        display_name = check_profile_field("displayName", display_name)
        contact = check_profile_field("contact", contact)
        with self.transaction() as conn:
            if conn.execute(select(T.accounts.c.address).where(T.accounts.c.address == address)).first() is None:
                raise E.UnknownAccount(f"{address} has no account here")
            values = {"display_name": display_name, "contact": contact, "updated_at": self.clock()}
            if conn.execute(update(T.profiles).where(T.profiles.c.address == address).values(**values)).rowcount == 0:
                conn.execute(insert(T.profiles).values(address=address, **values))

    def profiles(self) -> dict[str, str | None]:
        with domain_errors(), self._reader() as conn:
            return {r.address: r.display_name for r in conn.execute(select(T.profiles))}

    # -- reading -------------------------------------------------------------------
    def account(self, address: str) -> AccountState | None:
        with self.unit_of_work(readonly=True) as uow:
            return uow.accounts([address]).get(address)

    def accounts(self) -> list[AccountState]:
        with self.unit_of_work(readonly=True) as uow:
            return list(uow.accounts().values())

    def positions(self, address: str | None = None) -> dict[tuple[str, str], Position]:
        with self.unit_of_work(readonly=True) as uow:
            return uow.positions(None if address is None else [address])

    def balance_sheet(self) -> tuple[int, bytes, dict[tuple[str, str], Position]]:
        """(head seq, head chain hash, every position) from one read snapshot, so a reconciler
        can replay the log up to exactly that seq and compare."""
        from .audit import _snapshot
        with domain_errors(), _snapshot(self.engine) as conn, conn.begin():
            r = conn.execute(select(T.ledger_head)).first()
            if r and r.seq:  # the fork guard (_guard): a reader must not go back in time either
                self._guard(r.seq, bytes(r.chain_hash), _ChainAt(conn))
            positions = {(b.address, b.currency): Position(b.balance, b.credit_limit, b.ceiling, b.held_out, b.held_in)
                         for b in conn.execute(select(T.balances))}
        if r and r.seq:
            self._saw(r.seq, bytes(r.chain_hash))
        return (r.seq, r.chain_hash, positions) if r else (0, ZERO32, positions)

    def head(self) -> tuple[int, bytes]:
        with self.unit_of_work(readonly=True) as uow:
            seq, chain_hash = uow.head() or (0, ZERO32)
            if seq:
                self._guard(seq, chain_hash, uow)
        if seq:
            self._saw(seq, chain_hash)
        return seq, chain_hash

    def server_info(self) -> dict:
        """Which PostgreSQL server this is (system identifier, timeline: a promoted standby has a
        new timeline, an old primary that came back the old one), and the COMMITs waiting for a
        synchronous standby: their number and the oldest one's age in seconds. One cheap query;
        {} on SQLite."""
        if self.engine.dialect.name != "postgresql":
            return {}
        with domain_errors(), self._reader() as conn:
            r = conn.execute(text(
                "SELECT (SELECT system_identifier FROM pg_control_system())::text, pg_is_in_recovery(), "
                f"{_TIMELINE_SQL}, "
                "count(*) FILTER (WHERE a.wait_event = 'SyncRep'), "
                "coalesce(extract(epoch FROM max(clock_timestamp() - a.state_change) "
                "FILTER (WHERE a.wait_event = 'SyncRep')), 0), "
                "coalesce(host(inet_server_addr()), 'local socket'), inet_server_port() "
                "FROM pg_stat_activity a WHERE a.datname = current_database()")).one()
        return {"address": f"{r[5]}:{r[6]}" if r[6] else r[5],
                "systemIdentifier": r[0], "inRecovery": bool(r[1]), "timeline": int(r[2]),
                "commitsWaitingForStandby": int(r[3]), "oldestStandbyWaitS": round(float(r[4]), 1)}

    def iter_entries(self, after_seq: int = 0, page: int = 2000) -> Iterator[Entry]:
        """All entries after `after_seq`, in order, fetched page by page (constant memory)."""
        while True:
            with domain_errors(), self._reader() as conn:
                rows = conn.execute(select(T.entries).where(T.entries.c.seq > after_seq)
                                    .order_by(T.entries.c.seq).limit(page)).all()
            for r in rows:
                yield entry_from_row(r)
            if len(rows) < page:
                return
            after_seq = rows[-1].seq

    def memo(self, seq: int) -> str | None:
        with domain_errors(), self._reader() as conn:
            r = conn.execute(select(T.memos.c.memo).where(T.memos.c.seq == seq)).first()
        return r.memo if r else None

    def transfer_count(self) -> int:
        with domain_errors(), self._reader() as conn:
            return conn.execute(select(func.count()).select_from(T.transfers)).scalar_one()

    # -- verification --------------------------------------------------------------
    def verify(self, *, verify_signatures: bool = True) -> VerifyReport:
        """Invariants 1, 3 and 4 and every projection, from one read snapshot (ledger.audit)."""
        from .audit import audit
        return audit(self, verify_signatures=verify_signatures)
