"""Use case: commit the entry log to a chain in Merkle-rooted batches, and issue receipts.

Safety rules (docs/anchoring.md, "Operating the anchorer"):
- A batch row is written *before* its transaction is sent (status `sending`), so a crash
  between sending and recording leaves a trace; on restart the chain is read to learn
  whether that batch landed (adopt it) or not (mark it failed and send again).
- The contract itself refuses any batch that does not start right after the last one,
  so a retried send can never anchor a range twice or skip one: at worst it reverts.
- One batch is in flight at a time (the next one must start after it on chain).
- Anchoring never blocks posting: it reads the log in its own short transactions, and
  chain faults surface here as ChainError, retried by the caller with backoff.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import insert, select, text, update

from .chain import AnchorChain, AnchorReverted, ChainUnavailable
from .core import errors as E
from .core.merkle import MerkleTree, build_entry_tree
from .core.receipts import build_receipt
from .core.typed_data import UINT64_MAX
from .service import Ledger, now_ms
from .store import tables as T
from .store.errors import domain_errors
from .verify.chain_types import IMPLAUSIBLE_SEQ, MAX_BATCH_SIZE, implausible

AB = T.anchor_batches
# Another anchorer's `sending` row is in flight, not dead, until it is this old: only then may
# it be marked failed and the range sent again (a crashed sender's row waits this long).
SENDING_GRACE_MS = 60_000
ANCHOR_LOCK_KEY = 0x41594E49  # "AYNI": serialises batch-row inserts between anchorers on PostgreSQL


@dataclass
class AnchorReport:
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    adopted: int = 0
    gas_used: list[int] = field(default_factory=list)
    anchored_through: int = 0
    head_seq: int = 0
    pending: bool = False
    errors: list[str] = field(default_factory=list)


DEFAULT_MAX_BATCH = 1000  # entries per anchor transaction (ledger/costs prices anchoring with it)


class Anchoring:
    def __init__(self, ledger: Ledger, chain: AnchorChain | None = None, *, contract: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, confirmations: int = 1, clock: Callable[[], int] = now_ms,
                 sending_grace_ms: int = SENDING_GRACE_MS):
        """`chain` is needed to anchor; reading batches and making receipts need only `contract`."""
        contract = chain.contract_address if chain is not None else contract
        if contract is None:
            raise E.InvalidInput("no anchor contract configured: deploy one with `ayni chain deploy`")
        if not 1 <= max_batch <= MAX_BATCH_SIZE:  # verifiers take a larger batch for a hostile one
            raise E.InvalidInput(f"max batch must be 1 to {MAX_BATCH_SIZE:,} entries")
        self.ledger, self.chain, self.contract = ledger, chain, contract
        self.max_batch, self.confirmations, self.clock = max_batch, confirmations, clock
        self.sending_grace_ms = sending_grace_ms
        self._recorded_here: set[int] = set()  # batch rows this instance wrote (no other sender)

    @contextlib.contextmanager
    def _db(self, *, write: bool):
        """A connection (in a transaction when `write`) whose database errors, commit included,
        reach the caller as domain errors (ledger/store/errors.py): faces never see a driver's."""
        with domain_errors(), (self.ledger.engine.begin() if write else self.ledger.engine.connect()) as conn:
            yield conn

    # -- reading -------------------------------------------------------------------
    def batches(self, *, include_failed: bool = True) -> list[dict]:
        q = select(AB).where(AB.c.contract == self.contract).order_by(AB.c.first_seq, AB.c.id)
        if not include_failed:
            q = q.where(AB.c.status != "failed")
        with self._db(write=False) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def _live(self) -> list[dict]:
        return self.batches(include_failed=False)

    def tree(self, first_seq: int, last_seq: int) -> MerkleTree:
        pairs = []
        for e in self.ledger.iter_entries(after_seq=first_seq - 1):
            if e.seq > last_seq:
                break
            pairs.append((e.seq, e.entry_hash))
        if len(pairs) != last_seq - first_seq + 1:
            raise E.IntegrityViolation(f"entries {first_seq}..{last_seq} are not all in the log")
        return build_entry_tree(pairs)

    # -- writing -------------------------------------------------------------------
    def _set(self, batch_id: int, **values) -> None:
        with self._db(write=True) as conn:
            conn.execute(update(AB).where(AB.c.id == batch_id).values(updated_at=self.clock(), **values))

    def _record(self, first: int, last: int, root: bytes, status: str, **values) -> int | None:
        """Insert a batch row unless another anchorer (`ayni anchor` beside `serve --anchor-every`)
        already holds a live row starting at `first`: check and insert under one lock (SQLite's
        BEGIN IMMEDIATE, a transaction-scoped advisory lock on PostgreSQL). None if it did."""
        now = self.clock()
        with self._db(write=True) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ANCHOR_LOCK_KEY})
            taken = conn.execute(select(AB.c.id).where(AB.c.contract == self.contract, AB.c.first_seq == first,
                                                       AB.c.status != "failed")).first()
            if taken is not None:
                return None
            batch_id = conn.execute(insert(AB).values(
                first_seq=first, last_seq=last, root=root, chain_id=self.chain.chain_id,
                contract=self.contract, status=status, created_at=now, updated_at=now, **values)
            ).inserted_primary_key[0]
        self._recorded_here.add(batch_id)
        return batch_id

    def reconcile(self, report: AnchorReport) -> None:
        """Bring every unfinished batch up to date with what the chain says."""
        for b in self._live():
            if b["status"] == "confirmed":
                continue
            if b["status"] == "sending" or b["tx_hash"] is None:
                self._recover_unsent(b, report)
                continue
            st = self.chain.tx_status(b["tx_hash"], min_confirmations=self.confirmations)
            if st.status == "confirmed":
                self._set(b["id"], status="confirmed", block=st.block, gas_used=st.gas_used,
                          effective_gas_price=st.effective_gas_price, error=None)
                report.confirmed += 1
                report.gas_used.append(st.gas_used)
            elif st.status == "failed":
                self._set(b["id"], status="failed", block=st.block, gas_used=st.gas_used,
                          effective_gas_price=st.effective_gas_price, error="transaction reverted on chain")
                report.failed += 1
            elif st.status == "unknown":  # dropped (node restarted, evicted): did it land anyway?
                self._recover_unsent(b, report)
            else:
                report.pending = True

    def _recover_unsent(self, b: dict, report: AnchorReport) -> None:
        event = self.chain.find_batch(b["first_seq"])
        if event is None:
            if (b["status"] == "sending" and b["id"] not in self._recorded_here
                    and self.clock() - b["updated_at"] < self.sending_grace_ms):
                report.pending = True  # another anchorer is still sending it
                return
            self._set(b["id"], status="failed", error="never reached the chain; will be sent again")
            report.failed += 1
            return
        if (event.root, event.last_seq) != (b["root"], b["last_seq"]):
            raise E.IntegrityViolation(
                f"the chain holds a different batch at seq {b['first_seq']} "
                f"({event.first_seq}..{event.last_seq}, root 0x{event.root.hex()}) than recorded here")
        self._set(b["id"], status="pending", tx_hash=event.tx_hash, error=None)
        report.adopted += 1
        report.pending = True  # confirmations are checked on the next pass

    def anchor_next(self, report: AnchorReport) -> bool:
        """Send the next batch if nothing is in flight. True if a batch was sent or adopted."""
        live = self._live()
        if any(b["status"] != "confirmed" for b in live):
            report.pending = True
            return False
        first = (live[-1]["last_seq"] if live else 0) + 1
        head_seq, _ = self.ledger.head()
        report.head_seq = head_seq
        if first > head_seq:
            return False
        on_chain = self.chain.last_anchored_seq()
        if on_chain == UINT64_MAX or on_chain >= IMPLAUSIBLE_SEQ:  # retired or frozen: say by whom
            self._stop_retired()
        if on_chain >= first:  # the chain is ahead of our records (restored backup, lost row)
            event = self.chain.find_batch(first)
            if event is None:
                raise E.IntegrityViolation(f"chain says seq {on_chain} is anchored but has no batch at {first}")
            if implausible(event.first_seq, event.last_seq):
                self._stop_retired()
            # entries this log does not have: a leaked key, or a lost log (the head read again: another
            # anchorer may have anchored entries posted since we read it)
            if event.last_seq > head_seq and event.last_seq > (head_now := self.ledger.head()[0]):
                raise E.IntegrityViolation(
                    f"the chain holds batch {event.first_seq}..{event.last_seq} (tx {event.tx_hash}, sent by "
                    f"{self.chain.sender_of(event.tx_hash) or '?'}) beyond this log's head seq {head_now}: either "
                    "an anchoring key leaked and anchored entries that do not exist (retire the contract and "
                    "deploy a new one) or this log lost entries (restored from an old backup)")
            tree = self.tree(first, event.last_seq)
            if tree.root != event.root:
                raise E.IntegrityViolation(f"the chain's root for {first}..{event.last_seq} differs from our log")
            if self._record(first, event.last_seq, event.root, "pending", tx_hash=event.tx_hash) is None:
                report.pending = True  # the anchorer that sent it recorded it meanwhile
                return False
            report.adopted += 1
            return True
        if on_chain != first - 1:
            raise E.IntegrityViolation(f"chain anchored through seq {on_chain}, our records through {first - 1}")
        last = min(head_seq, first + self.max_batch - 1)
        root = self.tree(first, last).root
        batch_id = self._record(first, last, root, "sending")
        if batch_id is None:  # another anchorer is sending this range
            report.pending = True
            return False
        try:
            tx_hash = self.chain.send_anchor(root, first, last)
        except AnchorReverted as exc:
            self._set(batch_id, status="failed", error=str(exc.message if hasattr(exc, "message") else exc))
            report.failed += 1
            raise
        except ChainUnavailable:
            raise  # the row stays `sending`; reconcile() finds out what happened next time
        with self._db(write=True) as conn:  # unless given up on meanwhile (then adopted later)
            conn.execute(update(AB).where(AB.c.id == batch_id, AB.c.status == "sending")
                         .values(status="pending", tx_hash=tx_hash, updated_at=self.clock()))
        report.sent += 1
        return True

    def run(self, *, max_batches: int | None = None, wait_s: float = 30.0) -> AnchorReport:
        """Anchor everything not yet anchored (or up to `max_batches` batches): reconcile,
        send, wait for confirmations, repeat. Raises ChainError on chain faults."""
        report = AnchorReport()
        sent = 0
        deadline = time.monotonic() + wait_s
        while True:
            report.pending = False
            self.reconcile(report)
            if report.pending:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
                continue
            if max_batches is not None and sent >= max_batches:
                break
            if not self.anchor_next(report):
                break
            sent += 1
            deadline = time.monotonic() + wait_s
        live = [b for b in self._live() if b["status"] == "confirmed"]
        report.anchored_through = live[-1]["last_seq"] if live else 0
        report.head_seq = self.ledger.head()[0]
        return report

    def _stop_retired(self) -> None:
        retirement = self.chain.retirement()
        raise E.IntegrityViolation(f"the anchor contract {self.contract} takes no more batches: "
                                   + (retirement.message if retirement else "it is retired"))

    # -- receipts ------------------------------------------------------------------
    def receipt(self, seq: int) -> dict:
        for b in self._live():
            if b["first_seq"] <= seq <= b["last_seq"]:
                if b["status"] != "confirmed":
                    raise E.LedgerError(f"entry {seq} is in a batch that is still {b['status']}",
                                        code="not_anchored")
                entry = next(self.ledger.iter_entries(after_seq=seq - 1, page=1))
                tree = self.tree(b["first_seq"], b["last_seq"])
                return build_receipt(entry, tree, first_seq=b["first_seq"], last_seq=b["last_seq"],
                                     chain_id=b["chain_id"], contract=b["contract"], tx_hash=b["tx_hash"],
                                     block=b["block"], community=self.ledger.genesis.community)
        head_seq, _ = self.ledger.head()
        if not 1 <= seq <= head_seq:
            raise E.LedgerError(f"there is no entry {seq} (the log ends at {head_seq})", code="unknown_entry")
        raise E.LedgerError(f"entry {seq} is not anchored yet: run `ayni anchor`", code="not_anchored")


def watch(job: Anchoring, *, interval: float, min_entries: int, stop: threading.Event,
          on_report: Callable[[AnchorReport], None], on_error: Callable[[str], None]) -> None:
    """Anchor whenever `min_entries` entries wait, checking every `interval` seconds, until
    `stop` is set. Chain faults only delay it (exponential backoff, 1 s to 60 s): posting
    never waits on this loop."""
    from .chain import ChainError
    backoff = 1.0
    while not stop.is_set():
        try:
            through = max([b["last_seq"] for b in job.batches(include_failed=False)], default=0)
            if job.ledger.head()[0] - through >= min_entries:
                on_report(job.run())
            backoff = 1.0
            stop.wait(interval)
        except (ChainError, E.LedgerError) as exc:
            on_error(f"{exc.code}: {exc.message}; retrying in {backoff:.0f} s")
            stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)
