"""Independent reconciliation of an Ayni log: a streaming fold that trusts nothing it is given.

A treasurer (or auditor) hands in the entries, the balances the server reports and the
batches the chain holds; the reconciler recomputes everything from the entries alone and
reports each disagreement at the place it is found (seq, account, currency), with what it
expected and what it found, as the one Finding type every verifier reports. The replay is
the same fold posting runs (ledger.core.fold), so a rule means the same here. Pure: no I/O;
signature recovery (the one expensive step, ~30 us an entry) can be answered by a checker
that recovered the signers ahead on other cores (ledger.verify.parallel, passed by the caller).

Checks, in the order a reader meets them:
  sequence     seq is 1, 2, 3... with no gap, repeat or reordering      (invariant 4)
  entry_hash   keccak256 of the canonical encoding equals the entry hash (invariant 4)
  chain_hash   keccak256(prev chain hash ‖ entry hash) equals the chain hash
  rules        the fold from zero re-checks bodies, digests, nonces, limits, status (invariant 2)
  signature    the digest recovers to the signer the entry names
  balance      replayed balances equal the reported ones               (invariant 3)
  limit        every reported balance lies within its reported limits  (invariant 2)
  zero_sum     every currency sums to zero, replayed and reported      (invariant 1)
  anchor_*     each on-chain batch root equals the root recomputed from the entries, the
               server's record of batches agrees with the chain, and nothing older than
               the anchoring deadline is left unanchored               (invariant 5)
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .codec import hex0x, try_b32
from .entries import _document, canonical_body, chain_next
from .findings import Finding
from .fold import LedgerState, SignatureCheck, check_signature, step, zero_sum_faults
from .hashing import ZERO32, keccak256
from .merkle import build_tree, entry_leaves
from .nonces import NonceSet
from .vocab import KINDS

MAX_LISTED = 200  # discrepancies listed in full; beyond that only counted
# How far an entry's time may run behind an earlier entry's, or ahead of the reconciler's clock:
# an honest server's clock may step back a little; a server back-dating an entry (to post a
# signature after its validUntil) or post-dating one is flagged beyond this.
CLOCK_SKEW_MS = 300_000
# entry times are kept 8 bytes each (an array, not a list of ints): a gap is _NO_TIME, and a
# time beyond 64 bits is clamped (it is far outside every window the checks compare it with)
_NO_TIME, _MAX_TIME = -2**63, 2**63 - 1

# Reconciliation reports the fold's one finding type; its JSON key for `code` is "check".
Discrepancy = Finding


@dataclass(frozen=True, slots=True)
class ChainBatch:
    """A batch as the chain holds it (from its Anchored events, replayed)."""
    first_seq: int
    last_seq: int
    root: bytes
    tx_hash: str = ""
    block: int | None = None
    timestamp_ms: int | None = None  # the anchoring block's time: no entry in it can be later


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """A batch as the server's records claim it (GET /v1/anchors or an export)."""
    first_seq: int
    last_seq: int
    root: bytes
    status: str = "confirmed"


@dataclass
class Report:
    entries: int = 0
    head_seq: int = 0
    head_chain_hash: str = hex0x(ZERO32)
    accounts: int = 0
    currencies: dict[str, int] = field(default_factory=dict)  # currency -> sum of replayed balances
    signatures_checked: int = 0
    batches_checked: int = 0
    batches_beyond: int = 0  # anchored after this log's head (an older export): not checkable here
    anchored_through: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    checks_run: list[str] = field(default_factory=list)
    # what the checks cannot decide but a reader must know (not discrepancies: an honest log can cause them)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.counts

    def as_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "headSeq": self.head_seq,
                "headChainHash": self.head_chain_hash, "accounts": self.accounts,
                "currencyTotals": self.currencies, "signaturesChecked": self.signatures_checked,
                "batchesChecked": self.batches_checked, "batchesBeyondHead": self.batches_beyond,
                "anchoredThrough": self.anchored_through,
                "checks": self.checks_run, "discrepancyCounts": self.counts,
                "discrepancies": [d.as_dict() for d in self.discrepancies], "warnings": self.warnings}


try:  # a C encoder: ~4x faster; its bytes are only trusted when they match (else the reference encoder)
    import orjson

    def _fast_document(seq: int, kind: str, at: int, body: dict) -> bytes | None:
        try:
            body_bytes = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        if not body_bytes.isascii():
            return None  # the canonical form escapes non-ASCII: leave it to the reference encoder
        return b'{"at":%d,"body":%s,"kind":%s,"seq":%d}' % (at, body_bytes, _KIND_JSON.get(kind, b"null"), seq)
except ImportError:  # pragma: no cover - orjson is a dependency; the reference path is the fallback
    def _fast_document(seq: int, kind: str, at: int, body: dict) -> bytes | None:
        return None

_KIND_JSON = {k: ('"%s"' % k).encode() for k in KINDS}

class Reconciler:
    """Feed entries in log order, then balances and batches; read `report`.

    `signature_check`: the fold's signature check (ledger.core.fold.check_signature, or one
    answered from signers recovered ahead on other cores: ledger.verify.parallel); with
    `verify_signatures=False` none (the hash chain, digests and rules are still checked, but a
    server could then invent signed-looking entries). A bad signature is a `signature` finding
    at its seq, listed after the log's other findings; the entry is still applied, so that one
    forgery is one finding, not a cascade of balance differences."""

    def __init__(self, *, signature_check: SignatureCheck | None = None, verify_signatures: bool = True,
                 now_ms: int | None = None, clock_skew_ms: int = CLOCK_SKEW_MS):
        self._check = (signature_check or check_signature) if verify_signatures else None
        self._bad_signatures: list[Finding] = []
        # replay protection for the whole log in ~60 bytes a signed entry (ledger.core.nonces)
        self.state = LedgerState(used_nonces=NonceSet())
        self.report = Report(checks_run=["sequence", "entry_hash", "chain_hash", "rules"]
                             + (["signature"] if self._check else []))
        self._expect_seq = 1
        self._prev_chain = ZERO32
        self._hashes = bytearray()  # entry hashes by seq-1, for Merkle roots (32 bytes each)
        self._ats = array("q")  # entry times by seq-1 (_NO_TIME: a gap), for the anchoring deadline
        self._now_ms, self._skew = now_ms, clock_skew_ms
        self._latest_at = 0
        self._made_at: int | None = None

    # -- findings ---------------------------------------------------------------------
    def flag(self, check: str, seq: int | None, expected: object, found: object, **where) -> None:
        counts = self.report.counts
        counts[check] = counts.get(check, 0) + 1
        if len(self.report.discrepancies) < MAX_LISTED:
            self.report.discrepancies.append(Finding(check, seq, str(expected), str(found), **where))

    def add(self, finding: Finding) -> None:
        """Record a finding of the fold (ledger.core.fold) as it is."""
        counts = self.report.counts
        counts[finding.code] = counts.get(finding.code, 0) + 1
        if len(self.report.discrepancies) < MAX_LISTED:
            self.report.discrepancies.append(finding)

    # -- the log --------------------------------------------------------------------
    def feed(self, entry: Mapping) -> None:
        """One entry as served by GET /v1/log or read from an export line."""
        try:
            seq, kind, at, body = entry["seq"], entry["kind"], entry["at"], entry["body"]
            found_entry_hex, found_chain_hex = entry["entryHash"], entry["chainHash"]
            if not (type(seq) is int and type(at) is int and isinstance(kind, str) and isinstance(body, dict)
                    and isinstance(found_entry_hex, str) and isinstance(found_chain_hex, str)):
                raise TypeError("seq/at must be integers, kind a string, body an object, hashes 0x-hex")
        except (KeyError, TypeError) as exc:
            self.flag("malformed", self._expect_seq, "an entry {seq, kind, at, body, entryHash, chainHash}",
                      f"{type(exc).__name__}: {exc}")
            self._expect_seq += 1
            return
        if seq != self._expect_seq:
            self.flag("sequence", seq, f"seq {self._expect_seq}", f"seq {seq}",
                      detail="missing" if seq > self._expect_seq else "repeated or out of order")
            if seq < self._expect_seq:
                return  # a repeat or a row moved back: do not apply it twice
            self._hashes.extend(ZERO32 * (seq - self._expect_seq))
            self._ats.extend([_NO_TIME] * (seq - self._expect_seq))
        self._expect_seq = seq + 1
        # No canonical-form validation of the body here (it is the hot path): the hash compares
        # the exact bytes the server committed to, and replay validates every field it uses.
        # The fast encoder's bytes count only when they hash to the stored hash; otherwise the
        # reference encoder (json, as the service writes) decides.
        doc = _fast_document(seq, kind, at, body) if kind in _KIND_JSON else None
        entry_hash = keccak256(doc) if doc is not None else b""
        if hex0x(entry_hash) != found_entry_hex:
            entry_hash = keccak256(_document(seq, kind, at, canonical_body(body, validate=False)))
        if hex0x(entry_hash) != found_entry_hex:
            self.flag("entry_hash", seq, hex0x(entry_hash), found_entry_hex,
                      detail="the entry's content does not match its hash")
        chain_hash = chain_next(self._prev_chain, entry_hash)
        if hex0x(chain_hash) != found_chain_hex:
            self.flag("chain_hash", seq, hex0x(chain_hash), found_chain_hex,
                      detail="the chain hash does not follow from the previous entry")
            # continue from what was found, so one break is reported once, not at every later entry
            self._prev_chain = try_b32(found_chain_hex) or chain_hash
        else:
            self._prev_chain = chain_hash
        self._hashes += entry_hash
        self._ats.append(min(max(at, _NO_TIME + 1), _MAX_TIME))
        if at < self._latest_at - self._skew or (self._now_ms is not None and at > self._now_ms + self._skew):
            self.flag("clock", seq, f"a time after {self._latest_at - self._skew} and before now",
                      at, detail="the entry's time runs backwards or into the future (back-dated?)")
        self._latest_at = max(self._latest_at, at)
        self.report.entries += 1
        self.report.head_seq = seq
        self._replay(seq, kind, at, body)

    @property
    def head_chain_hash(self) -> str:
        return hex0x(self._prev_chain)

    def _replay(self, seq: int, kind: str, at: int, body: dict) -> None:
        result = step(self.state, seq, kind, at, body, self._signature if self._check else None)
        if isinstance(result, Finding):
            self.add(result)

    def _signature(self, seq: int, digest: bytes, signature: str, signer: str) -> None:
        """Check now, report at finish_log (after the log's other findings, in seq order)."""
        self.report.signatures_checked += 1
        bad = self._check(seq, digest, signature, signer)
        if bad is not None:
            self._bad_signatures.append(bad)

    def finish_log(self) -> None:
        self.report.head_chain_hash = self.head_chain_hash
        for bad in sorted(self._bad_signatures, key=lambda f: f.seq):
            self.add(bad)
        self._bad_signatures = []
        st = self.state
        self.report.accounts = len(st.accounts)
        totals: dict[str, int] = {}
        for (_, currency), pos in st.positions.items():
            totals[currency] = totals.get(currency, 0) + pos.balance
        self.report.currencies = totals
        for currency, total in zero_sum_faults(st.balances()).items():
            self.flag("zero_sum", self.report.head_seq, "0", total, currency=currency,
                      detail="replayed balances do not sum to zero")

    # -- the trust root -----------------------------------------------------------------
    @property
    def genesis_hash(self) -> str | None:
        return hex0x(bytes(self._hashes[:32])) if len(self._hashes) >= 32 else None

    # -- what the server reports ----------------------------------------------------
    def compare_balances(self, head_seq: int, reported: Iterable[Mapping]) -> None:
        """Compare the server's balance sheet (as of head_seq) with the replay."""
        self.report.checks_run += ["balance", "limit", "zero_sum"]
        if head_seq != self.report.head_seq:
            self.flag("balance", head_seq, f"balances as of seq {self.report.head_seq}",
                      f"balances as of seq {head_seq}", detail="the balance sheet and the log end at different seqs")
        replayed = dict(self.state.positions)
        seen: set[tuple[str, str]] = set()
        totals: dict[str, int] = {}
        for row in reported:
            if not (isinstance(row, Mapping) and isinstance(row.get("account"), str)
                    and isinstance(row.get("currency"), str) and type(row.get("balance")) is int
                    and type(row.get("creditLimit")) is int
                    and (row.get("ceiling") is None or type(row.get("ceiling")) is int)):
                self.flag("balance", head_seq, "a row {account, currency, balance, creditLimit, ceiling} of integers",
                          repr(row)[:120], detail="malformed balance-sheet row")
                continue
            key = (row["account"], row["currency"])
            if key in seen:
                self.flag("balance", head_seq, "one row per account and currency", "a repeated row",
                          account=key[0], currency=key[1])
                continue
            seen.add(key)
            balance, limit, ceiling = row["balance"], row["creditLimit"], row.get("ceiling")
            totals[key[1]] = totals.get(key[1], 0) + balance
            mine = replayed.get(key)
            if mine is None:
                self.flag("balance", head_seq, "no such account in the log", f"balance {balance}",
                          account=key[0], currency=key[1])
                continue
            if mine.balance != balance:
                self.flag("balance", head_seq, mine.balance, balance, account=key[0], currency=key[1])
            if (mine.credit_limit, mine.ceiling) != (limit, ceiling):
                self.flag("balance", head_seq, f"limit {mine.credit_limit}, ceiling {mine.ceiling}",
                          f"limit {limit}, ceiling {ceiling}", account=key[0], currency=key[1],
                          detail="reported limits differ from those the log set")
            if balance < -limit or (ceiling is not None and balance > ceiling):
                self.flag("limit", head_seq, f"within [-{limit}, {ceiling if ceiling is not None else '∞'}]",
                          balance, account=key[0], currency=key[1])
        for key in sorted(set(replayed) - seen):
            self.flag("balance", head_seq, f"balance {replayed[key].balance}", "missing from the report",
                      account=key[0], currency=key[1])
        for currency, total in sorted(totals.items()):
            if total != 0:
                self.flag("zero_sum", head_seq, "0", total, currency=currency,
                          detail="reported balances do not sum to zero")

    # -- the chain --------------------------------------------------------------------
    def note_log_time(self, made_at_ms: object) -> None:
        """When the log being reconciled was made (an export's `exportedAt`). A batch anchored
        before then must lie inside the log; without it, the head entry's time is used."""
        if type(made_at_ms) is int:
            self._made_at = made_at_ms

    def log_made_at_ms(self) -> int | None:
        """The log's time: the claimed export time, never earlier than its head entry."""
        head = self._ats[self.report.head_seq - 1] if self.report.head_seq else _NO_TIME
        head = None if head == _NO_TIME else head
        times = [t for t in (self._made_at, head) if t is not None]
        return max(times) if times else None

    def _anchored_before_log_was_made(self, b: ChainBatch) -> bool:
        """True when `b` (reaching past the log's head) was anchored before the log was made, by
        more than the clock skew: an honest log made then would hold all of b's entries. A batch
        anchored later is one the log cannot know (an older export): not checkable here."""
        made_at = self.log_made_at_ms()
        return b.timestamp_ms is not None and made_at is not None and b.timestamp_ms + self._skew < made_at

    def _warn_cut_batch(self, b: ChainBatch) -> None:
        """A batch that starts inside the log and ends past its head, counted as anchored after
        the log was made: true of an honest export made just before that batch was anchored,
        and equally of a log cut inside the batch whose unsigned export time was set back (or
        lies within the clock tolerance). Only the server's live log can tell the two apart."""
        self.report.warnings.append(
            f"chain batch {b.first_seq}..{b.last_seq} (tx {b.tx_hash or '?'}) starts inside this log "
            f"(head seq {self.report.head_seq}) and ends beyond it; it was counted as anchored after the log "
            "was made only on the log's own unsigned time: reconcile against the server (--api) to be sure "
            "no anchored entry was cut off")

    def root_of(self, first_seq: int, last_seq: int) -> bytes | None:
        if not (1 <= first_seq <= last_seq <= self.report.head_seq):
            return None
        h = self._hashes
        pairs = ((s, bytes(h[(s - 1) * 32:s * 32])) for s in range(first_seq, last_seq + 1))
        return build_tree(entry_leaves(pairs)).root

    def check_anchors(self, chain_batches: list[ChainBatch], claimed: list[ClaimedBatch] | None = None, *,
                      now_ms: int | None = None, deadline_ms: int | None = None,
                      chain_problems: Iterable[str] = (), log_may_be_older: bool = False) -> None:
        """Invariant 5 against the chain's own batches (already replayed against the contract's
        head by the caller: `chain_problems` carries what that found). `log_may_be_older`: an
        export made before later batches were anchored; otherwise (the chain read before the
        server's head) a batch reaching past the head means the server hides anchored entries."""
        self.report.checks_run += ["anchor_root", "anchor_record"] + (["anchor_deadline"] if deadline_ms else [])
        for problem in chain_problems:
            self.flag("anchor_chain", None, "an unbroken anchor history on chain", problem)
        through = 0
        for b in chain_batches:
            self.report.batches_checked += 1
            root = self.root_of(b.first_seq, b.last_seq)
            if root is None and log_may_be_older and b.last_seq > self.report.head_seq:
                if not self._anchored_before_log_was_made(b):
                    self.report.batches_checked -= 1
                    self.report.batches_beyond += 1
                    if b.first_seq <= self.report.head_seq:
                        self._warn_cut_batch(b)
                    continue
                self.flag("anchor_root", b.first_seq, f"entries {b.first_seq}..{b.last_seq} in the log",
                          f"the log ends at seq {self.report.head_seq}",
                          detail=f"batch {b.first_seq}..{b.last_seq} was anchored (tx {b.tx_hash}, at "
                                 f"{b.timestamp_ms}) before this log was made (at {self.log_made_at_ms()}): "
                                 "the log lacks entries the chain commits to")
                continue
            if root is None:
                self.flag("anchor_root", b.first_seq, f"entries {b.first_seq}..{b.last_seq} in the log",
                          f"the log ends at seq {self.report.head_seq}",
                          detail=f"batch {b.first_seq}..{b.last_seq} anchored in tx {b.tx_hash}")
                continue
            if root != b.root:
                # a root says *that* a batch changed, not where: report the batch's first seq
                self.flag("anchor_root", b.first_seq, hex0x(b.root), hex0x(root),
                          detail=f"batch {b.first_seq}..{b.last_seq}: the chain's root (expected) differs from "
                                 f"the root of the entries (found); tx {b.tx_hash}")
            if b.timestamp_ms is not None:
                after = [q for q in range(b.first_seq, b.last_seq + 1)
                         if self._ats[q - 1] > b.timestamp_ms + self._skew]
                if after:
                    self.flag("clock", after[0], f"entries no later than their anchoring block ({b.timestamp_ms})",
                              f"{len(after)} entries stamped later", detail=f"batch {b.first_seq}..{b.last_seq}")
            through = max(through, b.last_seq)
        self.report.anchored_through = through
        on_chain = {(b.first_seq, b.last_seq): b.root for b in chain_batches}
        for c in claimed or []:
            if c.status != "confirmed":
                continue
            root = on_chain.get((c.first_seq, c.last_seq))
            if root is None:
                self.flag("anchor_record", c.first_seq, "the batch on chain",
                          f"server claims batch {c.first_seq}..{c.last_seq} but the chain has no such batch")
            elif root != c.root:
                self.flag("anchor_record", c.first_seq, hex0x(root), hex0x(c.root),
                          detail=f"server's record of batch {c.first_seq}..{c.last_seq} differs from the chain")
        if deadline_ms is not None and now_ms is not None:
            late = [s for s in range(through + 1, self.report.head_seq + 1)
                    if self._ats[s - 1] != _NO_TIME and self._ats[s - 1] + deadline_ms < now_ms]
            if late:
                self.flag("anchor_deadline", late[0], f"entries older than {deadline_ms // 1000} s anchored",
                          f"{len(late)} entries unanchored ({late[0]}..{late[-1]})",
                          detail=f"anchored through seq {through}")
