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

On a public chain (docs/anchoring.md, "Anchoring on a public chain"):
- Fees are EIP-1559 (type 2) where the chain has a base fee, never above the configured maximum
  fee per gas: while the price is above it the next batch is postponed (nothing is written or
  sent) and a warning is raised once the oldest waiting entry has used half the anchoring deadline.
- A transaction not mined after `replace_after_s` is replaced: same nonce, both prices raised by
  at least 10% (what nodes require), under the maximum, at most `max_replacements` times. Every
  hash sent is kept; whichever is mined is recorded. One nonce per batch means at most one of them
  can ever land; a batch sent again after a failure or a drop reuses its nonce while that nonce is
  still unused on chain.
- A confirmed batch is re-checked while its block is among the last `recheck_blocks`: if the
  canonical block at that height has another hash (a reorg deeper than the confirmations), the
  batch and every later one are marked `dropped` and the same range is anchored again, so the
  root (and every receipt issued for it) stays the same.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from sqlalchemy import insert, select, text, update

from .chain import AnchorChain, AnchorReverted, ChainError, ChainUnavailable
from .chain import fees as F
from .chain.balance import ANCHOR_GAS, batches_affordable
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
# Statuses that no longer hold their range: `failed` (never landed, reverted) and `dropped` (was
# confirmed, then removed by a reorg). The range is anchored again.
DEAD = ("failed", "dropped")
DEFAULT_DEADLINE_S = 86_400  # `ayni-wallet reconcile --anchor-deadline`'s default: one day
DEADLINE_WARN_FRACTION = 0.5  # warn once the oldest waiting entry has used half of the deadline
DEFAULT_REPLACE_AFTER_S = 180.0
DEFAULT_MAX_REPLACEMENTS = 5
DEFAULT_RECHECK_BLOCKS = 64
SCAN_SKEW_S = 3600  # a batch's event is searched from an hour before its first row was written
DEFAULT_WARN_BATCHES = 100  # warn when the key pays for fewer anchors than this at the current fee


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
    replaced: int = 0  # stuck transactions replaced (same nonce, raised fees)
    dropped: int = 0  # confirmed batches removed by a reorg (then anchored again)
    postponed: str | None = None  # "postponed: fee X gwei > max Y gwei" while the fee is above the max
    warnings: list[str] = field(default_factory=list)  # deadline at risk, key balance low
    key_balance_wei: int | None = None
    batches_affordable: int | None = None


DEFAULT_MAX_BATCH = 1000  # entries per anchor transaction (ledger/costs prices anchoring with it)


class Anchoring:
    def __init__(self, ledger: Ledger, chain: AnchorChain | None = None, *, contract: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, confirmations: int = 1, clock: Callable[[], int] = now_ms,
                 sending_grace_ms: int = SENDING_GRACE_MS, max_fee_per_gas: int | None = None,
                 priority_fee: int | None = None, replace_after_s: float | None = DEFAULT_REPLACE_AFTER_S,
                 max_replacements: int = DEFAULT_MAX_REPLACEMENTS, recheck_blocks: int = DEFAULT_RECHECK_BLOCKS,
                 deadline_s: int = DEFAULT_DEADLINE_S, warn_batches: int = DEFAULT_WARN_BATCHES):
        """`chain` is needed to anchor; reading batches and making receipts need only `contract`.
        `max_fee_per_gas`/`priority_fee` are in wei (None: no maximum / the node's suggested tip);
        `replace_after_s` None never replaces; `recheck_blocks` 0 never re-checks for reorgs;
        `warn_batches` 0 never checks the key's balance."""
        contract = chain.contract_address if chain is not None else contract
        if contract is None:
            raise E.InvalidInput("no anchor contract configured: deploy one with `ayni chain deploy`")
        if not 1 <= max_batch <= MAX_BATCH_SIZE:  # verifiers take a larger batch for a hostile one
            raise E.InvalidInput(f"max batch must be 1 to {MAX_BATCH_SIZE:,} entries")
        self.ledger, self.chain, self.contract = ledger, chain, contract
        self.max_batch, self.confirmations, self.clock = max_batch, confirmations, clock
        self.sending_grace_ms = sending_grace_ms
        self.max_fee_per_gas, self.priority_fee = max_fee_per_gas, priority_fee
        self.replace_after_s, self.max_replacements = replace_after_s, max_replacements
        self.recheck_blocks, self.deadline_s, self.warn_batches = recheck_blocks, deadline_s, warn_batches
        self._recorded_here: set[int] = set()  # batch rows this instance wrote (no other sender)
        self._scan_cache: dict[int, int] = {}  # first seq -> lowest block its event can be in

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
            q = q.where(AB.c.status.not_in(DEAD))
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
                                                       AB.c.status.not_in(DEAD))).first()
            if taken is not None:
                return None
            batch_id = conn.execute(insert(AB).values(
                first_seq=first, last_seq=last, root=root, chain_id=self.chain.chain_id,
                contract=self.contract, status=status, created_at=now, updated_at=now, **values)
            ).inserted_primary_key[0]
        self._recorded_here.add(batch_id)
        return batch_id

    def reconcile(self, report: AnchorReport) -> None:
        """Bring every unfinished batch up to date with what the chain says: re-check recent
        confirmed batches for reorgs, record whichever transaction of a batch was mined, replace
        a stuck one."""
        self._check_reorgs(report)
        confirmed = [b for b in self._live() if b["status"] == "confirmed"]
        if confirmed and (on_chain := self.chain.last_anchored_seq()) < confirmed[-1]["last_seq"]:
            self._deep_reorg(on_chain, confirmed[-1]["last_seq"], report)  # one eth_call a pass
        for b in self._live():
            if b["status"] == "confirmed":
                continue
            if b["status"] == "sending" or b["tx_hash"] is None:
                self._recover_unsent(b, report)
                continue
            statuses = [self.chain.tx_status(h, min_confirmations=self.confirmations) for h in _hashes(b)]
            mined = [st for st in statuses if st.block is not None]  # at most one: they share a nonce
            if mined:
                st = mined[0]
                if st.status == "confirmed":
                    self._set(b["id"], status="confirmed", tx_hash=st.tx_hash, block=st.block, block_hash=st.block_hash,
                              gas_used=st.gas_used, effective_gas_price=st.effective_gas_price, error=None)
                    report.confirmed += 1
                    report.gas_used.append(st.gas_used)
                elif st.status == "failed":
                    self._set(b["id"], status="failed", tx_hash=st.tx_hash, block=st.block, gas_used=st.gas_used,
                              effective_gas_price=st.effective_gas_price, error="transaction reverted on chain")
                    report.failed += 1
                else:  # mined, waiting for confirmations: record the one that landed
                    if st.tx_hash != b["tx_hash"]:
                        self._set(b["id"], tx_hash=st.tx_hash)
                    report.pending = True
            elif all(st.status == "unknown" for st in statuses):  # dropped (node restarted, evicted): landed?
                self._recover_unsent(b, report)
            else:
                report.pending = True
                self._maybe_replace(b, report)

    def _maybe_replace(self, b: dict, report: AnchorReport) -> None:
        """Replace a batch's transaction waiting in the pool for longer than `replace_after_s`:
        same nonce, both fees raised by at least 10%, under the maximum fee, at most
        `max_replacements` times. Any fault here leaves the batch waiting (next pass retries)."""
        if self.replace_after_s is None or b["nonce"] is None or b["max_fee_per_gas"] is None:
            return
        if self.clock() - (b["sent_at"] or b["updated_at"]) < self.replace_after_s * 1000:
            return
        replacements = (b["attempts"] or 1) - 1
        where = f"batch {b['first_seq']}..{b['last_seq']}"
        if replacements >= self.max_replacements:
            report.warnings.append(f"{where}: transaction {b['tx_hash']} not mined after {replacements} "
                                   f"replacements (the most allowed); still waiting at nonce {b['nonce']}")
            self._deadline_warning(b["first_seq"], f"{where} stuck after {replacements} replacements", report)
            return
        now = self.chain.fee_quote(max_fee_per_gas=self.max_fee_per_gas, priority_fee=self.priority_fee)
        fees = F.replacement(b["max_fee_per_gas"], b["priority_fee_per_gas"] or 0, now)
        if isinstance(fees, str):
            report.postponed = f"{where} stuck: {fees}"
            self._deadline_warning(b["first_seq"], report.postponed, report)
            return
        try:
            sent = self.chain.send_anchor_tx(b["root"], b["first_seq"], b["last_seq"], fees=fees, nonce=b["nonce"])
        except ChainUnavailable:
            raise
        except ChainError as exc:  # mined meanwhile (nonce too low, the estimate reverts), underpriced, ...
            self._set(b["id"], error=f"replacement not sent: {exc.message}")
            return
        self._set(b["id"], tx_hash=sent.tx_hash, tx_hashes=" ".join([*_hashes(b), sent.tx_hash]),
                  max_fee_per_gas=sent.max_fee, priority_fee_per_gas=sent.tip, sent_at=self.clock(),
                  attempts=replacements + 2, error=None)
        report.replaced += 1

    def _check_reorgs(self, report: AnchorReport, *, deep: bool = False) -> None:
        """Re-check confirmed batches whose block is among the last `recheck_blocks` (every one
        when `deep`): a block hash commits to all its ancestors, so if the newest one is still
        canonical all are; else walk back to the first one still canonical and mark every later
        batch `dropped`."""
        if not self.recheck_blocks and not deep:
            return
        confirmed = [b for b in self._live() if b["status"] == "confirmed" and b["block"] is not None]
        if not confirmed:
            return
        head = self.chain.block_number()
        recent = confirmed if deep else [b for b in confirmed if b["block"] > head - self.recheck_blocks]
        gone: list[dict] = []
        for b in reversed(recent):
            canonical = self.chain.block_hash(b["block"])
            if b["block_hash"] is None:  # confirmed before block hashes were recorded: ask the receipt
                st = self.chain.tx_status(b["tx_hash"])
                if st.block == b["block"] and st.block_hash == canonical:
                    self._set(b["id"], block_hash=canonical)
                    break
            elif canonical == b["block_hash"]:
                break
            gone.append(b)
        if not gone:
            return
        first = gone[-1]
        later = [b for b in self._live() if b["first_seq"] >= first["first_seq"]]
        for b in later:
            self._set(b["id"], status="dropped",
                      error=(f"dropped by a reorg: block {first['block']} is no longer the one that held batch "
                             f"{first['first_seq']}..{first['last_seq']}; the range is anchored again"))
        report.dropped += len(later)
        report.errors.append(f"reorg: batches from seq {first['first_seq']} dropped (were confirmed in block "
                             f"{first['block']}); anchoring them again")

    def _scan_from(self, first_seq: int) -> int:
        """The lowest block that can hold the Anchored event of a batch starting at `first_seq`:
        the block of the newest confirmed batch before it (events come in seq order), else the
        contract's deployment block if known (`ayni chain deploy` records it: start_block). Never
        block 0 on a public chain when a batch was ever confirmed: that scan is thousands of
        eth_getLogs calls, which public RPCs rate-limit into a failed pass."""
        blocks = [b["block"] for b in self._live()
                  if b["status"] == "confirmed" and b["block"] is not None and b["last_seq"] < first_seq]
        if blocks:
            return max(blocks)
        # none confirmed before it: its first row was written before anything was sent, so no
        # transaction for it can be in a block older than that row (less an hour for clock skew)
        rows = [b["created_at"] for b in self.batches() if b["first_seq"] == first_seq]
        bound = self.chain.start_block or 0
        if rows and first_seq not in self._scan_cache:
            found = self.chain.block_at_or_before(min(rows) // 1000 - SCAN_SKEW_S)
            self._scan_cache[first_seq] = found or 0  # None: the clock is ahead of the chain's
        return max(bound, self._scan_cache.get(first_seq, 0)) if rows else bound

    def _find_batch(self, first_seq: int):
        start = self._scan_from(first_seq)
        event = self.chain.find_batch(first_seq, from_block=start)
        if event is None and start > (self.chain.start_block or 0) and self.chain.last_anchored_seq() >= first_seq:
            # the chain has it, but before the bound (a clock more than SCAN_SKEW_S off): search it all
            event = self.chain.find_batch(first_seq)
        return event

    def _adoptable(self, event, head_seq: int) -> bool:
        """Is `event` a batch built from our own log (its root is our tree for its range)?"""
        if event.last_seq > head_seq or event.last_seq < event.first_seq:
            return False
        return self.tree(event.first_seq, event.last_seq).root == event.root

    def _recover_unsent(self, b: dict, report: AnchorReport) -> None:
        event = self._find_batch(b["first_seq"])
        if event is None:
            if (b["status"] == "sending" and b["id"] not in self._recorded_here
                    and self.clock() - b["updated_at"] < self.sending_grace_ms):
                report.pending = True  # another anchorer is still sending it
                return
            self._set(b["id"], status="failed", error="never reached the chain; will be sent again")
            report.failed += 1
            return
        nonce = self.chain.tx_nonce(event.tx_hash)
        if (event.root, event.last_seq) != (b["root"], b["last_seq"]):
            # another attempt at this nonce (an earlier send still in some node's pool, or a
            # replacement sent before a crash) landed with another range: if it is built from our
            # own log, it is as good a batch as the one recorded here; adopt it with its range
            if not self._adoptable(event, self.ledger.head()[0]):
                raise E.IntegrityViolation(
                    f"the chain holds a different batch at seq {b['first_seq']} "
                    f"({event.first_seq}..{event.last_seq}, root 0x{event.root.hex()}) than recorded here, "
                    "and its root is not this log's for that range")
            self._set(b["id"], last_seq=event.last_seq, root=event.root)
        self._set(b["id"], status="pending", tx_hash=event.tx_hash, error=None,
                  **({"nonce": nonce} if nonce is not None else {}))
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
            event = self._find_batch(first)
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
            nonce = self.chain.tx_nonce(event.tx_hash)  # kept: a later re-send after a drop reuses it
            if self._record(first, event.last_seq, event.root, "pending", tx_hash=event.tx_hash,
                            **({"nonce": nonce} if nonce is not None else {})) is None:
                report.pending = True  # the anchorer that sent it recorded it meanwhile
                return False
            report.adopted += 1
            return True
        if on_chain < first - 1:  # batches we recorded confirmed are gone from the chain
            self._deep_reorg(on_chain, first - 1, report)
            return self.anchor_next(report)
        if on_chain != first - 1:
            raise E.IntegrityViolation(f"chain anchored through seq {on_chain}, our records through {first - 1}")
        prev = self._previous_attempt(first)
        dropped = self._first_dropped(first)
        last = min(head_seq, first + self.max_batch - 1)
        if dropped is not None:
            # a range a reorg dropped was confirmed, and receipts were issued for it: it is anchored
            # again exactly (same root, so they stay valid), however many re-anchor attempts fail
            last = dropped["last_seq"]
        fees = self.chain.fee_quote(max_fee_per_gas=self.max_fee_per_gas, priority_fee=self.priority_fee)
        nonce = None
        if prev is not None and prev["nonce"] is not None and self.chain.nonce_of() <= prev["nonce"]:
            # that nonce is still unused on chain and its transaction may still wait in some pool:
            # send this one at the same nonce, so at most one of the two can land, and with the same
            # range, so whichever lands is the batch recorded here (the same root)
            nonce = prev["nonce"]
            if dropped is None:
                last = prev["last_seq"]
            # outbid it only if the node knows a transaction at that nonce: when its pending count
            # is still that nonce, the earlier one never got in (crash before the send) or was
            # evicted, and a fresh quote is what a node takes (a +10% bump over a fee at the
            # maximum would postpone the batch for ever)
            known = self.chain.nonce_of(pending=True) > nonce
            if known and prev["max_fee_per_gas"] is not None and not fees.postponed:
                bumped = F.replacement(prev["max_fee_per_gas"], prev["priority_fee_per_gas"] or 0, fees)
                fees = bumped if not isinstance(bumped, str) else replace(fees, postponed=bumped)
        if fees.postponed:
            report.postponed = fees.postponed
            self._deadline_warning(first, fees.postponed, report)
            return False
        if nonce is None:  # chosen and written before sending: a reply lost after the node took the
            nonce = self.chain.nonce_of(pending=True)  # transaction leaves the nonce to send it again with
        root = self.tree(first, last).root
        batch_id = self._record(first, last, root, "sending", nonce=nonce, max_fee_per_gas=fees.max_fee,
                                priority_fee_per_gas=fees.tip, attempts=1)
        if batch_id is None:  # another anchorer is sending this range
            report.pending = True
            return False
        try:
            sent = self.chain.send_anchor_tx(root, first, last, fees=fees, nonce=nonce)
            tx_hash = sent.tx_hash
        except AnchorReverted as exc:
            self._set(batch_id, status="failed", error=str(exc.message if hasattr(exc, "message") else exc))
            report.failed += 1
            raise
        except ChainUnavailable:
            raise  # the row stays `sending`; reconcile() finds out what happened next time
        with self._db(write=True) as conn:  # unless given up on meanwhile (then adopted later)
            conn.execute(update(AB).where(AB.c.id == batch_id, AB.c.status == "sending")
                         .values(status="pending", tx_hash=tx_hash, tx_hashes=tx_hash, nonce=sent.nonce,
                                 sent_at=self.clock(), updated_at=self.clock()))
        report.sent += 1
        return True

    def _first_dropped(self, first: int) -> dict | None:
        """The first row for `first` a reorg dropped: its range was confirmed once."""
        rows = [b for b in self.batches() if b["first_seq"] == first and b["status"] == "dropped"]
        return min(rows, key=lambda b: b["id"]) if rows else None

    def _deep_reorg(self, on_chain: int, recorded: int, report: AnchorReport) -> None:
        """The chain holds batches only through `on_chain`, but batches through `recorded` are
        confirmed here: a reorg deeper than `recheck_blocks` removed them. Re-check every
        confirmed batch's block, whatever its depth; those gone are marked `dropped` (no more
        receipts for them) and anchored again with the same ranges."""
        before = report.dropped
        self._check_reorgs(report, deep=True)
        if report.dropped == before:
            raise E.IntegrityViolation(
                f"the chain anchored through seq {on_chain}, but batches through seq {recorded} are recorded "
                f"confirmed here and their blocks are still canonical: is --chain the node of the chain "
                f"(chain id {self.chain.chain_id}) and contract {self.contract} these batches were sent to?")
        report.warnings.append(
            f"a reorg deeper than the re-check window ({self.recheck_blocks} blocks) removed batches this "
            f"anchorer had recorded confirmed (the chain holds seq 1..{on_chain} only): they are dropped, "
            "receipts for their entries are refused until they are anchored again with the same ranges. "
            "Raise --recheck-blocks above the chain's finality depth")

    def _previous_attempt(self, first: int) -> dict | None:
        """The latest dead (failed or dropped) row for a batch starting at `first`, if any."""
        rows = [b for b in self.batches() if b["first_seq"] == first and b["status"] in DEAD]
        return max(rows, key=lambda b: b["id"]) if rows else None

    def _oldest_waiting(self) -> tuple[int, int] | None:
        """(seq, age in ms) of the oldest entry not in a confirmed batch, or None if all are: an
        entry in a batch stuck in the pool is not on chain, and auditors flag it as unanchored."""
        through = 0
        for b in self._live():  # in seq order: confirmed through the first one that is not
            if b["status"] != "confirmed":
                break
            through = b["last_seq"]
        entry = next(iter(self.ledger.iter_entries(after_seq=through, page=1)), None)
        return None if entry is None else (entry.seq, max(0, self.clock() - entry.at))

    def _deadline_warning(self, first: int, reason: str, report: AnchorReport) -> None:
        """While anchoring is postponed, warn once the oldest waiting entry has used half of the
        anchoring deadline (auditors flag entries left unanchored past it: `ayni-wallet reconcile
        --anchor-deadline`, one day by default), leaving the other half to act."""
        waiting = self._oldest_waiting()
        if waiting is None or not self.deadline_s:
            return
        seq, age_ms = waiting
        deadline_ms = self.deadline_s * 1000
        if age_ms >= deadline_ms * DEADLINE_WARN_FRACTION:
            left = deadline_ms - age_ms
            when = (f"passes in {_duration(left)}" if left > 0 else f"passed {_duration(-left)} ago")
            warning = (f"anchoring deadline: entry {seq} has waited {_duration(age_ms)} to be anchored; the deadline "
                       f"({_duration(deadline_ms)}) {when} and anchoring is {reason}. Raise --max-fee-gwei or wait "
                       "for lower fees: auditors flag entries left unanchored past the deadline")
            if warning not in report.warnings:  # run() reconciles many times while a batch waits
                report.warnings.append(warning)

    def check_balance(self, report: AnchorReport) -> None:
        """Warn when the anchoring key pays for fewer than `warn_batches` anchors at the current
        fee (base fee + tip, or the max fee if lower, times the gas of the last anchors)."""
        if not self.warn_batches or self.chain is None or self.chain.sender is None:
            return
        balance = self.chain.key_balance_wei()
        quote = self.chain.fee_quote(max_fee_per_gas=self.max_fee_per_gas, priority_fee=self.priority_fee)
        gas = max(report.gas_used, default=ANCHOR_GAS)
        report.key_balance_wei = balance
        report.batches_affordable = n = batches_affordable(balance, quote.likely, gas)
        if n < self.warn_batches:
            report.warnings.append(
                f"the anchoring key {self.chain.sender} holds {balance} wei: {n} anchors at the current fee "
                f"({F.gwei(quote.likely)} gwei x {gas:,} gas), fewer than {self.warn_batches}; top it up")

    def estimate(self) -> dict:
        """What the next batch would cost, without writing or sending anything: the gas of its
        anchor call (eth_estimateGas, else the measured constant), times the likely fee per gas
        (base fee + tip) and times the most it may pay (max fee per gas)."""
        live = self._live()
        first = (live[-1]["last_seq"] if live else 0) + 1
        head_seq, _ = self.ledger.head()
        last = min(head_seq, first + self.max_batch - 1)
        gas, source = ANCHOR_GAS, "measured constant (docs/anchoring.md, Gas)"
        in_flight = any(b["status"] != "confirmed" for b in live)
        if last >= first and not in_flight:
            try:
                gas = self.chain.estimate_anchor_gas(self.tree(first, last).root, first, last)
                source = "eth_estimateGas"
            except ChainUnavailable:
                raise
            except ChainError:  # e.g. a batch still in flight: the call would revert now
                pass
        quote = self.chain.fee_quote(max_fee_per_gas=self.max_fee_per_gas, priority_fee=self.priority_fee)
        return {"first_seq": first, "last_seq": max(last, first - 1), "entries": max(0, last - first + 1),
                "gas": gas, "gas_source": source, "eip1559": quote.eip1559, "base_fee_wei": quote.base_fee,
                "tip_wei": quote.tip, "max_fee_wei": quote.max_fee, "cap_wei": quote.cap,
                "likely_wei": gas * quote.likely, "worst_wei": gas * quote.max_fee, "postponed": quote.postponed,
                "chain_id": self.chain.chain_id}

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
        try:
            self.check_balance(report)
        except ChainError as exc:  # the anchors are done; the balance is only advice
            report.warnings.append(f"could not read the anchoring key's balance: {exc.message}")
        return report

    def needs_follow_up(self) -> bool:
        """Is a batch still to be followed on chain: one not confirmed yet (to confirm, replace
        or re-send), or a confirmed one still inside the reorg re-check window?"""
        live = self._live()
        if any(b["status"] != "confirmed" for b in live):
            return True
        blocks = [b["block"] for b in live if b["block"] is not None]
        return bool(self.recheck_blocks and blocks and self.chain is not None
                    and max(blocks) > self.chain.block_number() - self.recheck_blocks)

    def follow(self) -> AnchorReport:
        """One reconcile pass (confirm, replace, re-check for reorgs), sending nothing new."""
        report = AnchorReport()
        self.reconcile(report)
        confirmed = [b for b in self._live() if b["status"] == "confirmed"]
        report.anchored_through = confirmed[-1]["last_seq"] if confirmed else 0
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


def _hashes(b: dict) -> list[str]:
    """Every transaction hash sent for a batch row (the original first, then replacements)."""
    if b.get("tx_hashes"):
        return b["tx_hashes"].split()
    return [b["tx_hash"]] if b.get("tx_hash") else []


def _duration(ms: int) -> str:
    s = ms // 1000
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def watch(job: Anchoring, *, interval: float, min_entries: int, stop: threading.Event,
          on_report: Callable[[AnchorReport], None], on_error: Callable[[str], None]) -> None:
    """Anchor whenever `min_entries` entries wait, checking every `interval` seconds, until
    `stop` is set; in between, follow every batch still in flight or inside the reorg re-check
    window each interval (a batch still pending when run() returned would otherwise never be
    confirmed, replaced or re-checked until the next entries come). Chain faults only delay it
    (exponential backoff, 1 s to 60 s): posting never waits on this loop."""
    from .chain import ChainError
    backoff = 1.0
    while not stop.is_set():
        try:
            through = max([b["last_seq"] for b in job.batches(include_failed=False)], default=0)
            if job.ledger.head()[0] - through >= min_entries:
                on_report(job.run())
            elif job.needs_follow_up():
                r = job.follow()
                if (r.confirmed or r.failed or r.adopted or r.replaced or r.dropped or r.errors or r.warnings
                        or r.postponed):
                    on_report(r)
            backoff = 1.0
            stop.wait(interval)
        except (ChainError, E.LedgerError) as exc:
            on_error(f"{exc.code}: {exc.message}; retrying in {backoff:.0f} s")
            stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)
